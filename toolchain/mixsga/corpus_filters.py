"""Filters shared by `corpus` (npm + Debian, built on the CPU machine) and `shards --site-packages` (built on
the GPU machine): licence parsing, quality filters, exact and near dedup, and decontamination against the eval
sets. Only the standard library is required; near-dedup uses `datasketch` when it can be imported.
"""
from __future__ import annotations

import fnmatch
import gzip
import hashlib
import json
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

# ---------------------------------------------------------------------------------------------------------------
# Licences

# The families the project's data rule names (MIT, Apache-2.0, BSD, ISC, PSF) and their variants. Other permissive
# or public-domain texts (Unlicense, Zlib, CC0, HPND) are recognised below but not admitted (decided 2026-12-07;
# v2 round 1's PyPI build still admitted them, recorded in DATA.md).
PERMISSIVE = {"MIT", "MIT-0", "MIT-CMU", "ISC", "APACHE-2.0", "BSD-2-CLAUSE", "BSD-3-CLAUSE", "BSD", "0BSD",
              "PSF-2.0", "PYTHON-2.0", "CNRI-PYTHON"}

# Free-text names (package.json `license`, METADATA `License:`, classifiers, DEP-5 short names) -> SPDX.
_ALIASES = [
    (r"^(the )?mit( license)?$|^expat$|^mit/x11$|^x11$", "MIT"),
    (r"^isc( license)?$", "ISC"),
    (r"^apache[ -]?(software )?(license)?[ ,-]*(v(ersion)?)?[ -]?2(\.0)?( license)?$|^apache$|^asl ?2(\.0)?$",
     "APACHE-2.0"),
    (r"^(new |modified |revised )?bsd[ -]?3([ -]clause)?( license)?$|^bsd-3-clause$|^(new|modified|revised) bsd",
     "BSD-3-CLAUSE"),
    (r"^3-clause bsd( license)?$", "BSD-3-CLAUSE"),
    (r"^(simplified |freebsd )?bsd[ -]?2([ -]clause)?( license)?$", "BSD-2-CLAUSE"),
    (r"^bsd( license)?$|^bsd-like$|^bsd-style$", "BSD"),
    (r"^0bsd$", "0BSD"),
    (r"^psf([ -]2(\.0)?)?$|^python( software foundation)?( license)?( \(psf\))?$|^python-2\.0$", "PSF-2.0"),
    (r"^unlicense$|^the unlicense", "UNLICENSE"),
    (r"^zlib$", "ZLIB"),
    (r"^cc0", "CC0-1.0"),
    (r"^hpnd", "HPND"),
]

_CLASSIFIERS = {
    "MIT License": "MIT", "ISC License (ISCL)": "ISC", "Apache Software License": "APACHE-2.0",
    "BSD License": "BSD", "Python Software Foundation License": "PSF-2.0", "The Unlicense (Unlicense)": "UNLICENSE",
    "zlib/libpng License": "ZLIB", "Historical Permission Notice and Disclaimer (HPND)": "HPND",
    "MIT No Attribution License (MIT-0)": "MIT",
}


def normalize_licence(name: str) -> str:
    """One licence name (no AND/OR) -> upper-case SPDX id where we know it, else the cleaned name upper-cased."""
    s = re.sub(r"\s+", " ", name.strip().strip("()").strip()).lower()
    for pattern, spdx in _ALIASES:
        if re.search(pattern, s):
            return spdx
    return s.upper()


def spdx_is_permissive(expr: str) -> bool:
    """True when an SPDX-like expression allows our use: any branch of OR, all parts of AND."""
    if not expr or not expr.strip():
        return False
    expr = expr.strip()
    if expr.startswith("(") and expr.endswith(")") and expr.count("(") == 1:
        expr = expr[1:-1]
    if re.search(r"\s+or\s+", expr, re.I):
        return any(spdx_is_permissive(p) for p in re.split(r"\s+or\s+", expr, flags=re.I))
    if re.search(r"\s+and\s+", expr, re.I):
        return all(spdx_is_permissive(p) for p in re.split(r"\s+and\s+", expr, flags=re.I))
    if "/" in expr and len(expr) < 40:  # "MIT/Apache-2.0" style dual licences
        return any(spdx_is_permissive(p) for p in expr.split("/"))
    return normalize_licence(expr) in PERMISSIVE


def npm_licence(pkg_json: dict) -> str | None:
    """The licence expression of an npm package.json (`license` string/object or legacy `licenses` list)."""
    lic = pkg_json.get("license")
    if isinstance(lic, dict):
        lic = lic.get("type")
    if not lic and isinstance(pkg_json.get("licenses"), list):
        names = [x.get("type") if isinstance(x, dict) else str(x) for x in pkg_json["licenses"]]
        lic = " OR ".join(n for n in names if n)
    return lic or None


