"""Facts read from the run folders: training logs, all.log, eval_ppl rows, eval_code results, the shipped and
long-context runs. Nothing here formats or plots."""
from __future__ import annotations

import json
import re
from pathlib import Path


def read_jsonl(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                pass
    return rows


def read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def run_log(path: Path) -> list[dict]:
    """log.jsonl rows, one per (step, train/val): a rerun stage appends to the file, the last copy wins."""
    rows = {}
    for r in read_jsonl(path):
        rows[(r.get("step", 0), "val_loss" in r)] = r
    return [rows[k] for k in sorted(rows)]


def shards_stats(all_log: Path) -> dict | None:
    """The first multi-line JSON object in all.log (printed by the shards stage)."""
    if not all_log.is_file():
        return None
    text = all_log.read_text()
    m = re.search(r"^\{\s*$", text, re.M)
    if not m:
        return None
    try:
        obj, _ = json.JSONDecoder().raw_decode(text[m.start():])
        return obj
    except json.JSONDecodeError:
        return None


def log_facts(all_log: Path) -> dict:
    """run name -> facts from all.log's [train] lines. A run starts with its parameter line ('N params (M
    non-embedding), mixsga=..; ... = T tokens/step') and ends with 'done at step S (T tokens, Ns); checkpoint
    .../<run>/ckpt', whose folder names the run. For a run trained twice the last one counts."""
    out, cur = {}, {}
    if not all_log.is_file():
        return out
    for line in all_log.read_text().splitlines():
        m = re.search(r"\[train\] ([\d,]+) params \(([\d,]+) non-embedding\), mixsga=(\w+)", line)
        if m:
            cur = {"params": int(m.group(1).replace(",", "")), "non_embedding": int(m.group(2).replace(",", "")),
                   "mixsga": m.group(3) == "True"}
            t = re.search(r"= ([\d,]+) tokens/step", line)
            if t:
                cur["tokens_per_step"] = int(t.group(1).replace(",", ""))
        m = re.search(r"done at step (\d+) \(([\d,]+) tokens, (\d+)s\); checkpoint (\S+)", line)
        if m:
            name = Path(m.group(4).rstrip("/")).parent.name
            out[name] = dict(cur, steps=int(m.group(1)), tokens=int(m.group(2).replace(",", "")),
                             seconds=int(m.group(3)))
            cur = {}
    return out


def run_facts(rows: list[dict], logged: dict) -> dict:
    """Steps, tokens, time, throughput, last losses of one run: all.log's 'done' line, else its log.jsonl."""
    train = [r for r in rows if "loss" in r]
    val = val_rows(rows)
    steps = logged.get("steps", max((r.get("step", 0) for r in rows), default=0))
    tokens = logged.get("tokens", max((r.get("tokens", 0) for r in rows), default=0))
    return {"present": bool(rows or logged), "steps": steps, "tokens": tokens,
            "tokens_per_step": logged.get("tokens_per_step") or (tokens // steps if steps else None),
            "seconds": logged.get("seconds", max((r.get("elapsed_s", 0) for r in rows), default=0)),
            "throughput": throughput(rows), "last_loss": train[-1] if train else None,
            "last_val": val[-1] if val else None, "params": logged.get("params"),
            "non_embedding": logged.get("non_embedding"), "mixsga": logged.get("mixsga")}


def ppl_rows(eval_dir: Path, name: str) -> list[dict]:
    d = read_json(eval_dir / f"{name}.json")
    return (d or {}).get("rows", [])


def snapshot_steps(eval_dir: Path, run: str) -> list[int]:
    """Steps N of the eval files <run>-ckpt-step<N>.json."""
    pat = re.compile(rf"{re.escape(run)}-ckpt-step(\d+)\.json")
    return sorted(int(m.group(1)) for f in eval_dir.glob(f"{run}-ckpt-step*.json") if (m := pat.fullmatch(f.name)))


def comparison_steps(eval_dir: Path, gqa_run_steps: int | None = None) -> tuple[int | None, int | None]:
    """(ABL_STEPS, GQA_STEPS): gqa2 is snapshotted at ABL_STEPS, mixsga at both; GQA_STEPS is where the gqa2 run
    stopped when that is known (it may equal ABL_STEPS)."""
    mix, gqa = snapshot_steps(eval_dir, "mixsga"), snapshot_steps(eval_dir, "gqa2")
    abl = gqa[0] if gqa else (mix[0] if mix else None)
    if gqa_run_steps and gqa_run_steps in mix:
        return abl, gqa_run_steps
    rest = [s for s in mix if s != abl]
    return abl, (rest[-1] if rest else None)


def rows_at_step(eval_dir: Path, run: str, step: int | None, final_step: int) -> tuple[list[dict], str | None]:
    """eval_ppl rows of RUN's weights after STEP branch steps: its snapshot, or its final checkpoint."""
    if step is None:
        return [], None
    rows = ppl_rows(eval_dir, f"{run}-ckpt-step{step}")
    if rows:
        return rows, f"{run}-ckpt-step{step}"
    if step == final_step and ppl_rows(eval_dir, run):
        return ppl_rows(eval_dir, run), run
    return [], None


def ppl_at(rows, method, budget=None):
    for r in rows:
        if r["method"] == method and (budget is None and r["budget"] is None or
                                      budget is not None and r["budget"] is not None and
                                      abs(r["budget"] - budget) < 1e-6):
            return r
    return None


def train_curve(rows):
    return [(r["tokens"], r["loss"]) for r in rows if "loss" in r and "tokens" in r]


def val_rows(rows):
    return [r for r in rows if "val_loss" in r]


def train_loss_at(rows, step):
    """The last logged training-loss row at or before STEP."""
    c = [r for r in rows if "loss" in r and r.get("step", 0) <= step]
    return c[-1] if c else None


def throughput(rows):
    v = sorted(r["tok_per_s_per_gpu"] for r in rows if "tok_per_s_per_gpu" in r and r.get("step", 0) > 1)
    if not v:
        return None
    return {"median": v[len(v) // 2], "min": v[0], "max": v[-1]}


def kv_of_shares(shares, group_sizes) -> float:
    return sum(s / g for s, g in zip(shares, group_sizes))


def code_results(evals_dir: Path) -> dict:
    """set name -> (summary dict, config, file name, wall s, model); for a set in several files, the one with most tasks."""
    out = {}
    if not evals_dir or not evals_dir.is_dir():
        return out
    for f in sorted(evals_dir.glob("*.json")):
        d = read_json(f)
        if not isinstance(d, dict) or "sets" not in d:
            continue
        for name, s in d["sets"].items():
            gens = [t.get("gen_s", 0.0) for t in d.get("tasks", []) if t.get("set") == name]
            tl = [t for t in d.get("tasks", []) if t.get("set") == name]
            syn = sum(1 for t in tl if t.get("status") != "passed" and any(m in (t.get("stderr_tail") or "") for m in ("SyntaxError", "TypeScript: ")))
            passed = [t.get("completion", "") for t in tl if t.get("status") == "passed"]
            trivial = sum(1 for c in passed if re.fullmatch(r"\s*(return\s+[\w.]+|return|pass|[\w.]+ = \[\]|"
                                                            r"[\w.]+ = 0|)\s*", c))
            probs = sorted({int(m.group(1)) for t in tl for m in [re.search(r"(?:HumanEval|_)/?(\d+)(?:/|_|$)",
                                                                                      t.get("task_id", ""))] if m})
            s = dict(s, problems=(probs[0], probs[-1], len(probs)) if probs else None, trivial_passes=trivial, mean_gen_s=sum(gens) / len(gens) if gens else None, syntax_errors=syn if tl else None)
            if name in out and out[name][0]["n"] > s["n"]:
                continue        # several files for one set: keep the largest run
            out[name] = (s, d.get("config", {}), f.name, d.get("wall_s"), d.get("model"))
    return out


def training_doc_size(doc: Path) -> str:
    if not doc.is_file():
        return ""
    text = doc.read_text()
    m = re.search(r"^## Model size.*?(?=^## )", text, re.S | re.M)
    return m.group(0).strip() if m else ""


def shipped_facts(results: Path) -> dict | None:
    """The shipped model's own run when it is not this study's (train/{dense,mixsga[,dense-cont]}/log.jsonl and
    train/eval/{dense,mixsga[,dense-cont]}.json): tokens, held-out ppl rows and the full-KV references of that run
    (the dense trunk; dense-cont, the trunk continued as long as mixsga, when the run has it)."""
    train = results / "train"
    mix, dense = ppl_rows(train / "eval", "mixsga"), ppl_rows(train / "eval", "dense")
    if not mix:
        return None
    tok, steps = {}, {}
    for n in ("dense", "mixsga", "dense-cont"):
        rows = [r for r in run_log(train / n / "log.jsonl") if "tokens" in r]
        tok[n] = max((r["tokens"] for r in rows), default=0)
        steps[n] = max((r.get("step", 0) for r in rows), default=0)
    return {"dir": results, "mix": mix, "dense": dense, "cont": ppl_rows(train / "eval", "dense-cont"),
            "tokens": tok["dense"] + tok["mixsga"], "tok": tok, "steps": steps}


def long_facts(results: Path, seq: int = 2048) -> dict | None:
    """A run with the long-context phase: per branch b (mixsga, dense-cont) the eval rows of b and of its extension
    b-SEQ on 1024- and SEQ-token windows, the phase's tokens, and the dev-box position profiles."""
    train = results / "train"
    ev = train / "eval"
    if not (ev / f"mixsga-{seq}-at{seq}.json").is_file():
        return None
    f = {"dir": results, "seq": seq, "rows": {}, "tok": {}, "steps": {}}
    for b in ("dense", "mixsga", "dense-cont", f"mixsga-{seq}", f"dense-cont-{seq}"):
        f["rows"][b] = ppl_rows(ev, b)
        f["rows"][f"{b}@{seq}"] = ppl_rows(ev, f"{b}-at{seq}")
        logged = [r for r in run_log(train / b / "log.jsonl") if "tokens" in r]
        f["tok"][b] = max((r["tokens"] for r in logged), default=0)
        f["steps"][b] = max((r.get("step", 0) for r in logged), default=0)
    f["ext_steps"] = f["steps"][f"mixsga-{seq}"]
    f["profile_meta"] = {p.stem: read_json(p) or {} for p in sorted((results / "local-ppl").glob(f"*-{seq}.json"))}
    f["profiles"] = {name: m.get("by_position") for name, m in f["profile_meta"].items()}
    return f
