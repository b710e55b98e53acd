"""PyPI sdists as a corpus source: licence from PKG-INFO, Python files only, vendored copies skipped (no network).
The PKG-INFO headers are those of real sdists (wsproto 1.3.2, defusedxml 0.7.1, alibabacloud_adb20211201 4.5.1),
plus one that names its licence only by a GPL classifier, as many copyleft projects do."""
import io
import json
import lzma
import tarfile
import zipfile
from collections import Counter
from pathlib import Path

import pytest

from mixsga import corpus_filters as cf
from mixsga.corpus import fetch_pypi, pypi_documents

EVAL = Path("/work/shared/eval")

WSPROTO = """Metadata-Version: 2.4
Name: wsproto
Version: 1.3.2
Summary: Pure-Python WebSocket protocol implementation
Author-email: Benno Rice <benno@jeamland.net>
License-Expression: MIT
Classifier: Development Status :: 5 - Production/Stable
Classifier: Intended Audience :: Developers
Requires-Python: >=3.10
License-File: LICENSE

wsproto
=======
"""
DEFUSEDXML = """Metadata-Version: 1.2
Name: defusedxml
Version: 0.7.1
Summary: XML bomb protection for Python stdlib modules
Author: Christian Heimes
License: PSFL
Classifier: Intended Audience :: Developers
Classifier: License :: OSI Approved :: Python Software Foundation License
Classifier: Programming Language :: Python :: 3

defusedxml
"""
ALIBABA = """Metadata-Version: 2.1
Name: alibabacloud_adb20211201
Version: 4.5.1
License: Apache License 2.0
Classifier: License :: OSI Approved :: Apache Software License
License-File: LICENSE

"""
GPL_ONLY = """Metadata-Version: 2.4
Name: some-gpl-tool
Version: 1.0
Classifier: License :: OSI Approved :: GNU General Public License v3 (GPLv3)
Classifier: Programming Language :: Python :: 3

"""
CODE = "".join(f"def handler_{i}(event, state):\n    state.count += {i}\n    return event.data\n\n" for i in range(20))
FILES = {"PKG-INFO": None, "src/wsproto/__init__.py": CODE, "src/wsproto/_vendor/six.py": CODE + "# six\n",
         "tests/test_frames.py": CODE + "# t\n", "README.rst": "wsproto\n", "docs/conf.js": "var x = 1;\n"}


def _stats():
    return {"dropped_packages": {}, "drops": Counter()}


