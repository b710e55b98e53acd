"""Budget baselines: 100% budgets equal full attention, GQA group 1 equals dense, KV accounting."""
import math

import torch

from mixsga.baselines import (cap_for_budget, forward_h2o, held_fraction_of_cap, held_fraction_of_experts,
                              static_pattern, window_mask, methods_for)
from mixsga.config import ModelConfig
from mixsga.model import MixSGAForCausalLM, Routing

CFG = dict(vocab_size=97, hidden_size=32, intermediate_size=48, num_layers=2, num_attention_heads=4,
           num_kv_heads=4, head_dim=8, max_position_embeddings=128, expert_group_sizes=(1, 2, 4))


def model_and_ids():
    torch.manual_seed(0)
    m = MixSGAForCausalLM(ModelConfig(**CFG)).init_weights(std=0.2, seed=0).eval()
    return m, torch.randint(0, 97, (2, 48), generator=torch.Generator().manual_seed(1))


@torch.no_grad()
def test_full_budget_masks_equal_full_attention():
    m, ids = model_and_ids()
    S = ids.shape[1]
    ref = m(ids, labels=ids, routing=Routing("dense")).loss
    assert cap_for_budget(S, 1.0) == S
    assert torch.equal(window_mask(S, S, "cpu"), torch.ones(S, S, dtype=torch.bool).tril())
    win = m(ids, labels=ids, routing=Routing("dense"), attn_mask=window_mask(S, S, "cpu")).loss
    assert torch.allclose(win, ref, atol=1e-6)
    assert torch.allclose(forward_h2o(m, ids, S), ref, atol=1e-6)
    # a real budget changes the loss and keeps exactly `cap` keys per late query
    cap = cap_for_budget(S, 0.5)
    assert window_mask(S, cap, "cpu")[-1].sum() == cap
    assert not torch.allclose(forward_h2o(m, ids, cap), ref)


@torch.no_grad()
def test_gqa_group1_equals_dense():
    m, ids = model_and_ids()
    zeros = torch.zeros_like(ids)
    a = m(ids, routing=Routing("dense")).logits
    b = m(ids, routing=Routing("fixed", experts=zeros)).logits
    assert torch.equal(a, b)


def test_kv_accounting():
    S = 1024
    for b in (0.25, 0.35, 0.5, 0.75):
        cap = cap_for_budget(S, b)
        assert b <= held_fraction_of_cap(S, cap) < b + 0.01
    assert held_fraction_of_cap(S, S) == 1.0
    for ratios, frac in [((0, 0, 1), 0.25), ((1, 1, 8), 0.35), ((3, 1, 6), 0.5), ((1, 1, 0), 0.75), ((0, 1, 0), 0.5)]:
        ex = static_pattern(1, S, ratios, "cpu")
        assert abs(held_fraction_of_experts(ex) - frac) < 0.01, (ratios, held_fraction_of_experts(ex))
    m, _ = model_and_ids()
    names = {(n, b) for n, b, _, _ in methods_for(m, 64)}
    assert ("mixsga", 0.5) in names and ("h2o", 0.25) in names and ("gqa", 0.35) in names
    assert ("mixsga-argmax", None) in names
    notes = {(n, b): note for n, b, note, _ in methods_for(m, 64)}
    # static GQA at 50% is every token on the group-2 expert (the paper's GQA baseline), not a positional mix
    assert notes[("gqa", 0.5)] == "group 2" and notes[("gqa", 0.25)] == "group 4"


@torch.no_grad()
def test_position_profile_splits_the_window_loss_by_position():
    """eval_ppl --position-buckets: per-bucket losses of a dense model average back to the window loss (bucket 0
    has one position fewer: nothing predicts the first token), and a mixSGA model gets its two decode routings."""
    from mixsga.eval_ppl import position_profile
    from mixsga.errors import UserError
    import pytest

    m, ids = model_and_ids()
    dense = MixSGAForCausalLM(ModelConfig(**{**CFG, "expert_group_sizes": ()})).init_weights(std=0.2, seed=0).eval()
    prof = position_profile(dense, ids, buckets=4, batch=1)
    assert [r["method"] for r in prof] == ["full"] and prof[0]["bucket_tokens"] == 12 and len(prof[0]["loss"]) == 4
    whole = dense(ids, labels=ids, routing=Routing("dense")).loss.item()
    n = [11, 12, 12, 12]
    assert math.isclose(sum(l * k for l, k in zip(prof[0]["loss"], n)) / sum(n), whole, rel_tol=1e-3)
    assert len(set(prof[0]["loss"])) == 4  # positions differ
    mix = position_profile(m, ids, buckets=2, batch=2)
    assert [r["method"] for r in mix] == ["mixsga-argmax", "mixsga"]
    with pytest.raises(UserError):
        position_profile(m, ids, buckets=5)
