"""Age-aware KV policies (kv_policy), quantised storage (kv_quant) and their training/eval paths, on a tiny model."""
import json
import math

import pytest
import torch

from mixsga import kv_policy as kp
from mixsga.__main__ import main
from mixsga.baselines import static_pattern, window_mask
from mixsga.checkpoint import load_checkpoint, save_checkpoint
from mixsga.config import ModelConfig
from mixsga.kv_quant import bytes_per_head, fake_quant
from mixsga.model import MixSGAForCausalLM, Routing
from test_train import COMMON, CFG, toy_shards

H, D = 4, 16


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=256, hidden_size=64, intermediate_size=128, num_layers=2, num_attention_heads=8,
                      num_kv_heads=H, head_dim=D, max_position_embeddings=256)
    return MixSGAForCausalLM(cfg).init_weights(seed=0).eval()


@pytest.fixture(scope="module")
def ids():
    return torch.randint(3, 256, (2, 96), generator=torch.Generator().manual_seed(1))


def loss(m, ids, **kw):
    with torch.no_grad():
        return m(ids, labels=ids, **kw).loss.item()


def test_full_precision_store_and_wide_band_are_dense_attention(model, ids):
    dense = loss(model, ids, routing=Routing("dense"))
    full = kp.policy("band=0,stores=g1-fp16")
    assert loss(model, ids, routing=Routing("policy", policy=full)) == pytest.approx(dense, abs=1e-6)
    # whatever the store, keys inside the band are read in full: a band as long as the window changes nothing
    wide = kp.policy("band=96,stores=evict")
    assert loss(model, ids, routing=Routing("policy", policy=wide)) == pytest.approx(dense, abs=1e-6)
    narrow = kp.policy("band=8,stores=evict")
    with torch.no_grad():
        a = model(ids, routing=Routing("policy", policy=narrow)).logits
        b = model(ids, routing=Routing("dense")).logits
    assert torch.allclose(a[:, :12], b[:, :12], atol=1e-5)  # nothing evicted yet before band + sinks
    assert (a[:, 40:] - b[:, 40:]).abs().max() > 1e-3


def test_cap_is_a_sliding_window_with_sinks(model, ids):
    pol = kp.Policy(stores=(kp.store("g1-fp16"),), band=0, sinks=4, cap=24)
    t = torch.arange(96)[:, None]
    s = torch.arange(96)[None]
    mask = (s <= t) & ((s < 4) | (t - s < 24))
    assert loss(model, ids, routing=Routing("policy", policy=pol)) == pytest.approx(
        loss(model, ids, routing=Routing("dense"), attn_mask=mask), abs=1e-5)
    assert not torch.equal(mask, window_mask(96, 24, "cpu"))  # (the baseline's window counts the sinks in its cap)


def test_pooled_store_equals_the_mixsga_expert(model, ids):
    """A g4 fp16 store read outside a zero band is exactly mixSGA's group-4 expert for every token."""
    pol = kp.policy("band=0,sinks=0,stores=g4-fp16")
    ex = torch.full(ids.shape, 2)
    mix_cfg = model.cfg.replace(expert_group_sizes=(1, 2, 4))
    mix = MixSGAForCausalLM(mix_cfg)
    mix.load_state_dict(model.state_dict(), strict=False)
    mix.eval()
    with torch.no_grad():
        got = model(ids, routing=Routing("policy", policy=pol)).logits
        ref = mix(ids, routing=Routing("fixed", experts=ex)).logits
        dense = model(ids, routing=Routing("dense")).logits
    assert torch.allclose(got, ref, atol=1e-5) and (got - dense).abs().max() > 1e-3