def _tar_sdist(path, root, pkg_info, files=FILES):
    with tarfile.open(path, "w:gz") as tar:
        for name, text in files.items():
            data = (pkg_info if text is None else text).encode()
            info = tarfile.TarInfo(f"{root}/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def _zip_sdist(path, root, pkg_info):
    with zipfile.ZipFile(path, "w") as z:
        for name, text in FILES.items():
            z.writestr(f"{root}/{name}", pkg_info if text is None else text)
    return path


@pytest.mark.parametrize("make", [_tar_sdist, _zip_sdist])
def test_permissive_sdist_yields_its_python_files_but_not_vendored_ones(tmp_path, make):
    sdist = make(tmp_path / "wsproto-1.3.2.tar.gz" if make is _tar_sdist else tmp_path / "wsproto-1.3.2.zip",
                 "wsproto-1.3.2", WSPROTO)
    stats = _stats()
    docs = list(pypi_documents("wsproto", sdist, stats))
    assert [(d[2], d[1], d[3]) for d in docs] == [("src/wsproto/__init__.py", "MIT", "python"),
                                                  ("tests/test_frames.py", "MIT", "python")]
    assert docs[0][4] == CODE and stats["dropped_packages"] == {}


def test_licence_from_real_pkg_info_headers():
    assert cf.metadata_licence(WSPROTO) == "MIT"
    assert cf.metadata_licence(DEFUSEDXML) == "PSF-2.0"  # "PSFL" is unknown, the classifier decides
    assert cf.spdx_is_permissive(cf.metadata_licence(ALIBABA))
    assert not cf.spdx_is_permissive(cf.metadata_licence(GPL_ONLY) or "")


def test_copyleft_or_silent_sdist_is_dropped_with_its_reason(tmp_path):
    stats = _stats()
    assert list(pypi_documents("gpl", _tar_sdist(tmp_path / "g.tar.gz", "g-1.0", GPL_ONLY), stats)) == []
    assert "GNU General Public License" in stats["dropped_packages"]["pypi:gpl"]
    silent = "Metadata-Version: 2.1\nName: quiet\nVersion: 1\n\n"
    assert list(pypi_documents("quiet", _tar_sdist(tmp_path / "q.tar.gz", "q-1", silent), stats)) == []
    assert stats["dropped_packages"]["pypi:quiet"] == "licence None"


def test_unreadable_sdist_is_dropped_not_raised(tmp_path):
    bad = tmp_path / "broken-1.0.tar.gz"
    bad.write_bytes(b"\x1f\x8b not really gzip")
    stats = _stats()
    assert list(pypi_documents("broken", bad, stats)) == []
    assert stats["dropped_packages"]["pypi:broken"].startswith("unreadable sdist")


def test_fetch_uses_the_cached_sdist_without_the_network(tmp_path, monkeypatch):
    (tmp_path / "pypi" / "wsproto").mkdir(parents=True)
    cached = _tar_sdist(tmp_path / "pypi" / "wsproto" / "wsproto-1.3.2.tar.gz", "wsproto-1.3.2", WSPROTO)
    monkeypatch.setattr("urllib.request.urlopen", lambda *a, **k: pytest.fail("network used despite cache"))
    assert fetch_pypi("wsproto", tmp_path) == cached


@pytest.mark.skipif(not EVAL.is_dir(), reason="needs ../shared/eval for decontamination")
def test_corpus_from_cached_sdists_splits_by_package_and_keeps_licences(tmp_path):
    from mixsga.__main__ import main
    names = ["alpha-lib", "beta-lib", "gamma-lib"]
    for i, name in enumerate(names):
        folder = tmp_path / "cache" / "pypi" / name
        folder.mkdir(parents=True)
        own = "".join(f"def {name.replace('-', '_')}_{j}(value, scale):\n    return value * scale + {i * 100 + j}\n\n"
                      for j in range(30))
        _tar_sdist(folder / f"{name}-1.0.tar.gz", f"{name}-1.0", WSPROTO, dict(FILES, **{"src/own.py": own}))
    (tmp_path / "none.txt").write_text("# no packages of this kind\n")
    (tmp_path / "pypi.txt").write_text("\n".join(names) + "\n")
    assert main(["corpus", "--npm-list", str(tmp_path / "none.txt"), "--deb-list", str(tmp_path / "none.txt"),
                 "--pypi-list", str(tmp_path / "pypi.txt"), "--github-list", "", "--cache", str(tmp_path / "cache"),
                 "--out", str(tmp_path / "out"), "--xfer", str(tmp_path / "xfer"), "--no-fetch",
                 "--keep-tests", "1", "--workers", "1"]) in (0, None)
    split_of = {}
    for split in ("train", "val"):
        for line in lzma.open(tmp_path / "out" / f"{split}.jsonl.xz", "rt"):
            rec = json.loads(line)
            assert (rec["source"], rec["licence"], rec["lang"]) == ("pypi", "MIT", "python")
            assert split_of.setdefault(rec["package"], split) == split  # a package never straddles the split
    # Each sdist's own module survives; the two files all sdists share are exact duplicates after the first.
    assert sorted(split_of) == names and list(split_of.values()).count("val") == 1
    assert not (tmp_path / "out" / "kept.jsonl.tmp").exists()
    stats = json.loads((tmp_path / "out" / "stats.json").read_text())
    assert stats["drops"]["dedup_exact"] == 4 and stats["packages"] == {"pypi": 3}
    # The reassembly note names the folder the parts were written to, not a fixed one.
    note = (tmp_path / "xfer" / "p0" / "REASSEMBLE.txt").read_text()
    assert f"{tmp_path / 'xfer'}/p0/SHA256SUMS" in note and ".gpu/xfer/" not in note
