"""`model_card`: docs/model-card.md and its plots, computed from the committed run results.

    python -m mixsga model_card --results RESULTS --evals docs/results/evals --out docs/model-card.md \
        [--corpus .gpu/corpus] [--img docs/img] [--training-doc docs/training.md] [--date D] [--machine M]

Inputs (every number in the card is computed here from them; nothing is typed in by hand). The layout is the one
scripts/train-default.sh writes (docs/training.md, "Recipe: one dense trunk, branches at equal compute"):
  RESULTS/train/all.log              pipeline log: its first JSON object is the shards stage's statistics, then
                                     the [train] lines of every run (parameters, tokens/step, and
                                     'done at step S (T tokens, Ns); checkpoint .../<run>/ckpt')
  RESULTS/train/<run>/log.jsonl      training logs (loss, tokens, tok/s, val, argmax route shares) of
                                     dense (the trunk), mixsga (the shipped model), dense-cont (the full-KV
                                     reference at equal compute), gqa2 (static GQA-2), abl-lmgrad, abl-random
  RESULTS/train/mixsga/ckpt/config.json   architecture and the mixSGA experts / target ratios
  RESULTS/train/eval/<name>.json     eval_ppl rows (method, budget, kv_fraction, ppl) of every checkpoint and
                                     snapshot: <run>.json, mixsga-ckpt-step<N>.json, gqa2-ckpt-step<N>.json
  EVALS/*.json                       eval_code results (sets: n, passed, pass@1; config)
  CORPUS/stats.json, CORPUS/decontam.json   corpus sources, licences, drops, decontamination signatures
  --extension EXT, --long-study LC   runs of the long-context phase (scripts/train-default.sh extend): EXT the
                                     shipped checkpoint continued on 2048-token windows, LC a smaller equal-compute
                                     run with the phase on both branches. Each has train/eval/<b>.json (1024-token
                                     windows), <b>-at2048.json (2048) for b and its extension b-2048,
                                     train/<b>-2048/log.jsonl; EXT/local-ppl/*-2048.json hold eval_ppl's
                                     --position-buckets profile on the dev box's windows.
The equal-step comparison points (the script's ABL_STEPS and GQA_STEPS) are read from the snapshot eval files'
names: gqa2 is snapshotted at ABL_STEPS, mixsga at ABL_STEPS and GQA_STEPS.
Plots (matplotlib, Agg) go to IMG/model-card-*.png, linked relative to the card.
"""
from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path

from mixsga.errors import UserError

DATE = "2026-11-29"
MACHINE = "one NVIDIA H200 (training, eval_ppl); code evals on a loaded 2-core CPU (PyTorch, 1 thread per run)"
BUDGETS = [0.25, 0.35, 0.5, 0.75, 1.0]
TARGET_PPL_RATIO = 1.03            # mixSGA@50% <= 1.03 x full-KV perplexity
RUNS = {"dense": "dense trunk (from scratch)",
        "mixsga": "mixSGA 3:1:6 (the branch the card is about)",
        "dense-cont": "dense continued: full-KV reference at equal compute",
        "gqa2": "static GQA-2 (every token on the group-2 expert)",
        "abl-lmgrad": "ablation: router + LM gradient (straight-through)",
        "abl-random": "ablation: random router (3:1:6)"}
GROUP_SIZES = [1, 2, 4]            # fallbacks when mixsga/ckpt/config.json is missing
TARGET_RATIOS = [0.3, 0.1, 0.6]
SET_NAMES = {"single": "HumanEval single-line infilling", "multi": "HumanEval multi-line infilling",
             "light": "HumanEval random-span-light", "random": "HumanEval random-span",
             "humaneval": "HumanEval left-to-right", "ts": "MultiPL-E HumanEval TypeScript",
             "js": "MultiPL-E HumanEval JavaScript"}
SET_FULL = {"single": 1033, "multi": 5815, "light": 164, "random": 1640, "humaneval": 164, "ts": 159, "js": 161}


# ------------------------------------------------------------------------------------------------ reading

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


# ------------------------------------------------------------------------------------------------ plots

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


# ------------------------------------------------------------------------------------------------ card

def wilson(k: int, n: int, z: float = 1.96):
    """95% Wilson score interval of a binomial proportion k/n."""
    if n <= 0:
        return 0.0, 1.0
    p = k / n
    den = 1 + z * z / n
    mid = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return max(0.0, mid - half), min(1.0, mid + half)


def fmt_ppl(r):
    return "n/a" if r is None else f"{r['ppl']:.3f}"


def fmt_tok(n: int) -> str:
    return f"{n / 1e6:.1f}M" if n >= 1e6 else f"{n:,}"


def fmt_loss(r, key="loss"):
    """'2.1234 (step)' of a log row, or n/a."""
    return "n/a" if r is None else f"{r[key]:.4f} ({r['step']})"


def fmt_kv(r):
    return "n/a" if r is None else f"{r['kv_fraction']:.1%}"


def budget_cells(rows, method, only=None):
    """Table cells over BUDGETS; the argmax row goes to the budget nearest its achieved KV fraction."""
    cells = [""] * len(BUDGETS)
    if method == "mixsga-argmax":
        r = ppl_at(rows, method)
        if r:
            i = min(range(len(BUDGETS)), key=lambda j: abs(BUDGETS[j] - r["kv_fraction"]))
            cells[i] = f"{r['ppl']:.3f} (at {r['kv_fraction']:.1%})"
        return cells
    for i, b in enumerate(BUDGETS):
        r = ppl_at(rows, method, b)
        if r and (only is None or b in only):
            cells[i] = f"{r['ppl']:.3f}"
    return cells


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


def lower(x, base) -> str:
    """'lower (-1.2%)' / '**not lower** (+0.3%)': mixSGA's perplexity X against a baseline's."""
    d = x["ppl"] / base["ppl"] - 1
    return f"lower ({d:+.1%})" if x["ppl"] < base["ppl"] else f"**not lower** ({d:+.1%})"


def target_checks(x, x_at_gqa, ref, bases) -> list[tuple[str, bool | None]]:
    """The 50% target's checks for one routing, as (table cell, passed; None = a row is missing): X's ratio to the
    full-KV reference REF, then X lower than each baseline; bases: (row, compare X_AT_GQA instead of X)."""
    if x is None or ref is None:
        checks = [("n/a", None)]
    else:
        ok = x["ppl"] / ref["ppl"] <= TARGET_PPL_RATIO
        checks = [(f"{x['ppl'] / ref['ppl']:.3f}× → {'met' if ok else '**not met**'}", ok)]
    for base, at_gqa in bases:
        y = x_at_gqa if at_gqa else x
        if y is None or base is None:
            checks.append(("n/a", None))
        else:
            checks.append((f"{y['ppl']:.3f} vs {base['ppl']:.3f} ({fmt_kv(base)} KV): {lower(y, base)}",
                           y["ppl"] < base["ppl"]))
    return checks