def test_fake_quant_error_and_bytes():
    x = torch.randn(2, 4, 64, 16)
    for bits, tol in ((8, 0.02), (4, 0.35), (2, 1.5)):
        q = fake_quant(x, bits, -1, 16)
        step = (x.amax(-1, keepdim=True) - x.amin(-1, keepdim=True)) / (2 ** bits - 1)
        assert ((q - x).abs() <= step / 2 + 1e-5).all()
        assert (q - x).abs().max() < tol * x.abs().max()
        assert len(torch.unique(q[0, 0, 0])) <= 2 ** bits
    qc = fake_quant(x, 4, -2, 32)  # per channel over 32-token groups
    assert len(torch.unique(qc[0, 0, :32, 3])) <= 16
    assert bytes_per_head(48, 16, 48) == 96
    assert bytes_per_head(48, 8, 48) == 48 + 4
    assert kp.store("g1-int4c").fraction(4, 48) == pytest.approx((24 + 4 * 48 / 32 + 24 + 4) / 192)
    assert kp.store("g2-int4").fraction(4, 48) == pytest.approx(0.5 * 28 / 96)
    assert kp.store("evict").fraction(4, 48) == 0


def test_budget_rule_meets_the_budget():
    pol = kp.policy("band=32,stores=g1-int8|g1-int4|g2-int4|g4-int4")
    for S in (1024, 2048):
        for b in (0.25, 0.35, 0.5):
            r = pol.ratios_for_budget(b, S, 4, 48)
            assert sum(r) == pytest.approx(1) and sum(1 for x in r if x > 0) <= 2
            ex = static_pattern(1, S, [round(x * 1000) for x in r], "cpu")
            assert pol.held_fraction(ex, 4, 48) == pytest.approx(b, abs=0.01)
    int8 = kp.policy("band=0,stores=g1-int8")
    p, ratios = kp.for_budget(int8, 0.25, 2048, 4, 48)
    assert ratios is None and p.cap > 0
    assert p.held_fraction(torch.zeros(1, 2048, dtype=torch.long), 4, 48) <= 0.25
    p2, _ = kp.for_budget(int8, 0.75, 2048, 4, 48)
    assert p2.cap == 0  # int8 fits 75 % without windowing


def test_policy_training_and_eval_end_to_end(tmp_path, capsys):
    data = toy_shards(tmp_path / "data")
    dense = tmp_path / "dense"
    assert main(["train", "--init", "scratch", "--model-size", "tiny", "--config-json", CFG, "--data", str(data),
                 "--out", str(dense), "--max-steps", "6", "--eval-every", "0", *COMMON]) == 0
    spec = "band=8,sinks=2,stores=g1-int8|g1-int4|g2-int4|evict"
    out = tmp_path / "proposed"
    assert main(["train", "--init", str(dense / "ckpt"), "--data", str(data), "--out", str(out), "--kv-policy", spec,
                 "--router-lm-grad", "--max-steps", "8", "--eval-every", "8", *COMMON]) == 0
    log = [json.loads(l) for l in (out / "log.jsonl").read_text().splitlines()]
    assert all("aux" in r for r in log if "loss" in r)
    assert any("val_policy" in r for r in log)
    m = load_checkpoint(out / "ckpt")
    assert m.cfg.kv_policy == spec and m.model.layers[0].self_attn.router.out_features == 4
    res = tmp_path / "eval.json"
    assert main(["eval_ppl", "--model", str(out / "ckpt"), "--data", str(data), "--windows", "4", "--seq-len", "64",
                 "--methods", "full,proposed,int8,int4,age-tiered", "--budgets", "0.35,0.5", "--out", str(res)]) == 0
    rows = json.loads(res.read_text())["rows"]
    got = {(r["method"], r["budget"]) for r in rows}
    assert {("proposed", 0.35), ("proposed", 0.5), ("int8", 0.35), ("int4", 0.5), ("age-tiered", 0.35), ("full", 1.0)} <= got
    for r in rows:
        assert math.isfinite(r["ppl"])
        if r["method"] in ("proposed", "int8") and r["budget"] < 1:
            assert r["kv_fraction"] <= r["budget"] + 0.03, r  # (int4's 32-token band alone exceeds 35 % of 64)


def test_strip_routers_gives_the_dense_model(tmp_path, model, ids):
    mix = MixSGAForCausalLM(model.cfg.replace(expert_group_sizes=(1, 2, 4)))
    mix.load_state_dict(model.state_dict(), strict=False)
    kp.strip_routers(mix)
    assert not mix.cfg.is_mixsga and not hasattr(mix.model.layers[0].self_attn, "router")
    save_checkpoint(mix, tmp_path / "d")
    assert loss(load_checkpoint(tmp_path / "d").eval(), ids) == pytest.approx(loss(model, ids), abs=1e-5)


