"""`python -m mixsga corpus`: collect licence-filtered TS/JS (npm, GitHub repositories) and Python (Debian, PyPI
sdists) source files, filter, dedup and decontaminate them, split train/val by package, and write compressed JSONL
plus upload-ready parts.

Downloads are cached under --cache, so a rerun only fetches what is missing (and --no-fetch uses only the cache).
"""
from __future__ import annotations

import hashlib
import json
import lzma
import multiprocessing as mp
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
import urllib.parse
import urllib.request
import zipfile
from collections import Counter, defaultdict, deque
from pathlib import Path

from mixsga import corpus_filters as cf
from mixsga import corpus_github as gh
from mixsga.errors import UserError

ASSETS = Path(__file__).parent / "assets"
REPO = Path(__file__).resolve().parents[2]

# Directory names that mark a build flavour of the same module; stripped to find copies of one file.
_FLAVOUR_DIRS = {"dist", "lib", "build", "esm", "es", "es6", "es2015", "es2017", "es2020", "esnext", "cjs",
                 "commonjs", "module", "modules", "mjs", "node", "browser", "legacy", "out", "min", "prod"}
_BUNDLE_DIRS = {"umd", "bundles", "bundle", "vendor", "vendors", "node_modules", "fesm2015", "fesm5"}


def _read_list(path: Path) -> list[list[str]]:
    if str(path) in ("", "."):  # --npm-list '' builds without that kind
        return []
    if not path.is_file():
        raise UserError(f"package list not found: {path}")
    rows = []
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            rows.append(line.split())
    return rows


# ---------------------------------------------------------------------------------------------------------------
# Fetching (one package at a time, cached)

def _safe(name: str) -> str:
    return name.replace("/", "_").replace("@", "_")


def fetch_npm(name: str, cache: Path) -> Path | None:
    meta = cache / "npm" / f"{_safe(name)}.json"
    if not meta.exists():
        meta.parent.mkdir(parents=True, exist_ok=True)
        r = subprocess.run(["npm", "pack", name, "--json", "--pack-destination", str(meta.parent)],
                           capture_output=True, text=True, timeout=300)
        if r.returncode != 0:
            return None
        meta.write_text(r.stdout)
    try:
        info = json.loads(meta.read_text())[0]
    except (ValueError, IndexError):
        return None
    tgz = meta.parent / info["filename"].replace("/", "-").lstrip("@")
    if not tgz.exists():  # npm names scoped tarballs scope-name-version.tgz
        cands = list(meta.parent.glob(f"*{info['name'].split('/')[-1]}-{info['version']}.tgz"))
        tgz = cands[0] if cands else tgz
    return tgz if tgz.exists() else None


def fetch_deb(name: str, cache: Path) -> Path | None:
    root = cache / "deb" / name / "root"
    if root.is_dir():
        return root
    work = root.parent
    work.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(["apt-get", "download", name], cwd=work, capture_output=True, text=True, timeout=600)
    debs = list(work.glob("*.deb"))
    if r.returncode != 0 or not debs:
        return None
    subprocess.run(["dpkg-deb", "-x", str(debs[0]), str(root)], check=True)
    for d in debs:
        d.unlink()
    return root


PYPI_MAX_SDIST = 60 << 20  # larger sdists are mostly data or vendored binaries


def fetch_pypi(name: str, cache: Path) -> Path | None:
    """The newest sdist of a PyPI project, found through the registry's JSON API. Not `pip download`: for an
    sdist pip runs the project's build backend to read its metadata, which is slow and executes its code."""
    folder = cache / "pypi" / _safe(name)
    got = [f for f in folder.glob("*") if f.suffix in (".gz", ".zip")] if folder.is_dir() else []
    if got:
        return got[0]
    from pip._internal.models.index import PyPI  # the registry address pip itself uses
    api = f"{PyPI.pypi_url}/{name}/json"
    try:
        with urllib.request.urlopen(api, timeout=60) as r:
            urls = json.load(r)["urls"]
        sdist = next(u for u in urls if u["packagetype"] == "sdist" and u["size"] <= PYPI_MAX_SDIST)
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = folder.parent / f"{folder.name}.part"  # the folder appears only with a complete download
        urllib.request.urlretrieve(urllib.parse.urljoin(api, sdist["url"]), tmp)  # mirrors give relative URLs
    except (OSError, ValueError, KeyError, StopIteration):
        return None
    folder.mkdir(exist_ok=True)
    return tmp.rename(folder / sdist["filename"])


# ---------------------------------------------------------------------------------------------------------------
# Selecting files inside a package

