"""fixture-tiny: regeneration is deterministic and byte-identical to the committed folder, and the committed
vectors replay through ONNX Runtime."""
import json
from pathlib import Path

import pytest

pytest.importorskip("onnxruntime")

from mixsga import fixture  # noqa: E402
from mixsga import manifest as mf  # noqa: E402

COMMITTED = Path(__file__).resolve().parents[2] / "test" / "fixtures" / fixture.NAME


def test_committed_fixture_is_consistent():
    m = mf.verify(COMMITTED)
    assert set(m["files"]) == {"model.cpu.onnx", "tokenizer.json", "tokenizer_config.json", "vectors.json"}
    assert sum(p.stat().st_size for p in COMMITTED.iterdir()) <= 5_000_000
    vectors = json.loads((COMMITTED / "vectors.json").read_text())
    worst = fixture.replay(COMMITTED / "model.cpu.onnx", vectors, fixture.CFG)
    assert worst["routes_equal"] and worst["tokens_equal"]
    assert worst["logits"] <= vectors["atol"] / 2 and worst["sums"] <= vectors["sum_atol"] / 2
    assert vectors["format_version"] == mf.FORMAT_VERSION
    generated = 0
    for case in vectors["cases"]:
        pos = 0
        for run, exp in zip(case["runs"], case["expected"]):
            assert run["position_ids"] == list(range(pos, pos + len(run["input_ids"])))  # the cache carried over
            assert len(exp["tokens"]) <= run["gen_steps"] + 1
            pos += len(run["input_ids"]) + len(exp["tokens"]) - 1
            generated += len(exp["tokens"]) - 1
    assert generated >= 20  # the vectors exercise the in-graph decode loop


def test_regeneration_is_byte_identical(tmp_path):
    """Same bytes as the committed folder (needs the torch/onnx versions that wrote it; vectors.json is
    compared first so a version-only difference in the ONNX bytes is recognisable)."""
    fixture.generate(tmp_path, check=False)
    assert (tmp_path / "vectors.json").read_bytes() == (COMMITTED / "vectors.json").read_bytes()
    for f in ("model.cpu.onnx", "manifest.json", "tokenizer.json", "tokenizer_config.json"):
        assert mf.sha256_file(tmp_path / f) == mf.sha256_file(COMMITTED / f), f
