"""Issue 18's comparison as one command: llama.cpp (built by build.sh from the llama-cpp-python 0.3.36 sdist) on
the shipped model's dense weights (F16 by write_gguf.py, Q8_0 by llama-quantize) against our graph, interleaved
rounds, 2 threads; JSON + a markdown table (paste into docs/benchmarks.md).

  llama-bench  prefill 512/2048 (pp) and decode of 16 tokens at 2,030 tokens of context (tg16 at depth 2030),
               flash attention off and on, F16 and Q8_0;
  ours         `node dist/bench.js --suite gpu --device cpu` on MODEL_DIR (decode at 2,048 context at the KV
               budgets, prefill 512/2048);
  /infill      llama-server on 127.0.0.1 (stopped by its PID): one request at the end of a line, 16 tokens, cold,
               then warm (one character typed), against ours (`--suite spots`, typing/new spot); the prefix is cut
               to --infill-tokens by the server's own tokenizer, and the warm request counts only if the server
               says it reused its cache (timings.cache_n / prompt_n, kept in each run's "infillCheck").

Usage: python lab/llama-cpp/compare.py [--model models/default] [--rounds 3] [--cache ~/.cache/mixsga-llama-cpp]
       [--out bench/results/DATE-cpu-llama-cpp.json] [--infill-tokens 1500]
Needs `npm run build` (dist/bench.js). Figures from a loaded machine are recorded with its load average.
"""
import argparse
import datetime
import json
import os
import signal
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent


def sh(cmd, **kw):
    print("+", " ".join(map(str, cmd)), file=sys.stderr)
    return subprocess.run(list(map(str, cmd)), check=True, text=True, **kw)


def prepare(cache, model):
    bins = Path(sh(["bash", HERE / "build.sh", cache], stdout=subprocess.PIPE).stdout.strip().splitlines()[-1])
    ckpt, f16, q8 = cache / "ckpt", cache / "mixsga-f16.gguf", cache / "mixsga-q8_0.gguf"
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'toolchain'}:{cache / 'py'}"}
    if not (cache / "py" / "gguf").exists():
        sh([sys.executable, "-m", "pip", "install", "--target", cache / "py", "gguf"])
    if not ckpt.exists():
        sh([sys.executable, "-m", "mixsga", "from_onnx", model, ckpt], env=env)
    if not f16.exists():
        sh([sys.executable, HERE / "write_gguf.py", ckpt, model, f16], env=env)
    if not q8.exists():
        sh([bins / "llama-quantize", f16, q8, "Q8_0"])
    return bins, {"F16": f16, "Q8_0": q8}


def llama_bench(bins, gguf, fa):
    out = sh([bins / "llama-bench", "-m", gguf, "-t", "2", "-fa", str(fa), "-p", "512,2048", "-n", "0", "-r", "3",
              "-o", "json"], stdout=subprocess.PIPE).stdout
    rows = json.loads(out)
    out = sh([bins / "llama-bench", "-m", gguf, "-t", "2", "-fa", str(fa), "-p", "0", "-n", "16", "-d", "2030",
              "-r", "3", "-o", "json"], stdout=subprocess.PIPE).stdout
    rows += json.loads(out)
    res = {}
    for r in rows:
        key = f"prefill {r['n_prompt']}" if r["n_prompt"] else f"decode at {r.get('n_depth', 0) + 16} context"
        res[key] = r["avg_ts"]
    return res


def ours_graph(model):
    tmp = Path(f"/tmp/llama-cmp-ours-{os.getpid()}.json")
    sh(["node", ROOT / "dist/bench.js", "--suite", "gpu", "--device", "cpu", "--model", model, "--budgets", "100,50,25",
        "--contexts", "2048", "--prefill", "512,2048", "--threads", "2", "--profile-runs", "0", "--no-probe", "--out", tmp],
       stdout=subprocess.DEVNULL)
    r = json.loads(tmp.read_text())
    tmp.unlink()
    return {f"{x['kind']} {x['tokens']} at {x['budgetPct']} % KV": x["tokensPerSec"] for x in r["results"]}


