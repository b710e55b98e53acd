"""`python -m mixsga shards`: tokenize a corpus (from `corpus`) and/or Python site-packages directories into flat
uint16 token shards for training.

Each document is stored as [BOS=1] + ids + [EOS=2]; BOS appears nowhere else (text is encoded with special tokens
treated as plain text), so document boundaries are the BOS positions (`document_starts`, `iter_documents`).
Site-packages go through the same licence, quality, dedup and decontamination filters as `corpus`; dedup runs
across all inputs, corpus documents first.
"""
from __future__ import annotations

import csv
import hashlib
import json
import lzma
import multiprocessing as mp
import os
import re
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

from mixsga import corpus_filters as cf
from mixsga.errors import UserError

ASSETS = Path(__file__).parent / "assets"
BOS, EOS, SPACE = 1, 2, 29871  # SPACE = "▁", the piece the normalizer prepends to every encoded string
VOCAB_SIZE = 32008             # embedding rows: 32,000 Llama pieces + 5 FIM tokens, padded to a multiple of 8
CHUNK_CHARS = 8192


def document_starts(tokens: np.ndarray) -> np.ndarray:
    """Offsets of the BOS token of every document in a shard (the trainer cuts FIM spans per document)."""
    return np.flatnonzero(tokens == BOS)


def iter_documents(bin_path):
    """Yield each document's token ids (without BOS/EOS) from a shard file, as views of a memmap."""
    tokens = np.memmap(bin_path, dtype=np.uint16, mode="r")
    starts = document_starts(tokens)
    ends = np.append(starts[1:], len(tokens))
    for s, e in zip(starts, ends):
        yield tokens[s + 1:e - 1] if tokens[e - 1] == EOS else tokens[s + 1:e]


def load_tokenizer(path):
    from tokenizers import Tokenizer
    tok = Tokenizer.from_file(str(path))
    tok.encode_special_tokens = True  # "<s>" or "<fim_prefix>" inside source code is text, not a control token
    return tok


def encode_exact(tok, text: str, chunk_chars: int = CHUNK_CHARS) -> list[int]:
    """Same ids as encoding `text` in one piece, but fast: BPE over one long string is superlinear, so split right
    before newlines. "\\n" is a byte-fallback token no merge can touch, so pieces tokenize independently; each
    piece after the first gets the normalizer's leading "▁" alone, which is dropped."""
    pieces, start, n = [], 0, len(text)
    while start < n:
        cut = text.find("\n", start + chunk_chars) if start + chunk_chars < n else -1
        if cut == -1:
            pieces.append(text[start:])
            break
        pieces.append(text[start:cut])
        start = cut
    encs = tok.encode_batch(pieces, add_special_tokens=False)
    ids = list(encs[0].ids) if encs else []
    for e in encs[1:]:
        assert e.ids[0] == SPACE, "chunk did not start with a lone leading space piece"
        ids.extend(e.ids[1:])
    return ids


# ---------------------------------------------------------------------------------------------------------------
# Inputs

def read_corpus(corpus_dir: Path):
    """Yield (split, record) from train/val .jsonl.xz (or plain .jsonl) written by `corpus`."""
    found = False
    for split in ("train", "val"):
        for name, opener in ((f"{split}.jsonl.xz", lzma.open), (f"{split}.jsonl", open)):
            path = corpus_dir / name
            if path.exists():
                found = True
                with opener(path, "rt", encoding="utf-8") as f:
                    for line in f:
                        yield split, json.loads(line)
                break
    if not found:
        raise UserError(f"no train/val .jsonl(.xz) in {corpus_dir}")


