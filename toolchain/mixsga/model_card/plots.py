"""The card's plots (matplotlib, Agg): perplexity vs KV budget, routing shares, loss curves, perplexity by position."""
from __future__ import annotations

from pathlib import Path

from mixsga.model_card.facts import train_curve, val_rows


def _plt():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def plot_ppl(series, points, hlines, ylim, path: Path, title: str):
    """series: (rows, method, label, color, fmt) lines over the budgets; points: (row, label, color, marker);
    hlines: (ppl, label, linestyle)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    for rows, method, label, color, fmt in series:
        pts = sorted((r["kv_fraction"], r["ppl"]) for r in rows if r["method"] == method and r["budget"])
        if pts:
            ax.plot([p[0] for p in pts], [p[1] for p in pts], fmt, color=color, label=label)
    for r, label, color, marker in points:
        if r:
            ax.plot([r["kv_fraction"]], [r["ppl"]], marker, color=color, ms=12, label=label)
    for y, label, ls in hlines:
        ax.axhline(y, color="grey" if ls == "--" else "k", ls=ls, lw=1, label=label)
    if ylim:
        ax.set_ylim(*ylim)
    ax.set_xlabel("KV cache fraction (bytes vs full attention)")
    ax.set_ylabel("held-out perplexity")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6.5, loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_routing(shares, targets, group_sizes, path: Path, title: str):
    plt = _plt()
    L = len(shares)
    fig, ax = plt.subplots(figsize=(7.5, 3.8))
    x = list(range(L))
    bottom = [0.0] * L
    for e in range(len(shares[0])):
        vals = [shares[l][e] for l in range(L)]
        name = "full KV" if group_sizes[e] == 1 else f"KV / {group_sizes[e]}"
        ax.bar(x, vals, bottom=bottom, color=f"C{e}", label=f"expert {e} ({name}; target {targets[e]:.0%})")
        bottom = [b + v for b, v in zip(bottom, vals)]
    acc = 0.0
    for t in targets[:-1]:
        acc += t
        ax.axhline(acc, color="k", ls="--", lw=1)
    ax.set_xticks(x)
    ax.set_xticklabels([f"L{l}" for l in x])
    ax.set_ylabel("share of tokens (argmax routing)")
    ax.set_ylim(0, 1)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_loss(logs: dict, trunk_tokens: int, marks, path: Path, title: str):
    """Training loss of every run on one token axis: the trunk from 0, each branch from the trunk's end.
    marks: (tokens, label) vertical lines."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    for i, (name, rows) in enumerate(logs.items()):
        off = 0 if name == "dense" else trunk_tokens
        c = train_curve(rows)
        if c:
            ax.plot([(t + off) / 1e6 for t, _ in c], [l for _, l in c], ".-", color=f"C{i}", lw=1.2, ms=3,
                    label=f"{name} train loss")
        v = [(r["tokens"] + off, r["val_loss"]) for r in val_rows(rows)]
        if v:
            ax.plot([t / 1e6 for t, _ in v], [l for _, l in v], "o", color=f"C{i}", ms=4,
                    label=None if c else f"{name} val loss")
    for t, label in marks:
        ax.axvline(t / 1e6, color="grey", ls=":", lw=1)
        ax.annotate(label, (t / 1e6, 1), xycoords=("data", "axes fraction"), fontsize=6, rotation=90,
                    va="top", ha="right", color="grey")
    ax.set_yscale("log")
    ax.set_xlabel("training tokens (M; branches start at the trunk's end)")
    ax.set_ylabel("loss (nats/token; dots = val)")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_profile(profiles: dict, labels: dict, path: Path, title: str):
    """Perplexity per position bucket, one line per (checkpoint, routing); log y axis."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7.5, 4.4))
    for name, prof in profiles.items():
        for r in prof or []:
            n = r["bucket_tokens"]
            xs = [n * i + n / 2 for i in range(len(r["ppl"]))]
            ax.plot(xs, r["ppl"], "-o" if r["method"] == "mixsga-argmax" else "--", ms=4,
                    label=f"{labels.get(name, name)}: {r['method']}")
    ax.axvline(1024, color="grey", lw=1, ls=":", label="1024 (training length before the phase)")
    ax.set_yscale("log")
    ax.set_xlabel("position in the window (bucket centre)")
    ax.set_ylabel("held-out perplexity")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6.5)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