def verdict(checks) -> bool | None:
    oks = [ok for _, ok in checks]
    return None if None in oks else all(oks)


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


def shipped_section(w, ship, study_mix_rows, study_tokens):
    """Which model ships and why: its own perplexities (and its equal-compute dense reference) next to this
    study's mixSGA branch."""
    m50, am, full = ppl_at(ship["mix"], "mixsga", 0.5), ppl_at(ship["mix"], "mixsga-argmax"), ppl_at(ship["dense"], "full", 1.0)
    cont = ppl_at(ship["cont"], "full", 1.0)
    s50 = ppl_at(study_mix_rows, "mixsga", 0.5)
    w("## The shipped model")
    w("")
    ext = ship.get("ext_tokens")
    w(f"`models/default` holds the mixSGA model of the run in `{ship['dir']}` (dense {ship['tok']['dense']:,} tokens, "
      f"then mixSGA continued pretraining {ship['tok']['mixsga']:,} tokens"
      + (f", then a long-context phase of {ext:,} tokens on 2048-token windows (next section)" if ext else "")
      + f"; {ship['tokens']:,} in all), exported by `python -m mixsga export` from "
      + ("the phase's checkpoint. The perplexities in this section are the branch's before the phase, the only "
         "ones with an equal-compute dense reference (that run's dense-cont checkpoint was not kept, so it could not "
         "be given the phase too; the smaller run further below gives both branches the phase). " if ext else
         "that run's checkpoint. ")
      + "The study below (an earlier run with every branch and "
      "ablation) is not shipped: it is worse in absolute terms"
      + (f" (held-out ppl at 50% KV {s50['ppl']:.3f} vs the shipped {m50['ppl']:.3f}; it saw {study_tokens:,} tokens)"
         if s50 and m50 else "") + ". Held-out windows come from each run's own shards (the same corpus, "
      "site-packages of the machine the run used), so perplexities compare exactly only within one run.")
    w("")
    if m50 and full:
        w("| shipped run (its own eval files) | 25% | 35% | 50% | 75% | 100% | argmax decode |")
        w("|---|---|---|---|---|---|---|")
        cells = [fmt_ppl(ppl_at(ship["mix"], "mixsga", b)) for b in BUDGETS]
        w(f"| mixSGA expert-choice (the shipped {'branch, before its long-context phase' if ext else 'model'}) | {' | '.join(cells)} | "
          + (f"{am['ppl']:.3f} at {am['kv_fraction']:.1%} KV" if am else "n/a") + " |")
        if cont:
            for method, label in (("window", "sliding window + 4 sinks on dense-cont"), ("h2o", "H2O (approx.) on dense-cont")):
                cells = [fmt_ppl(ppl_at(ship["cont"], method, b)) for b in BUDGETS[:-1]]
                w(f"| {label} | {' | '.join(cells)} | | |")
            w(f"| dense-cont (trunk continued {ship['tok']['dense-cont']:,} tokens), full KV | | | | | {cont['ppl']:.3f} | |")
        w(f"| dense trunk (the conversion's start), full KV | | | | | {full['ppl']:.3f} | |")
        w("")
        if cont:
            r = m50["ppl"] / cont["ppl"]
            win, h2o = ppl_at(ship["cont"], "window", 0.5), ppl_at(ship["cont"], "h2o", 0.5)
            w(f"Shipped {'branch ' if ext else ''}mixSGA@50% / dense-cont full KV = **{r:.3f}×** at **equal** compute (dense-cont saw the same "
              f"{ship['tok']['dense'] + ship['tok']['dense-cont']:,} tokens): target ≤ {TARGET_PPL_RATIO}× "
              f"{'met' if r <= TARGET_PPL_RATIO else '**not met**'}"
              + (f"; against sliding window + sinks ({win['ppl']:.3f}) and H2O ({h2o['ppl']:.3f}) on dense-cont at "
                 f"50%: {'lower' if m50['ppl'] < min(win['ppl'], h2o['ppl']) else '**not lower**'}" if win and h2o else "")
              + ". Converting late (after most of the dense budget) narrows the gap of the study's early conversion "
              "(below) but does not close it.")
        else:
            w(f"Shipped mixSGA@50% / that run's dense full KV = {m50['ppl'] / full['ppl']:.3f}× — at **unequal** "
              f"compute (the mixSGA model saw {ship['tok']['mixsga']:,} more tokens), so it flatters mixSGA; the "
              "equal-compute comparison is this card's study.")
        w("")


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


def extension_section(w, ext, img: Path, rel: str, date: str):
    """The shipped checkpoint before and after its long-context phase, on the same held-out windows."""
    n = ext["seq"]
    rows, tok = ext["rows"], ext["tok"]
    w(f"## Long context: the shipped model's {n}-token phase")
    w("")
    w(f"The engine's prompts reach 1,536 positions (src/engine/prompt.ts) and a file's cache up to {n}, but the r3 branch was trained "
      f"on 1024-token windows; RoPE models fall apart past their training length. The shipped checkpoint is therefore "
      f"that branch continued for {tok[f'mixsga-{n}']:,} tokens on {n}-token windows (`scripts/train-default.sh "
      f"extend`; same data and FIM, LR 1e-4 → 3e-5), evaluated here with the branch it started from on the same held-out "
      f"windows (`{ext['dir']}`).")
    w("")
    w("| checkpoint | windows | mixSGA 3:1:6 (50%) | argmax decode (KV) | all tokens full KV |")
    w("|---|---|---|---|---|")
    for b, label in (("mixsga", "r3 branch (trained on 1024)"), (f"mixsga-{n}", f"+ {n}-token phase (**shipped**)")):
        for key, win in ((b, 1024), (f"{b}@{n}", n)):
            r = rows.get(key) or []
            am = ppl_at(r, "mixsga-argmax")
            w(f"| {label} | {win} | {fmt_ppl(ppl_at(r, 'mixsga', 0.5))} | "
              + (f"{am['ppl']:.3f} ({am['kv_fraction']:.1%})" if am else "n/a") + f" | {fmt_ppl(ppl_at(r, 'full', 1.0))} |")
    w("")
    a, b = ppl_at(rows.get(f"mixsga@{n}") or [], "mixsga", 0.5), ppl_at(rows.get(f"mixsga-{n}@{n}") or [], "mixsga", 0.5)
    a1, b1 = ppl_at(rows.get("mixsga") or [], "mixsga", 0.5), ppl_at(rows.get(f"mixsga-{n}") or [], "mixsga", 0.5)
    if a and b and a1 and b1:
        w(f"On {n}-token windows the phase takes held-out perplexity at 50% KV from {a['ppl']:.3f} to {b['ppl']:.3f} "
          f"({b['ppl'] / a['ppl'] - 1:+.0%}); on 1024-token windows it changes {a1['ppl']:.3f} → {b1['ppl']:.3f} "
          f"({b1['ppl'] / a1['ppl'] - 1:+.1%}), so nothing is lost at short range.")
        w("")
    profs = {k: v for k, v in ext["profiles"].items() if v}
    if profs:
        labels = {k: ("before the phase" if k.startswith("r3-") else "shipped") for k in profs}
        plot_profile(profs, labels, img / "model-card-position.png",
                     f"Held-out perplexity by position, {n}-token windows of the npm + Debian held-out packages ({date})")
        meta = next(iter(ext["profile_meta"].values()))
        w(f"![perplexity by position]({rel}/model-card-position.png)")
        w("")
        first = next(iter(profs.values()))[0]
        k = len(first["ppl"])
        w(f"By position ({meta.get('windows', '?')} windows × {n} tokens of the npm + Debian held-out packages, on the "
          f"dev box; `local-ppl/` in the run folder):")
        w("")
        w("| checkpoint | routing | " + " | ".join(f"{i * first['bucket_tokens']}–{(i + 1) * first['bucket_tokens'] - 1}"
                                              for i in range(k)) + " |")
        w("|---|---|" + "---|" * k)
        for name, prof in profs.items():
            for r in prof:
                w(f"| {labels[name]} (`{name}`) | {r['method']} | " + " | ".join(f"{x:.3f}" for x in r["ppl"]) + " |")
        w("")


