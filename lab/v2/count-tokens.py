"""Tokens of a `corpus` output, counted with the project tokenizer exactly as `shards` encodes (no BOS/EOS):
per split/source/lang and per package, with bytes, files and the repository commit where the records carry one.

    PYTHONPATH=toolchain python3 lab/v2/count-tokens.py .gpu/corpus-gh --out .gpu/corpus-gh/tokens.json
    [--sample 0.1: every 10th file by a stable hash, totals scaled by bytes; default counts all]
"""
import argparse
import hashlib
import json
import lzma
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "toolchain"))  # not installed as a package
from mixsga.shards import encode_exact, load_tokenizer

REPO = Path(__file__).resolve().parents[2]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("corpus")
    ap.add_argument("--tokenizer", default=str(REPO / "models/default/tokenizer.json"))
    ap.add_argument("--sample", type=float, default=1.0, help="share of files tokenized (by a stable hash)")
    ap.add_argument("--out", required=True, help="JSON file to write")
    args = ap.parse_args()
    tok, t0 = load_tokenizer(args.tokenizer), time.time()
    groups = defaultdict(lambda: {"files": 0, "bytes": 0, "sampled_bytes": 0, "sampled_tokens": 0})
    packages = {}
    for split in ("train", "val"):
        with lzma.open(Path(args.corpus) / f"{split}.jsonl.xz", "rt", encoding="utf-8") as f:
            for line in f:
                rec = json.loads(line)
                n = len(rec["text"].encode())
                key = f"{split}/{rec['source']}/{rec['lang']}"
                pkg = packages.setdefault(rec["package"], {"split": split, "licence": rec["licence"], "files": 0,
                                                           "bytes": 0, "sampled_bytes": 0, "sampled_tokens": 0,
                                                           **({"commit": rec["commit"]} if "commit" in rec else {})})
                for g in (groups[key], pkg):
                    g["files"] += 1
                    g["bytes"] += n
                h = int.from_bytes(hashlib.sha1(f"{rec['package']}/{rec['path']}".encode()).digest()[:4], "big")
                if h / 2 ** 32 < args.sample:
                    t = len(encode_exact(tok, rec["text"]))
                    for g in (groups[key], pkg):
                        g["sampled_bytes"] += n
                        g["sampled_tokens"] += t
    for g in list(groups.values()) + list(packages.values()):
        g["bytes_per_token"] = round(g["sampled_bytes"] / max(1, g["sampled_tokens"]), 3)
        g["tokens"] = round(g["bytes"] * g["sampled_tokens"] / max(1, g["sampled_bytes"]))
    total = {k: sum(g[k] for g in groups.values()) for k in ("files", "bytes", "tokens")}
    result = {"corpus": args.corpus, "tokenizer": args.tokenizer, "sample": args.sample, "total": total,
              "groups": dict(sorted(groups.items())), "packages": dict(sorted(packages.items())),
              "seconds": round(time.time() - t0)}
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({"total": total, "groups": result["groups"], "seconds": result["seconds"]}, indent=1))


if __name__ == "__main__":
    main()
