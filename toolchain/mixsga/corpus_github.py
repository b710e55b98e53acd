"""GitHub repositories as a `corpus` source: hand-written TypeScript (and JavaScript) read from bare git mirrors.

npm mostly ships compiled JS; the repositories hold the TypeScript it was compiled from. The list
(assets/github_repos.txt) pins each repository to a commit and names its licence; the mirror folder holds one bare
git directory per repository as the `fetch` tool brings it (<mirror>/<owner>+<name>/repo). Nothing here touches the
network: a repository missing from the mirror is reported as not fetched.
"""
from __future__ import annotations

import re
import subprocess
from pathlib import Path, PurePosixPath

from mixsga import corpus_filters as cf
from mixsga.errors import UserError

# Folders whose files are built, installed, vendored, recorded or fixtures, not code someone wrote for the project.
SKIP_DIRS = {"node_modules", "bower_components", "jspm_packages", "dist", "build", "out", "coverage", "vendor",
             "vendors", "vendored", "third_party", "third-party", "thirdparty", "external", "__snapshots__",
             "__fixtures__", "fixtures", "fixture", "baselines", "generated", "__generated__", "umd", "bundles",
             "fesm2015", "fesm2020", "fesm2022", "fesm5", ".next", ".nuxt", ".svelte-kit", ".astro", ".output",
             ".vercel", ".yarn", ".pnpm-store", "storybook-static"}
# Compiler conformance inputs (TypeScript's tests/cases, Babel's fixtures) are thousands of odd snippets.
_SKIP_PATH = re.compile(r"(^|/)tests?/cases/")
# JS under these folders is emitted from TS or copied into a site; TS there is left to the other rules.
EMIT_DIRS = {"lib", "es", "es6", "esm", "cjs", "commonjs", "module", "amd", "system", "public", "static", "assets"}
_MINIFIED_NAME = re.compile(r"[.-]min\.|\.(bundle|umd|prod|production|compiled)\.")
_LICENCE_FILE = re.compile(r"^(licen[cs]e|copying)(-[\w-]+)?(\.(md|txt|rst|markdown|mit|bsd|apache))?$", re.I)


