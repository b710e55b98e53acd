"""Training v2 over several GPU sessions, one round per session (lab/v2/README.md). Both sides of a round:

here (dev box, repo root):
  rounds.py slice --corpus .gpu/corpus-v2 [--corpus .gpu/corpus-gh]   the corpora, merged, cut into the recipe's
                                                     slices (one per round)
  rounds.py prepare --round N [--ckpt DIR]           carry folders .gpu/v2/carry/cK (corpus slice + checkpoint
                                                     parts + state.json), and the device calls of the round
  rounds.py aside | restore                          move what the GPU machine does not need out of the tree
  rounds.py land DIR...                              fetched parts -> verified checkpoint .gpu/v2/ckpt/rN, and
                                                     the round appended to lab/v2/RUNLOG.md + runlog.json
GPU machine (through lab/v2/gpu.sh):
  rounds.py collect DIR | prep | run-round | fetch-files N
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
import zlib
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import corpora
import parts

HERE = Path(__file__).parent
REPO = HERE.parent.parent
V2 = Path(os.environ.get("V2_HERE", REPO / ".gpu" / "v2"))  # here-side folder (a dry run points it elsewhere)
CALL_BYTES = int(os.environ.get("V2_CALL_BYTES", 64 * parts.MiB))  # what one device call may carry, either way
BACK_FILES = 8
ASIDE = ["models/default/*.onnx", "docs/results", "bench/results", "test/fixtures", "lab/v2/ckpt"]
PACK_RESERVE_S = 90              # end of a round: final eval + save, checkpoint -> parts (GPU side)
SEGMENT_MIN = 1.5                # don't start a training segment with less time than this


# ---------------------------------------------------------------------------------------------- recipe and state

def load_recipe(path):
    r = json.loads(Path(path).read_text())
    start = {}  # schedule -> steps so far: phases on one schedule follow each other on its cosine
    for ph in r["phases"]:
        n = round(ph["tokens"] / r["batch_tokens"])
        ph["start"] = start.get(ph["schedule"], 0)
        ph["end"] = ph["start"] + n
        start[ph["schedule"]] = ph["end"]
    for name, s in r["schedules"].items():
        s["steps"] = start[name]
    return r


def initial_state(recipe):
    return {"recipe": recipe["name"], "round": 1, "phase": recipe["phases"][0]["name"], "step": 0,
            "tokens_total": 0, "done": False}


def phase_index(recipe, name):
    return [p["name"] for p in recipe["phases"]].index(name)


def train_command(recipe, state, init, data, out, minutes, finish=False, stop_at=None):
    """The `mixsga train` command of the current phase from state["step"], on at most `minutes` of wall time."""
    ph = recipe["phases"][phase_index(recipe, state["phase"])]
    sch = recipe["schedules"][ph["schedule"]]
    cmd = [sys.executable, "-m", "mixsga", "train", "--data", str(data), "--out", str(out),
           "--seq-len", ph["seq_len"], "--micro-batch", ph["micro_batch"], "--batch-tokens", recipe["batch_tokens"],
           "--lr", sch["lr"], "--min-lr-ratio", sch["min_lr_ratio"], "--warmup-steps", sch["warmup_steps"],
           "--max-steps", sch["steps"], "--stop-at-step", min(ph["end"], stop_at or ph["end"]),
           "--fim-line-rate", recipe["fim_line_rate"], "--seed", recipe["seed"], "--eval-every", recipe["eval_every"],
           "--eval-windows", recipe["eval_windows"], "--save-every", 0, "--log-every", recipe.get("log_every", 10)]
    if init == "scratch":
        cmd += ["--init", "scratch", "--model-size", recipe["model"]["preset"],
                "--config-json", json.dumps(recipe["model"]["config"])]
    else:
        cmd += ["--init", str(init), "--start-step", state["step"]]
        if state["step"] > 0:  # a fresh AdamW mid-schedule (step 0 of a schedule has the schedule's warmup)
            cmd += ["--rewarm-steps", recipe["rewarm_steps"]]
    last_on_schedule = ph["end"] == sch["steps"]
    cmd += ["--time-budget-min" if finish and last_on_schedule else "--stop-after-min", f"{minutes:.2f}"]
    if recipe.get("compile"):
        cmd.append("--compile")
    return [str(c) for c in cmd + ph["flags"]]


def advance(recipe, state, reached):
    """The state after a segment that stopped at step `reached` of the current phase's schedule."""
    s = dict(state, step=reached)
    i = phase_index(recipe, s["phase"])
    if reached >= recipe["phases"][i]["end"]:
        if i + 1 == len(recipe["phases"]):
            s["done"] = True
        else:
            nxt = recipe["phases"][i + 1]
            s.update(phase=nxt["name"], step=nxt["start"])
    return s