def metadata_licence(metadata_text: str) -> str | None:
    """Licence of a Python distribution from its METADATA: License-Expression, else a short License field, else
    the trove classifiers. Returns a permissive SPDX id/expression or the raw text, or None if nothing is said."""
    headers = metadata_text.split("\n\n", 1)[0]
    expr = re.search(r"^License-Expression:\s*(.+)$", headers, re.M)
    if expr:
        return expr.group(1).strip()
    classifiers = [_CLASSIFIERS.get(c.strip()) or c.strip() for c in
                   re.findall(r"^Classifier:\s*License :: (?:OSI Approved :: )?(.+)$", headers, re.M)]
    lic = re.search(r"^License:[ \t]*(.*(?:\n[ \t]+.*)*)", headers, re.M)  # with folded lines
    if lic and lic.group(1).strip():
        text = lic.group(1).strip()
        # A short field is a name; a long one is usually the licence text itself, so read its first line.
        first = text.splitlines()[0] if len(text) > 60 else text
        if spdx_is_permissive(first):
            return normalize_licence(first) if " " not in first.strip() else first
        guess = licence_from_text(text)
        if guess:
            return guess
        if not classifiers and text.upper() not in ("UNKNOWN", ""):
            return text[:80]
    if classifiers:
        return " OR ".join(classifiers)
    return None


def licence_from_text(text: str) -> str | None:
    """Best guess from a full licence text (first lines only): used for non-DEP-5 copyright files and long
    METADATA License fields. Copyleft words win, so unclear texts are never taken as permissive."""
    head = text[:3000]
    if re.search(r"GNU (Lesser |Library |Affero )?General Public License|\bL?GPL", head):
        return "GPL"
    if re.search(r"Mozilla Public License", head):
        return "MPL-2.0"
    if re.search(r"Apache License,? Version 2\.0", head):
        return "APACHE-2.0"
    if re.search(r"Permission is hereby granted, free of charge", head):
        return "MIT"
    if re.search(r"Redistribution and use in source and binary forms", head):
        return "BSD-3-CLAUSE" if re.search(r"(neither the name|endorse or promote)", head, re.I) else "BSD-2-CLAUSE"
    if re.search(r"Permission to use, copy, modify, and(/or)? distribute", head):
        return "ISC"
    if re.search(r"PYTHON SOFTWARE FOUNDATION LICENSE", head):
        return "PSF-2.0"
    return None


@dataclass
class Dep5:
    """A machine-readable debian/copyright: default licence (`Files: *`) and per-glob licences."""
    default: str | None
    rules: list[tuple[list[str], str]] = field(default_factory=list)

    def licence_for(self, source_path: str) -> str | None:
        """Licence of a file given its path inside the source tree (last matching paragraph wins, as in DEP-5)."""
        result = self.default
        for globs, lic in self.rules:
            if any(_dep5_match(g, source_path) for g in globs):
                result = lic
        return result


def _dep5_match(glob: str, path: str) -> bool:
    # Installed paths differ from source paths (src/pkg/x.py vs dist-packages/pkg/x.py): match on a suffix.
    glob = glob.strip("/")
    return fnmatch.fnmatch(path, glob) or fnmatch.fnmatch(path, "*/" + glob)


def parse_dep5(text: str) -> Dep5 | None:
    """Parse a DEP-5 copyright file; None if it is free text (then the caller decides on the whole package)."""
    if not re.match(r"^Format:\s*\S*(copyright-format|dep5|DEP-5)", text, re.I):
        return None
    dep = Dep5(default=None)
    for para in re.split(r"\n\s*\n", text):
        files = re.search(r"^Files:\s*((?:.*\n?)(?:[ \t]+.*\n?)*)", para, re.M)
        lic = re.search(r"^License:\s*(.*)$", para, re.M)
        if not files or not lic:
            continue
        globs = files.group(1).split()
        name = lic.group(1).strip()
        if globs == ["*"]:
            dep.default = name
        else:
            dep.rules.append((globs, name))
    return dep


# ---------------------------------------------------------------------------------------------------------------
# Quality filters

MAX_BYTES = 1_000_000
_GENERATED = re.compile(r"auto-?generated|autogenerated|do not edit|generated by (the )?(protoc|swig|cython|"
                        r"thrift|babel|webpack|rollup|esbuild|tsc)|@generated|this file (was|is) generated",
                        re.I)


_NON_WORD = re.compile(r"[\W_]+")