def _flavour_key(path: str) -> str:
    parts = [p for p in path.split("/")[:-1] if p.lower() not in _FLAVOUR_DIRS]
    base = re.sub(r"\.(mjs|cjs|jsx?)$", ".js", path.split("/")[-1])
    return "/".join(parts + [base])


def _flavour_rank(path: str) -> int:
    dirs = [p.lower() for p in path.split("/")[:-1]]
    for i, pref in enumerate(("src", "esm", "es", "module", "lib", "dist", "cjs")):
        if pref in dirs:
            return i
    return 7


def select_npm_files(paths: list[str]) -> list[str]:
    """TS sources if the package ships them (its JS is compiled from them), else one JS copy per module."""
    cands = []
    for p in paths:
        low = p.lower()
        if cf.lang_of(p) is None or ".min." in low or low.endswith(".map") or "-min." in low:
            continue
        if any(d in _BUNDLE_DIRS for d in low.split("/")[:-1]) or re.search(r"\.(bundle|umd|prod|production)\.",
                                                                           low):
            continue
        cands.append(p)
    ts = [p for p in cands if cf.lang_of(p) == "typescript"]
    if ts:
        return sorted(ts)
    best: dict[str, str] = {}
    for p in sorted(cands, key=lambda p: (_flavour_rank(p), p)):
        best.setdefault(_flavour_key(p), p)
    return sorted(best.values())


def npm_documents(name: str, tgz: Path, stats: dict):
    """Yield (package, licence, path, lang, text) for one npm tarball, counting licence drops in stats."""
    with tarfile.open(tgz) as tar:
        members = {m.name.split("/", 1)[1]: m for m in tar.getmembers() if m.isfile() and "/" in m.name}
        pkg = json.loads(tar.extractfile(members["package.json"]).read()) if "package.json" in members else {}
        lic = cf.npm_licence(pkg)
        if not cf.spdx_is_permissive(lic or ""):
            stats["dropped_packages"][f"npm:{name}"] = f"licence {lic!r}"
            return
        for path in select_npm_files(list(members)):
            data = tar.extractfile(members[path]).read()
            yield name, lic, path, cf.lang_of(path), data.decode("utf-8", "replace")


def deb_documents(name: str, root: Path, override: str | None, stats: dict):
    """Yield documents of one extracted Debian package, honouring per-file licences of a DEP-5 copyright."""
    copyrights = sorted(root.glob("usr/share/doc/*/copyright"))
    text = copyrights[0].read_text(errors="replace") if copyrights else ""
    dep5 = cf.parse_dep5(text) if text else None
    if dep5 is None:
        lic = override or cf.licence_from_text(text)
        if not cf.spdx_is_permissive(lic or ""):
            stats["dropped_packages"][f"deb:{name}"] = f"licence unclear ({lic!r})"
            return
    for base in ("usr/lib/python3/dist-packages", "usr/lib/python3.11"):
        top = root / base
        if not top.is_dir():
            continue
        for path in sorted(top.rglob("*.py")):
            if path.is_symlink() or "__pycache__" in path.parts:
                continue
            rel = path.relative_to(top).as_posix()
            lic = dep5.licence_for(rel) if dep5 else override or cf.licence_from_text(text)
            if not cf.spdx_is_permissive(lic or ""):
                stats["drops"]["licence_file"] += 1
                continue
            yield name, lic, rel, "python", path.read_text(errors="replace")


def _sdist_files(sdist: Path, wanted) -> dict[str, bytes]:
    """{path inside the project folder: bytes} of the regular files of a .tar.gz/.zip sdist for which wanted(path)
    holds, read in archive order (a gzip stream cannot seek backwards cheaply)."""
    out = {}
    if sdist.suffix == ".zip":
        with zipfile.ZipFile(sdist) as z:
            for i in z.infolist():
                if not i.is_dir() and "/" in i.filename and wanted(i.filename.split("/", 1)[1]):
                    out[i.filename.split("/", 1)[1]] = z.read(i)
        return out
    with tarfile.open(sdist) as tar:
        for m in tar:
            if m.isfile() and "/" in m.name and wanted(m.name.split("/", 1)[1]):
                out[m.name.split("/", 1)[1]] = tar.extractfile(m).read()
    return out


def _sdist_source(path: str) -> bool:
    dirs = path.lower().split("/")[:-1]
    return cf.lang_of(path) == "python" and not any(d in _BUNDLE_DIRS or d == "_vendor" for d in dirs)


