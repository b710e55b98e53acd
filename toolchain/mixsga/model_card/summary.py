"""The closing sections: code-completion evals, model facts and compute, the commands that reproduce the card."""
from __future__ import annotations

from mixsga.model_card.cells import fmt_loss, fmt_tok, wilson
from mixsga.model_card.config import RUNS, SET_FULL, SET_NAMES
from mixsga.model_card.facts import kv_of_shares, training_doc_size


def code_section(w, c, nums: dict):
    """pass@1 of each eval set with its Wilson interval, and what would raise it."""
    codes, facts, ship, trunk_tok = c.codes, c.facts, c.ship, c.trunk_tok
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


def facts_section(w, c, nums: dict):
    """Parameters, architecture, size choice, per-run compute, shards, corpus, decontamination."""
    w("## Model facts and compute")
    w("")
    abl, cfg, corpus, cstats, decontam, facts, gqa, groups, stats, targets, training_doc, trunk_tok = (
        c.abl, c.cfg, c.corpus, c.cstats, c.decontam, c.facts, c.gqa, c.groups, c.stats, c.targets, c.training_doc,
        c.trunk_tok)
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


def reproduce_section(w, c, nums: dict):
    """One command per stage, with this card's step counts and folders."""
    abl, branch, date, evals, ext, facts, gqa, lc, out, results, ship = (
        c.abl, c.branch, c.date, c.evals, c.ext, c.facts, c.gqa, c.lc, c.out, c.results, c.ship)
    w("## Reproduce (one command per stage)")
    w("")
    w("```sh")
    w("python -m mixsga corpus --out .gpu/corpus                   # data: licence-filtered npm/Debian sources")
    study = (f"--recipe toolchain/recipes/study-v1.json --set trunk.total_steps={facts['dense']['steps'] + branch} "
             f"--set trunk.dense_steps={facts['dense']['steps']} "
             f"--set branches.gqa_steps={gqa if gqa is not None else facts['gqa2']['steps']} "
             f"--set branches.abl_steps={abl if abl is not None else facts['abl-lmgrad']['steps']}")
    if ship:
        st = ship["steps"]
        w(f"# the shipped model: toolchain/recipes/default-v1.json (trunk.total_steps={st['dense'] + st['mixsga']} "
          f"trunk.dense_steps={st['dense']}, branches mixsga + dense-cont, FIM line cuts"
          + (f", then extend.steps={ext['ext_steps']} on {ext['seq']}-token windows" if ext else "") + ")")
        w("scripts/train-default.sh all runs/default                   # shards -> dense -> convert 3:1:6 -> branches -> "
          + ("extend -> " if ext else "") + "eval_ppl")
        w(f"python -m mixsga export runs/default/mixsga{'-' + str(ext['seq']) if ext else ''}/ckpt models/default "
          "--name mixsga-default --cuda --cpu-weights mixed")
        if ext:
            w(f"# ({date}: the phase ran on the r3 branch's checkpoint carried to the GPU machine as fp16: "
              "lab/gpu/session.sh seed <ckpt> mixsga, then TRAIN_STAGES=shards,extend,eval "
              "PIPELINE_FLAGS='--set extend.branches=[\"mixsga\"]' lab/gpu/session.sh train)")
        if lc:
            ls = lc["steps"]
            w(f"scripts/train-default.sh all runs/lc --set trunk.total_steps={ls['dense'] + ls['mixsga']} "
              f"--set trunk.dense_steps={ls['dense']} --set extend.steps={lc['ext_steps']}   "
              "# the smaller equal-compute run with the phase")
        w(f"python -m mixsga eval_code --model models/default --sets single --out {evals}/single.json   # and the other sets")
        w("# this card's study (early conversion, every branch)")
        w(f"scripts/train-default.sh all runs/study {study}")
    else:
        w(f"scripts/train-default.sh all runs/default {study}   # shards -> dense -> branches -> eval_ppl")
        w("python -m mixsga export runs/default/mixsga/ckpt models/default --name mixsga-default --cuda --cpu-weights mixed")
        w(f"python -m mixsga eval_code --model models/default --sets single --out {evals}/single.json")
    w(f"python -m mixsga model_card --results {results} --evals {evals} --out {out} --date {date}"
      + (f" --shipped {ship['dir']}" if ship else "") + (f" --extension {ext['dir']}" if ext else "")
      + (f" --long-study {lc['dir']}" if lc else ""))
    w("```")
    w("")
    w("`scripts/train-default.sh STAGES RUN [flags]` runs `python -m mixsga pipeline` on a recipe "
      "(toolchain/recipes/, default-v1.json unless `--recipe`) detached: STAGES is shards, dense, branches, extend, "
      "eval, all, or a comma list; log in `<run>/<stages>.log`, every command in `<run>/pipeline.jsonl`; "
      "`scripts/train-default.sh status <run>` shows progress. A CPU dry run of the whole pipeline: docs/training.md.")
    w("")
