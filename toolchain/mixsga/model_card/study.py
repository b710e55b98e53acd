"""The study's sections: perplexity vs KV budget and the 50% target, ablations at equal steps, decode-time
routing, loss curves. Each takes the card's writer W, the facts C (card.py) and the dict NUMS it fills."""
from __future__ import annotations

from mixsga.model_card.cells import budget_cells, fmt_kv, fmt_loss, fmt_ppl, fmt_tok, lower, target_checks, verdict
from mixsga.model_card.config import BUDGETS, TARGET_PPL_RATIO
from mixsga.model_card.facts import kv_of_shares, ppl_at, ppl_rows, rows_at_step, train_loss_at, val_rows
from mixsga.model_card.plots import plot_loss, plot_ppl, plot_routing


def ppl_section(w, c, nums: dict):
    """Held-out perplexity vs KV budget (plot, table) and the 50% target."""
    branch, date, facts, gqa_rows, gs, img, meta, mix_g_rows, mix_rows, ref_rows, rel, trunk_rows = (
        c.branch, c.date, c.facts, c.gqa_rows, c.gs, c.img, c.meta, c.mix_g_rows, c.mix_rows, c.ref_rows, c.rel,
        c.trunk_rows)
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


def ablations_section(w, c, nums: dict):
    """Router ablations and static GQA-2 at equal branch steps."""
    abl, ev, facts, gqa, gqa_name, gqa_rows, logs, meta, mix_g_name, mix_g_rows, tps = (
        c.abl, c.ev, c.facts, c.gqa, c.gqa_name, c.gqa_rows, c.logs, c.meta, c.mix_g_name, c.mix_g_rows, c.tps)
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


def routing_section(w, c, nums: dict):
    """Decode-time (argmax) route shares per layer vs the target ratios."""
    date, groups, img, logs, mix_rows, rel, targets = c.date, c.groups, c.img, c.logs, c.mix_rows, c.rel, c.targets
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


def loss_section(w, c, nums: dict):
    """Training loss of every run on one token axis."""
    abl, date, facts, gqa, img, logs, rel, tps, trunk_tok = (
        c.abl, c.date, c.facts, c.gqa, c.img, c.logs, c.rel, c.tps, c.trunk_tok)
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
