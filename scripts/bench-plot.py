#!/usr/bin/env python3
"""Plots of the benchmark JSON files in bench/results/ (written by `node dist/bench.js`) into docs/img/.

    python3 scripts/bench-plot.py [--results bench/results] [--out docs/img]

All files are named docs/img/bench-<kind>-<results file stem>.png:
completion suite -> latency-<file>.png (p50/p95 of warm, cold, cold-after-prefill) and budgets-<file>.png
gpu suite        -> decode-<file>.png (decode tok/s vs context per budget), split-<file>.png (per decode step:
                    feed build, session.run split into estimated transfer vs the rest, unwrap; stacked bars),
                    prefill-<file>.png; a run with several --decode-steps -> steps-<file>.png (run time vs tokens
                    per run, with the least-squares cost per step and per run)
PyTorch reference (lab/gpu/bench_torch.py JSON, "engine": "pytorch-eager") -> no plot of its own, but
combined with the GPU-suite files of the same run (file names <prefix>-gpu-<model>-<ep>.json and
<prefix>-torch-<model>.json, e.g. 2026-11-29-h200-gpu-tinyllama-cuda.json):
    eps-<prefix>-<model>.png        decode tok/s vs context per budget, CUDA EP vs CPU EP (total and run only)
    torch-vs-ort-<prefix>-<model>.png  per budget/context: ORT CUDA run only and total vs PyTorch eager; prefill
"""
import argparse, glob, json, os, re, sys

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
    fig.tight_layout(); f = os.path.join(out, "bench-" + f"latency-{stem}.png"); fig.savefig(f, dpi=110); plt.close(fig); print(f)

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
        fig.tight_layout(); f = os.path.join(out, "bench-" + f"budgets-{stem}.png"); fig.savefig(f, dpi=110); plt.close(fig); print(f)


def plot_split(r, dec, kind, stem, out):
    """Stacked bars per configuration: JS feed build, session.run (est. transfer vs the rest), JS unwrap + append."""
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
        ax.plot(xs, [v if v is not None else float("nan") for v in prof_out], "kx", label="profile: model_run − executor (profiled run)")
    ax.set_xticks(list(xs)); ax.set_xticklabels(labels, fontsize=7); ax.set_ylabel("ms per decode step (p50)" if kind == "decode" else "ms per prompt, all chunks (p50)")
    ax.set_title(("Decode step" if kind == "decode" else "Prefill") + " split (budget %, tokens) — " + title(r), fontsize=9); ax.legend(fontsize=7)
    fig.tight_layout(); f = os.path.join(out, "bench-" + (f"split-{stem}.png" if kind == "decode" else f"split-prefill-{stem}.png")); fig.savefig(f, dpi=110); plt.close(fig); print(f)



def plot_steps(r, stem, out):
    """Run time vs decode steps per run: the slope is what one more generated token costs, the intercept what a
    run costs besides (feeds, the chunk, the outputs)."""
    dec = [x for x in r["results"] if x["kind"] == "decode"]
    fig, ax = plt.subplots(figsize=(7, 4))
    for key in sorted({(x["budgetPct"], x["tokens"]) for x in dec}, reverse=True):
        pts = sorted((x["decodeSteps"], x["totalMs"]["p50"]) for x in dec if (x["budgetPct"], x["tokens"]) == key)
        n = len(pts); mx = sum(p[0] for p in pts) / n; my = sum(p[1] for p in pts) / n
        slope = sum((p[0] - mx) * (p[1] - my) for p in pts) / sum((p[0] - mx) ** 2 for p in pts)
        ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-",
                label=f"{key[0]}% KV, {key[1]} context: {slope:.2f} ms/step + {my - slope * mx:.1f} ms/run")
    ax.set_xlabel("tokens per session.run (decode steps)"); ax.set_ylabel("whole run ms (p50)")
    ax.set_title("Decode run time vs steps — " + title(r), fontsize=9); ax.legend(fontsize=8)
    fig.tight_layout(); f = os.path.join(out, "bench-" + f"steps-{stem}.png"); fig.savefig(f, dpi=110); plt.close(fig); print(f)


