#!/usr/bin/env python3
"""Plots of the benchmark JSON files in bench/results/ (written by `node dist/bench.js`) into docs/img/.

    python3 scripts/bench-plot.py [--results bench/results] [--out docs/img]

completion suite -> latency-<file>.png (p50/p95 of warm, cold, cold-after-prefill) and budgets-<file>.png
gpu suite        -> decode-<file>.png (decode tok/s vs context per budget), split-<file>.png (per decode step:
                    feed build, session.run split into estimated transfer vs the rest, unwrap; stacked bars),
                    prefill-<file>.png
"""
import argparse, glob, json, os, sys

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def title(r):
    m = r.get("machine", {})
    dev = r.get("device")
    gpu = (m.get("gpu") or {}).get("name") if dev == "cuda" else None
    return f"{r.get('model')} on {dev} ({gpu or m.get('cpuModel', '?')}, {m.get('cores', '?')} cores), {m.get('date', '')[:10]}"


def plot_completion(r, stem, out):
    kinds = [("warm", "warm (1 keystroke)"), ("cold", "cold (new doc)"), ("coldAfterPrefill", "cold after prefill()")]
    fig, ax = plt.subplots(figsize=(7, 4))
    xs = range(len(kinds))
    ax.bar([x - 0.2 for x in xs], [r[k]["latencyMs"]["p50"] for k, _ in kinds], 0.4, label="p50")
    ax.bar([x + 0.2 for x in xs], [r[k]["latencyMs"]["p95"] for k, _ in kinds], 0.4, label="p95")
    ax.set_xticks(list(xs)); ax.set_xticklabels([n for _, n in kinds])
    ax.set_ylabel("ms"); ax.set_title("Completion latency — " + title(r), fontsize=9); ax.legend()
    fig.tight_layout(); f = os.path.join(out, f"latency-{stem}.png"); fig.savefig(f, dpi=110); plt.close(fig); print(f)

    b = r.get("budgets") or []
    if b:
        fig, ax = plt.subplots(figsize=(7, 4))
        mb = [x["budgetMB"] for x in b]
        ax.plot(mb, [x["budgetBytes"] / 2**20 for x in b], "k--", label="budget")
        ax.plot(mb, [x["maxUsedBytes"] / 2**20 for x in b], "o-", label="max KV bytes held")
        ax.plot(mb, [x["usedBytes"] / 2**20 for x in b], "s-", label="KV bytes after run")
        ax.set_xscale("log"); ax.set_yscale("log"); ax.set_xlabel("budget (MiB)"); ax.set_ylabel("MiB")
        for x in b:
            ax.annotate("/".join(f"{s:.2f}" for s in x["expertShares"]), (x["budgetMB"], max(x["usedBytes"], 1) / 2**20),
                        fontsize=7, textcoords="offset points", xytext=(4, -12))
        ax.set_title("KV bytes vs budget (labels: expert shares 4/2/1 heads) — " + title(r), fontsize=8); ax.legend()
        fig.tight_layout(); f = os.path.join(out, f"budgets-{stem}.png"); fig.savefig(f, dpi=110); plt.close(fig); print(f)


def plot_gpu(r, stem, out):
    dec = [x for x in r["results"] if x["kind"] == "decode"]
    budgets = sorted({x["budgetPct"] for x in dec}, reverse=True)
    fig, ax = plt.subplots(figsize=(7, 4))
    for b in budgets:
        pts = sorted((x["tokens"], x["tokensPerSec"]) for x in dec if x["budgetPct"] == b)
        ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", label=f"{b}% KV")
    ax.set_xlabel("context (tokens)"); ax.set_ylabel("decode tokens/s"); ax.set_xscale("log", base=2)
    ax.set_title("Decode speed vs context — " + title(r), fontsize=9); ax.legend()
    fig.tight_layout(); f = os.path.join(out, f"decode-{stem}.png"); fig.savefig(f, dpi=110); plt.close(fig); print(f)

    fig, ax = plt.subplots(figsize=(max(7, 0.55 * len(dec)), 4.5))
    labels = [f"{x['budgetPct']}%\n{x['tokens']}" for x in dec]
    feed = [x["feedBuildMs"]["p50"] for x in dec]
    run = [x["runMs"]["p50"] for x in dec]
    xfer = [min(x["estTransferMs"] or 0, x["runMs"]["p50"]) for x in dec]
    prof_out = [x["profile"]["outsideExecutorMs"] if x.get("profile") else None for x in dec]
    unw = [x["unwrapAppendMs"]["p50"] for x in dec]
    xs = range(len(dec))
    bottom = [0.0] * len(dec)
    for vals, name in [(feed, "JS feed build"), ([a - b for a, b in zip(run, xfer)], "run: compute (+ overhead)"),
                       (xfer, "run: est. KV transfer host↔device"), (unw, "JS unwrap + append")]:
        ax.bar(xs, vals, bottom=bottom, label=name); bottom = [a + b for a, b in zip(bottom, vals)]
    if any(v is not None for v in prof_out):
        ax.plot(xs, [v if v is not None else float("nan") for v in prof_out], "kx", label="profile: model_run − executor")
    ax.set_xticks(list(xs)); ax.set_xticklabels(labels, fontsize=7); ax.set_ylabel("ms per decode step (p50)")
    ax.set_title("Decode step split (budget %, context) — " + title(r), fontsize=9); ax.legend(fontsize=7)
    fig.tight_layout(); f = os.path.join(out, f"split-{stem}.png"); fig.savefig(f, dpi=110); plt.close(fig); print(f)

    pre = [x for x in r["results"] if x["kind"] == "prefill"]
    if pre:
        fig, ax = plt.subplots(figsize=(7, 4))
        for L in sorted({x["tokens"] for x in pre}):
            pts = sorted((x["budgetPct"], x["tokensPerSec"]) for x in pre if x["tokens"] == L)
            ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", label=f"{L}-token prompt")
        ax.set_xlabel("KV budget (% of full)"); ax.set_ylabel("prefill tokens/s"); ax.invert_xaxis()
        ax.set_title("Prefill speed — " + title(r), fontsize=9); ax.legend()
        fig.tight_layout(); f = os.path.join(out, f"prefill-{stem}.png"); fig.savefig(f, dpi=110); plt.close(fig); print(f)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--results", default=os.path.join(ROOT, "bench", "results"))
    ap.add_argument("--out", default=os.path.join(ROOT, "docs", "img"))
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    files = sorted(glob.glob(os.path.join(a.results, "*.json")))
    if not files:
        print(f"no JSON files in {a.results}", file=sys.stderr); return 1
    for fn in files:
        with open(fn) as fh:
            r = json.load(fh)
        stem = os.path.splitext(os.path.basename(fn))[0]
        try:
            (plot_gpu if r.get("suite") == "gpu" else plot_completion)(r, stem, a.out)
        except Exception as e:  # one odd file should not stop the others
            print(f"{fn}: skipped ({e})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
