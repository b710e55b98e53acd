"""`python -m mixsga model_card`: the whole card from the run folders, or one section rewritten in place."""
from __future__ import annotations

import json
from pathlib import Path

from mixsga.errors import UserError
from mixsga.model_card.card import build
from mixsga.model_card.config import DATE, MACHINE
from mixsga.model_card.kv_section import kv_policy_lines, read_kv_policy, update_section
from mixsga.model_card import policy_phase

SECTIONS = ("kv-policy", "policy-phase")


def run(args):
    out = Path(args.out)
    kv = Path(args.kv_policy) if args.kv_policy else out.parent / "kv-policy.json"
    if args.section == "kv-policy":
        update_section(out, kv_policy_lines(read_kv_policy(kv), kv, out, Path(args.img)))
        print(f"updated the kv-policy section of {out} from {kv}")
        return 0
    if args.section == "policy-phase":
        if not (args.phase_eval and args.evals_before and args.evals_after):
            raise UserError("--section policy-phase needs --phase-eval, --evals-before and --evals-after")
        paths = lambda s: [Path(x) for x in s.split(",")]  # noqa: E731
        lines = policy_phase.policy_phase_lines(Path(args.phase_eval), args.arm, args.phase_seq,
                                                paths(args.evals_before), paths(args.evals_after), out,
                                                paths(args.evals_paper) if args.evals_paper else [])
        update_section(out, lines, policy_phase.BEGIN, policy_phase.END, policy_phase.ANCHORS)
        policy_phase.update_title(out, f"KV-policy phase {args.phase_date}")
        if args.train_tokens:
            facts = policy_phase.card_facts(Path(args.model), Path(args.phase_eval), args.arm, args.phase_seq,
                                            paths(args.evals_after), args.train_tokens)
            (out.parent / "model-card.json").write_text(json.dumps(facts, indent=2) + "\n")
        print(f"updated the policy-phase section of {out} from {args.phase_eval}")
        return 0
    if not (args.results and args.evals):
        raise UserError("--results and --evals are needed to build the whole card "
                        f"(or --section {'|'.join(SECTIONS)} to rewrite one section of an existing card)")
    opt = lambda x: Path(x) if x else None  # noqa: E731
    nums = build(Path(args.results), Path(args.evals), out,
                 Path(args.corpus) if args.corpus else None, Path(args.img), Path(args.training_doc),
                 date=args.date, machine=args.machine, shipped=opt(args.shipped), extension=opt(args.extension),
                 long_study=opt(args.long_study), kv_policy=kv if args.kv_policy or kv.is_file() else None)
    print(f"wrote {args.out}")
    for k, v in nums.items():
        print(f"  {k}: {v}")
    return 0


def register(sub):
    p = sub.add_parser("model_card", help="docs/model-card.md and plots from eval results")
    p.add_argument("--results", help="run results folder (with train/)")
    p.add_argument("--evals", help="folder of eval_code JSON files")
    p.add_argument("--out", required=True, help="markdown file to write")
    p.add_argument("--corpus", default=".gpu/corpus", help="folder with stats.json / decontam.json")
    p.add_argument("--img", default=None, help="plot folder (default: img/ next to --out)")
    p.add_argument("--training-doc", default="docs/training.md")
    p.add_argument("--date", default=DATE, help=f"date of the run, in the title and plots (default {DATE})")
    p.add_argument("--machine", default=MACHINE, help="machine the results come from, in words")
    p.add_argument("--shipped", help="results folder of the run whose model ships, when it is not this study's")
    p.add_argument("--extension", help="results folder of the shipped checkpoint's long-context phase")
    p.add_argument("--long-study", help="results folder of an equal-compute run with the long-context phase")
    p.add_argument("--kv-policy", help="kv_report's JSON (default: kv-policy.json next to --out, when present)")
    p.add_argument("--phase-eval", help="policy-phase: the KV-policy study's eval folder (start-SEQ.json, ARM-SEQ.json)")
    p.add_argument("--arm", default="g2-b5", help="policy-phase: the study arm that ships")
    p.add_argument("--phase-seq", type=int, default=2048)
    p.add_argument("--phase-date", default="2026-12-06")
    p.add_argument("--evals-before", help="policy-phase: comma list of eval_code JSON files of the model before")
    p.add_argument("--evals-after", help="policy-phase: comma list of eval_code JSON files of the model after")
    p.add_argument("--evals-paper", help="policy-phase: eval_code JSON files of the study's mixSGA arm (equal compute)")
    p.add_argument("--model", default="models/default", help="policy-phase: the shipped model folder")
    p.add_argument("--train-tokens", type=int, help="policy-phase: all training tokens of the shipped model; "
                   "writes model-card.json next to --out")
    p.add_argument("--section", choices=SECTIONS,
                   help="rewrite only this section of the existing --out card, from files present here; the rest "
                        "of the card stays as it is")
    p.set_defaults(func=lambda a: run(_defaults(a)))


def _defaults(a):
    if a.img is None:
        a.img = str(Path(a.out).parent / "img")
    return a
