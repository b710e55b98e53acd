"""Several `corpus` outputs read as one, for `rounds.py slice --corpus A --corpus B` (e.g. the v2 build and the
GitHub TypeScript build, made by separate runs). Each build deduplicated and held out packages only within itself,
so the merge drops exact copies across builds (normalised hash, as `corpus` does): held-out files are read first and
win, so no train file repeats a held-out one; then train files in the order the builds are given.
"""
import json
import lzma
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "toolchain"))  # not installed as a package
from mixsga import corpus_filters as cf


class Merge:
    def __init__(self, srcs):
        self.srcs = [Path(s) for s in srcs]
        self.seen = set()
        self.dropped = {"val": 0, "train": 0}

    def _new(self, text, split):
        key = bytes.fromhex(cf.normalized_hash(text))
        if key in self.seen:
            self.dropped[split] += 1
            return False
        self.seen.add(key)
        return True

    def side_files(self, dst: Path):
        """val.jsonl.xz (every build's held-out files, copies dropped), decontam.json (the union of the indexes) and
        stats.json (each build's, by folder) into dst. Call before train_lines."""
        if len(self.srcs) == 1:  # one build: nothing to merge
            for f in ("val.jsonl.xz", "decontam.json", "stats.json"):
                shutil.copyfile(self.srcs[0] / f, dst / f)
            return
        with open(dst / "val.jsonl.xz", "wb") as out:
            xz = subprocess.Popen(["xz", "-T0", "-6", "-c"], stdin=subprocess.PIPE, stdout=out)
            for src in self.srcs:
                with lzma.open(src / "val.jsonl.xz", "rb") as f:
                    for line in f:
                        if self._new(json.loads(line)["text"], "val"):
                            xz.stdin.write(line)
            xz.stdin.close()
            if xz.wait():
                raise SystemExit(f"xz failed writing {dst / 'val.jsonl.xz'}")
        sigs, lines = set(), set()
        for src in self.srcs:
            d = json.loads((src / "decontam.json").read_text())
            sigs |= {tuple(s) for s in d["signatures"]}
            lines |= set(d["doc_lines"])
        (dst / "decontam.json").write_text(json.dumps({"signatures": sorted(sigs), "doc_lines": sorted(lines)}))
        self.stats = {"corpora": {str(s): json.loads((s / "stats.json").read_text()) for s in self.srcs}}
        (dst / "stats.json").write_text(json.dumps(self.stats, indent=1) + "\n")

    def train_lines(self):
        """(raw JSON line, package) of every build's train files, copies of anything earlier dropped."""
        for src in self.srcs:
            with lzma.open(src / "train.jsonl.xz", "rb") as f:
                for line in f:
                    rec = json.loads(line)
                    if len(self.srcs) == 1 or self._new(rec["text"], "train"):
                        yield line, rec.get("package", "")

    def report(self, dst: Path):
        """The exact copies dropped across builds, added to the stats.json of a merge."""
        if len(self.srcs) > 1:
            self.stats["merge_dropped_exact"] = self.dropped
            (dst / "stats.json").write_text(json.dumps(self.stats, indent=1) + "\n")


def join_streams(merge, dst: Path):
    """One slice of everything without compressing it all again (~10 min of the 2-core box per GB of text): a
    corpus whose train files all survive the merge keeps its own xz stream (a file of several xz streams is valid
    xz); only a corpus that lost copies is written again, without them (e.g. npm's copies of GitHub's TypeScript,
    while Debian's Python keeps its stream)."""
    dropped = {}  # corpus index -> line numbers dropped as copies of something earlier
    for i, src in enumerate(merge.srcs):
        with lzma.open(src / "train.jsonl.xz", "rb") as f:
            for n, line in enumerate(f):
                if not merge._new(json.loads(line)["text"], "train"):
                    dropped.setdefault(i, set()).add(n)
    with open(dst, "wb") as out:
        for i, src in enumerate(merge.srcs):
            if i not in dropped:
                with open(src / "train.jsonl.xz", "rb") as f:
                    shutil.copyfileobj(f, out)
                print(f"{src}: stream joined as it is")
                continue
            out.flush()
            xz = subprocess.Popen(["xz", "-T0", "-6", "-c"], stdin=subprocess.PIPE, stdout=out)
            with lzma.open(src / "train.jsonl.xz", "rb") as f:
                for n, line in enumerate(f):
                    if n not in dropped[i]:
                        xz.stdin.write(line)
            xz.stdin.close()
            if xz.wait():
                raise SystemExit(f"xz failed writing {dst}")
            print(f"{src}: written again without its {len(dropped[i])} copies")