def test_an_fp16_tier_is_a_wider_band(model, ids):
    tiered = kp.Policy(stores=(kp.store("g1-int4"),), band=8, tiers=((40, kp.store("g1-fp16")),))
    wide = kp.Policy(stores=(kp.store("g1-int4"),), band=40)
    with torch.no_grad():
        a = model(ids, routing=Routing("policy", policy=tiered)).logits
        b = model(ids, routing=Routing("policy", policy=wide)).logits
    assert torch.allclose(a, b, atol=1e-5)
    ex = torch.zeros(1, 96, dtype=torch.long)
    assert tiered.held_fraction(ex, H, D) == pytest.approx(wide.held_fraction(ex, H, D))


def test_age_cascade_rule():
    pol = kp.policy("band=32,stores=g1-int8|g1-int4c|g1-int2c")
    ex = torch.zeros(1, 2048, dtype=torch.long)
    at = {b: kp.cascade_for_budget(pol, b, 2048, 4, 48) for b in (0.2, 0.25, 0.35, 0.75)}
    assert at[0.75].tiers == () and at[0.75].stores[0].bits == 8 and at[0.75].cap == 0  # int8 alone fits
    assert at[0.35].tiers[0][1].bits == 8 and at[0.35].stores[0].bits == 4  # int8 while young, then int4
    assert at[0.25].tiers[0][1].bits == 4 and at[0.25].stores[0].bits == 2  # int4 while young, then int2
    for b in (0.2, 0.25, 0.35):
        assert at[b].held_fraction(ex, 4, 48) == pytest.approx(b, abs=0.005)
    assert at[0.25].cap == at[0.35].cap == 0 and at[0.2].cap > 0  # int2 + the fp16 band alone exceed 20 %
    int4_only = kp.cascade_for_budget(kp.policy("band=32,stores=g1-int8|g1-int4c"), 0.25, 2048, 4, 48)
    assert int4_only.cap > 0 and int4_only == kp.for_budget(kp.policy("band=32,stores=g1-int4c"), 0.25, 2048, 4, 48)[0]


def test_trained_age_cascade(tmp_path):
    """order=age: the stores are precisions by age (no routing); training and eval take the cascade's ages."""
    spec = "band=8,sinks=2,order=age,stores=g1-int8|g1-int4c|g1-int2c"
    pol = kp.policy(spec)
    assert pol.by_age and kp.for_budget(pol, 0.35, 2048, 4, 48) == (kp.cascade_for_budget(pol, 0.35, 2048, 4, 48), None)
    with pytest.raises(ValueError):
        kp.policy("band=8,order=size,stores=g1-int8")
    data = toy_shards(tmp_path / "data")
    dense = tmp_path / "dense"
    assert main(["train", "--init", "scratch", "--model-size", "tiny", "--config-json", CFG, "--data", str(data),
                 "--out", str(dense), "--max-steps", "4", "--eval-every", "0", *COMMON]) == 0
    out = tmp_path / "cascade"
    assert main(["train", "--init", str(dense / "ckpt"), "--data", str(data), "--out", str(out), "--kv-policy", spec,
                 "--max-steps", "4", "--eval-every", "4", *COMMON]) == 0
    m = load_checkpoint(out / "ckpt")
    assert m.cfg.kv_policy == spec and m.cfg.router_outputs == 1
    res = tmp_path / "eval.json"
    assert main(["eval_ppl", "--model", str(out / "ckpt"), "--data", str(data), "--windows", "4", "--seq-len", "64",
                 "--methods", "full,proposed,age-tiered-int2", "--budgets", "0.35", "--out", str(res)]) == 0
    rows = {r["method"]: r for r in json.loads(res.read_text())["rows"]}
    assert rows["proposed"]["kv_fraction"] <= 0.35 + 0.03 and math.isfinite(rows["proposed"]["ppl"])
    assert "to age" in rows["proposed"]["note"] or "cap" in rows["proposed"]["note"]