# ---------------------------------------------------------------------------------------------- GPU side

def read_log(path):
    return [json.loads(l) for l in Path(path).read_text().splitlines() if l.strip()] if Path(path).exists() else []


def run_round(args):
    """Train the recipe's phases from the staged state until the time is up, then pack the checkpoint."""
    t0 = time.time()
    recipe, work, stage = load_recipe(args.recipe), Path(args.work), Path(args.work) / "stage"
    deadline = t0 + args.minutes * 60 - PACK_RESERVE_S
    state = json.loads((stage / "state.json").read_text()) if (stage / "state.json").exists() else initial_state(recipe)
    init = "scratch"
    if "ckpt.tar" in json.loads((stage / "MANIFEST.json").read_text())["pieces"]:
        init = parts.decode_checkpoint(parts.join(stage, "ckpt.tar", work / "in"), work / "in" / "ckpt")
    start_state = dict(state)
    print(f"[round] round {state['round']} from {state['phase']} step {state['step']} ({init})", flush=True)
    if not (work / "prep.started").exists():
        raise SystemExit("the corpus is not complete: stage its missing folders, then start the round again")
    while not (work / "shards" / "meta.json").exists():  # prep (shards) runs detached since the corpus arrived
        if (work / "prep.failed").exists():
            raise SystemExit(f"shards failed: see {work}/prep.log")
        time.sleep(5)
    segments, left_steps, error = [], args.round_steps or float("inf"), None
    while not state["done"] and left_steps > 0:
        minutes = (deadline - time.time()) / 60
        if minutes < SEGMENT_MIN:
            break
        out = work / "runs" / f"r{state['round']}-{state['phase']}"
        stop_at = state["step"] + left_steps if args.round_steps else None
        cmd = train_command(recipe, state, init, work / "shards", out, minutes, args.finish, stop_at)
        print("[round] " + " ".join(cmd), flush=True)
        ts = time.time()
        r = subprocess.run(cmd, cwd=work / "repo", stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           check=False)
        (work / "runs" / f"{out.name}.out").write_text(r.stdout)
        done = re.findall(r"\[train\] done at step (\d+)", r.stdout)
        if r.returncode or not done:  # keep what the round did so far: the last saved checkpoint goes back
            print(r.stdout[-4000:], flush=True)
            error = f"train failed (rc {r.returncode}) in phase {state['phase']} at step {state['step']}"
            print(f"[round] {error}", flush=True)
            break
        reached = int(done[-1])
        log = read_log(out / "log.jsonl")
        segments.append(segment_record(state, reached, log, time.time() - ts))
        left_steps -= reached - state["step"]
        ph = recipe["phases"][phase_index(recipe, state["phase"])]
        if args.finish and ph["end"] == recipe["schedules"][ph["schedule"]]["steps"]:
            reached = ph["end"]  # its cosine was annealed within the time: the phase is over, however far it got
        state = advance(recipe, state, reached)
        state["tokens_total"] += segments[-1]["tokens"]
        init = out / "ckpt"
    if not segments:
        raise SystemExit(error or "no time left for training")
    state["round"] += 1
    run = {"round": start_state["round"], "recipe": recipe["name"], "device": device_name(),
           "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t0)), "from": start_state, "to": state,
           "segments": segments, "tokens": sum(s["tokens"] for s in segments), "tokens_total": state["tokens_total"],
           "train_minutes": round(sum(s["seconds"] for s in segments) / 60, 2), **({"error": error} if error else {})}
    pack(work, init, state, run)
    run["pipeline_minutes"] = round((time.time() - t0) / 60, 2)
    (work / "fetch" / "run.json").write_text(json.dumps(run, indent=1) + "\n")
    (work / "DONE").write_text(json.dumps(state) + "\n")
    print(f"[round] done: {json.dumps(state)}", flush=True)


