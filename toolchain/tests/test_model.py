"""The model against transformers' LlamaForCausalLM, and the mixSGA invariants of the method spec."""
import math

import pytest
import torch

from mixsga.checkpoint import load_checkpoint, save_checkpoint
from mixsga.config import ModelConfig
from mixsga.convert import convert
from mixsga.model import MixSGAForCausalLM, Routing, expand_heads, pool_heads, rope_cos_sin, apply_rope
from mixsga.routing import capacities, expert_choice

TINY = dict(vocab_size=101, hidden_size=64, intermediate_size=96, num_layers=3, num_attention_heads=8,
            num_kv_heads=4, head_dim=8, max_position_embeddings=128)


def tiny_hf(tmp_path, **over):
    """A random-weight transformers LlamaForCausalLM saved in HF format."""
    transformers = pytest.importorskip("transformers")
    c = {**TINY, **over}
    hf_cfg = transformers.LlamaConfig(
        vocab_size=c["vocab_size"], hidden_size=c["hidden_size"], intermediate_size=c["intermediate_size"],
        num_hidden_layers=c["num_layers"], num_attention_heads=c["num_attention_heads"],
        num_key_value_heads=c["num_kv_heads"], head_dim=c["head_dim"],
        max_position_embeddings=c["max_position_embeddings"], rms_norm_eps=1e-5, rope_theta=10000.0,
        tie_word_embeddings=c.get("tie_word_embeddings", False))
    torch.manual_seed(0)
    hf = transformers.LlamaForCausalLM(hf_cfg).eval()
    hf.save_pretrained(tmp_path / "hf", safe_serialization=True)
    return hf, tmp_path / "hf"