def long_study_section(w, lc):
    """Equal compute with the long-context phase on both branches: does mixSGA gain on windowed baselines when the
    context is longer?"""
    n = lc["seq"]
    rows, tok = lc["rows"], lc["tok"]
    mix, cont = rows.get(f"mixsga-{n}@{n}") or [], rows.get(f"dense-cont-{n}@{n}") or []
    if not (mix and cont):
        return
    w(f"## Equal compute with the {n}-token phase (a smaller run)")
    w("")
    w(f"`{lc['dir']}`: a dense trunk of {tok['dense']:,} tokens, then `mixsga` and `dense-cont` for "
      f"{tok['mixsga']:,} tokens each, then both through the same {n}-token phase ({tok[f'mixsga-{n}']:,} tokens each): "
      f"{tok['dense'] + tok['mixsga'] + tok[f'mixsga-{n}']:,} tokens per model. The sliding window and H2O run on "
      f"dense-cont-{n} at inference (untrained), on {n}-token windows, so at 50% each keeps {n // 2} tokens.")
    w("")
    w(f"| {n}-token windows | 25% | 35% | 50% | 75% | 100% |")
    w("|---|---|---|---|---|---|")
    w(f"| mixSGA expert-choice (mixsga-{n}) | " + " | ".join(fmt_ppl(ppl_at(mix, "mixsga", b)) for b in BUDGETS) + " |")
    for m, label in (("window", "sliding window + 4 sinks"), ("h2o", "H2O (approx.)")):
        w(f"| {label} on dense-cont-{n} | " + " | ".join(fmt_ppl(ppl_at(cont, m, b)) for b in BUDGETS[:-1]) + " | |")
    full = ppl_at(cont, "full", 1.0)
    w(f"| dense-cont-{n}, full KV | | | | | {fmt_ppl(full)} |")
    w("")
    m50, am = ppl_at(mix, "mixsga", 0.5), ppl_at(mix, "mixsga-argmax")
    win, h2o = ppl_at(cont, "window", 0.5), ppl_at(cont, "h2o", 0.5)
    short_m, short_c = ppl_at(rows.get(f"mixsga-{n}") or [], "mixsga", 0.5), ppl_at(rows.get(f"dense-cont-{n}") or [], "full", 1.0)
    if m50 and full:
        r = m50["ppl"] / full["ppl"]
        lower = win and h2o and m50["ppl"] < min(win["ppl"], h2o["ppl"])
        w(f"mixSGA@50% / full KV at {n} tokens = **{r:.3f}×**"
          + (f" (argmax decode {am['ppl'] / full['ppl']:.3f}× at {am['kv_fraction']:.1%} KV)" if am else "")
          + f"; target ≤ {TARGET_PPL_RATIO}×: {'met' if r <= TARGET_PPL_RATIO else '**not met**'}"
          + (f"; on 1024-token windows {short_m['ppl'] / short_c['ppl']:.3f}×" if short_m and short_c else "")
          + (f". Against the window ({win['ppl']:.3f}) and H2O ({h2o['ppl']:.3f}) at 50%: "
             f"{'lower' if lower else '**not lower**'}" if win and h2o else "")
          + ("" if lower or not (win and h2o) else
             ": a longer context does not turn the comparison on this small model, where the pooled K/V heads cost "
             "more than dropping the far half of the context")
          + ".")
        w("")
    before = rows.get(f"dense-cont@{n}") or []
    bf, bw = ppl_at(before, "full", 1.0), ppl_at(before, "window", 0.5)
    if bf and bw:
        w(f"Before the phase, dense-cont on {n}-token windows: full KV {bf['ppl']:.3f}, but the window at 50% "
          f"{bw['ppl']:.3f} — the window never shows the model a distance beyond {n // 2}, and RoPE depends only on "
          "distances, so it stays in the trained range; full attention does not.")
        w("")