def segment_record(state, reached, log, seconds):
    train = [r for r in log if "loss" in r and r["step"] > state["step"]]
    evals = [r for r in log if "val_loss" in r and r["step"] >= state["step"]]
    last = ([r for r in log if r.get("step")] or [{"tokens": 0, "step": 1}])[-1]  # the final eval, at least
    per_step = last["tokens"] // last["step"]
    keep = max(1, len(train) // 60)
    return {"phase": state["phase"], "start_step": state["step"], "end_step": reached,
            "tokens": (reached - state["step"]) * per_step, "tokens_before": state["tokens_total"],
            "seconds": round(seconds, 1),
            "tok_per_s": round(sum(r["tok_per_s_per_gpu"] for r in train[1:]) / max(1, len(train) - 1)),
            "loss_end": train[-1]["loss"] if train else None,
            "val": [{"step": r["step"], "val_loss": round(r["val_loss"], 5)} for r in evals],
            "loss_curve": [[r["step"], r["loss"]] for r in train[::keep]] + ([[train[-1]["step"], train[-1]["loss"]]]
                                                                              if train else [])}


def device_name():
    try:
        return subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True,
                              text=True, timeout=20, check=False).stdout.strip().splitlines()[0]
    except (OSError, IndexError, subprocess.SubprocessError):
        return "cpu"


def pack(work, ckpt, state, run):
    """The checkpoint (bf16 planes) + state.json -> fetch/ pieces; logs.tgz; the plan of the fetch calls."""
    fetch = work / "fetch"
    shutil.rmtree(fetch, ignore_errors=True)
    fetch.mkdir(parents=True)
    whole = parts.encode_checkpoint(Path(ckpt), work / "pack", {"state.json": json.dumps(state, indent=1) + "\n"})
    pieces = parts.cut(whole, fetch)
    parts.write_sums(fetch / "SHA256SUMS", {**{p.name: d for p, d in pieces}, "ckpt.tar": parts.sha256(whole)})
    (fetch / "MANIFEST.json").write_text(json.dumps({"pieces": {"ckpt.tar": len(pieces)}}, indent=1) + "\n")
    (fetch / "state.json").write_text(json.dumps(state, indent=1) + "\n")
    with tarfile.open(fetch / "logs.tgz", "w:gz") as tar:
        for f in sorted((work / "runs").glob("*")):
            if f.suffix == ".out" or f.is_dir():
                tar.add(f / "log.jsonl" if f.is_dir() else f, arcname=f"{f.name}.jsonl" if f.is_dir() else f.name)
        for f in ("round.log", "prep.log"):
            if (work / f).exists():
                tar.add(work / f, arcname=f)
    run["ckpt_sha256"] = parts.sha256(whole)
    run["bytes_back"] = {"ckpt.tar": whole.stat().st_size, "pieces": len(pieces)}
    (fetch / "run.json").write_text(json.dumps(run, indent=1) + "\n")
    always = ["SHA256SUMS", "MANIFEST.json", "state.json"]
    items = ["run.json", "logs.tgz"] + [p.name for p, _ in pieces]
    calls, used, files = [], 0, 0
    for name in items:
        size = (fetch / name).stat().st_size + 4096  # run.json gets its pipeline minutes after this
        if size + sum((fetch / a).stat().st_size for a in always) > CALL_BYTES:
            raise SystemExit(f"{name} ({size} bytes) does not fit one call back")
        if not calls or files + 1 > BACK_FILES or used + size > CALL_BYTES:
            calls.append(list(always))
            used, files = sum((fetch / a).stat().st_size for a in always), len(always)
        calls[-1].append(name)
        used, files = used + size, files + 1
    (fetch / "PLAN.json").write_text(json.dumps(calls) + "\n")
    shutil.rmtree(work / "pack")


def fetch_files(args):
    fetch = Path(args.work) / "fetch"
    calls = json.loads((fetch / "PLAN.json").read_text())
    if args.call >= len(calls):
        raise SystemExit(f"the round comes back in {len(calls)} calls (0..{len(calls) - 1}); nothing for {args.call}")
    Path(args.out).mkdir(parents=True, exist_ok=True)
    for name in calls[args.call]:
        shutil.copyfile(fetch / name, Path(args.out) / name)
    print(f"fetch {args.call + 1} of {len(calls)}: {' '.join(calls[args.call])}")


