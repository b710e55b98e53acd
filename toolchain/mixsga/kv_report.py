"""`python -m mixsga kv_report`: the KV-policy comparison at equal bytes (issue 19), from the study's eval_ppl files.

    python -m mixsga kv_report --eval docs/results/kv-policy-RUN/eval --json docs/kv-policy.json \
        --md docs/kv-policy.md --img docs/img/kv-policy.png

Every arm starts from the same weights and trains the same tokens (lab/kv-policy/gpu-study.sh), so rows compare
at equal compute: full KV, the sliding window, H2O and the quantised caches are read off the dense reference
arm, the paper's mixSGA off its expert-choice arm, `proposed` off the age-aware policy arm. Budgets are
fractions of the fp16 full cache; every method's bytes count as stored (scales included).
"""
import json
import re
from pathlib import Path

from mixsga.errors import UserError

# method -> arm whose eval file holds it
SOURCES = {"full": "dense-cont", "window": "dense-cont", "h2o": "dense-cont", "int8": "dense-cont",
           "int4": "dense-cont", "int4-token": "dense-cont", "int2": "dense-cont", "age-tiered": "dense-cont",
           "age-tiered-int2": "dense-cont", "age-tiered-g2": "dense-cont", "age-tiered-g4": "dense-cont",
           "mixsga": "mixsga", "proposed": "proposed"}
# The proposed policy's own family read untrained off the dense arm (its ablation "no policy training"): shown in
# the table, not counted among the *other* methods the target compares against.
FAMILY_PREFIX = "age-tiered"
TARGET_BUDGETS = ("0.25", "0.35", "0.5")


def table(eval_dir: Path, seq: int, sources: dict = SOURCES) -> dict:
    ppl, kv, notes = {}, {}, {}
    for method, arm in sources.items():
        f = eval_dir / f"{arm}-{seq}.json"
        if not f.exists():
            continue
        for r in json.loads(f.read_text())["rows"]:
            if r["method"] != method:
                continue
            if method == "full":
                ppl["full"] = r["ppl"]
                continue
            b = f"{r['budget']:g}"
            ppl.setdefault(method, {})[b] = r["ppl"]
            kv.setdefault(method, {})[b] = r["kv_fraction"]
            notes.setdefault(method, {})[b] = r["note"]
    if "full" not in ppl:
        raise UserError(f"{eval_dir}: no dense-cont-{seq}.json with a 'full' row")
    return {"windows": seq, "ppl": ppl, "kv_fraction": kv, "notes": notes, "sources": sources}


def ablations(eval_dir: Path, seq: int, full: float, sources: dict = SOURCES) -> dict:
    """Every other arm's own 'proposed' rows (policy variants trained at equal compute), and its full KV."""
    out = {}
    for f in sorted(eval_dir.glob(f"*-{seq}.json")):
        arm = f.name[: -len(f"-{seq}.json")]
        if arm in set(sources.values()) or arm == "start":
            continue
        rows = json.loads(f.read_text())["rows"]
        pol = {f"{r['budget']:g}": r for r in rows if r["method"] == "proposed"}
        if not pol:
            continue
        own_full = next((r["ppl"] for r in rows if r["method"] == "full"), None)
        out[arm] = {"policy": next(iter(pol.values()))["note"].split(";")[0], "full": own_full,
                    "ppl": {b: r["ppl"] for b, r in pol.items()},
                    "ratio_to_reference_full": {b: round(r["ppl"] / full, 4) for b, r in pol.items()},
                    "kv_fraction": {b: r["kv_fraction"] for b, r in pol.items()}}
    return out


def verdict(t: dict) -> dict:
    """Target of issue 19: proposed <= every other method at 25/35/50 %, and <= 1.03 x full at 25 %."""
    p = t["ppl"].get("proposed", {})
    out = {}
    for b in TARGET_BUDGETS:
        others = {m: v[b] for m, v in t["ppl"].items()
                  if m not in ("full", "proposed") and not m.startswith(FAMILY_PREFIX) and b in v}
        best = min(others.items(), key=lambda x: x[1]) if others else (None, None)
        out[b] = {"proposed": p.get(b), "best_other": best[0], "best_other_ppl": best[1],
                  "wins": p.get(b) is not None and best[1] is not None and p[b] <= best[1],
                  "ratio_to_full": round(p[b] / t["ppl"]["full"], 4) if b in p else None}
    out["within_1.03_at_0.25"] = out["0.25"]["ratio_to_full"] is not None and out["0.25"]["ratio_to_full"] <= 1.03
    return out


def arm_tokens(run_dir: Path) -> dict:
    """Tokens each arm trained, from its log's closing line."""
    out = {}
    for f in sorted(run_dir.glob("*.log")):
        m = re.search(r"done at step (\d+) \(([\d,]+) tokens, (\d+)s\)", f.read_text())
        if m:
            out[f.stem] = {"steps": int(m.group(1)), "tokens": int(m.group(2).replace(",", "")), "seconds": int(m.group(3))}
    return out


