"""Sections about the model that ships: its own run, its long-context phase, and the equal-compute run with
that phase."""
from __future__ import annotations

from pathlib import Path

from mixsga.model_card.cells import fmt_ppl
from mixsga.model_card.config import BUDGETS, TARGET_PPL_RATIO
from mixsga.model_card.facts import ppl_at
from mixsga.model_card.plots import plot_profile


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