def prep(args):
    """Corpus pieces -> corpus folder -> token shards (+ the machine's own site-packages), in `work`."""
    work, stage = Path(args.work), Path(args.work) / "stage"
    tar_path = parts.join(stage, "corpus.tar", work)
    corpus = work / "corpus"
    shutil.rmtree(corpus, ignore_errors=True)
    with tarfile.open(tar_path) as tar:
        tar.extractall(corpus, filter="data")
    tar_path.unlink()
    cmd = [sys.executable, "-m", "mixsga", "shards", "--corpus", str(corpus), "--out", str(work / "shards.tmp"),
           "--workers", str(args.workers)]
    if args.site_packages:
        cmd += ["--site-packages", args.site_packages]
    shutil.rmtree(work / "shards.tmp", ignore_errors=True)
    subprocess.run(cmd, check=True)
    (work / "shards.tmp").rename(work / "shards")


# ---------------------------------------------------------------------------------------------- here

def slice_corpus(args):
    """train.jsonl.xz -> K slices by package (a package's files stay together); val, decontam and stats go with
    every slice, so each round's shards hold out the same packages. Several corpora (--corpus A --corpus B) are
    merged first, exact copies across them dropped (corpora.py)."""
    merge, out = corpora.Merge(args.corpus), Path(args.out)
    k = args.count or load_recipe(args.recipe)["data"]["corpus_slices"]
    dirs = [out / f"s{i}" for i in range(k)]
    for d in dirs:
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir(parents=True)
    merge.side_files(dirs[0])
    for d in dirs[1:]:
        for f in ("val.jsonl.xz", "decontam.json", "stats.json"):
            shutil.copyfile(dirs[0] / f, d / f)
    if k == 1:
        corpora.join_streams(merge, dirs[0] / "train.jsonl.xz")
        merge.report(dirs[0])
        print(f"{dirs[0]}: {(dirs[0] / 'train.jsonl.xz').stat().st_size / parts.MiB:.1f} MiB train "
              f"(merged; exact copies dropped across corpora: {merge.dropped})")
        return
    with ExitStack() as files:
        sinks = [subprocess.Popen(["xz", "-T0", "-6", "-c"], stdin=subprocess.PIPE,
                                  stdout=files.enter_context(open(d / "train.jsonl.xz", "wb"))) for d in dirs]
        for line, pkg in merge.train_lines():
            sinks[zlib.crc32(pkg.encode()) % k].stdin.write(line)
        for s in sinks:
            s.stdin.close()
            s.wait()
    for d in dirs:
        merge.report(d)
        print(f"{d}: {(d / 'train.jsonl.xz').stat().st_size / parts.MiB:.1f} MiB train")
    if len(args.corpus) > 1:
        print(f"merged {len(args.corpus)} corpora; exact copies dropped across them: {merge.dropped}")


def travelling_bytes():
    """Tracked + untracked-not-ignored files, i.e. what every device call sends besides `carry`."""
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                           capture_output=True, check=True).stdout.split(b"\0")
    return sum((REPO / f.decode()).stat().st_size for f in files if f and (REPO / f.decode()).is_file())


def rel(p: Path) -> str:
    """A path as the device calls name it: relative to the repo root (the carry folders live under .gpu/v2)."""
    return str(p.relative_to(REPO)) if p.is_relative_to(REPO) else str(p)


