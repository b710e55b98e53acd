"""GitHub repositories as a corpus source, on tiny bare git repositories made here: which files are taken, which
licences are refused, and that every document names its repository and commit."""
import json
import lzma
import subprocess
from collections import Counter
from pathlib import Path

import pytest

from mixsga import corpus_github as gh
from mixsga.errors import UserError

EVAL = Path("/work/shared/eval")
MIT = ("MIT License\n\nCopyright (c) 2024 Someone\n\nPermission is hereby granted, free of charge, to any person "
       "obtaining a copy\nof this software and associated documentation files (the \"Software\"), to deal\n")
APACHE = "                                 Apache License\n                           Version 2.0, January 2004\n"
GPL = ("                    GNU GENERAL PUBLIC LICENSE\n                       Version 3, 29 June 2007\n\n"
       "  The GNU General Public License is a free, copyleft license for\nsoftware and other kinds of works.\n")


def ts(name: str) -> str:
    return "".join(f"export function {name}{i}(value: number, scale: number): number {{\n"
                   f"  return value * scale + {i};\n}}\n\n" for i in range(12))


FILES = {
    "LICENSE": MIT,
    "src/index.ts": ts("index"),
    "src/view.tsx": ts("view"),
    "src/index.js": ts("compiledTwin").replace(": number", ""),     # emitted next to its TS source
    "scripts/release.mjs": ts("release").replace(": number", ""),   # hand-written JS
    "lib/index.js": ts("emitted").replace(": number", ""),
    "dist/bundle.ts": ts("bundle"),
    "node_modules/dep/index.ts": ts("dep"),
    "types/index.d.ts": "export declare function f(): void;\n" * 4,
    "tests/cases/compiler/weird.ts": ts("conformance"),
    "src/__fixtures__/input.ts": ts("fixture"),
    "web/app.min.js": ts("minified"),
    "third/gpl-lib/LICENSE": GPL,                                     # vendored under another licence
    "third/gpl-lib/code.ts": ts("gpl"),
    "packages/ok/LICENSE.md": APACHE,                                 # nested permissive licence: kept
    "packages/ok/src/main.ts": ts("okMain"),
    "src/license.ts": ts("licenceHelper"),                            # a source file, not a licence file
    "README.md": "# demo\n",
}
TAKEN = ["packages/ok/src/main.ts", "scripts/release.mjs", "src/index.ts", "src/license.ts", "src/view.tsx"]