def tier_shares(spec: str, S: int, budgets=TARGET_BUDGETS, H=4, D=48) -> dict:
    """Decode-time state of an age cascade: after S tokens, the share of cached positions held in full (sinks +
    band), in each tier and evicted, per budget. Ages decide, so every layer holds the same shares."""
    from mixsga import kv_policy

    pol = kv_policy.policy(spec)
    if not pol.by_age:
        return {}
    out = {}
    for b in budgets:
        p = kv_policy.for_budget(pol, float(b), S, H, D)[0]
        ages = range(S)  # the newest query reads key s at age S-1-s
        lims = p.age_limits()  # full view, tiers..., routed store (cap)
        names = ["full"] + [st.name for _, st in p.tiers] + [p.stores[0].name]
        counts = dict.fromkeys(names + ["evicted"], 0)
        for a in ages:
            if a >= S - p.sinks or a < p.band:
                counts["full"] += 1
                continue
            for name, hi in zip(names[1:-1], lims[1:-1]):
                if a < hi:
                    counts[name] += 1
                    break
            else:
                counts[names[-1] if not p.cap or a < p.cap else "evicted"] += 1
        out[b] = {k: round(v / S, 4) for k, v in counts.items() if v}
    return out


def mixsga_shares(run_dir: Path) -> list:
    """The paper's arm: decode-style (argmax) expert shares per layer at its last eval."""
    f = run_dir / "mixsga.log"
    rows = [json.loads(x[len("[eval] "):]) for x in f.read_text().splitlines() if x.startswith("[eval] ")] if f.exists() else []
    return rows[-1].get("argmax_shares", []) if rows else []


INTRO = """# KV policies at equal bytes (issue 19)

Generated by `python -m mixsga kv_report` from `{eval_dir}` ({date}; {machine}). Raw files: eval_ppl JSON and
text per arm, training logs, `pipeline.log`; the run is `lab/kv-policy/gpu-study.sh` (run log:
`lab/kv-policy/README.md`).

**Setup.** Every arm starts from the default model's weights of the time (commit 1720d3d, `python -m mixsga from_onnx models/default`, bit-exact)
and trains the same {tokens} tokens ({steps} steps × 262,144, 2048-token windows, LR 1e-4 → 3e-5, FIM as in
training) on the same shards, so rows compare at equal compute. Data: the GPU machine's Python site-packages
(licence-filtered, deduplicated, decontaminated against shared/eval; held out by distribution). Perplexity on 64
held-out windows. Budgets are fractions of the **fp16** full cache; bytes count as stored, scales included
(int8: 1 fp16 scale + minimum per token and head; int4/int2 as KIVI: keys per channel over 32-token groups, values
per token, a 32-token fp16 residual). A method whose cache alone exceeds a budget is windowed (sinks + recent) to
fit; one that fits uses less (the "at N %" cells). `full`, `window`, `h2o` and the quantised caches are read off
the dense reference arm; `mixsga` (the paper's expert-choice at each budget's ratios) off the mixSGA arm;
`proposed` off the `{proposed_arm}` arm, trained with its policy: `{proposed_spec}`. `age-tiered*` rows are age
cascades (`kv_policy.cascade_for_budget`) read *untrained* off the dense arm: the proposed family without policy
training, an ablation, not one of the "other methods" of the target.

![perplexity vs bytes]({img})

"""


