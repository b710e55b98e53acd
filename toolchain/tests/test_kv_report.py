"""kv_report: the verdict compares `proposed` with the other methods only (not its own untrained family), and the
decode-time tier shares of an age cascade account for every cached position."""
import json

import pytest

from mixsga import kv_policy, kv_report


def write_eval(d, arm, rows):
    (d / f"{arm}-2048.json").write_text(json.dumps({"rows": [
        {"method": m, "budget": b, "ppl": p, "kv_fraction": b or 1.0, "note": n} for m, b, p, n in rows]}))


def test_verdict_and_sources(tmp_path):
    write_eval(tmp_path, "dense-cont", [("full", None, 5.0, ""), ("int4", 0.25, 5.10, "x"), ("int8", 0.25, 5.3, "x"),
                                        ("age-tiered", 0.25, 5.01, "cascade")])
    write_eval(tmp_path, "arm-b", [("full", None, 5.02, ""),
                                   ("proposed", 0.25, 5.05, "band=32,order=age,stores=g1-int8|g1-int4c; x")])
    t = kv_report.table(tmp_path, 2048, {**kv_report.SOURCES, "proposed": "arm-b"})
    v = kv_report.verdict(t)
    assert t["ppl"]["proposed"]["0.25"] == 5.05 and t["ppl"]["age-tiered"]["0.25"] == 5.01
    assert v["0.25"]["best_other"] == "int4" and v["0.25"]["wins"]  # the untrained family is not an "other"
    assert v["0.25"]["ratio_to_full"] == pytest.approx(1.01) and v["within_1.03_at_0.25"]


@pytest.mark.parametrize("budget", ["0.25", "0.35", "0.5"])
def test_tier_shares_cover_the_cache(budget):
    spec = "band=32,order=age,stores=g1-int8|g1-int4c|g2-int4c"
    sh = kv_report.tier_shares(spec, 2048, (budget,))[budget]
    assert sum(sh.values()) == pytest.approx(1.0, abs=1e-3)
    assert sh["full"] == pytest.approx(36 / 2048, abs=1e-4)  # 4 sinks + the 32-token band
    p = kv_policy.for_budget(kv_policy.policy(spec), float(budget), 2048, 4, 48)[0]
    assert set(sh) - {"full", "evicted"} <= {st.name for _, st in p.tiers} | {p.stores[0].name}