def bare_repo(tmp: Path, name: str, files: dict) -> tuple[Path, str]:
    """A bare repository <tmp>/mirror/<owner>+<name>/repo with one commit of `files`; returns (git dir, commit)."""
    gdir = gh.git_dir(tmp / "mirror", name)
    work = tmp / "work" / name.replace("/", "+")
    subprocess.run(["git", "init", "-q", "--bare", str(gdir)], check=True)
    for path, text in files.items():
        (work / path).parent.mkdir(parents=True, exist_ok=True)
        (work / path).write_text(text)
    git = ["git", "--git-dir", str(gdir), "--work-tree", str(work), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(git + ["add", "-A"], check=True)
    subprocess.run(git + ["commit", "-q", "-m", "init"], check=True)
    return gdir, subprocess.run(git + ["rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()


def stats():
    return {"dropped_packages": {}, "drops": Counter()}


def test_hand_written_ts_and_js_are_taken_with_repo_and_commit(tmp_path):
    gdir, commit = bare_repo(tmp_path, "acme/widgets", FILES)
    st = stats()
    docs = list(gh.documents(("acme/widgets", commit, "MIT"), gdir, st))
    assert [d[2] for d in docs] == TAKEN
    assert {(d[0], d[1], d[5]["commit"]) for d in docs} == {("acme/widgets", "MIT", commit)}
    assert {d[2]: d[3] for d in docs}["scripts/release.mjs"] == "javascript"
    assert dict(zip([d[2] for d in docs], [d[4] for d in docs]))["src/index.ts"] == FILES["src/index.ts"]
    assert st["drops"]["licence_subfolder"] == 1 and st["dropped_packages"] == {}


def test_licence_that_the_licence_file_does_not_back_is_refused(tmp_path):
    gdir, commit = bare_repo(tmp_path, "acme/gpl", dict(FILES, LICENSE=GPL))
    st = stats()
    assert list(gh.documents(("acme/gpl", commit, "MIT"), gdir, st)) == []          # list says MIT, file says GPL
    assert "says GPL" in st["dropped_packages"]["github:acme/gpl"]
    assert list(gh.documents(("acme/gpl", commit, "GPL-3.0-only"), gdir, st)) == []
    assert "not permissive" in st["dropped_packages"]["github:acme/gpl"]
    gdir, commit = bare_repo(tmp_path, "acme/apache", dict(FILES, LICENSE=APACHE))
    assert list(gh.documents(("acme/apache", commit, "MIT"), gdir, st)) == []       # wrong permissive licence
    assert len(list(gh.documents(("acme/apache", commit, "Apache-2.0"), gdir, st))) == len(TAKEN)
    nolicence = {k: v for k, v in FILES.items() if k != "LICENSE"}
    gdir, commit = bare_repo(tmp_path, "acme/silent", nolicence)
    assert list(gh.documents(("acme/silent", commit, "MIT"), gdir, st)) == []
    assert list(gh.documents(("acme/silent", "0" * 40, "MIT"), gdir, st)) == []
    assert "not in the mirror" in st["dropped_packages"]["github:acme/silent"]


def test_list_lines_are_checked(tmp_path):
    good = tmp_path / "ok.txt"
    good.write_text("# repos\nacme/widgets " + "a" * 40 + " MIT  # why\n\n")
    assert gh.read_list(good) == [("acme/widgets", "a" * 40, "MIT")]
    bad = tmp_path / "bad.txt"
    bad.write_text("acme/widgets main MIT\n")
    with pytest.raises(UserError, match="bad.txt:1"):
        gh.read_list(bad)
    with pytest.raises(UserError, match="not found"):
        gh.read_list(tmp_path / "nope.txt")


def test_the_listed_repositories_are_pinned_and_permissive():
    rows = gh.read_list(Path(gh.__file__).parent / "assets" / "github_repos.txt")
    assert 15 <= len(rows) <= 80 and len({r[0] for r in rows}) == len(rows)
    assert {r[2] for r in rows} <= {"MIT", "Apache-2.0", "BSD-2-Clause", "BSD-3-Clause", "ISC"}


@pytest.mark.skipif(not EVAL.is_dir(), reason="needs ../shared/eval for decontamination")
def test_corpus_of_repositories_splits_by_repository_and_records_commits(tmp_path):
    from mixsga.__main__ import main
    commits = {}
    for i, name in enumerate(["acme/alpha", "acme/beta", "acme/gamma"]):
        own = {"src/own.ts": ts(f"own{i}x"), "LICENSE": MIT}
        commits[name] = bare_repo(tmp_path, name, dict(FILES, **own))[1]
    lst = tmp_path / "repos.txt"
    lst.write_text("".join(f"{n} {c} MIT\n" for n, c in commits.items()) + "acme/missing " + "b" * 40 + " MIT\n")
    assert main(["corpus", "--npm-list", "", "--deb-list", "", "--pypi-list", "", "--github-list", str(lst),
                 "--mirror", str(tmp_path / "mirror"), "--cache", str(tmp_path / "cache"), "--no-fetch",
                 "--out", str(tmp_path / "out"), "--xfer", str(tmp_path / "xfer"), "--keep-tests", "1",
                 "--workers", "1"]) in (0, None)
    split_of = {}
    for split in ("train", "val"):
        for line in lzma.open(tmp_path / "out" / f"{split}.jsonl.xz", "rt"):
            rec = json.loads(line)
            assert (rec["source"], rec["licence"], rec["commit"]) == ("github", "MIT", commits[rec["package"]])
            assert split_of.setdefault(rec["package"], split) == split
    assert sorted(split_of) == sorted(commits) and list(split_of.values()).count("val") == 1
    out = json.loads((tmp_path / "out" / "stats.json").read_text())
    assert out["sources"]["github:acme/beta"]["commit"] == commits["acme/beta"]
    assert out["dropped_packages"] == {"github:acme/missing": "not fetched"}
    assert out["drops"]["dedup_exact"] == 2 * len(TAKEN)  # beta and gamma repeat alpha's copies of FILES