def prepare(args):
    recipe = load_recipe(args.recipe)
    ckpt = Path(args.ckpt) if args.ckpt else None
    state = json.loads((ckpt / "state.json").read_text()) if ckpt else initial_state(recipe)
    if state["round"] != args.round:
        raise SystemExit(f"{ckpt}/state.json is at round {state['round']}, not {args.round}")
    if state["done"]:
        raise SystemExit(f"{ckpt}: the recipe is done")
    work = V2 / "work"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    wholes, xfer = [], sorted(Path(args.corpus_xfer).glob("p[0-9]*")) if args.corpus_xfer else []
    if not xfer:
        sl = Path(args.slice) if args.slice else \
            Path(args.slices) / f"s{(args.round - 1) % recipe['data']['corpus_slices']}"
        if not (sl / "train.jsonl.xz").exists():
            raise SystemExit(f"no corpus slice in {sl}: run `rounds.py slice --corpus DIR` first")
        with tarfile.open(work / "corpus.tar", "w") as tar:
            for f in sorted(sl.iterdir()):
                tar.add(f, arcname=f.name)
        wholes.append(work / "corpus.tar")
    if ckpt:
        wholes.append(parts.encode_checkpoint(ckpt, work))
    tree = travelling_bytes()
    whl = sum(f.stat().st_size for f in (REPO / ".whl").glob("*.whl")) if (REPO / ".whl").is_dir() else 0
    capacity = int(args.call_mib * parts.MiB) if args.call_mib else CALL_BYTES - tree - 2 * parts.MiB
    if capacity < 2 * parts.PIECE:
        raise SystemExit(f"the tree that travels with every call is {tree / parts.MiB:.1f} MiB, leaving "
                         f"{capacity / parts.MiB:.1f} MiB per call: run `rounds.py aside` first")
    folders = parts.pack_folders(wholes, V2 / "carry", capacity, first_extra=whl,
                                 small={"state.json": json.dumps(state, indent=1) + "\n"})
    shutil.rmtree(work)
    sizes = [sum(f.stat().st_size for f in d.iterdir()) for d in folders]
    print(f"round {args.round}: {state['phase']} from step {state['step']}; tree {tree / parts.MiB:.1f} MiB travels "
          f"with every call; carry folders of {capacity / parts.MiB:.1f} MiB" + (" (--call-mib)" if args.call_mib else ""))
    for d, s in zip(folders, sizes):
        print(f"  {rel(d)}: {s / parts.MiB:.1f} MiB")
    print("\nDevice calls (kind nvidia-h100-x1; run `rounds.py aside` first, `restore` after):")
    folders = xfer + folders  # the whole corpus as `corpus --xfer` cut it, if given: more calls than a slice
    for i, d in enumerate(folders):
        carry = [str(rel(d))] + ([".whl"] if i == 0 and whl else [])
        cmd = f"bash lab/v2/gpu.sh stage {rel(d)}"
        if i == len(folders) - 1:
            cmd += " && bash lab/v2/gpu.sh train --minutes M   # M = budget_left_s/60 - 4"
        print(f"  {i + 1}. carry {json.dumps(carry)}: {cmd}")
    print(f"  {len(folders) + 1}. bash lab/v2/gpu.sh wait 570            (again until it prints DONE)\n"
          f"  then bash lab/v2/gpu.sh fetch 0, fetch 1, ... (status prints how many)\n"
          f"  then here: python3 lab/v2/rounds.py land <files_at of each fetch call>")


def land(args):
    dst = V2 / "landing"
    shutil.rmtree(dst, ignore_errors=True)
    for d in args.dirs:
        parts.collect(Path(d), dst)
    run = json.loads((dst / "run.json").read_text())
    run["fetch_calls"] = len(args.dirs)
    ckpt = V2 / "ckpt" / f"r{run['round']}"
    shutil.rmtree(ckpt, ignore_errors=True)
    parts.decode_checkpoint(parts.join(dst, "ckpt.tar", dst), ckpt)
    print(f"checkpoint of round {run['round']}: {ckpt} (sha256 verified); next: prepare --round {run['round'] + 1} "
          f"--ckpt {rel(ckpt)}")
    append_runlog(run, Path(args.runlog))
    if args.keep:  # the dev box does not outlive a session: the verified pieces are committed to carry on
        keep = Path(args.keep)
        shutil.rmtree(keep, ignore_errors=True)
        keep.mkdir(parents=True)
        for f in sorted(dst.iterdir()):
            if f.name.startswith("ckpt.tar.part") or f.name in ("SHA256SUMS", "MANIFEST.json", "state.json", "run.json"):
                shutil.copyfile(f, keep / f.name)
        print(f"pieces kept in {rel(keep)}: next session `land {rel(keep)}` restores the checkpoint")


def millions(n):
    return f"{n / 1e6:.0f}M" if n >= 1e6 else str(n)


BEGIN, END = "<!-- rounds: rounds.py land rewrites this table -->", "<!-- /rounds -->"


def append_runlog(run, md: Path):
    """runlog.json gets the round (replacing an earlier landing of it); RUNLOG.md's table is rebuilt from it, the
    notes around the table are kept."""
    js = md.with_name("runlog.json")
    rounds = [r for r in (json.loads(js.read_text()) if js.exists() else []) if r["round"] != run["round"]]
    rounds = sorted(rounds + [run], key=lambda r: r["round"])
    js.write_text(json.dumps(rounds, indent=1) + "\n")
    head = ("| round | started (UTC) | device | phases (steps) | tokens: round / total | train loss | val loss "
            "| train / pipeline min | tok/s | fetch calls |\n|---|---|---|---|---|---|---|---|---|---|\n")
    rows = []
    for r in rounds:
        segs = "; ".join(f"{s['phase']} {s['start_step']}→{s['end_step']}" for s in r["segments"])
        segs += f" ({r['error']})" if r.get("error") else ""
        vals = [v["val_loss"] for s in r["segments"] for v in s["val"]]
        tps = [s["tok_per_s"] for s in r["segments"]]
        rows.append(f"| {r['round']} | {r['started_utc']} | {r['device']} | {segs} | {millions(r['tokens'])} / "
                    f"{millions(r['tokens_total'])} | {r['segments'][-1]['loss_end']} | "
                    f"{vals[-1] if vals else '-'} | {r['train_minutes']} / {r.get('pipeline_minutes', '-')} | "
                    f"{'/'.join(map(str, tps))} | {r.get('fetch_calls', '-')} |\n")
    table = f"{BEGIN}\n{head}{''.join(rows)}{END}"
    text = md.read_text() if md.exists() else f"# v2 run log\n\n{BEGIN}\n{END}\n"
    md.write_text(text[:text.index(BEGIN)] + table + text[text.index(END) + len(END):])


