"""lab/v2 `rounds.py slice` with several corpora: merged before slicing, exact copies across corpora dropped
(held-out files win), every package in one slice, the decontamination indexes and stats of both kept."""
import json
import lzma
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def code(name: str) -> str:
    return "".join(f"export function {name}{i}(v: number): number {{\n  return v * {i};\n}}\n" for i in range(8))


def corpus(d: Path, source: str, train: list, val: list, sig: str):
    d.mkdir(parents=True)
    for split, recs in (("train", train), ("val", val)):
        with lzma.open(d / f"{split}.jsonl.xz", "wt") as f:
            for pkg, text in recs:
                f.write(json.dumps({"package": pkg, "licence": "MIT", "path": "a.ts", "lang": "typescript",
                                    "text": text, "source": source}) + "\n")
    (d / "decontam.json").write_text(json.dumps({"signatures": [[sig, "x"]], "doc_lines": []}))
    (d / "stats.json").write_text(json.dumps({"packages": {source: len(train) + len(val)}}))


def read(path: Path):
    return [json.loads(line) for line in lzma.open(path, "rt")]


def test_slice_merges_corpora_and_drops_copies_across_them(tmp_path):
    corpus(tmp_path / "a", "npm", [("left-pad", code("pad")), ("vite", code("vite")), ("vite", code("viteb"))],
           [("lodash", code("lodash"))], "f")
    # b repeats a's held-out file (as train) and a's train file (as held-out), and one of its own twice
    corpus(tmp_path / "b", "github", [("acme/x", code("lodash")), ("acme/x", code("own")), ("acme/y", code("y")),
                                      ("acme/y", "\n" + code("y") + "\n")],
           [("acme/z", code("pad")), ("acme/z", code("z"))], "g")
    recipe = json.loads((REPO / "lab/v2/recipe-v2.json").read_text())
    recipe["data"]["corpus_slices"] = 2
    (tmp_path / "recipe.json").write_text(json.dumps(recipe))
    r = subprocess.run([sys.executable, str(REPO / "lab/v2/rounds.py"), "--recipe", str(tmp_path / "recipe.json"),
                        "slice", "--corpus", str(tmp_path / "a"), "--corpus", str(tmp_path / "b"),
                        "--out", str(tmp_path / "slices")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    slices = [tmp_path / "slices" / f"s{i}" for i in range(2)]
    train = [(s.name, rec["package"], rec["text"]) for s in slices for rec in read(s / "train.jsonl.xz")]
    assert sorted(t[2] for t in train) == sorted([code("vite"), code("viteb"), code("own"), code("y")])
    for pkg in {t[1] for t in train}:
        assert len({t[0] for t in train if t[1] == pkg}) == 1, f"{pkg} straddles slices"
    val = read(slices[0] / "val.jsonl.xz")
    assert [(v["package"], v["text"]) for v in val] == [("lodash", code("lodash")), ("acme/z", code("pad")),
                                                        ("acme/z", code("z"))]
    assert read(slices[1] / "val.jsonl.xz") == val
    decon = json.loads((slices[1] / "decontam.json").read_text())
    assert decon["signatures"] == [["f", "x"], ["g", "x"]]
    stats = json.loads((slices[1] / "stats.json").read_text())
    assert sorted(stats["corpora"]) == [str(tmp_path / "a"), str(tmp_path / "b")]
    # a's train copy of left-pad is dropped (b holds it out), b's copies of lodash and of y
    assert stats["merge_dropped_exact"] == {"val": 0, "train": 3}


def slice_one(tmp_path, *dirs):
    r = subprocess.run([sys.executable, str(REPO / "lab/v2/rounds.py"), "slice", "--count", "1",
                        *[a for d in dirs for a in ("--corpus", str(d))], "--out", str(tmp_path / "one")],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return r.stdout, tmp_path / "one" / "s0"


def test_one_slice_joins_the_streams_and_rewrites_only_a_corpus_that_lost_copies(tmp_path):
    corpus(tmp_path / "a", "pypi", [("attrs", code("attrs")), ("six", code("six"))], [("toml", code("toml"))], "f")
    corpus(tmp_path / "b", "github", [("acme/x", code("own"))], [("acme/z", code("z"))], "g")
    out, s0 = slice_one(tmp_path, tmp_path / "a", tmp_path / "b")
    assert out.count("stream joined as it is") == 2
    assert (s0 / "train.jsonl.xz").read_bytes() == (tmp_path / "a/train.jsonl.xz").read_bytes() + \
        (tmp_path / "b/train.jsonl.xz").read_bytes()
    assert [r["text"] for r in read(s0 / "train.jsonl.xz")] == [code("attrs"), code("six"), code("own")]
    # c repeats a's train file and a's held-out file: c alone is written again, without both copies (the val copy
    # included); a's stream is still joined as it is
    corpus(tmp_path / "c", "github", [("acme/q", code("six")), ("acme/q", code("toml")), ("acme/r", code("r"))],
           [], "h")
    out, s0 = slice_one(tmp_path, tmp_path / "a", tmp_path / "c")
    assert f"{tmp_path / 'a'}: stream joined as it is" in out
    assert f"{tmp_path / 'c'}: written again without its 2" in out
    assert (s0 / "train.jsonl.xz").read_bytes().startswith((tmp_path / "a/train.jsonl.xz").read_bytes())
    assert sorted(r["text"] for r in read(s0 / "train.jsonl.xz")) == sorted([code("attrs"), code("six"), code("r")])
    assert json.loads((s0 / "stats.json").read_text())["merge_dropped_exact"] == {"val": 0, "train": 2}


def test_restore_keeps_files_the_tree_got_again_while_they_were_aside(tmp_path, monkeypatch):
    sys.path.insert(0, str(REPO / "lab/v2"))
    import rounds
    repo, here = tmp_path / "repo", tmp_path / "v2"
    monkeypatch.setattr(rounds, "REPO", repo)
    monkeypatch.setattr(rounds, "V2", here)
    monkeypatch.setattr(rounds, "travelling_bytes", lambda: 0)
    (repo / "docs/results").mkdir(parents=True)
    (repo / "docs/results/README.md").write_text("index before\n")
    (repo / "docs/results/old.json").write_text("{}\n")
    rounds.aside(None)
    assert not (repo / "docs/results").exists()
    (repo / "docs/results").mkdir(parents=True)  # a merge during the round writes the index again
    (repo / "docs/results/README.md").write_text("index after the merge\n")
    rounds.restore(None)
    assert (repo / "docs/results/README.md").read_text() == "index after the merge\n"
    assert (repo / "docs/results/old.json").read_text() == "{}\n" and not (here / "aside").exists()