def plot_gpu(r, stem, out):
    if len(r.get("settings", {}).get("decodeStepsList", [])) > 1:
        return plot_steps(r, stem, out)
    dec = [x for x in r["results"] if x["kind"] == "decode"]
    budgets = sorted({x["budgetPct"] for x in dec}, reverse=True)
    fig, ax = plt.subplots(figsize=(7, 4))
    for b in budgets:
        pts = sorted((x["tokens"], x["tokensPerSec"]) for x in dec if x["budgetPct"] == b)
        ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", label=f"{b}% KV")
    ax.set_xlabel("context (tokens)"); ax.set_ylabel("decode tokens/s"); ax.set_xscale("log", base=2)
    ax.set_title("Decode speed vs context — " + title(r), fontsize=9); ax.legend()
    fig.tight_layout(); f = os.path.join(out, "bench-" + f"decode-{stem}.png"); fig.savefig(f, dpi=110); plt.close(fig); print(f)

    for kind in ("decode", "prefill"):
        rows = [x for x in r["results"] if x["kind"] == kind]
        if rows: plot_split(r, rows, kind, stem, out)

    pre = [x for x in r["results"] if x["kind"] == "prefill"]
    if pre:
        fig, ax = plt.subplots(figsize=(7, 4))
        for L in sorted({x["tokens"] for x in pre}):
            pts = sorted((x["budgetPct"], x["tokensPerSec"]) for x in pre if x["tokens"] == L)
            ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", label=f"{L}-token prompt")
        ax.set_xlabel("KV budget (% of full)"); ax.set_ylabel("prefill tokens/s"); ax.invert_xaxis()
        ax.set_title("Prefill speed — " + title(r), fontsize=9); ax.legend()
        fig.tight_layout(); f = os.path.join(out, "bench-" + f"prefill-{stem}.png"); fig.savefig(f, dpi=110); plt.close(fig); print(f)


def plot_eps(prefix, model, byep, out):
    """Decode tok/s vs context per budget, one line per EP (solid: whole step, dotted: session.run only)."""
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2), sharey=False)
    colors = {100: "C0", 75: "C1", 50: "C2", 25: "C3"}
    for ax, key, what in [(axes[0], "tokensPerSec", "whole step (feeds + run + unwrap)"),
                          (axes[1], "runOnlyTokensPerSec", "session.run only")]:
        for ep, r in sorted(byep.items()):
            dec = [x for x in r["results"] if x["kind"] == "decode"]
            for b in sorted({x["budgetPct"] for x in dec}, reverse=True):
                pts = sorted((x["tokens"], x[key]) for x in dec if x["budgetPct"] == b)
                ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-" if ep == "cuda" else "s--",
                        color=colors.get(b), label=f"{ep.upper()} EP, {b}% KV")
        ax.set_xscale("log", base=2); ax.set_yscale("log"); ax.set_xlabel("context (tokens)")
        ax.set_ylabel("decode tokens/s"); ax.set_title(what, fontsize=9); ax.grid(alpha=0.3, which="both")
    axes[1].legend(fontsize=7, ncol=2)
    r0 = byep.get("cuda") or next(iter(byep.values())); m = r0.get("machine", {})
    fig.suptitle(f"{r0.get('model')}: CUDA EP ({(m.get('gpu') or {}).get('name', '?')}) vs CPU EP ({m.get('cpuModel', '?')}, "
                 f"{m.get('cores', '?')} cores), {m.get('date', '')[:10]}", fontsize=9)
    fig.tight_layout(); f = os.path.join(out, "bench-" + f"eps-{prefix}-{model}.png"); fig.savefig(f, dpi=110); plt.close(fig); print(f)