def pypi_documents(name: str, sdist: Path, stats: dict):
    """Yield the Python files of one sdist, if its PKG-INFO names a permissive licence (vendored copies skipped)."""
    try:
        files = _sdist_files(sdist, lambda p: p == "PKG-INFO" or _sdist_source(p))
    except (tarfile.TarError, zipfile.BadZipFile, OSError, EOFError) as e:
        stats["dropped_packages"][f"pypi:{name}"] = f"unreadable sdist: {e}"
        return
    lic = cf.metadata_licence(files.pop("PKG-INFO", b"").decode("utf-8", "replace"))
    if not cf.spdx_is_permissive(lic or ""):
        stats["dropped_packages"][f"pypi:{name}"] = f"licence {lic!r}"
        return
    for path in sorted(files):
        yield name, lic, path, "python", files[path].decode("utf-8", "replace")


# ---------------------------------------------------------------------------------------------------------------
# Parallel per-file checks

_DECON: cf.Decontaminator | None = None


def _init_worker(decon):
    global _DECON
    _DECON = decon


def check_document(text: str):
    """(reason or None, exact key, MinHash) for one file; run in worker processes."""
    reason = cf.quality_reject(text) or (_DECON.reason(text) if _DECON else None)
    if reason:
        return reason, None, None
    return None, cf.normalized_hash(text), cf.minhash(text)


def split_parts(files: list[Path], xfer: Path, part_bytes: int) -> list[Path]:
    """Pack files into one uncompressed tar (its members are compressed already) and cut it into parts, each
    in its own folder xfer/p<N>/ with a SHA256SUMS, so one part fits one transfer. Other folders under xfer
    belong to other uploads and are left alone; only earlier corpus parts are replaced."""
    xfer.mkdir(parents=True, exist_ok=True)
    for old in xfer.glob("p*"):
        if re.fullmatch(r"p\d+", old.name) and old.is_dir() and any(old.glob("corpus.tar.part*")):
            shutil.rmtree(old)
    tar_path = files[0].parent / "corpus.tar"
    with tarfile.open(tar_path, "w") as tar:
        for f in files:
            tar.add(f, arcname=f.name)
    whole = hashlib.sha256(tar_path.read_bytes()).hexdigest()
    parts = []
    with open(tar_path, "rb") as src:
        i = 0
        while chunk := src.read(part_bytes):
            d = xfer / f"p{i}"
            d.mkdir()
            name = f"corpus.tar.part{i:03d}"
            (d / name).write_bytes(chunk)
            sums = f"{hashlib.sha256(chunk).hexdigest()}  {name}\n"
            if i == 0:
                sums += f"{whole}  corpus.tar\n"
            (d / "SHA256SUMS").write_text(sums)
            parts.append(d)
            i += 1
    tar_path.unlink()
    (xfer / "p0" / "REASSEMBLE.txt").write_text(REASSEMBLE.replace("XFER", xfer_rel(xfer)))
    return parts