def read_list(path: Path) -> list[tuple[str, str, str]]:
    """(owner/name, commit, SPDX licence) rows of a repository list; '#' starts a comment."""
    if not Path(path).is_file():
        raise UserError(f"repository list not found: {path}")
    rows = []
    for n, line in enumerate(Path(path).read_text().splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        cols = line.split()
        if len(cols) != 3 or not re.fullmatch(r"[0-9a-f]{40}", cols[1]) or "/" not in cols[0]:
            raise UserError(f"{path}:{n}: want 'owner/name <40-hex commit> <SPDX licence>', got {line!r}")
        rows.append((cols[0], cols[1], cols[2]))
    return rows


def git_dir(mirror: Path, repo: str) -> Path:
    """Where the `fetch` tool puts a repository's bare git directory."""
    return Path(mirror) / repo.replace("/", "+") / "repo"


def mirrored(mirror: Path, repo: str) -> Path | None:
    d = git_dir(mirror, repo)
    return d if (d / "HEAD").is_file() else None


def _git(gdir: Path, *args: str) -> bytes:
    return subprocess.run(["git", "--git-dir", str(gdir), *args], capture_output=True, check=True).stdout


def tree(gdir: Path, commit: str) -> dict[str, str]:
    """{path: blob sha} of the regular files at a commit (symlinks and submodules left out)."""
    out = {}
    for entry in _git(gdir, "ls-tree", "-r", "-z", "--full-tree", commit).split(b"\0"):
        if not entry:
            continue
        meta, path = entry.split(b"\t", 1)
        mode, kind, sha = meta.decode().split()
        if kind == "blob" and mode in ("100644", "100755"):
            out[path.decode("utf-8", "replace")] = sha
    return out


class Blobs:
    """Reads many blobs through one `git cat-file --batch` process."""

    def __init__(self, gdir: Path):
        self.proc = subprocess.Popen(["git", "--git-dir", str(gdir), "cat-file", "--batch"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE)

    def read(self, sha: str) -> bytes:
        self.proc.stdin.write(sha.encode() + b"\n")
        self.proc.stdin.flush()
        header = self.proc.stdout.readline().split()
        if len(header) < 3 or header[1] != b"blob":
            raise ValueError(f"not a blob: {sha} ({header!r})")
        data = self.proc.stdout.read(int(header[2]))
        self.proc.stdout.read(1)  # the newline after each object
        return data

    def close(self):
        self.proc.stdin.close()
        self.proc.wait()


def file_licence(text: str) -> str | None:
    """SPDX id of a LICENSE file: from its text (line breaks as spaces: 'Apache License' and 'Version 2.0' often sit
    on two lines), else from a one-line name such as 'MIT'."""
    found = cf.licence_from_text(" ".join(text[:6000].split()))
    if found:
        return found
    first = text.strip().splitlines()[0] if text.strip() else ""
    return cf.normalize_licence(first) if len(first) < 40 and cf.spdx_is_permissive(first) else None


def same_licence(listed: str, found: str | None) -> bool:
    """Does a LICENSE file's licence agree with the list's SPDX id? (A text with 'Neither the name' is BSD-3.)"""
    return found is not None and cf.normalize_licence(found) == cf.normalize_licence(listed)


def select_files(paths) -> list[str]:
    """Hand-written TS/JS of a repository: no .d.ts, nothing under build/vendor/fixture folders, no minified or
    bundled names, and no JS that is the emitted twin of a TS file or sits in an emit folder."""
    paths = list(paths)
    stems = {re.sub(r"\.(mts|cts|tsx?)$", "", p) for p in paths if cf.lang_of(p) == "typescript"}
    keep = []
    for p in paths:
        lang = cf.lang_of(p)
        if lang not in ("typescript", "javascript"):
            continue
        dirs = [d.lower() for d in PurePosixPath(p).parts[:-1]]
        low = p.lower()
        if any(d in SKIP_DIRS for d in dirs) or _SKIP_PATH.search(low) or _MINIFIED_NAME.search(low):
            continue
        if lang == "javascript" and (any(d in EMIT_DIRS for d in dirs)
                                     or re.sub(r"\.(mjs|cjs|jsx?)$", "", p) in stems):
            continue
        keep.append(p)
    return sorted(keep)


def licence_barred(files: dict[str, str], blobs: Blobs) -> dict[str, str]:
    """{folder/: licence} of sub-folders whose own LICENSE file is not permissive or not recognised: vendored code
    under another licence than the repository's."""
    barred = {}
    for path, sha in files.items():
        pp = PurePosixPath(path)
        if len(pp.parts) > 1 and _LICENCE_FILE.match(pp.name):
            lic = file_licence(blobs.read(sha).decode("utf-8", "replace"))
            if not cf.spdx_is_permissive(lic or ""):
                barred[f"{pp.parent}/"] = str(lic)
    return barred


def documents(row, gdir: Path, stats: dict):
    """Yield (repo, licence, path, lang, text, {"commit"}) for one listed repository at its pinned commit, if its
    root LICENSE file agrees with the list's licence; drops are counted in stats."""
    repo, commit, listed = row
    tag = f"github:{repo}"
    if not cf.spdx_is_permissive(listed):
        stats["dropped_packages"][tag] = f"licence {listed!r} is not permissive"
        return
    try:
        files = tree(gdir, commit)
    except subprocess.CalledProcessError:
        stats["dropped_packages"][tag] = f"commit {commit} is not in the mirror {gdir}"
        return
    blobs = Blobs(gdir)
    try:
        roots = sorted(p for p in files if "/" not in p and _LICENCE_FILE.match(p))
        found = file_licence(blobs.read(files[roots[0]]).decode("utf-8", "replace")) if roots else None
        if not same_licence(listed, found):
            stats["dropped_packages"][tag] = (f"list says {listed}, root licence file {roots[:1]} says {found}")
            return
        barred = licence_barred(files, blobs)
        for path in select_files(files):
            if any(path.startswith(b) for b in barred):
                stats["drops"]["licence_subfolder"] += 1
                continue
            text = blobs.read(files[path]).decode("utf-8", "replace")
            yield repo, listed, path, cf.lang_of(path), text, {"commit": commit}
    finally:
        blobs.close()
