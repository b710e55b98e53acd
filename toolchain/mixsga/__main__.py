"""`python -m mixsga <command> ...`: one subcommand per stage of the pipeline.

Each command lives in its own module, which defines `register(subparsers)`; the module is imported only when
the CLI starts, so a broken optional dependency of one stage does not break the others.
"""
import argparse
import importlib
import sys

from mixsga.errors import UserError

# module name -> one-line help. Order = pipeline order.
COMMANDS = [
    "corpus",      # collect licence-filtered source files
    "shards",      # tokenize a corpus into uint16 token shards
    "convert",     # HF Llama checkpoint -> mixSGA checkpoint
    "train",       # dense pretraining or mixSGA continued pretraining
    "eval_ppl",    # held-out perplexity vs KV budget (mixSGA and baselines)
    "eval_code",   # HumanEval / infilling / MultiPL-E pass@1
    "export",      # checkpoint -> ONNX model folder with manifest
    "from_onnx",   # shipped model folder -> checkpoint (studies continue from the shipped weights)
    "fixture",     # tiny random model + test vectors for the TypeScript engine
    "kv_quant_fixture",  # vectors tying the engine's quantised KV tiers to kv_quant.py
    "model_card",  # docs/model-card.md and plots from eval results
    "kv_report",   # KV policies at equal bytes (docs/kv-policy.json)
    "pipeline",    # a training recipe (toolchain/recipes/*.json) stage by stage: shards -> trunk -> branches -> eval
]


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="python -m mixsga", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    # Import only the chosen command's module (torch and friends are slow to import); all of them for --help.
    chosen = [argv[0]] if argv and argv[0] in COMMANDS else COMMANDS
    for name in chosen:
        try:
            module = importlib.import_module(f"mixsga.{name}")
        except ModuleNotFoundError as e:
            if e.name == f"mixsga.{name}":
                continue  # stage not present in this build
            raise
        module.register(sub)
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return args.func(args) or 0
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