def quality_reject(text: str) -> str | None:
    """Reason to drop a source file (minified, generated, huge, binary-ish, near-empty), or None to keep it."""
    n = len(text)
    if n > MAX_BYTES:
        return "huge"
    if n < 64:
        return "tiny"
    if "\x00" in text:
        return "binary"
    lines = text.split("\n")
    longest = max(len(line) for line in lines)
    mean = n / len(lines)
    if longest > 1000 or mean > 120:
        return "minified"
    if text.count(" ") + text.count("\t") + text.count("\n") < 0.12 * n:
        return "minified"
    if _GENERATED.search(text[:2000]):
        return "generated"
    head = text[:20000]
    if len(_NON_WORD.sub("", head)) < 0.25 * len(head):
        return "data"
    return None


def keep_test(package: str, path: str, fraction: float) -> bool:
    """Stable sample of test files: some test code is useful, most of it is repetitive fixtures."""
    h = int.from_bytes(hashlib.sha1(f"{package}/{path}".encode()).digest()[:4], "big") / 2 ** 32
    return h < fraction


def is_test_path(path: str) -> bool:
    p = path.lower()
    return bool(re.search(r"(^|/)(tests?|testing|__tests__|spec)/|(^|/)test_[^/]*\.py$|_test\.py$|"
                          r"\.(test|spec)\.[jt]sx?$", p))


# ---------------------------------------------------------------------------------------------------------------
# Dedup