def build(results: Path, evals: Path, out: Path, corpus: Path | None, img: Path, training_doc: Path,
          date: str = DATE, machine: str = MACHINE, shipped: Path | None = None, extension: Path | None = None,
          long_study: Path | None = None) -> dict:
    train = results / "train"
    if not train.is_dir():
        raise UserError(f"{results}: no train/ folder")
    ev = train / "eval"
    img.mkdir(parents=True, exist_ok=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    rel = os.path.relpath(img, out.parent)

    logs = {n: run_log(train / n / "log.jsonl") for n in RUNS}
    logged = log_facts(train / "all.log")
    facts = {n: run_facts(logs[n], logged.get(n, {})) for n in RUNS}
    stats = shards_stats(train / "all.log")
    cfg = read_json(train / "mixsga" / "ckpt" / "config.json") or {}
    groups = cfg.get("mixsga", {}).get("group_sizes", GROUP_SIZES)
    targets = cfg.get("mixsga", {}).get("ratios", TARGET_RATIOS)
    cstats = read_json(corpus / "stats.json") if corpus else None
    decontam = read_json(corpus / "decontam.json") if corpus else None
    codes = code_results(evals)
    nums: dict = {}

    trunk_tok = facts["dense"]["tokens"]
    branch = facts["mixsga"]["steps"]
    tps = facts["mixsga"]["tokens_per_step"] or facts["dense"]["tokens_per_step"] or 0
    abl, gqa = comparison_steps(ev, facts["gqa2"]["steps"]) if ev.is_dir() else (None, None)
    nums.update(abl_steps=abl, gqa_steps=gqa)
    gs = gqa if gqa is not None else "?"          # in labels

    ref_rows, mix_rows, trunk_rows = ppl_rows(ev, "dense-cont"), ppl_rows(ev, "mixsga"), ppl_rows(ev, "dense")
    gqa_rows, gqa_name = rows_at_step(ev, "gqa2", gqa, facts["gqa2"]["steps"])
    mix_g_rows, mix_g_name = rows_at_step(ev, "mixsga", gqa, branch)
    meta = read_json(ev / "dense-cont.json") or read_json(ev / "mixsga.json") or {}
    ship = shipped_facts(shipped) if shipped else None
    if shipped and not ship:
        raise UserError(f"--shipped {shipped}: no train/eval/mixsga.json")
    ext = long_facts(extension) if extension else None
    if extension and not ext:
        raise UserError(f"--extension {extension}: no train/eval/mixsga-2048-at2048.json")
    lc = long_facts(long_study) if long_study else None
    if long_study and not lc:
        raise UserError(f"--long-study {long_study}: no train/eval/mixsga-2048-at2048.json")
    if ship and ext:
        ship["ext_tokens"] = ext["tok"][f"mixsga-{ext['seq']}"]
        ship["tokens"] += ship["ext_tokens"]

    L = []
    w = L.append
    w(f"# Model card: mixsga-default ({date})")
    w("")
    w(f"Generated by `python -m mixsga model_card` from `{results}` and `{evals}`; every number below is computed "
      f"from those files. Date {date}; machine: {machine}.")
    w("")
    w(f"Recipe of the study (docs/training.md): a dense trunk of {facts['dense']['steps']} steps ({trunk_tok:,} tokens), then "
      f"branches from its checkpoint that differ only in attention: `mixsga` (converted to "
      f"{':'.join(f'{r * 10:g}' for r in targets)}) and `dense-cont` (full KV) for "
      f"{branch} steps each, static GQA-2 (`gqa2`) for {facts['gqa2']['steps']} steps, the router ablations for "
      f"{abl if abl is not None else 'n/a'} steps; `mixsga` is snapshotted at the ablations' and GQA-2's step "
      "counts so that every comparison is at equal steps and tokens.")
    w("")

    if ship:
        shipped_section(w, ship, mix_rows, trunk_tok + facts["mixsga"]["tokens"])
        if ext:
            extension_section(w, ext, img, rel, date)
        if lc:
            long_study_section(w, lc)
        w("# Study: mixSGA vs full KV at equal compute")
        w("")
    # (1) perplexity vs KV
    w("## Held-out perplexity vs KV budget")
    w("")
    ref = ppl_at(ref_rows, "full", 1.0)
    trunk_full = ppl_at(trunk_rows, "full", 1.0)
    if mix_rows or ref_rows:
        g_ref = [r["ppl"] for r in ref_rows if r["method"] == "gqa"]
        ylim = (ref["ppl"] * 0.9, ref["ppl"] * 2.4) if ref else None
        hlines = ([(ref["ppl"], f"dense-cont full KV: {ref['ppl']:.2f}", "-"),
                   (TARGET_PPL_RATIO * ref["ppl"], f"target: {TARGET_PPL_RATIO} x dense-cont full KV", "--")]
                  if ref else [])
        if trunk_full:
            hlines.append((trunk_full["ppl"], f"dense trunk full KV: {trunk_full['ppl']:.2f}", ":"))
        plot_ppl([(mix_rows, "mixsga", f"mixSGA expert-choice (mixsga, {branch} steps)", "C0", "o-"),
                  (mix_g_rows, "mixsga", f"mixSGA expert-choice (mixsga snapshot, {gs} steps)", "C4", "o:"),
                  (ref_rows, "gqa", "static GQA / pattern (dense-cont, untrained)", "C1", "s--"),
                  (mix_rows, "gqa", "static GQA / pattern (mixsga ckpt)", "C1", "s:"),
                  (ref_rows, "window", "sliding window + 4 sinks (dense-cont)", "C2", "^-"),
                  (ref_rows, "h2o", "H2O approx. (dense-cont)", "C3", "v-")],
                 [(ppl_at(mix_rows, "mixsga-argmax"), f"mixSGA argmax decode (mixsga, {branch} steps)", "C0", "*"),
                  (ppl_at(mix_g_rows, "mixsga-argmax"), f"mixSGA argmax decode (snapshot, {gs} steps)", "C4", "*"),
                  (ppl_at(gqa_rows, "gqa", 0.5), f"static GQA-2 trained (gqa2, {gs} steps)", "C1", "D")],
                 hlines, ylim, img / "model-card-ppl-kv.png",
                 f"Perplexity vs KV budget ({date}; branches from one dense trunk, equal steps)")
        w(f"![perplexity vs KV budget]({rel}/model-card-ppl-kv.png)")
        w("")
        if g_ref and ylim and max(g_ref) > ylim[1]:
            w(f"Some of dense-cont's untrained static GQA rows ({min(g_ref):.1f}–{max(g_ref):.1f} ppl) lie above the "
              "plotted range; see the table.")
            w("")
        gnotes = "; ".join(f"{r['budget']:.0%} = {r['note']}" for r in ref_rows if r["method"] == "gqa" and r.get("note"))
        w(f"{meta.get('windows', '?')} fixed validation windows × {meta.get('seq_len', '?')} tokens (packages held "
          "out of training), no FIM; KV fraction = cache bytes held per query position relative to full attention. "
          f"Rows: **mixsga** = the mixSGA branch after {branch} branch steps; **dense-cont** = the trunk continued "
          f"densely for {facts['dense-cont']['steps']} steps (the full-KV reference at equal compute; GQA / window "
          "/ H2O are applied to it at inference, untrained); **gqa2** = static GQA-2 trained for "
          f"{facts['gqa2']['steps']} branch steps (eval_ppl's `gqa` 50% row = every token on the group-2 expert, "
          f"its own attention); **mixsga@{gs}** = mixsga's snapshot at the same step; **dense trunk** = the "
          f"checkpoint every branch starts from." + (f" Static GQA on dense-cont: {gnotes}." if gnotes else ""))
        w("")
        w("| model (branch steps) | method | " + " | ".join(f"{b:.0%}" for b in BUDGETS) + " |")
        w("|---|---|" + "---|" * len(BUDGETS))
        table = [(f"dense-cont ({facts['dense-cont']['steps']})", "full KV (reference)", ref_rows, "full", None),
                 (f"mixsga ({branch})", "mixSGA expert-choice", mix_rows, "mixsga", None),
                 (f"mixsga ({branch})", "mixSGA argmax decode (at achieved KV)", mix_rows, "mixsga-argmax", None),
                 (f"mixsga ({branch})", "static GQA / pattern on the mixSGA ckpt", mix_rows, "gqa", None),
                 (f"dense-cont ({facts['dense-cont']['steps']})", "static GQA / pattern (untrained)", ref_rows, "gqa", None),
                 (f"dense-cont ({facts['dense-cont']['steps']})", "sliding window + 4 sinks", ref_rows, "window", None),
                 (f"dense-cont ({facts['dense-cont']['steps']})", "H2O (approx.)", ref_rows, "h2o", None),
                 (f"gqa2 ({gs})", "static GQA-2, trained", gqa_rows, "gqa", [0.5]),
                 (f"mixsga@{gs} (snapshot)", "mixSGA expert-choice", mix_g_rows, "mixsga", None),
                 (f"mixsga@{gs} (snapshot)", "mixSGA argmax decode (at achieved KV)", mix_g_rows, "mixsga-argmax", None),
                 ("dense trunk (0)", "full KV", trunk_rows, "full", None)]
        for model, label, rows, method, only in table:
            if rows and any(r["method"] == method for r in rows):
                w(f"| {model} | {label} | " + " | ".join(budget_cells(rows, method, only)) + " |")
        w("")

        # the target, for the expert-choice 50% row and for decode-time argmax routing
        routings = [("ec", "expert-choice 3:1:6 (50% budget)", ppl_at(mix_rows, "mixsga", 0.5),
                     ppl_at(mix_g_rows, "mixsga", 0.5)),
                    ("argmax", "argmax decode routing", ppl_at(mix_rows, "mixsga-argmax"),
                     ppl_at(mix_g_rows, "mixsga-argmax"))]
        bases = [(f"below trained static GQA-2 at equal compute ({gs} steps; mixsga@{gs} vs gqa2)",
                  ppl_at(gqa_rows, "gqa", 0.5), True),
                 ("below untrained GQA-2 on dense-cont", ppl_at(ref_rows, "gqa", 0.5), False),
                 ("below sliding window + sinks on dense-cont at 50%", ppl_at(ref_rows, "window", 0.5), False),
                 ("below H2O on dense-cont at 50%", ppl_at(ref_rows, "h2o", 0.5), False)]
        checks = {key: target_checks(x, x_g, ref, [(b, g) for _, b, g in bases]) for key, _, x, x_g in routings}
        w(f"**Target:** mixSGA@50% ≤ {TARGET_PPL_RATIO}× full-KV perplexity and below GQA and window at equal bytes. "
          "Reference full KV = dense-cont" + (f" ({ref['ppl']:.3f})" if ref else " (missing)") + ", the trunk "
          f"continued densely for {facts['dense-cont']['steps']} steps (mixsga: {branch}; equal compute: see Model "
          "facts).")
        w("")
        w("| check | " + " | ".join(label for _, label, _, _ in routings) + " |")
        w("|---|" + "---|" * len(routings))
        w("| mixsga ppl (achieved KV) | " + " | ".join(f"{fmt_ppl(x)} ({fmt_kv(x)})" for _, _, x, _ in routings) + " |")
        for i, label in enumerate([f"≤ {TARGET_PPL_RATIO}× dense-cont full KV"] + [b[0] for b in bases]):
            w(f"| {label} | " + " | ".join(checks[key][i][0] for key, _, _, _ in routings) + " |")
        cells = {None: "cannot be judged (rows missing)", True: "**met**", False: "**not met**"}
        w("| **target** | " + " | ".join(cells[verdict(checks[key])] for key, _, _, _ in routings) + " |")
        w("")
        for key, _, x, _ in routings:
            nums[f"target_{key}"] = verdict(checks[key])
            if x is not None and ref is not None:
                nums[f"ratio_{key}"] = x["ppl"] / ref["ppl"]
        if ref:
            nums["ref_full"] = ref["ppl"]
        am = ppl_at(mix_rows, "mixsga-argmax")
        if am and abs(am["kv_fraction"] - 0.5) > 0.01:
            w(f"Argmax decode routing holds {am['kv_fraction']:.1%} of the KV bytes, not 50%: its comparisons with "
              "the 50% baselines are " + ("in its favour." if am["kv_fraction"] > 0.5 else "against it."))
            w("")
        if trunk_full and ref:
            w(f"Dense trunk (the branches' start) full KV: {trunk_full['ppl']:.3f}; dense-cont after "
              f"{facts['dense-cont']['steps']} more steps: {ref['ppl']:.3f}.")
            w("")

    # (2) ablations at equal steps
    w(f"## Ablations at equal steps ({abl if abl is not None else 'n/a'} branch steps from the trunk)")
    w("")
    if abl is None:
        w("No snapshot eval files (`mixsga-ckpt-step<N>.json`, `gqa2-ckpt-step<N>.json`) found: no equal-step "
          "comparison.")
        w("")
    else:
        w(f"Every row starts from the same trunk and has trained {abl} branch steps. ppl columns: eval_ppl "
          f"({meta.get('windows', '?')} windows); train loss and LR: the run's log at its last logged step ≤ {abl} "
          "(training loss under each run's own routing; equal LRs = the same schedule at that step); val loss: the "
          "run's own validation at its last step (train.py `--eval-windows`, expert-choice routing).")
        w("")
        w(f"| run | eval file | steps (tokens) | ppl@50% | ppl argmax decode | achieved argmax KV | train loss ≤ step {abl} | LR there | val loss (step) |")
        w("|---|---|---|---|---|---|---|---|---|")
        abl_spec = [("paper router (consistency loss only) = mixsga snapshot", "mixsga", True, "mixsga"),
                    ("router + LM gradient (straight-through)", "abl-lmgrad", False, "mixsga"),
                    ("random router (3:1:6)", "abl-random", False, "mixsga"),
                    ("static GQA-2 = gqa2 snapshot", "gqa2", True, "gqa")]
        nums["ablations"] = {}
        for label, run, snap, method in abl_spec:
            f = facts[run]
            rows, name = (rows_at_step(ev, run, abl, f["steps"]) if snap else
                          (ppl_rows(ev, run), run if ppl_rows(ev, run) else None))
            if not rows:
                w(f"| {label} | missing | | | | | | | |")
                continue
            steps = abl if snap else f["steps"]
            st = f"{steps} ({fmt_tok(steps * (f['tokens_per_step'] or tps))})" + ("" if steps == abl else f" ≠ {abl}")
            ec = ppl_at(rows, method, 0.5)
            a = None if run == "gqa2" else ppl_at(rows, "mixsga-argmax")
            tl = train_loss_at(logs[run], abl)
            v = [r for r in val_rows(logs[run]) if not snap or r["step"] == abl]
            vl = f"{v[-1]['val_loss']:.4f} ({v[-1]['step']})" if v else "n/a (no val at this step)"
            if v and run in ("gqa2", "abl-random"):
                vl += " (expert-choice with its untrained router)"
            tag = " (gqa 50%: its own attention)" if method == "gqa" else ""
            w(f"| {label} | `{name}.json` | {st} | {fmt_ppl(ec)}{tag} | "
              f"{fmt_ppl(a) if run != 'gqa2' else 'n/a (static)'} | {fmt_kv(a) if a else 'n/a'} | "
              f"{fmt_loss(tl)} | {'n/a' if tl is None or 'lr' not in tl else format(tl['lr'], '.3e')} | {vl} |")
            nums["ablations"][run] = {"steps": steps, "ppl50": ec["ppl"] if ec else None,
                                      "argmax": a["ppl"] if a else None, "argmax_kv": a["kv_fraction"] if a else None}
        w("")
        w("The random-router model was trained with a random 3:1:6 assignment and its routers frozen; eval_ppl's "
          "expert-choice and argmax rows then use those untrained router scores, not the random assignment.")
        w("")
        if gqa is not None:
            w(f"### Static GQA-2 vs mixSGA at {gqa} steps")
            w("")
            w(f"| model at {gqa} branch steps | eval file | ppl@50% | ppl argmax decode (KV) | train loss ≤ step {gqa} |")
            w("|---|---|---|---|---|")
            for label, run, rows, name, method in (("mixSGA (snapshot)", "mixsga", mix_g_rows, mix_g_name, "mixsga"),
                                                   ("static GQA-2, trained", "gqa2", gqa_rows, gqa_name, "gqa")):
                if not rows:
                    w(f"| {label} | missing | | | |")
                    continue
                a = ppl_at(rows, "mixsga-argmax") if run == "mixsga" else None
                tl = train_loss_at(logs[run], gqa)
                w(f"| {label} | `{name}.json` | {fmt_ppl(ppl_at(rows, method, 0.5))} | "
                  + (f"{fmt_ppl(a)} ({fmt_kv(a)})" if a else "n/a (static)")
                  + f" | {fmt_loss(tl)} |")
            x, g2 = ppl_at(mix_g_rows, "mixsga", 0.5), ppl_at(gqa_rows, "gqa", 0.5)
            w("")
            if x and g2:
                w(f"mixSGA expert-choice at 50% vs trained GQA-2 at the same bytes and steps: {lower(x, g2)}.")
                nums["gqa2_vs_mix"] = x["ppl"] / g2["ppl"]
            if facts["gqa2"]["present"] and facts["gqa2"]["steps"] != gqa:
                w(f"**Caveat:** gqa2 ran {facts['gqa2']['steps']} steps, not {gqa}: not at equal steps.")
            w("")

    # (3) routing shares
    w(f"## Decode-time routing (argmax) vs the {':'.join(f'{r * 10:g}' for r in targets)} target")
    w("")
    vals = val_rows(logs["mixsga"])
    last = next((r for r in reversed(vals) if "argmax_shares" in r), None)
    if last:
        shares = last["argmax_shares"]
        plot_routing(shares, targets, groups, img / "model-card-routing.png",
                     f"mixSGA argmax route shares per layer at branch step {last['step']} (val, {date})")
        w(f"![routing shares]({rel}/model-card-routing.png)")
        w("")
        w(f"From `train/mixsga/log.jsonl`, last validation (branch step {last['step']}, {last['tokens']:,} branch "
          "tokens). Dashed lines: target " + " / ".join(f"{t:.0%}" for t in targets) + ".")
        w("")
        w("| layer | " + " | ".join(f"expert {e} (KV / {g})" if g > 1 else f"expert {e} (full)"
                                    for e, g in enumerate(groups)) + " | KV fraction |")
        w("|---|" + "---|" * (len(groups) + 1))
        for l, s in enumerate(shares):
            w(f"| {l} | " + " | ".join(f"{x:.1%}" for x in s) + f" | {kv_of_shares(s, groups):.1%} |")
        mean = [sum(s[e] for s in shares) / len(shares) for e in range(len(shares[0]))]
        w("| mean | " + " | ".join(f"{x:.1%}" for x in mean) + f" | {kv_of_shares(mean, groups):.1%} |")
        w("| target | " + " | ".join(f"{x:.1%}" for x in targets) + f" | {kv_of_shares(targets, groups):.1%} |")
        w("")
        first = vals[0] if vals and "argmax_shares" in vals[0] and vals[0] is not last else None
        am = ppl_at(mix_rows, "mixsga-argmax")
        w(f"Achieved argmax KV fraction (log): {last.get('argmax_kv_fraction', float('nan')):.1%}"
          + (f" (at conversion, step {first['step']}: {first['argmax_kv_fraction']:.1%})" if first else "")
          + (f"; eval_ppl argmax row: {am['kv_fraction']:.1%}." if am else "."))
        nums["argmax_kv"] = last.get("argmax_kv_fraction")
        w("")
    else:
        w("No validation row with argmax shares in `train/mixsga/log.jsonl`.")
        w("")

    # (4) loss curves
    w("## Loss curves")
    w("")
    if any(logs.values()):
        marks = [(trunk_tok, f"trunk end ({facts['dense']['steps']} steps)")]
        marks += [(trunk_tok + s * tps, f"branch step {s}") for s in (abl, gqa) if s is not None]
        plot_loss(logs, trunk_tok, marks, img / "model-card-loss.png",
                  f"Training loss: dense trunk, then the branches ({date})")
        w(f"![loss curves]({rel}/model-card-loss.png)")
        w("")
        w("Training loss is each run's LM loss under its own attention (mixSGA: expert-choice; gqa2: static group 2; "
          "abl-random: random assignment); dots: each run's validation loss.")
        w("")

    # (5) code evals
    w("## Code completion (pass@1, greedy, sandboxed execution)")
    w("")
    shipped_tok = ship["tokens"] if ship else trunk_tok + facts["mixsga"]["tokens"]
    if codes:
        models = sorted({c[4] for c in codes.values() if c[4]})
        runners = {c[1].get("runner", "pytorch") for c in codes.values()}
        how = ("The exported model's CPU file through `mixsga.eval_code.OnnxCompleter` — ONNX Runtime, the engine's "
               "graph, prompt layout and stop rules —" if runners <= {"onnx:cpu"} else
               "PyTorch checkpoint through `mixsga.generate.TorchCompleter`")
        w(f"{how} (FIM SPM prompt, decode-time argmax routing "
          "over per-expert KV caches, as the extension decodes), greedy, one sample per task; each program run in "
          "the sandbox (`mixsga.sandbox`, 20 s timeout). Sets marked 'first N' were cut (file order: the Python sets then cover only the early HumanEval problems; MultiPL-E files are not in problem order) to fit the time "
          "on the loaded 2-core CPU; their pass@1 has a wide interval (95% Wilson score interval shown)."
          + (f" Checkpoint evaluated (from the eval files): {', '.join(f'`{m}`' for m in models)}." if models else ""))
        w("")
        w("| set | tasks run / full set | passed | pass@1 [95% Wilson CI] | subset | syntax/compile-error fails | mean gen s/task | file |")
        w("|---|---|---|---|---|---|---|---|")
        for name in ["single", "multi", "light", "random", "humaneval", "ts", "js"]:
            if name not in codes:
                continue
            s, ccfg, fname, wall, _ = codes[name]
            sub = []
            if name == "multi" and ccfg.get("multi_subset"):
                sub.append(f"seeded subset of {ccfg['multi_subset']} (seed {ccfg.get('seed')})")
            if ccfg.get("limit"):
                sub.append(f"first {ccfg['limit']} in file order")
                if s.get("problems"):
                    a, b, k = s["problems"]
                    sub.append(f"{k} distinct problems" + (f", #{a}–#{b} only" if b - a + 1 == k else
                                                             f" spread over #{a}–#{b}"))
            if ccfg.get("max_new_tokens"):
                sub.append(f"max_new_tokens {ccfg['max_new_tokens']}")
            p, n = s["pass@1"], max(s["n"], 1)
            lo, hi = wilson(s["passed"], n)
            g = f"{s['mean_gen_s']:.1f}" if s.get("mean_gen_s") is not None else "n/a"
            w(f"| {SET_NAMES.get(name, name)} | {s['n']} / {SET_FULL.get(name, '?')} | {s['passed']} | "
              f"{p:.1%} [{lo:.1%}, {hi:.1%}] | {', '.join(sub) or 'all'} | "
              f"{'n/a' if s.get('syntax_errors') is None else s['syntax_errors']} | {g} | `{fname}` |")
            nums[f"pass_{name}"] = s["pass@1"]
        w("")
        if "single" in codes:
            p = codes["single"][0]["pass@1"]
            w(f"**Target:** single-line infilling pass@1 ≥ 0.30 → {p:.3f}: {'met' if p >= 0.30 else '**not met**'}.")
            sp = codes["single"][0]
            if sp.get("passed"):
                w(f"Of its {sp['passed']} passes, {sp.get('trivial_passes', 0)} are trivial lines (`return <name>`, "
                  "`pass`, an empty line, `x = []` / `x = 0`): the model mostly completes boilerplate, not logic.")
            w("")
    else:
        w("No code-eval results found.")
        w("")
    mix_params = facts["mixsga"]["params"] or facts["dense"]["params"]
    w("What would raise it: far more training tokens (the shipped model saw "
      f"{fmt_tok(shipped_tok)} tokens, orders of magnitude fewer than published 1B-class code models, which see "
      "hundreds of billions to trillions) and a larger model"
      + (f" ({mix_params / 1e6:.1f}M parameters is bounded by the 80 MB models/ limit)" if mix_params else "")
      + "; more Python in the mix (HumanEval is Python; "
      "the corpus' Python is mostly library code, little of it small self-contained functions with docstrings); "
      "a higher share of FIM documents cut at line starts (single-line middles; the 2026-12-01 recipe cuts half of "
      "the FIM documents that way, token cuts before); and "
      "fine-tuning on permissively licensed function-level data. Decoding tricks (stop at suffix-overlap, "
      "indentation-aware truncation) would help a few points at most.")
    w("")

    # (6) facts and compute
    w("## Model facts and compute")
    w("")
    for kind in (False, True):
        f = next((x for x in facts.values() if x["params"] and x["mixsga"] is kind), None)
        if f:
            w(f"- {'mixSGA' if kind else 'dense'} parameters: {f['params']:,} ({f['non_embedding']:,} "
              "non-embedding) — from all.log.")
    if cfg:
        kvh = cfg.get("num_key_value_heads", 0)
        hd = cfg.get("head_dim") or cfg.get("hidden_size", 0) // max(cfg.get("num_attention_heads", 1), 1)
        w(f"- Architecture (`train/mixsga/ckpt/config.json`): Llama-family decoder; hidden {cfg.get('hidden_size')}, "
          f"{cfg.get('num_hidden_layers')} layers, {cfg.get('num_attention_heads')} query heads × {hd}, {kvh} KV "
          f"heads, SwiGLU {cfg.get('intermediate_size')}, {'tied' if cfg.get('tie_word_embeddings') else 'untied'} "
          f"embeddings, vocab {cfg.get('vocab_size')}, positions up to {cfg.get('max_position_embeddings')}; "
          f"mixSGA: per layer a router over {len(groups)} KV experts with "
          f"{' / '.join(str(kvh // g) for g in groups)} KV heads (adjacent heads mean-pooled), target "
          f"{':'.join(f'{r * 10:g}' for r in targets)} = {kv_of_shares(targets, groups):.0%} KV.")
    size = training_doc_size(training_doc)
    if size:
        w("- Size choice and reason (from docs/training.md):")
        w("")
        for line in size.splitlines()[1:]:
            if line.strip():
                w("  > " + line.strip())
    w("")
    w("| run | what | starts from | steps | tokens | tokens/step | training loop s | tok/s per GPU, median (range, step 1 excluded) | last train loss (step) | last val loss (step) |")
    w("|---|---|---|---|---|---|---|---|---|---|")
    for name, what in RUNS.items():
        f = facts[name]
        if not f["present"]:
            w(f"| `{name}` | {what} | | missing | | | | | | |")
            continue
        tp = f["throughput"]
        tl, vl = f["last_loss"], f["last_val"]
        w(f"| `{name}` | {what} | {'scratch' if name == 'dense' else 'trunk, ' + format(trunk_tok, ',') + ' tokens'} | "
          f"{f['steps']} | {f['tokens']:,} | {f['tokens_per_step'] or 0:,} | {f['seconds']:.0f} | "
          + (f"{tp['median']:,} ({tp['min']:,}–{tp['max']:,})" if tp else "n/a")
          + f" | {fmt_loss(tl)} | {fmt_loss(vl, 'val_loss')} |")
        if tp:
            nums[f"tok_s_{name}"] = tp["median"]
    w("")
    mix_tok, cont_tok = facts["mixsga"]["tokens"], facts["dense-cont"]["tokens"]
    if facts["mixsga"]["present"] and facts["dense-cont"]["present"]:
        same_tps = facts["mixsga"]["tokens_per_step"] == facts["dense-cont"]["tokens_per_step"]
        equal = mix_tok == cont_tok and same_tps
        nums["equal_compute"] = equal
        w(f"- **Equal compute:** mixsga saw {trunk_tok:,} (trunk) + {mix_tok:,} (branch) = {trunk_tok + mix_tok:,} "
          f"tokens; dense-cont {trunk_tok:,} + {cont_tok:,} = {trunk_tok + cont_tok:,} tokens → "
          + ("equal (same steps and tokens per step)." if equal else
             f"**not equal** ({(trunk_tok + mix_tok) / max(trunk_tok + cont_tok, 1) - 1:+.1%} for mixsga)."))
    for name, step in (("gqa2", gqa), ("abl-lmgrad", abl), ("abl-random", abl)):
        f = facts[name]
        if f["present"] and step is not None:
            w(f"- {name}: {f['steps']} branch steps" + (" = " if f["steps"] == step else " ≠ ")
              + f"the comparison step {step} (mixsga's snapshot).")
    total = sum(f["tokens"] for f in facts.values())
    secs = sum(f["seconds"] for f in facts.values())
    w(f"- This study's mixSGA model (trunk + mixsga) saw {trunk_tok + facts['mixsga']['tokens']:,} tokens; all runs together trained "
      f"{total:,} tokens in {secs:,.0f} s of training loops (the trunk counted once).")
    if stats:
        tt = stats.get("total_tokens", {})
        w(f"- Shards (from all.log's shards statistics): {tt.get('train', 0):,} train tokens, {tt.get('val', 0):,} "
          f"val tokens; so the study's mixSGA model saw ≈ {(trunk_tok + facts['mixsga']['tokens']) / max(tt.get('train', 1), 1):.2f} epochs.")
        for split in ("train", "val"):
            per = stats.get("tokens", {}).get(split, {})
            w(f"  - {split}: " + ", ".join(f"{k} {v:,}" for k, v in per.items()))
        if stats.get("drops"):
            w("  - drops: " + ", ".join(f"{k} {v}" for k, v in stats["drops"].items()))
    if cstats:
        pk = cstats.get("packages", {})
        w(f"- Corpus (`{corpus}/stats.json`, npm + Debian part): {pk.get('npm', '?')} npm packages, "
          f"{pk.get('debian', '?')} Debian packages; held-out packages (val split): "
          f"{', '.join(cstats.get('val_packages', []))}.")
        lic = cstats.get("licences", {})
        w("  - licences (files): " + ", ".join(f"{k} {v}" for k, v in lic.items()))
        dp = cstats.get("dropped_packages", {})
        if dp:
            w("  - dropped packages: " + "; ".join(f"{k} ({v})" for k, v in dp.items()))
    if "site-packages/python" in (stats or {}).get("tokens", {}).get("train", {}):
        w("- The GPU machine's Python site-packages (`site-packages/python` above) were added by the shards stage on "
          "the GPU machine; their per-distribution list and licences were not saved in detail (see "
          "models/default/DATA.md).")
    if decontam:
        n_files = len(cstats.get("decontaminated", [])) if cstats else 0
        w(f"- Decontamination: {len(decontam.get('signatures', []))} function signatures and "
          f"{len(decontam.get('doc_lines', []))} docstring lines of the eval sets; {n_files} npm/Debian files "
          f"dropped for matching (eval_signature drops in all.log: {(stats or {}).get('drops', {}).get('eval_signature', 'n/a')}).")
    w("")

    # (7) reproduce
    w("## Reproduce (one command per stage)")
    w("")
    w("```sh")
    w("python -m mixsga corpus --out .gpu/corpus                   # data: licence-filtered npm/Debian sources")
    study_env = (f"TOTAL_STEPS={facts['dense']['steps'] + branch} DENSE_STEPS={facts['dense']['steps']} "
                 f"GQA_STEPS={gqa if gqa is not None else facts['gqa2']['steps']} "
                 f"ABL_STEPS={abl if abl is not None else facts['abl-lmgrad']['steps']} FIM_LINE_RATE=0 "
                 'BRANCHES="mixsga dense-cont gqa2 abl-lmgrad abl-random"')
    if ship:
        st = ship["steps"]
        w(f"# the shipped model: the defaults of scripts/train-default.sh (TOTAL_STEPS={st['dense'] + st['mixsga']} "
          f"DENSE_STEPS={st['dense']}, branches mixsga + dense-cont, FIM line cuts"
          + (f", then EXTEND_STEPS={ext['ext_steps']} on {ext['seq']}-token windows" if ext else "") + ")")
        w("scripts/train-default.sh all runs/default                   # shards -> dense -> convert 3:1:6 -> branches -> "
          + ("extend -> " if ext else "") + "eval_ppl")
        w(f"python -m mixsga export runs/default/mixsga{'-' + str(ext['seq']) if ext else ''}/ckpt models/default "
          "--name mixsga-default --cuda --cpu-weights mixed")
        if ext:
            w(f"# ({date}: the phase ran on the r3 branch's checkpoint carried to the GPU machine as fp16: "
              "lab/gpu/session.sh seed <ckpt> mixsga, then TRAIN_STAGES=shards,extend,eval EXTEND_BRANCHES=mixsga "
              "lab/gpu/session.sh train)")
        if lc:
            ls = lc["steps"]
            w(f"TOTAL_STEPS={ls['dense'] + ls['mixsga']} DENSE_STEPS={ls['dense']} EXTEND_STEPS={lc['ext_steps']} "
              "scripts/train-default.sh all runs/lc   # the smaller equal-compute run with the phase")
        w(f"python -m mixsga eval_code --model models/default --sets single --out {evals}/single.json   # and the other sets")
        w("# this card's study (early conversion, every branch)")
        w(f"{study_env} scripts/train-default.sh all runs/study")
    else:
        w(f"{study_env} scripts/train-default.sh all runs/default   # shards -> dense -> branches -> eval_ppl")
        w("python -m mixsga export runs/default/mixsga/ckpt models/default --name mixsga-default --cuda --cpu-weights mixed")
        w(f"python -m mixsga eval_code --model models/default --sets single --out {evals}/single.json")
    w(f"python -m mixsga model_card --results {results} --evals {evals} --out {out} --date {date}"
      + (f" --shipped {ship['dir']}" if ship else "") + (f" --extension {ext['dir']}" if ext else "")
      + (f" --long-study {lc['dir']}" if lc else ""))
    w("```")
    w("")
    w("Each stage of `scripts/train-default.sh` (shards, dense, branches, extend, eval, all, or a comma list) runs detached (log in "
      "`<run>/<stage>.log`; `scripts/train-default.sh status <run>` shows progress). A CPU dry run of the whole "
      "pipeline: docs/training.md.")
    w("")
    out.write_text("\n".join(L) + "\n")
    return nums


def run(args):
    opt = lambda x: Path(x) if x else None  # noqa: E731
    nums = build(Path(args.results), Path(args.evals), Path(args.out),
                 Path(args.corpus) if args.corpus else None, Path(args.img), Path(args.training_doc),
                 date=args.date, machine=args.machine, shipped=opt(args.shipped), extension=opt(args.extension),
                 long_study=opt(args.long_study))
    print(f"wrote {args.out}")
    for k, v in nums.items():
        print(f"  {k}: {v}")
    return 0


def register(sub):
    p = sub.add_parser("model_card", help="docs/model-card.md and plots from eval results")
    p.add_argument("--results", required=True, help="run results folder (with train/)")
    p.add_argument("--evals", required=True, help="folder of eval_code JSON files")
    p.add_argument("--out", required=True, help="markdown file to write")
    p.add_argument("--corpus", default=".gpu/corpus", help="folder with stats.json / decontam.json")
    p.add_argument("--img", default=None, help="plot folder (default: img/ next to --out)")
    p.add_argument("--training-doc", default="docs/training.md")
    p.add_argument("--date", default=DATE, help=f"date of the run, in the title and plots (default {DATE})")
    p.add_argument("--machine", default=MACHINE, help="machine the results come from, in words")
    p.add_argument("--shipped", help="results folder of the run whose model ships, when it is not this study's")
    p.add_argument("--extension", help="results folder of the shipped checkpoint's long-context phase")
    p.add_argument("--long-study", help="results folder of an equal-compute run with the long-context phase")
    p.set_defaults(func=lambda a: run(_defaults(a)))


def _defaults(a):
    if a.img is None:
        a.img = str(Path(a.out).parent / "img")
    return a
