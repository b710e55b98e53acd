"""The committed engine vectors (test/fixtures/kv-quant/vectors.json) are what `python -m mixsga kv_quant_fixture`
writes from today's kv_quant / kv_policy: a change to the quantisation semantics must regenerate them, so the
engine's unit test (test/unit/kvQuant.test.ts) always checks against the reference the study measures with."""
import json

from mixsga import kv_quant_fixture


def test_committed_vectors_match_the_reference():
    committed = json.loads(kv_quant_fixture.OUT.read_text())
    assert committed == json.loads(json.dumps(kv_quant_fixture.build())), \
        "test/fixtures/kv-quant/vectors.json is stale: run `python -m mixsga kv_quant_fixture`"


def test_vectors_cover_ties_padding_and_every_cascade_store():
    d = kv_quant_fixture.build()
    assert d["tokens"] % d["kivi_group"] != 0  # a padded channel group
    assert {v["store"] for v in d["views"]} == {"g1-int8", "g1-int4c", "g2-int4c"}
    assert any("ties" in c["name"] for c in d["cases"])
