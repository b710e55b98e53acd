"""Issue 18's comparison as one command: llama.cpp (built by build.sh from the llama-cpp-python 0.3.36 sdist) on
the shipped model's dense weights (F16 by write_gguf.py, Q8_0 by llama-quantize) against our graph, interleaved
rounds, 2 threads; JSON + a markdown table (paste into docs/benchmarks.md).

  llama-bench  prefill 512/2048 (pp) and decode of 16 tokens at 2,030 tokens of context (tg16 at depth 2030),
               flash attention off and on, F16 and Q8_0;
  ours         `node dist/bench.js --suite gpu --device cpu` on MODEL_DIR (decode at 2,048 context at the KV
               budgets, prefill 512/2048);
  /infill      llama-server on 127.0.0.1 (stopped by its PID): one request at the end of a ~2,000-token file,
               16 tokens, cold, then warm (one character typed), against ours (`--suite spots`, typing/new spot).

Usage: python lab/llama-cpp/compare.py [--model models/default] [--rounds 3] [--cache ~/.cache/mixsga-llama-cpp]
       [--out bench/results/DATE-cpu-llama-cpp.json]
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


def infill(bins, gguf, text, port=18093):
    """Cold then warm (one character typed) /infill at the end of `text`; ms per request."""
    srv = subprocess.Popen([str(bins / "llama-server"), "-m", str(gguf), "-t", "2", "-c", "2048", "--host", "127.0.0.1",
                            "--port", str(port), "--spm-infill", "-np", "1"], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    try:
        for _ in range(120):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1)
                break
            except OSError:
                time.sleep(0.5)

        def ask(prefix):
            body = json.dumps({"input_prefix": prefix, "input_suffix": "\n", "n_predict": 16, "cache_prompt": True,
                               "temperature": 0}).encode()
            t = time.perf_counter()
            urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{port}/infill", body,
                                                          {"Content-Type": "application/json"}), timeout=120).read()
            return (time.perf_counter() - t) * 1000

        return {"coldMs": ask(text), "warmMs": ask(text + "x")}
    finally:
        os.kill(srv.pid, signal.SIGTERM)
        srv.wait(timeout=30)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=str(ROOT / "models/default"))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--cache", default=os.path.expanduser("~/.cache/mixsga-llama-cpp"))
    ap.add_argument("--out", default=str(ROOT / "bench/results" / f"{datetime.date.today()}-cpu-llama-cpp.json"))
    ap.add_argument("--infill-chars", type=int, default=4800, help="llama-server prompt: characters (~1,500 tokens)")
    a = ap.parse_args()
    cache = Path(a.cache)
    cache.mkdir(parents=True, exist_ok=True)
    bins, ggufs = prepare(cache, a.model)
    # the prompt window our engine uses (≤ 1,536 positions): a TypeScript source cut to --infill-chars. A longer text
    # overflows llama-server's 2,048-token context with the 16 predicted tokens, it truncates the prompt differently
    # on every request and never reuses its cache (8,000 characters did: warm ≈ cold, 2026-12-06)
    text = (ROOT / "src/bench/gpu.ts").read_text()[:a.infill_chars]
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
                    runs.append({"round": r, "side": f"llama-server {q}", "infill": infill(bins, g, text),
                                 "load1": os.getloadavg()[0]})
    med = {}
    for run in runs:
        spots = run.get("spots", {}).get("layouts", {}).get("psm", {})
        typed = {f"{k} p50 ms": spots[k]["latencyMs"]["p50"] for k in ("typing", "newSpot") if k in spots}
        for k, v in {**run.get("graph", {}), **run.get("bench", {}), **run.get("infill", {}), **typed}.items():
            med.setdefault(run["side"], {}).setdefault(k, []).append(v)
    med = {s: {k: statistics.median(v) for k, v in d.items()} for s, d in med.items()}
    quiet = max(load0[0], max(r["load1"] for r in runs)) < 3
    result = {"what": __doc__.split("\n\n")[0], "date": datetime.datetime.now(datetime.UTC).isoformat(),
              "machine": {"cpus": os.cpu_count(), "loadavgBefore": load0, "loadavgAfter": os.getloadavg()},
              "quiet": quiet,
              "note": "" if quiet else "the machine was loaded by other jobs: these figures are not meaningful; "
                                       "rerun on a quiet machine",
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