def plot_torch_vs_ort(prefix, model, ort, torch, out):
    """Per (budget, context): ORT CUDA decode step (run only, whole step) vs PyTorch eager; prefill likewise."""
    dec = {(x["budgetPct"], x["tokens"]): x for x in ort["results"] if x["kind"] == "decode"}
    trows = {(int(x["budget"].rstrip("%")), x["context"]): x for x in torch["rows"] if x["kind"] == "decode"}
    keys = [k for k in sorted(dec, key=lambda k: (-k[0], k[1])) if k in trows]
    pre = {x["tokens"]: x for x in ort["results"] if x["kind"] == "prefill" and x["budgetPct"] == 100}
    tpre = {x["tokens"]: x for x in torch["rows"] if x["kind"] == "prefill"}
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.2), gridspec_kw={"width_ratios": [3, 1]})
    ax = axes[0]; xs = range(len(keys))
    ax.bar([x - 0.27 for x in xs], [dec[k]["runOnlyTokensPerSec"] for k in keys], 0.27, label="ORT CUDA EP: session.run")
    ax.bar(list(xs), [dec[k]["tokensPerSec"] for k in keys], 0.27, label="ORT CUDA EP: whole step (+ JS feeds, unwrap)")
    ax.bar([x + 0.27 for x in xs], [trows[k]["tokens_per_s"] for k in keys], 0.27, label="PyTorch eager (device-resident KV)")
    ax.set_xticks(list(xs)); ax.set_xticklabels([f"{b}%\n{t}" for b, t in keys], fontsize=7)
    ax.set_ylabel("decode tokens/s"); ax.set_title("decode (budget %, context)", fontsize=9); ax.legend(fontsize=7)
    ax = axes[1]; Ls = [L for L in sorted(pre) if L in tpre]; xs = range(len(Ls))
    ax.bar([x - 0.27 for x in xs], [pre[L]["runOnlyTokensPerSec"] for L in Ls], 0.27, label="ORT run (256-token chunks)")
    ax.bar(list(xs), [pre[L]["tokensPerSec"] for L in Ls], 0.27, label="ORT whole (+ unwrap)")
    ax.bar([x + 0.27 for x in xs], [tpre[L]["tokens_per_s"] for L in Ls], 0.27, label="PyTorch (one chunk)")
    ax.set_xticks(list(xs)); ax.set_xticklabels([f"{L} tokens" for L in Ls]); ax.set_yscale("log")
    ax.set_ylabel("prefill tokens/s"); ax.set_title("prefill, 100% KV", fontsize=9); ax.legend(fontsize=6)
    fig.suptitle(f"{model}: ONNX Runtime CUDA EP vs PyTorch {torch.get('torch', '')} eager {torch.get('dtype', '')} on "
                 f"{torch.get('device_name', '')}, {prefix}", fontsize=9)
    fig.tight_layout(); f = os.path.join(out, "bench-" + f"torch-vs-ort-{prefix}-{model}.png"); fig.savefig(f, dpi=110); plt.close(fig); print(f)


def plot_groups(loaded, out):
    gpu, torch = {}, {}
    for stem, r in loaded.items():
        m = re.match(r"(.+)-gpu-(.+)-(cuda|cpu)$", stem)
        if m and r.get("suite") == "gpu":
            gpu.setdefault((m.group(1), m.group(2)), {})[m.group(3)] = r
        m = re.match(r"(.+)-torch-(.+)$", stem)
        if m and r.get("engine") == "pytorch-eager":
            torch[(m.group(1), m.group(2))] = r
    for (prefix, model), byep in sorted(gpu.items()):
        try:
            if len(byep) > 1: plot_eps(prefix, model, byep, out)
            if "cuda" in byep and (prefix, model) in torch: plot_torch_vs_ort(prefix, model, byep["cuda"], torch[(prefix, model)], out)
        except Exception as e:
            print(f"{prefix}-{model}: combined plots skipped ({e})", file=sys.stderr)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--results", default=os.path.join(ROOT, "bench", "results"))
    ap.add_argument("--out", default=os.path.join(ROOT, "docs", "img"))
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    files = sorted(glob.glob(os.path.join(a.results, "*.json")))
    if not files:
        print(f"no JSON files in {a.results}", file=sys.stderr); return 1
    loaded = {}
    for fn in files:
        with open(fn) as fh:
            r = json.load(fh)
        stem = os.path.splitext(os.path.basename(fn))[0]
        loaded[stem] = r
        if str(r.get("engine", "")).startswith("pytorch"):
            continue  # plotted with the matching GPU-suite file (plot_groups)
        try:
            (plot_gpu if r.get("suite") == "gpu" else plot_completion)(r, stem, a.out)
        except Exception as e:  # one odd file should not stop the others
            print(f"{fn}: skipped ({e})", file=sys.stderr)
    plot_groups(loaded, a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