def xfer_rel(xfer: Path) -> str:
    """The --xfer folder as the GPU machine sees it: relative to the repository root when inside it."""
    try:
        return str(xfer.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(xfer)


# Run from the repository root on the GPU machine, with the part folders carried to the same place as here.
REASSEMBLE = """\
cat $(ls XFER/p*/corpus.tar.part* | awk -F/ '{print $NF" "$0}' | sort | cut -d' ' -f2) > /root/corpus.tar
echo "$(awk '$2=="corpus.tar"{print $1}' XFER/p0/SHA256SUMS)  /root/corpus.tar" | sha256sum -c
mkdir -p /root/corpus && tar xf /root/corpus.tar -C /root/corpus
"""


def _compress(src: Path, dst: Path):
    # xz -T uses both cores; Python's lzma is the fallback (same format, single-threaded).
    if shutil.which("xz"):
        with open(src, "rb") as i, open(dst, "wb") as o:
            subprocess.run(["xz", "-T0", "-6", "-c"], stdin=i, stdout=o, check=True)
    else:
        with open(src, "rb") as i, lzma.open(dst, "wb", preset=6) as o:
            shutil.copyfileobj(i, o)
    src.unlink()


def prefetch(kinds, cache: Path, threads: int, deadline: float) -> None:
    """Fill the download cache with `threads` downloads at once before the filters read it. Fetching is
    network-bound (~1.25 s a package one after another: ~3.5 h for v2's ~10k entries); a package that fails here is
    tried once more, alone, by the main pass."""
    from concurrent.futures import ThreadPoolExecutor
    todo = [(fetch, row[0]) for _, rows, cached_path, fetch, _ in kinds for row in rows
            if not cached_path(row[0]).exists()]

    def one(job):
        fetch, name = job
        if time.time() > deadline:
            return
        try:
            fetch(name, cache)
        except (OSError, subprocess.SubprocessError) as e:
            print(f"prefetch {name}: {e}", file=sys.stderr, flush=True)

    print(f"prefetch: {len(todo)} packages, {threads} at once", file=sys.stderr, flush=True)
    with ThreadPoolExecutor(threads) as pool:
        for i, _ in enumerate(pool.map(one, todo), 1):
            if i % 100 == 0 or i == len(todo):
                print(f"prefetch {i}/{len(todo)}", file=sys.stderr, flush=True)


def run(args) -> int:
    cache, out = Path(args.cache), Path(args.out)
    eval_dir = Path(args.eval_dir)
    if not eval_dir.is_dir():
        raise UserError(f"eval dir not found: {eval_dir} (needed for decontamination)")
    # '' for a list: none of that source (a corpus can be built source by source and merged by rounds.py slice)
    npm_list, deb_list, pypi_list = (_read_list(Path(x)) if x else [] for x in (args.npm_list, args.deb_list,
                                                                                   args.pypi_list))
    github_list = gh.read_list(Path(args.github_list)) if args.github_list else []
    mirror = Path(args.mirror)
    decon = cf.Decontaminator.from_eval_dir(eval_dir)
    stats = {"sources": {}, "licences": Counter(), "drops": Counter(), "dropped_packages": {},
             "near_dedup": cf.Deduper().near_enabled}
    deadline = time.time() + args.fetch_minutes * 60

    def deb_docs(row, root):
        return deb_documents(row[0], root, row[1] if len(row) > 1 else None, stats)

    kinds = [  # (source, list, cached path, fetch, documents); repositories first: their TS wins dedup over copies
        ("github", github_list, lambda n: gh.git_dir(mirror, n), lambda n, _cache: gh.mirrored(mirror, n),
         lambda row, gdir: gh.documents(row, gdir, stats)),
        ("npm", npm_list, lambda n: cache / "npm" / f"{_safe(n)}.json", fetch_npm,
         lambda row, tgz: npm_documents(row[0], tgz, stats)),
        ("debian", deb_list, lambda n: cache / "deb" / n / "root", fetch_deb, deb_docs),
        ("pypi", pypi_list, lambda n: cache / "pypi" / _safe(n), fetch_pypi,
         lambda row, sdist: pypi_documents(row[0], sdist, stats)),
    ]

    if not args.no_fetch and args.fetch_threads > 1:
        prefetch(kinds, cache, args.fetch_threads, deadline)

    def sources():
        for source, rows, cached_path, fetch, documents in kinds:
            tag = {"debian": "deb"}.get(source, source)
            for row in rows:
                cached = cached_path(row[0]).exists()
                if not cached and not args.no_fetch and time.time() > deadline:
                    stats["dropped_packages"][f"{tag}:{row[0]}"] = "fetch time budget spent"
                    continue
                got = None if args.no_fetch and not cached else fetch(row[0], cache)
                if got is None:
                    stats["dropped_packages"][f"{tag}:{row[0]}"] = "not fetched"
                    continue
                print(f"{tag} {row[0]}", file=sys.stderr, flush=True)
                yield from ((source,) + d for d in documents(row, got))

    def wanted():
        for doc in sources():
            if cf.is_test_path(doc[3]) and not cf.keep_test(doc[1], doc[3], args.keep_tests):
                stats["drops"]["tests_sampled_out"] += 1
                continue
            yield doc

    out.mkdir(parents=True, exist_ok=True)
    dedup = cf.Deduper(threshold=args.near_threshold)
    # Kept documents wait on disk for the split (it needs every package name first): v2 holds gigabytes of text.
    kept = open(out / "kept.jsonl.tmp", "w+", encoding="utf-8")
    by_source = defaultdict(set)
    raw = Counter()
    pending = deque()

    def texts():  # the pool's feeder thread reads packages while workers check files
        for doc in wanted():
            pending.append(doc)
            yield doc[5]

    with mp.get_context("fork").Pool(args.workers, initializer=_init_worker, initargs=(decon,)) as pool:
        for reason, key, mh in pool.imap(check_document, texts(), chunksize=4):
            doc = pending.popleft()
            raw[doc[0], doc[4]] += len(doc[5].encode())
            reason = reason or dedup.check(key, mh)
            if reason and reason.startswith("eval_"):
                stats.setdefault("decontaminated", []).append(f"{doc[1]}/{doc[3]}: {reason}")
            if reason:
                stats["drops"][reason if reason not in ("exact", "near") else f"dedup_{reason}"] += 1
            else:
                kept.write(json.dumps(doc, ensure_ascii=False) + "\n")
                by_source[doc[0]].add(doc[1])

    val = set()
    for src, pkgs in by_source.items():
        val |= {(src, p) for p in cf.val_packages(sorted(pkgs), args.val_frac)}

    counts = defaultdict(Counter)
    tmp = {s: open(out / f"{s}.jsonl", "w", encoding="utf-8") for s in ("train", "val")}
    kept.seek(0)
    for source, package, lic, path, lang, text, *extra in map(json.loads, kept):  # extra: {"commit"} of github
        split = "val" if (source, package) in val else "train"
        rec = {"package": package, "licence": lic, "path": path, "lang": lang, "text": text, "source": source,
               **(extra[0] if extra else {})}
        tmp[split].write(json.dumps(rec, ensure_ascii=False) + "\n")
        pk = stats["sources"].setdefault(f"{source}:{package}", {"licence": lic, "split": split, "files": 0,
                                                                 "bytes": 0, **(extra[0] if extra else {})})
        pk["files"] += 1
        pk["bytes"] += len(text.encode())
        c = counts[f"{split}/{source}/{lang}"]
        c["files"] += 1
        c["bytes"] += len(text.encode())
        stats["licences"][cf.normalize_licence(lic) if " " not in lic.strip() else lic] += 1
    kept.close()
    (out / "kept.jsonl.tmp").unlink()
    for s, f in tmp.items():
        f.close()
        _compress(out / f"{s}.jsonl", out / f"{s}.jsonl.xz")

    decon_path = out / "decontam.json"
    decon_path.write_text(decon.to_json())
    stats.update({
        "counts": {k: dict(v) for k, v in sorted(counts.items())},
        "raw_bytes_before_filters": {f"{s}/{l}": n for (s, l), n in sorted(raw.items())},
        "val_packages": sorted(f"{s}:{p}" for s, p in val),
        "packages": {s: len(p) for s, p in by_source.items()},
        "drops": dict(stats["drops"]), "licences": dict(stats["licences"].most_common()),
        "params": {"near_threshold": args.near_threshold, "shingle": cf.SHINGLE, "num_perm": cf.NUM_PERM,
                   "keep_tests": args.keep_tests, "val_frac": args.val_frac},
    })
    (out / "stats.json").write_text(json.dumps(stats, indent=2) + "\n")
    files = [out / "train.jsonl.xz", out / "val.jsonl.xz", decon_path, out / "stats.json"]
    parts = split_parts(files, Path(args.xfer), args.part_mib << 20)
    print(json.dumps({"counts": stats["counts"], "drops": stats["drops"], "parts": [str(p) for p in parts]},
                     indent=1))
    return 0


def register(subparsers):
    p = subparsers.add_parser("corpus", description=__doc__,
                              help="collect licence-filtered TS/JS (npm, GitHub) and Python (Debian, PyPI) sources")
    p.add_argument("--npm-list", default=str(ASSETS / "npm_packages.txt"), help="npm packages ('' for none)")
    p.add_argument("--deb-list", default=str(ASSETS / "debian_packages.txt"), help="Debian packages ('' for none)")
    p.add_argument("--pypi-list", default=str(ASSETS / "pypi_packages.txt"), help="PyPI sdists ('' for none)")
    p.add_argument("--github-list", default=str(ASSETS / "github_repos.txt"),
                   help="GitHub repositories: owner/name commit SPDX ('' for none)")
    p.add_argument("--mirror", default="/work/.mirror", help="folder of the repositories' bare git mirrors")
    p.add_argument("--cache", default=str(REPO / ".cache" / "corpus"), help="download cache")
    p.add_argument("--out", default=str(REPO / ".gpu" / "corpus"))
    p.add_argument("--xfer", default=str(REPO / ".gpu" / "xfer"), help="folder for upload parts p0/, p1/, ...")
    p.add_argument("--part-mib", type=int, default=56)
    p.add_argument("--eval-dir", default="/work/shared/eval")
    p.add_argument("--val-frac", type=float, default=0.03)
    p.add_argument("--keep-tests", type=float, default=0.3, help="fraction of test files kept")
    p.add_argument("--near-threshold", type=float, default=0.85)
    p.add_argument("--fetch-minutes", type=float, default=30, help="after this, skip packages not already in the cache")
    p.add_argument("--no-fetch", action="store_true", help="use only what is in the cache")
    p.add_argument("--fetch-threads", type=int, default=8, help="downloads at once before the filters run")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    p.set_defaults(func=run)