def aside(args):
    store = V2 / "aside"
    for pattern in ASIDE:
        for p in sorted(REPO.glob(pattern)):
            dst = store / p.relative_to(REPO)
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(p, dst)
    print(f"moved aside into {store}; travelling tree now {travelling_bytes() / parts.MiB:.1f} MiB")


def restore(args):
    """Move the set-aside files back. A file the tree got again meanwhile (e.g. a merge while the round ran) is
    newer than the one set aside: it is kept, and the old copy dropped."""
    store, kept = V2 / "aside", 0
    for p in sorted(store.rglob("*")):
        if p.is_file():
            dst = REPO / p.relative_to(store)
            if dst.exists():
                kept += 1
                continue
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(p, dst)
    shutil.rmtree(store, ignore_errors=True)
    print("restored" + (f"; {kept} files written meanwhile kept as they are" if kept else ""))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--recipe", default=str(HERE / "recipe-v2.json"))
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("slice")
    p.add_argument("--corpus", required=True, action="append",
                   help="a `corpus` output folder; repeat to merge several (earlier ones win exact duplicates)")
    p.add_argument("--out", default=str(V2 / "slices"))
    p.add_argument("--count", type=int, help="slices to cut (default: the recipe's corpus_slices); 1 = a round "
                   "trains on all of this session's corpus (the dev box does not keep a corpus between sessions)")
    p.set_defaults(func=slice_corpus)
    p = sub.add_parser("prepare")
    p.add_argument("--round", type=int, required=True)
    p.add_argument("--ckpt", help="the last round's checkpoint (land's output); none for round 1")
    p.add_argument("--slices", default=str(V2 / "slices"))
    p.add_argument("--slice", help="stage this slice folder instead of the round's slice of --slices")
    p.add_argument("--corpus-xfer", help="stage the whole corpus from `corpus --xfer` folders (DIR/p0, p1, ...) "
                   "instead of this round's slice")
    p.add_argument("--call-mib", type=float, help="bytes per carry folder (default: 64 MiB - the tree - 2 MiB)")
    p.set_defaults(func=prepare)
    p = sub.add_parser("land")
    p.add_argument("dirs", nargs="+")
    p.add_argument("--runlog", default=str(HERE / "RUNLOG.md"))
    p.add_argument("--keep", help="also copy the verified pieces here (lab/v2/ckpt/rN, committed)")
    p.set_defaults(func=land)
    sub.add_parser("aside").set_defaults(func=aside)
    sub.add_parser("restore").set_defaults(func=restore)
    p = sub.add_parser("collect")
    p.add_argument("dir")
    p.add_argument("--work", required=True)
    p.set_defaults(func=lambda a: print("complete:", " ".join(parts.collect(Path(a.dir), Path(a.work) / "stage"))))
    p = sub.add_parser("prep")
    p.add_argument("--work", required=True)
    p.add_argument("--site-packages", help="the machine's site-packages folder, added to the corpus")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    p.set_defaults(func=prep)
    p = sub.add_parser("run-round")
    p.add_argument("--work", required=True)
    p.add_argument("--minutes", type=float, required=True, help="wall time from now to packed parts")
    p.add_argument("--finish", action="store_true", help="anneal the last phase of a schedule within the time")
    p.add_argument("--round-steps", type=int, default=0, help="at most this many steps this round (dry runs)")
    p.set_defaults(func=run_round)
    p = sub.add_parser("fetch-files")
    p.add_argument("call", type=int)
    p.add_argument("--work", required=True)
    p.add_argument("--out", required=True)
    p.set_defaults(func=fetch_files)
    args = ap.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