def markdown(tables: list) -> str:
    lines = []
    for t in tables:
        budgets = sorted({b for v in t["ppl"].values() if isinstance(v, dict) for b in v}, key=float)
        lines += [f"### {t['windows']}-token windows (full KV: ppl {t['ppl']['full']:.3f})", "",
                  "| method | " + " | ".join(f"{float(b):.0%}" for b in budgets) + " |",
                  "|---|" + "---|" * len(budgets)]
        for m, v in t["ppl"].items():
            if m == "full":
                continue
            cells = []
            for b in budgets:
                if b not in v:
                    cells.append("")
                    continue
                k = t["kv_fraction"][m][b]
                cells.append(f"{v[b]:.3f} ({v[b] / t['ppl']['full']:.3f}×)" + (f" at {k:.0%}" if abs(k - float(b)) > 0.015 else ""))
            lines.append(f"| {m} | " + " | ".join(cells) + " |")
        lines.append("")
        if t.get("ablations"):
            budgets_a = sorted({b for a in t["ablations"].values() for b in a["ppl"]}, key=float)
            lines += ["Policy variants (each its own arm at equal compute; ratio to the reference's full KV):", "",
                      "| arm | policy | own full KV | " + " | ".join(f"{float(b):.0%}" for b in budgets_a) + " |",
                      "|---|---|---|" + "---|" * len(budgets_a)]
            for arm, a in t["ablations"].items():
                policy = a["policy"].replace("|", "\\|")  # a '|' inside a table cell must be escaped
                lines.append(f"| {arm} | `{policy}` | {a['full']:.3f} | " + " | ".join(
                    f"{a['ppl'][b]:.3f} ({a['ratio_to_reference_full'][b]:.3f}×)" if b in a["ppl"] else ""
                    for b in budgets_a) + " |")
            lines.append("")
        if "verdict" in t:
            v = t["verdict"]
            lines.append("Target (proposed ≤ every other method at 25/35/50 %, ≤ 1.03× full at 25 %): " + "; ".join(
                f"{float(b):.0%}: {'met' if v[b]['wins'] else 'missed'} (best other {v[b]['best_other']} "
                f"{v[b]['best_other_ppl']})" for b in TARGET_BUDGETS) +
                f"; 1.03× at 25 %: {'met' if v['within_1.03_at_0.25'] else 'missed'} ({v['0.25']['ratio_to_full']}×).")
            lines.append("")
        sh = t.get("decode_shares", {})
        if sh.get("proposed"):
            lines += [f"Decode-time shares of `proposed` after {t['windows']} tokens (cached positions by how they are "
                      "held; ages decide, so every layer is the same):", "",
                      "| budget | " + " | ".join(sorted({k for v in sh["proposed"].values() for k in v})) + " |"]
            keys = sorted({k for v in sh["proposed"].values() for k in v})
            lines.append("|---|" + "---|" * len(keys))
            for b, v in sh["proposed"].items():
                lines.append(f"| {float(b):.0%} | " + " | ".join(f"{v.get(k, 0):.1%}" for k in keys) + " |")
            lines.append("")
        if sh.get("mixsga_argmax_per_layer"):
            lines += ["The paper's arm (50 % training ratios 3:1:6), decode-time (argmax) shares of experts 4/2/1 heads "
                      "per layer: " + "; ".join(f"L{i}: " + "/".join(f"{x:.0%}" for x in r)
                                                for i, r in enumerate(sh["mixsga_argmax_per_layer"])), ""]
    return "\n".join(lines)


def plot(t: dict, path: Path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for m, v in t["ppl"].items():
        if m == "full":
            continue
        bs = sorted(v, key=float)
        ax.plot([t["kv_fraction"][m][b] for b in bs], [v[b] for b in bs], marker="o",
                lw=2.5 if m == "proposed" else 1.2, label=m)
    ax.axhline(t["ppl"]["full"], color="k", ls="--", lw=1, label="full KV")
    ax.axhline(t["ppl"]["full"] * 1.03, color="gray", ls=":", lw=1, label="1.03 × full")
    ax.set_xlabel("KV bytes held (fraction of the fp16 full cache)")
    ax.set_ylabel("held-out perplexity")
    ax.set_title(f"KV policies at equal bytes and equal compute ({t['windows']}-token windows)")
    ax.legend(fontsize=8, ncol=2)
    ax.grid(alpha=0.3)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def run(args):
    eval_dir = Path(args.eval)
    tables = []
    sources = {**SOURCES, "proposed": args.proposed_arm}
    for seq in (2048, 1024):
        if (eval_dir / f"dense-cont-{seq}.json").exists():
            t = table(eval_dir, seq, sources)
            t["verdict"] = verdict(t)
            t["ablations"] = ablations(eval_dir, seq, t["ppl"]["full"], sources)
            tables.append(t)
    if not tables:
        raise UserError(f"no dense-cont-2048.json / dense-cont-1024.json in {eval_dir}")
    main = tables[0]
    toks = arm_tokens(eval_dir.parent)
    spec = next(iter(main["notes"].get("proposed", {}).values()), "").split(";")[0]
    main["decode_shares"] = {"proposed": tier_shares(spec, main["windows"]) if spec else {},
                             "mixsga_argmax_per_layer": mixsga_shares(eval_dir.parent)}
    out = {**main, "other_windows": tables[1:], "eval_dir": str(eval_dir), "arm_tokens": toks}
    Path(args.json).write_text(json.dumps(out, indent=1) + "\n")
    if args.md:
        ref = toks.get("dense-cont", {"tokens": 0, "steps": 0})
        img = Path(args.img).resolve().relative_to(Path(args.md).resolve().parent) if args.img else ""
        Path(args.md).write_text(INTRO.format(eval_dir=eval_dir, date=args.date, machine=args.machine,
                                              tokens=f"{ref['tokens']:,}", steps=ref["steps"], img=img,
                                              proposed_arm=args.proposed_arm, proposed_spec=spec)
                                 + markdown(tables))
    if args.img:
        plot(main, Path(args.img))
    print(markdown(tables))
    return 0


def register(sub):
    p = sub.add_parser("kv_report", help="KV policies at equal bytes: docs/kv-policy.json, table and plot")
    p.add_argument("--eval", required=True, help="folder with the study's <arm>-<seq>.json eval_ppl files")
    p.add_argument("--json", required=True)
    p.add_argument("--md", help="markdown tables (included by the model card)")
    p.add_argument("--img", help="plot of perplexity vs bytes")
    p.add_argument("--proposed-arm", default="proposed", help="the arm whose own policy rows are `proposed`")
    p.add_argument("--date", default="", help="date of the run")
    p.add_argument("--machine", default="", help="machine the run used, in words")
    p.set_defaults(func=run)
