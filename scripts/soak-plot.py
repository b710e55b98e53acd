#!/usr/bin/env python3
"""Plots a soak result (npm run soak): engine RSS, allocated KV bytes vs the budget, latency p50/p95 per 5 minutes;
prints the must-show figures as Markdown (for docs/soak.md).

usage: python3 scripts/soak-plot.py docs/results/soak-DATE.json [docs/img/soak-DATE.png] [--doc docs/soak.md]
  --doc: also writes the figures into that file, between <!-- soak-results --> and <!-- /soak-results -->.
"""
import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main() -> None:
    args = sys.argv[1:]
    doc = None
    if "--doc" in args:
        i = args.index("--doc")
        doc = Path(args[i + 1])
        del args[i:i + 2]
    src = Path(args[0])
    out = Path(args[1]) if len(args) > 1 else Path("docs/img") / (src.stem + ".png")
    d = json.loads(src.read_text())
    s = d["samples"]
    t = [x["t"] for x in s]
    fig, ax = plt.subplots(3, 1, figsize=(9, 9), sharex=True)
    ax[0].plot(t, [x.get("rssMB") for x in s], label="engine process RSS")
    if any(x.get("heapSegmentMB") is not None for x in s):
        ax[0].plot(t, [x.get("heapSegmentMB") for x in s], color="purple", lw=0.8, label="of it: malloc's main heap ([heap])")
    if d.get("idleMB"):
        ax[0].axhline(d["idleMB"], color="grey", ls="--", label=f"idle {d['idleMB']:.0f} MB")
    marks = d.get("marks", [])
    ax[0].scatter([m["minute"] for m in marks], [m.get("afterClearMB") for m in marks], color="green", zorder=3,
                  label="3 s after clearCaches")
    cap_events = (d.get("rssCap") or {}).get("events", [])
    for i, e in enumerate(cap_events):
        ax[0].axvline(e["t"], color="orange", lw=0.8, ls=":", label="RSS-cap restart at idle" if i == 0 else None)
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
    text = summary(d)
    print(text)
    if doc:
        body = doc.read_text()
        start, end = "<!-- soak-results -->", "<!-- /soak-results -->"
        a, b = body.index(start) + len(start), body.index(end)
        status = "" if d.get("done") else f"**Partial: the run was still going; figures up to minute {d['elapsedMin']:.0f}.**\n\n"
        body = body[:a] + f"\n{status}![soak]({Path('img') / out.name})\n\n{text}\n\nData: [{src.name}](results/{src.name}).\n" + body[b:]
        doc.write_text(body)
        print(f"wrote {doc}")


def cap_lines(d: dict) -> list:
    """The engine's RSS cap (runs from 2026-12-06 c on): its restarts at idle moments."""
    cap = d.get("rssCap")
    if not cap:
        return []
    if cap.get("flag") == "off":
        return ["- RSS cap: off"]
    ev = "; ".join(f"minute {e['t']:.1f}: {e['rssMB']} MB over a cap of {e['capMB']} MB, fresh process ready in {e['restartMs']} ms" for e in cap["events"])
    return [f"- RSS cap (headroom {cap['flag']} MB): **{cap['restarts']} restarts at idle moments**" + (f" ({ev})" if ev else "")]


def summary(d: dict) -> str:
    """The must-show figures: crashes, over-budget moments, RSS at the marks vs the first, after clearCaches vs idle."""
    marks = d.get("marks", [])
    first = marks[0]["rssMB"] if marks else None
    idle = d.get("idleMB")
    lines = [
        f"- {d['elapsedMin']:.0f} minutes, {d['requests']} completion requests ({', '.join(f'{k} {v}' for k, v in d['actions'].items())}), "
        f"{d['machine']['cores']} cores ({d['machine']['cpuModel']}), load {d['machine']['loadavgAtStart'][0]} at the start and "
        f"{d.get('loadavgAtEnd', ['?'])[0]} at the end, {d['machine']['date'][:16]} UTC",
        f"- **crashes: {d['crashes']}**; **moments where allocated KV bytes exceeded the budget: {d['overBudgetMoments']}** "
        f"(checked after every request; highest fill {d['maxFill']:.2f} of the budget)",
        f"- idle RSS of the engine process {idle} MB (after loading and one warm-up request; {d.get('idleColdMB')} MB before it)",
        *cap_lines(d),
        "",
        "| minute | RSS MB | vs first mark | 3 s after clearCaches, MB | vs idle |",
        "|---|---|---|---|---|",
    ]
    for m in marks:
        vs = f"{(m['rssMB'] / first - 1) * 100:+.1f} %" if first else ""
        after = m.get("afterClearMB")
        lines.append(f"| {m['minute']} | {m['rssMB']} | {vs} | {after} | {after - idle:+.1f} MB |" if after and idle else f"| {m['minute']} | {m['rssMB']} | {vs} | | |")
    lines += ["", "| minutes | requests | p50 ms | p95 ms | errors | crashes | RSS max MB | KV allocated max MB |", "|---|---|---|---|---|---|---|---|"]
    for w in d["windows"]:
        lines.append(f"| {w['fromMin']}–{w['toMin']} | {w['requests']} | {w['p50Ms']} | {w['p95Ms']} | {w['errors']} | {w['crashes']} | {w['rssMaxMB']} | {w['kvAllocatedMaxMB']} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