@pytest.mark.parametrize("tied", [False, True])
def test_logits_match_transformers(tmp_path, tied):
    hf, path = tiny_hf(tmp_path, tie_word_embeddings=tied)
    ours = load_checkpoint(path).eval()
    ids = torch.randint(0, TINY["vocab_size"], (2, 37), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref = hf(ids).logits
        got = ours(ids).logits
    assert torch.allclose(got, ref, atol=1e-4, rtol=0), (got - ref).abs().max()


def test_converted_model_on_expert0_equals_base(tmp_path):
    _, path = tiny_hf(tmp_path)
    base = load_checkpoint(path).eval()
    mix = convert(base).eval()
    ids = torch.randint(0, TINY["vocab_size"], (1, 29))
    zeros = torch.zeros_like(ids)
    with torch.no_grad():
        a = base(ids).logits
        b = mix(ids, routing=Routing("fixed", experts=zeros)).logits
        # route_bias that forces expert 0 through the causal argmax path gives the same model too
        c = mix(ids, routing=Routing("argmax", route_bias=torch.tensor([1e4, 0.0, 0.0]))).logits
    assert torch.equal(a, b)
    assert torch.equal(a, c)
    # no new K/V parameters: only routers were added
    new = set(mix.state_dict()) - set(base.state_dict())
    assert new and all("router" in k for k in new)


def test_pooling_after_rope_equals_coarse_expert_projection():
    """Weight sharing is exact: pooling full post-RoPE K equals projecting with group-mean weights."""
    torch.manual_seed(0)
    cfg = ModelConfig(**TINY, expert_group_sizes=(1, 2, 4))
    attn = MixSGAForCausalLM(cfg).model.layers[0].self_attn.double()
    x = torch.randn(1, 11, cfg.hidden_size, dtype=torch.float64)
    cos, sin = rope_cos_sin(torch.arange(11)[None], cfg.head_dim, cfg.rope_theta, torch.float64)
    _, k, v = attn.project(x, cos, sin)
    for g in (2, 4):
        wk = attn.k_proj.weight.view(cfg.num_kv_heads // g, g, cfg.head_dim, -1).mean(1).reshape(-1, cfg.hidden_size)
        kg = (x @ wk.T).view(1, 11, -1, cfg.head_dim).transpose(1, 2)
        assert torch.allclose(pool_heads(k, g), apply_rope(kg, cos, sin), atol=1e-12)
        # demotion: pooling a pooled cache again equals pooling the full one (mean of equal-size means)
        assert torch.allclose(pool_heads(pool_heads(v, 2), g // 2 or 1), pool_heads(v, g), atol=1e-12)
    assert torch.equal(expand_heads(pool_heads(k, 4), 4)[:, 0], expand_heads(pool_heads(k, 4), 4)[:, 3])


def _chunked(model, ids, splits, bias):
    """Feed ids in chunks through forward_chunk, keeping per-expert caches like the runtime does."""
    past = model.empty_past(torch.float64)
    pos, routes, logits = 0, [[] for _ in past], None
    for n in splits:
        chunk = ids[:, pos:pos + n]
        logits, nk, nv, rt, _ = model.forward_chunk(chunk, torch.arange(pos, pos + n)[None], bias, past)
        for l in range(len(past)):
            routes[l].append(rt[l])
            for e, g in enumerate(model.cfg.expert_group_sizes):
                sel = (rt[l][0] == e)
                pk, pv = past[l][e]
                past[l][e] = (torch.cat([pk, pool_heads(nk[l][:, :, sel], g)], 2),
                              torch.cat([pv, pool_heads(nv[l][:, :, sel], g)], 2))
        pos += n
    return logits, [torch.cat(r, 1) for r in routes], past


def test_routing_and_logits_identical_across_chunkings():
    torch.manual_seed(3)
    model = MixSGAForCausalLM(ModelConfig(**TINY, expert_group_sizes=(1, 2, 4))).init_weights(seed=3).double().eval()
    for layer in model.model.layers:  # spread the routes over all experts
        torch.nn.init.normal_(layer.self_attn.router.weight, std=1.0)
    ids = torch.randint(0, TINY["vocab_size"], (1, 23))
    bias = torch.tensor([0.0, 0.3, -0.2], dtype=torch.float64)
    with torch.no_grad():
        ref_logits, ref_routes, _ = _chunked(model, ids, [23], bias)
        for splits in ([1] * 23, [5, 1, 9, 8], [12, 11]):
            logits, routes, _ = _chunked(model, ids, splits, bias)
            assert all(torch.equal(a, b) for a, b in zip(routes, ref_routes))
            assert torch.allclose(logits, ref_logits, atol=1e-10)
        # whole-sequence argmax routing gives the same routes as the chunked runtime
        full = model(ids, routing=Routing("argmax", route_bias=bias))
        assert all(torch.equal(a, b) for a, b in zip(full.experts, ref_routes))
        assert torch.allclose(full.logits[:, -1], ref_logits, atol=1e-10)
    assert len(set(torch.cat(ref_routes).flatten().tolist())) == 3


@pytest.mark.parametrize("ratios", [(0.3, 0.1, 0.6), (0.1, 0.1, 0.8), (0.5, 0.5, 0.0), (0, 0, 1), (1, 0, 0)])
def test_kv_fraction_matches_counted_bytes(ratios):
    cfg = ModelConfig(**TINY, expert_group_sizes=(1, 2, 4), ratios=ratios)
    S = 200
    scores = torch.rand(2, S, 3, generator=torch.Generator().manual_seed(0))
    experts = expert_choice(scores, ratios)
    assert [int((experts == e).sum()) // 2 for e in range(3)] == capacities(S, ratios)
    heads = torch.tensor(cfg.expert_kv_heads())[experts]  # KV heads stored per token
    counted = (2 * heads * cfg.head_dim * 2).sum().item()  # K+V, fp16 bytes
    full = 2 * S * 2 * cfg.num_kv_heads * cfg.head_dim * 2
    assert math.isclose(counted / full, cfg.kv_fraction(), abs_tol=2 / S)


def test_expert_choice_is_exclusive_and_prefers_high_scores():
    scores = torch.tensor([[[0.1, 0.9, 0.0], [0.2, 0.1, 0.0], [0.9, 0.2, 0.0], [0.8, 0.3, 0.0]]])
    # capacities for S=4, 1:1:2 -> expert 0 takes 1, expert 1 takes 1, expert 2 the other 2
    assert expert_choice(scores, (0.25, 0.25, 0.5)).tolist() == [[1, 2, 0, 2]]


def test_saved_checkpoint_round_trips_and_is_hf_loadable(tmp_path):
    transformers = pytest.importorskip("transformers")
    model = MixSGAForCausalLM(ModelConfig(**TINY)).init_weights(seed=0).eval()
    save_checkpoint(model, tmp_path / "ck")
    again = load_checkpoint(tmp_path / "ck").eval()
    hf = transformers.LlamaForCausalLM.from_pretrained(tmp_path / "ck").eval()
    ids = torch.randint(0, TINY["vocab_size"], (1, 9))
    with torch.no_grad():
        assert torch.equal(model(ids).logits, again(ids).logits)
        assert torch.allclose(model(ids).logits, hf(ids).logits, atol=1e-4)
