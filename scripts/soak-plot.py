#!/usr/bin/env python3
"""Plots a soak result (npm run soak): engine RSS, allocated KV bytes vs the budget, latency p50/p95 per 5 minutes.

usage: python3 scripts/soak-plot.py docs/results/soak-DATE.json [docs/img/soak-DATE.png]
"""
import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main() -> None:
    src = Path(sys.argv[1])
    out = Path(sys.argv[2]) if len(sys.argv) > 2 else Path("docs/img") / (src.stem + ".png")
    d = json.loads(src.read_text())
    s = d["samples"]
    t = [x["t"] for x in s]
    fig, ax = plt.subplots(3, 1, figsize=(9, 9), sharex=True)
    ax[0].plot(t, [x.get("rssMB") for x in s], label="engine process RSS")
    if d.get("idleMB"):
        ax[0].axhline(d["idleMB"], color="grey", ls="--", label=f"idle {d['idleMB']:.0f} MB")
    marks = d.get("marks", [])
    ax[0].scatter([m["minute"] for m in marks], [m.get("afterClearMB") for m in marks], color="green", zorder=3,
                  label="3 s after clearCaches")
    ax[0].set_ylabel("MB")
    ax[0].legend(loc="lower right")
    ax[1].plot(t, [x["kvAllocatedMB"] for x in s], label="KV bytes allocated (after each sample)")
    ax[1].step(t, [x["budgetMB"] for x in s], where="post", color="red", label="budget")
    ax[1].set_ylabel("MB")
    ax[1].legend(loc="lower right")
    w = d["windows"]
    mid = [x["fromMin"] + 2.5 for x in w]
    ax[2].bar([m - 0.8 for m in mid], [x["p50Ms"] for x in w], width=1.6, label="p50")
    ax[2].bar([m + 0.8 for m in mid], [x["p95Ms"] for x in w], width=1.6, label="p95")
    ax[2].set_ylabel("completion latency, ms")
    ax[2].set_xlabel("minutes")
    ax[2].legend(loc="upper right")
    m = d["machine"]
    fig.suptitle(f"soak {d['flags']['minutes']} min, {d['flags']['docs']} docs, seed {d['flags']['seed']}: "
                 f"{d['requests']} requests, {d['crashes']} crashes, {d['overBudgetMoments']} over-budget moments\n"
                 f"{m['cores']} cores, load {m['loadavgAtStart']} -> {d.get('loadavgAtEnd')}, {m['date'][:16]}", fontsize=9)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
