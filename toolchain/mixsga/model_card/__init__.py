"""`model_card`: docs/model-card.md and its plots, computed from the committed run results.

    python -m mixsga model_card --results RESULTS --evals docs/results/evals --out docs/model-card.md \
        [--corpus .gpu/corpus] [--img docs/img] [--training-doc docs/training.md] [--date D] [--machine M] \
        [--kv-policy docs/kv-policy.json]
    python -m mixsga model_card --section kv-policy --out docs/model-card.md    # rewrite one section in place

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
--kv-policy KV                       kv_report's comparison at equal bytes (default: kv-policy.json next to the
                                     card, when present), with its plot IMG/kv-policy-<windows>.png.

Modules: config (what is compared), facts (reading), cells (formatting, verdicts), plots, one module per group of
sections (shipped, kv_section, study, summary), card (build: the order of the sections), cli.
"""
from mixsga.model_card.card import build, card_facts
from mixsga.model_card.cli import register, run
from mixsga.model_card.config import BUDGETS, DATE, MACHINE, RUNS, SET_FULL, SET_NAMES, TARGET_PPL_RATIO
from mixsga.model_card.facts import comparison_steps, log_facts, run_log

__all__ = ["BUDGETS", "DATE", "MACHINE", "RUNS", "SET_FULL", "SET_NAMES", "TARGET_PPL_RATIO", "build", "card_facts",
           "comparison_steps", "log_facts", "register", "run", "run_log"]