def normalized_hash(text: str) -> str:
    """Exact-dedup key: insensitive to line endings, trailing spaces and blank lines at the ends."""
    norm = "\n".join(line.rstrip() for line in text.replace("\r\n", "\n").split("\n")).strip()
    return hashlib.blake2b(norm.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


_WORD = re.compile(r"\w+|[^\w\s]")
SHINGLE = 5
NUM_PERM = 128


def shingles(text: str, k: int = SHINGLE) -> set[bytes]:
    """Token k-shingles as bytes (reference form; `shingle_hashes` is the fast equivalent used for MinHash)."""
    toks = _WORD.findall(text)
    if len(toks) < k:
        return {" ".join(toks).encode()}
    return {" ".join(toks[i:i + k]).encode() for i in range(len(toks) - k + 1)}


def shingle_hashes(text: str, k: int = SHINGLE) -> np.ndarray:
    """Distinct 32-bit hashes of token k-shingles, computed with numpy rather than one string per shingle.
    Token hashes use Python's str hash, which is salted per interpreter: signatures are comparable only within
    one run whose workers are forked from one parent (as in `corpus` and `shards`)."""
    th = np.fromiter(map(hash, _WORD.findall(text)), dtype=np.int64).view(np.uint64)
    if len(th) < k:
        return np.array([int(th.sum()) & 0xFFFFFFFF], dtype=np.uint64)
    with np.errstate(over="ignore"):
        h = np.zeros(len(th) - k + 1, dtype=np.uint64)
        for j in range(k):  # polynomial combination; wrap-around multiplication is intended
            h = h * np.uint64(1099511628211) + th[j:len(th) - k + 1 + j]
    return np.unique(h >> np.uint64(32))


def _datasketch():
    """Import datasketch, falling back to a pure-Python wheel carried in <repo>/.whl (or $MIXSGA_WHEELS): the GPU
    machine has no network and no datasketch. Returns None when neither is there."""
    try:
        import datasketch
        return datasketch
    except ImportError:
        pass
    wheel_dir = Path(os.environ.get("MIXSGA_WHEELS", Path(__file__).resolve().parents[2] / ".whl"))
    wheels = sorted(wheel_dir.glob("datasketch-*.whl"))
    if not wheels:
        return None
    sys.path.insert(0, str(wheels[-1]))  # wheels are zip archives, importable as they are
    try:
        import datasketch
        return datasketch
    except ImportError:
        return None


def minhash(text: str, num_perm: int = NUM_PERM):
    """datasketch MinHash of a file's token 5-shingles (runs in worker processes; it pickles small), or None
    when datasketch is unavailable."""
    ds = _datasketch()
    if ds is None:
        return None
    m = ds.MinHash(num_perm=num_perm, hashfunc=int)  # values are hashed already; int pickles, a lambda would not
    m.update_batch(shingle_hashes(text))
    return ds.LeanMinHash(m)  # a third of the pickle size: workers send one per file


class Deduper:
    """Exact dedup by normalised hash, then near-dedup by MinHash LSH (Jaccard >= threshold): the first file seen
    wins, so callers feed preferred copies (e.g. TS sources before JS builds) first."""

    def __init__(self, threshold: float = 0.85, num_perm: int = NUM_PERM):
        self.exact: set[str] = set()
        self.num_perm = num_perm
        ds = _datasketch()
        # Without datasketch near-dedup is off; exact dedup still applies.
        self.lsh = ds.MinHashLSH(threshold=threshold, num_perm=num_perm) if ds else None
        self._n = 0

    @property
    def near_enabled(self) -> bool:
        return self.lsh is not None

    def check(self, key: str, mh=None) -> str | None:
        """'exact' / 'near' if a duplicate of an earlier file, else None (and the file is remembered)."""
        if key in self.exact:
            return "exact"
        self.exact.add(key)
        if self.lsh is not None and mh is not None:
            if self.lsh.query(mh):
                return "near"
            self.lsh.insert(str(self._n), mh)
            self._n += 1
        return None


# ---------------------------------------------------------------------------------------------------------------
# Decontamination

MIN_DOC_LINE = 40
_PY_DEF = re.compile(r"\bdef\s+(\w+)\s*\(([^)]*)\)", re.S)
_JS_FN = re.compile(r"\bfunction\s+(\w+)\s*\(([^)]*)\)", re.S)


def _squash(s: str) -> str:
    return re.sub(r"\s+", "", s)


def _comment_line(line: str) -> str:
    """A line with comment/docstring decoration removed, for matching eval docstring lines."""
    return re.sub(r"^\s*(//+|#+|\*+|/\*+)?\s*", "", line).rstrip().rstrip("*/").rstrip()


def _read_jsonl(path: Path):
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:
        for line in f:
            if line.strip():
                yield json.loads(line)


class Decontaminator:
    """Flags files that contain an eval function signature (same name and same argument list) or any eval
    prompt docstring/comment line of >= 40 characters. Loaded from HumanEval(-infilling) `.jsonl.gz` and MultiPL-E
    `.jsonl` files; only signatures and lines are kept, never the eval data itself."""

    def __init__(self, signatures: set[tuple[str, str]], doc_lines: set[str]):
        self.signatures = signatures            # (name, squashed args)
        self.names = {n for n, _ in signatures}
        self.doc_lines = doc_lines

    def to_json(self) -> str:
        return json.dumps({"signatures": sorted(self.signatures), "doc_lines": sorted(self.doc_lines)})

    @classmethod
    def from_json(cls, path: str | Path) -> Decontaminator:
        """Load the index `corpus` writes (decontam.json), for machines that do not have the eval files."""
        d = json.loads(Path(path).read_text())
        return cls({tuple(x) for x in d["signatures"]}, set(d["doc_lines"]))

    @classmethod
    def from_eval_dir(cls, eval_dir: str | Path) -> Decontaminator:
        eval_dir = Path(eval_dir)
        files = sorted(eval_dir.rglob("*.jsonl")) + sorted(eval_dir.rglob("*.jsonl.gz"))
        if not files:
            raise FileNotFoundError(f"no eval .jsonl(.gz) files under {eval_dir}")
        sigs, lines, seen = set(), set(), set()
        for path in files:
            for item in _read_jsonl(path):
                prompt = item.get("prompt", "")
                for rx in (_PY_DEF, _JS_FN):
                    for name, args in rx.findall(prompt):
                        sigs.add((name, _squash(args)))
                for line in prompt.splitlines():
                    if line in seen:  # the infilling sets repeat HumanEval's prompts thousands of times
                        continue
                    seen.add(line)
                    stripped = _comment_line(line)
                    if len(stripped) >= MIN_DOC_LINE and not stripped.startswith(("def ", "function ")):
                        lines.add(stripped)
        return cls(sigs, lines)

    def reason(self, text: str) -> str | None:
        """'eval_signature' / 'eval_docstring' when the file overlaps an eval prompt, else None."""
        for rx in (_PY_DEF, _JS_FN):
            for m in rx.finditer(text):
                if m.group(1) in self.names and (m.group(1), _squash(m.group(2))) in self.signatures:
                    return "eval_signature"
        for line in text.splitlines():
            if len(line) >= MIN_DOC_LINE and _comment_line(line) in self.doc_lines:
                return "eval_docstring"
        return None


def lang_of(path: str) -> str | None:
    p = path.lower()
    if p.endswith((".py", ".pyi")):
        return "python"
    if p.endswith((".ts", ".tsx", ".mts", ".cts")) and not re.search(r"\.d\.[mc]?ts$", p):
        return "typescript"
    if p.endswith((".js", ".jsx", ".mjs", ".cjs")):
        return "javascript"
    return None


def val_packages(packages, fraction: float = 0.03, salt: str = "mixsga-val") -> set[str]:
    """Held-out packages: the round(fraction * n) names (at least one when n >= 2) with the smallest stable
    hash, so every run and both machines agree without coordination."""
    packages = sorted(set(packages))
    k = max(1 if len(packages) >= 2 else 0, round(fraction * len(packages)))
    return set(sorted(packages, key=lambda p: hashlib.sha256(f"{salt}:{p}".encode()).digest())[:k])