def site_package_files(root: Path, stats: dict):
    """(dist name, licence, relative path) of every .py/.pyi file that a permissively licensed distribution's
    RECORD lists. Files of non-permissive or unknown-licence distributions, and files no RECORD claims, are
    skipped and counted."""
    claimed = set()
    out = []
    for dist in sorted(root.glob("*.dist-info")):
        meta_path = dist / "METADATA"
        record = dist / "RECORD"
        if not meta_path.exists() or not record.exists():
            continue
        meta = meta_path.read_text(errors="replace")
        m = re.search(r"^Name:\s*(\S+)", meta, re.M)
        name = (m.group(1) if m else dist.name.split("-")[0]).lower().replace("_", "-")
        lic = cf.metadata_licence(meta)
        with open(record, newline="", errors="replace") as f:
            files = [row[0] for row in csv.reader(f) if row and row[0].endswith((".py", ".pyi"))
                     and not row[0].startswith(("..", "/")) and "__pycache__" not in row[0]]
        claimed.update(files)
        if not cf.spdx_is_permissive(lic or ""):
            stats["dropped_dists"][name] = str(lic)[:80]
            stats["drops"]["licence_file"] += len(files)
            continue
        kept = [p for p in files if (root / p).is_file()]
        v = re.search(r"^Version:\s*(\S+)", meta, re.M)
        # DATA.md lists every source with its licence: the kept dists go into meta.json
        stats.setdefault("dists", {})[name] = {"version": v.group(1) if v else "", "licence": str(lic)[:80],
                                               "files": len(kept)}
        out.extend((name, lic, p) for p in kept)
    unclaimed = sum(1 for p in root.rglob("*.py") if p.relative_to(root).as_posix() not in claimed)
    stats["drops"]["no_dist_info"] += unclaimed
    return out


# ---------------------------------------------------------------------------------------------------------------
# Workers

_W = {}


def _init_worker(tokenizer_path, decon):
    os.environ["TOKENIZERS_PARALLELISM"] = "false"  # one process per core already
    _W["tok"] = load_tokenizer(tokenizer_path)
    _W["decon"] = decon


def _process(item):
    """item = (text or None, file path or None) -> (reason, key, minhash, ids as uint16 array, utf-8 bytes)."""
    text, path = item
    if text is None:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            return "unreadable", None, None, None, 0
    nbytes = len(text.encode("utf-8", "surrogatepass"))
    reason = cf.quality_reject(text) or (_W["decon"].reason(text) if _W["decon"] else None)
    if reason:
        return reason, None, None, None, nbytes
    ids = np.array([BOS] + encode_exact(_W["tok"], text) + [EOS], dtype=np.uint16)
    return None, cf.normalized_hash(text), cf.minhash(text), ids, nbytes


class ShardWriter:
    """Appends documents to <split>_NNN.bin, starting a new file before one would pass max_tokens."""

    def __init__(self, out: Path, split: str, max_tokens: int):
        self.out, self.split, self.max_tokens = out, split, max_tokens
        self.shards: list[dict] = []
        self._f = None

    def add(self, ids: np.ndarray):
        if self._f is None or (self.shards[-1]["tokens"] and self.shards[-1]["tokens"] + len(ids) > self.max_tokens):
            self._open()
        ids.tofile(self._f)
        self.shards[-1]["tokens"] += len(ids)
        self.shards[-1]["docs"] += 1

    def _open(self):
        if self._f:
            self._f.close()
        name = f"{self.split}_{len(self.shards):03d}.bin"
        self._f = open(self.out / name, "wb")
        self.shards.append({"file": name, "tokens": 0, "docs": 0})

    def close(self):
        if self._f:
            self._f.close()


