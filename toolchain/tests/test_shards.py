"""shards: round trip of documents through uint16 shards, BOS/EOS framing, package-level val split."""
import json
import random
from pathlib import Path

import numpy as np
import pytest

from mixsga import corpus_filters as cf
from mixsga import shards as sh
from mixsga.__main__ import main

TOKENIZER = Path(sh.__file__).parent / "assets" / "tokenizer.json"
WORDS = "alpha beta gamma delta epsilon zeta theta kappa lambda sigma omega value index count total".split()


def _source(seed: int, lang: str) -> str:
    rnd = random.Random(seed)
    lines = []
    for i in range(rnd.randint(8, 30)):
        a, b = rnd.sample(WORDS, 2)
        if lang == "python":
            lines.append(f"def {a}_{seed}_{i}({b}, n={i}):\n    # {a} <s> {b} </s>\n    return {b} * n + {seed}\n")
        else:
            lines.append(f"export function {a}{seed}x{i}({b}: number): number {{\n  return {b} * {i}; // ü {seed}\n}}\n")
    return "\n".join(lines)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("shards")
    corpus = tmp / "corpus"
    corpus.mkdir()
    texts = {}
    for split, seeds in (("train", range(0, 12)), ("val", range(100, 103))):
        with open(corpus / f"{split}.jsonl", "w") as f:
            for s in seeds:
                lang = "python" if s % 2 else "typescript"
                rec = {"package": f"p{s}", "licence": "MIT", "path": f"f{s}", "lang": lang, "text": _source(s, lang)}
                texts[rec["text"]] = split
                f.write(json.dumps(rec) + "\n")
    dup = json.loads((corpus / "train.jsonl").read_text().splitlines()[0])
    with open(corpus / "train.jsonl", "a") as f:  # an exact duplicate must be dropped
        f.write(json.dumps(dup) + "\n")
    # A fake site-packages: 40 MIT dists of one module each, and one GPL dist that must be skipped.
    sp = tmp / "site-packages"
    for i in range(41):
        name = f"dist{i}"
        (sp / name).mkdir(parents=True)
        (sp / name / "__init__.py").write_text(_source(1000 + i, "python"))
        info = sp / f"{name}-1.0.dist-info"
        info.mkdir()
        lic = "GPL-3.0-only" if i == 40 else "MIT"
        (info / "METADATA").write_text(f"Metadata-Version: 2.4\nName: {name}\nLicense-Expression: {lic}\n\n")
        (info / "RECORD").write_text(f"{name}/__init__.py,,\n{name}-1.0.dist-info/METADATA,,\n")
    decon = tmp / "decontam.json"
    decon.write_text(cf.Decontaminator({("never_used_fn", "x")}, set()).to_json())
    out = tmp / "out"
    rc = main(["shards", "--corpus", str(corpus), "--site-packages", str(sp), "--out", str(out),
               "--decontam", str(decon), "--workers", "2", "--val-frac", "0.1", "--shard-tokens", "3000"])
    assert rc == 0
    return out, texts, sp


def test_round_trip_and_framing(built):
    out, texts, sp = built
    from tokenizers import Tokenizer
    tok = Tokenizer.from_file(str(TOKENIZER))
    meta = json.loads((out / "meta.json").read_text())
    decoded = {}
    for split in ("train", "val"):
        assert len(meta["shards"][split]) >= 1
        for shard in meta["shards"][split]:
            arr = np.fromfile(out / shard["file"], dtype=np.uint16)
            assert len(arr) == shard["tokens"] and arr[0] == sh.BOS and arr[-1] == sh.EOS
            starts = sh.document_starts(arr)
            assert len(starts) == shard["docs"]
            assert np.all(arr[starts[1:] - 1] == sh.EOS)  # every document ends with EOS
            for ids in sh.iter_documents(out / shard["file"]):
                assert sh.BOS not in ids and sh.EOS not in ids
                decoded[tok.decode(ids.tolist(), skip_special_tokens=False)] = split
    for text, split in texts.items():
        assert decoded.get(text) == split  # corpus documents keep their split and decode back exactly
    assert meta["drops"].get("dedup_exact") == 1
    assert meta["dropped_dists"] == {"dist40": "GPL-3.0-only"}
    assert sorted(meta["site_dists"]) == sorted(f"dist{i}" for i in range(40))  # every kept dist, with licence
    assert all(d["files"] == 1 and d["licence"] for d in meta["site_dists"].values())
    assert meta["vocab_size"] == 32008 and meta["total_tokens"]["train"] > 0


def test_site_packages_val_split_is_by_package(built):
    out, _, _ = built
    meta = json.loads((out / "meta.json").read_text())
    assert meta["val_site_packages"] == sorted(cf.val_packages({f"dist{i}" for i in range(40)}, 0.1))
    assert len(meta["val_site_packages"]) == 4
    assert meta["docs"]["val"]["site-packages/python"] == 4
    assert meta["docs"]["train"]["site-packages/python"] == 36


def test_encode_exact_matches_single_pass():
    tok = sh.load_tokenizer(TOKENIZER)
    text = "".join(_source(s, "python" if s % 2 else "ts") for s in range(6)) + "\n\n  tail  \n"
    whole = tok.encode(text, add_special_tokens=False).ids
    assert sh.encode_exact(tok, text, chunk_chars=200) == whole
    assert 1 not in whole  # literal "<s>" in code is text, not BOS