def ours_spots(model):
    tmp = Path(f"/tmp/llama-cmp-spots-{os.getpid()}.json")
    sh(["node", ROOT / "dist/bench.js", "--suite", "spots", "--device", "cpu", "--model", model, "--spots", "6",
        "--keystrokes", "3", "--doc-tokens", "2000", "--layouts", "psm", "--threads", "2", "--out", tmp],
       stdout=subprocess.DEVNULL)
    r = json.loads(tmp.read_text())
    tmp.unlink()
    return r


# /infill keeps only the last 3*(n_batch/4) tokens of input_prefix (format_prompt_infill, tools/server/
# server-common.cpp at 0c1e570). Past that cap every typed token moves the kept window by one token, so no prompt
# token stays at its cached position and the warm request recomputes everything: the prefix must stay under it.
BATCH = 2048
PREFIX_CAP = 3 * (BATCH // 4)
# a warm request reprocesses the typed character's token(s) and <fim_middle>; more means the cache was not reused
WARM_MAX_PROCESSED = 4


def infill(bins, gguf, source, max_tokens, port=18093):
    """Cold then warm (one character typed) /infill at the end of the longest run of `source`'s lines that is at most
    `max_tokens` tokens; ms per request, and what the server reports about its prompt cache."""
    # -n 16: /infill fills n_ctx - n_batch - 2*n_predict tokens with extra context; with the default n_predict of -1
    # that is 2 tokens of its "<file_sep>filename" placeholder before the suffix
    srv = subprocess.Popen([str(bins / "llama-server"), "-m", str(gguf), "-t", "2", "-c", "2048", "-b", str(BATCH),
                            "-n", "16", "--host", "127.0.0.1", "--port", str(port), "--spm-infill", "-np", "1"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(120):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1)
                break
            except OSError:
                time.sleep(0.5)

        def post(path, body):
            req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", json.dumps(body).encode(),
                                         {"Content-Type": "application/json"})
            t = time.perf_counter()
            raw = urllib.request.urlopen(req, timeout=120).read()
            return json.loads(raw), (time.perf_counter() - t) * 1000

        def n_tokens(s):  # as /infill tokenizes input_prefix: no BOS, special tokens not parsed
            return len(post("/tokenize", {"content": s, "add_special": False, "parse_special": False})[0]["tokens"])

        lines = source.split("\n")
        lo, hi = 1, len(lines)  # most lines whose text fits
        while lo < hi:
            mid = (lo + hi + 1) // 2
            lo, hi = (mid, hi) if n_tokens("\n".join(lines[:mid])) <= max_tokens else (lo, mid - 1)
        while lo > 1 and not lines[lo - 1].strip():  # type at the end of a non-empty line, as the spots suite does
            lo -= 1
        text = "\n".join(lines[:lo])

        def ask(prefix):
            r, ms = post("/infill", {"input_prefix": prefix, "input_suffix": "\n", "n_predict": 16,
                                     "cache_prompt": True, "temperature": 0})
            t = r["timings"]
            return ms, {"promptTokens": r["tokens_evaluated"], "cacheN": t["cache_n"], "promptN": t["prompt_n"],
                        "predictedN": t["predicted_n"]}

        cold_ms, cold = ask(text)
        warm_ms, warm = ask(text + "x")
        reused = warm["promptN"] <= WARM_MAX_PROCESSED
        check = {"prefixTokens": n_tokens(text), "cold": cold, "warm": warm, "warmReused": reused}
        # an invalid warm figure gets its own key, so it never enters the "warmMs" median or the table unmarked
        return {"coldMs": cold_ms, "warmMs" if reused else "warmMs (cache not reused: invalid)": warm_ms}, check
    finally:
        os.kill(srv.pid, signal.SIGTERM)
        srv.wait(timeout=30)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=str(ROOT / "models/default"))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--cache", default=os.path.expanduser("~/.cache/mixsga-llama-cpp"))
    ap.add_argument("--out", default=str(ROOT / "bench/results" / f"{datetime.date.today()}-cpu-llama-cpp.json"))
    ap.add_argument("--infill-tokens", type=int, default=1500,
                    help=f"llama-server prompt: prefix tokens (< {PREFIX_CAP}, /infill's prefix cap)")
    a = ap.parse_args()
    if not 0 < a.infill_tokens <= PREFIX_CAP - 8:
        ap.error(f"--infill-tokens must leave room under /infill's prefix cap of {PREFIX_CAP} tokens for the typing")
    cache = Path(a.cache)
    cache.mkdir(parents=True, exist_ok=True)
    bins, ggufs = prepare(cache, a.model)
    # ~1,500 tokens of a TypeScript source, cut by llama-server's tokenizer (about 2.5 characters a token here: the
    # 4,800 characters used before were ~1,890 tokens, over /infill's prefix cap, and the warm request never reused
    # the cache). Our engine's typing requests reuse its cache for everything before the cursor, likewise.
    source = (ROOT / "src/bench/gpu.ts").read_text()
    load0 = os.getloadavg()
    runs = []
    for r in range(a.rounds):
        order = ["ours", "llama"] if r % 2 == 0 else ["llama", "ours"]
        for side in order:
            if side == "ours":
                runs.append({"round": r, "side": "ours", "graph": ours_graph(a.model), "spots": ours_spots(a.model),
                             "load1": os.getloadavg()[0]})
            else:
                for q, g in ggufs.items():
                    for fa in (0, 1):
                        runs.append({"round": r, "side": f"llama.cpp {q} fa {'on' if fa else 'off'}",
                                     "bench": llama_bench(bins, g, fa), "load1": os.getloadavg()[0]})
                    res, check = infill(bins, g, source, a.infill_tokens)
                    runs.append({"round": r, "side": f"llama-server {q}", "infill": res, "infillCheck": check,
                                 "load1": os.getloadavg()[0]})
    med = {}
    for run in runs:
        spots = run.get("spots", {}).get("layouts", {}).get("psm", {})
        typed = {f"{k} p50 ms": spots[k]["latencyMs"]["p50"] for k in ("typing", "newSpot") if k in spots}
        for k, v in {**run.get("graph", {}), **run.get("bench", {}), **run.get("infill", {}), **typed}.items():
            med.setdefault(run["side"], {}).setdefault(k, []).append(v)
    med = {s: {k: statistics.median(v) for k, v in d.items()} for s, d in med.items()}
    quiet = max(load0[0], max(r["load1"] for r in runs)) < 3
    warm_ok = all(r["infillCheck"]["warmReused"] for r in runs if "infillCheck" in r)
    note = [] if quiet else ["the machine was loaded by other jobs: these figures are not meaningful; rerun on a quiet "
                             + "machine"]
    if not warm_ok:
        note.append("llama-server reprocessed the prompt on a warm request (runs' infillCheck): those warm figures "
                    "are not a cache-reuse measurement")
    result = {"what": __doc__.split("\n\n")[0], "date": datetime.datetime.now(datetime.UTC).isoformat(),
              "machine": {"cpus": os.cpu_count(), "loadavgBefore": load0, "loadavgAfter": os.getloadavg()},
              "quiet": quiet, "warmReused": warm_ok, "note": "; ".join(note),
              "llama_cpp": "llama-cpp-python 0.3.36 sdist (vendor/llama.cpp), CPU backend without AMX",
              "medians": med, "runs": runs}
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(result, indent=1) + "\n")
    print("| configuration | " + " | ".join(sorted({k for d in med.values() for k in d})) + " |")
    for s, d in med.items():
        print(f"| {s} | " + " | ".join(f"{d[k]:,.0f}" if k in d else "" for k in sorted({k for d in med.values() for k in d})) + " |")
    print(f"wrote {a.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