def run(args) -> int:
    out = Path(args.out)
    tokenizer_path = Path(args.tokenizer)
    if not tokenizer_path.is_file():
        raise UserError(f"tokenizer not found: {tokenizer_path}")
    if not args.corpus and not args.site_packages:
        raise UserError("nothing to do: give --corpus and/or --site-packages")
    if args.decontam:
        decon = cf.Decontaminator.from_json(args.decontam)
    elif args.eval_dir and Path(args.eval_dir).is_dir():
        decon = cf.Decontaminator.from_eval_dir(args.eval_dir)
    elif args.corpus and (Path(args.corpus) / "decontam.json").exists():
        decon = cf.Decontaminator.from_json(Path(args.corpus) / "decontam.json")
    else:
        raise UserError("no decontamination index: give --decontam FILE or --eval-dir DIR")
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("*.bin"):
        old.unlink()

    stats = {"drops": Counter(), "dropped_dists": {}}
    items, labels = [], []  # labels: (split or None, source, package, lang)
    if args.corpus:
        for split, rec in read_corpus(Path(args.corpus)):
            items.append((rec["text"], None))
            labels.append((split, rec.get("source", "corpus"), rec["package"], rec["lang"]))
    for sp in args.site_packages or []:
        root = Path(sp)
        if not root.is_dir():
            raise UserError(f"site-packages dir not found: {root}")
        files = site_package_files(root, stats)
        val = cf.val_packages({name for name, _, _ in files}, args.val_frac)
        for name, _lic, rel in files:
            if cf.is_test_path(rel) and not cf.keep_test(name, rel, args.keep_tests):
                stats["drops"]["tests_sampled_out"] += 1
                continue
            items.append((None, str(root / rel)))
            labels.append(("val" if name in val else "train", "site-packages", name, "python"))
        stats.setdefault("val_packages", []).extend(sorted(val))

    t0 = time.time()
    dedup = cf.Deduper(threshold=args.near_threshold)
    writers = {s: ShardWriter(out, s, args.shard_tokens) for s in ("train", "val")}
    tokens, docs, nbytes = defaultdict(Counter), defaultdict(Counter), defaultdict(Counter)
    with mp.get_context("fork").Pool(args.workers, initializer=_init_worker,
                                      initargs=(str(tokenizer_path), decon)) as pool:
        results = pool.imap(_process, items, chunksize=8)
        for i, (label, (reason, key, mh, ids, nb)) in enumerate(zip(labels, results)):
            reason = reason or dedup.check(key, mh)
            if reason:
                stats["drops"][reason if reason not in ("exact", "near") else f"dedup_{reason}"] += 1
                continue
            split, source, _, lang = label
            writers[split].add(ids)
            tokens[split][f"{source}/{lang}"] += len(ids)
            docs[split][f"{source}/{lang}"] += 1
            nbytes[split][f"{source}/{lang}"] += nb
            if i % 20000 == 0 and i:
                print(f"{i}/{len(items)} files, {time.time() - t0:.0f}s", file=sys.stderr, flush=True)
    for w in writers.values():
        w.close()

    meta = {
        "dtype": "uint16", "bos_id": BOS, "eos_id": EOS, "vocab_size": VOCAB_SIZE,
        "tokenizer_sha256": hashlib.sha256(tokenizer_path.read_bytes()).hexdigest(),
        "framing": "[BOS] + ids + [EOS] per document; documents start at BOS positions",
        "shards": {s: w.shards for s, w in writers.items()},
        "tokens": {s: dict(c) for s, c in tokens.items()}, "docs": {s: dict(c) for s, c in docs.items()},
        "bytes": {s: dict(c) for s, c in nbytes.items()},
        "total_tokens": {s: sum(c.values()) for s, c in tokens.items()},
        "drops": dict(stats["drops"]), "dropped_dists": stats["dropped_dists"],
        "site_dists": stats.get("dists", {}),
        "val_site_packages": stats.get("val_packages", []), "near_dedup": dedup.near_enabled,
        "inputs": {"corpus": args.corpus, "site_packages": args.site_packages}, "seconds": round(time.time() - t0),
    }
    (out / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    print(json.dumps({k: meta[k] for k in ("total_tokens", "tokens", "drops", "near_dedup", "seconds")}, indent=1))
    return 0


def register(subparsers):
    p = subparsers.add_parser("shards", help="tokenize a corpus and/or site-packages into uint16 token shards",
                              description=__doc__)
    p.add_argument("--corpus", help="folder with train/val .jsonl.xz from `corpus` (and its decontam.json)")
    p.add_argument("--site-packages", action="append", help="a site-packages dir to include (repeatable)")
    p.add_argument("--out", required=True)
    p.add_argument("--tokenizer", default=str(ASSETS / "tokenizer.json"))
    p.add_argument("--decontam", help="decontam.json from `corpus` (default: the corpus folder's)")
    p.add_argument("--eval-dir", help="eval data folder, used instead of a decontam.json when given")
    p.add_argument("--val-frac", type=float, default=0.03, help="share of site-packages dists held out")
    p.add_argument("--keep-tests", type=float, default=0.3, help="fraction of site-packages test files kept")
    p.add_argument("--near-threshold", type=float, default=0.85)
    p.add_argument("--shard-tokens", type=int, default=100_000_000)
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    p.set_defaults(func=run)
