"""KV-budget baselines, simulated with routing or attention masks on full-sequence forwards.

Budget accounting (the same for every method, so rows are comparable): at query position t the cache holds
some KV bytes; full attention holds t tokens x full per-token KV. The KV fraction of a window is
    sum_t held_t / sum_t t      (t = 1..S),
i.e. average bytes held per position relative to the dense model. For mixSGA held_t = sum_{s<=t} f(e_s)
(f = 1/group size of token s's expert); for eviction methods held_t = min(t, cap).

  gqa     every token on one pooled expert: group 4 = 25%, group 2 = 50%; 35% and 75% are static per-position
          patterns with the mixSGA ratios 1:1:8 and 1:1:0 (position i -> a fixed expert; no learned routing)
  window  StreamingLLM: 4 sink tokens + the most recent cap-4 tokens
  h2o     H2O: cap/2 most recent tokens + cap/2 "heavy hitters" by accumulated attention. Approximation: the
          accumulated score of key s at query t is the sum of the attention it got from queries s..t-1 under
          *full* attention in that layer (inputs are the evicted model's hidden states from the layers below);
          an evicted key may come back later (real H2O evicts greedily and for good). Per layer and head.
"""
import math

import torch
import torch.nn.functional as F

from mixsga import kv_policy
from mixsga.model import Routing, rope_cos_sin, expand_heads
from mixsga.routing import capacities

SINKS = 4
# mixSGA capacity ratios per KV budget (paper Figure 3 settings; 100% = everyone on expert 1)
MIXSGA_RATIOS = {0.25: (0, 0, 1), 0.35: (1, 1, 8), 0.5: (3, 1, 6), 0.75: (1, 1, 0), 1.0: (1, 0, 0)}
BUDGETS = (0.25, 0.35, 0.5, 0.75, 1.0)
# static GQA per KV budget: one pooled expert for every token where one exists (group 4 = 25%, group 2 = 50%),
# else a fixed positional pattern with the mixSGA ratios (35%, 75%)
GQA_RATIOS = {0.25: (0, 0, 1), 0.35: (1, 1, 8), 0.5: (0, 1, 0), 0.75: (1, 1, 0)}
GROUP_FRACTIONS = (1.0, 0.5, 0.25)  # KV fraction of experts with group sizes 1, 2, 4


def norm_ratios(r):
    s = sum(r)
    return tuple(x / s for x in r)


# ---------------------------------------------------------------------------------------------- accounting

def held_fraction_of_experts(experts, fractions=GROUP_FRACTIONS):
    """KV fraction of per-token expert ids [B, S] (ratio of sums of held bytes per position)."""
    f = torch.tensor(fractions, device=experts.device)[experts].double()  # [B, S]
    held = f.cumsum(-1).sum(-1)
    S = experts.shape[-1]
    return (held / (S * (S + 1) / 2)).mean().item()


def held_fraction_of_cap(S, cap):
    t = torch.arange(1, S + 1, dtype=torch.float64)
    return (t.clamp(max=cap).sum() / t.sum()).item()


def cap_for_budget(S, budget):
    """Smallest per-position cache capacity whose KV fraction reaches `budget`."""
    lo, hi = 1, S
    while lo < hi:
        mid = (lo + hi) // 2
        if held_fraction_of_cap(S, mid) >= budget - 1e-9:
            hi = mid
        else:
            lo = mid + 1
    return lo


# ---------------------------------------------------------------------------------------------- routings

def static_pattern(B, S, ratios, device):
    """Per-position expert ids from a fixed repeating pattern with the given ratios (e.g. 1:1:8 -> a block of
    10 positions with 1 on expert 0, 1 on expert 1, 8 on expert 2), spread evenly inside the block."""
    r = [int(round(x)) for x in ratios]
    block = sum(r)
    order = sorted(((i + 0.5) / k, e) for e, k in enumerate(r) for i in range(k))  # interleave experts
    pattern = torch.tensor([e for _, e in order], device=device)
    return pattern.repeat(math.ceil(S / block))[:S].expand(B, S)


def random_pattern(B, S, ratios, seed=0, device="cpu"):
    g = torch.Generator().manual_seed(seed)
    base = torch.cat([torch.full((k,), e) for e, k in enumerate(capacities(S, norm_ratios(ratios)))])
    return torch.stack([base[torch.randperm(S, generator=g)] for _ in range(B)]).to(device)


# ---------------------------------------------------------------------------------------------- masks

def window_mask(S, cap, device, sinks=SINKS):
    """[S, S] bool, True = attend: causal, and key s kept at query t if s < sinks or s > t - (cap - sinks)."""
    t = torch.arange(S, device=device)[:, None]
    s = torch.arange(S, device=device)[None, :]
    return (s <= t) & ((s < sinks) | (s > t - max(cap - sinks, 1)) | (t < cap))


def h2o_mask(q, k, cap):
    """[B, H, S, S] bool keep-mask from one layer's queries/keys (after RoPE, KV heads expanded to H)."""
    B, H, S, D = q.shape
    causal = torch.ones(S, S, dtype=torch.bool, device=q.device).tril()
    if cap >= S:
        return causal.expand(B, H, S, S)
    recent = cap // 2
    heavy = cap - recent
    att = (q.float() @ k.float().transpose(-1, -2)) / math.sqrt(D)
    p = att.masked_fill(~causal, float("-inf")).softmax(-1)
    acc = p.cumsum(dim=-2)  # acc[t, s] = attention key s received from queries <= t
    acc = torch.cat([torch.zeros_like(acc[:, :, :1]), acc[:, :, :-1]], dim=-2)  # scores known before query t
    t = torch.arange(S, device=q.device)[:, None]
    s = torch.arange(S, device=q.device)[None, :]
    in_recent = (s <= t) & (s > t - recent)
    eligible = s <= t - recent
    idx = acc.masked_fill(~eligible, float("-inf")).topk(heavy, dim=-1).indices
    keep = torch.zeros(B, H, S, S, dtype=torch.bool, device=q.device).scatter_(-1, idx, True)
    keep = (keep & eligible) | in_recent
    return keep | (t < cap)  # first `cap` queries: nothing evicted yet (& causal below)


@torch.no_grad()
def forward_h2o(model, ids, cap):
    """Full-sequence loss with a per-layer, per-head H2O mask computed from that layer's own attention."""
    B, S = ids.shape
    pos = torch.arange(S, device=ids.device).expand(B, S)
    h = model.model.embed_tokens(ids)
    cos, sin = rope_cos_sin(pos, model.cfg.head_dim, model.cfg.rope_theta, h.dtype)
    causal = torch.ones(S, S, dtype=torch.bool, device=ids.device).tril()
    for layer in model.model.layers:
        attn = layer.self_attn
        q, k, _ = attn.project(layer.input_layernorm(h), cos, sin)
        mask = h2o_mask(q, expand_heads(k, attn.nq // attn.nkv), cap) & causal
        h, _ = layer(h, cos, sin, Routing("dense"), attn_mask=mask)
    logits = model.lm_head(model.model.norm(h))
    return F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]).float(), ids[:, 1:].reshape(-1))


# Quantised caches at equal bytes (fractions of the fp16 full cache, scales counted); windowed (cap) where the
# quantised cache alone exceeds the budget. int4/int2 follow KIVI: keys per channel over 32-token groups, values
# per token, a 32-token full-precision residual band.
QUANTISED = {
    "int8": "band=0,stores=g1-int8",
    "int4": "band=32,stores=g1-int4c",
    "int4-token": "band=0,stores=g1-int4",
    "int2": "band=32,stores=g1-int2c",
}
# Age cascades (kv_policy.cascade_for_budget): after a 32-token fp16 band keys are read at the first precision
# while young and at the next as they age; the ages follow from the budget. No router.
CASCADES = {
    "age-tiered": "band=32,stores=g1-int8|g1-int4c",
    "age-tiered-int2": "band=32,stores=g1-int8|g1-int4c|g1-int2c",
    "age-tiered-g2": "band=32,stores=g1-int8|g1-int4c|g2-int4c",    # oldest keys: 2 pooled heads (mixSGA's expert), int4
    "age-tiered-g4": "band=32,stores=g1-int8|g1-int4c|g4-int8",     # oldest keys: 1 pooled head, int8
}


def policy_rows(name, pol, S, budgets, H, D, note, routed_by="router"):
    """Rows for one KV policy at each budget. routed_by: 'router' (expert-choice over the model's router
    scores at the rule's ratios), 'pattern' (a fixed interleaved pattern at those ratios: an untrained
    candidate) or 'age' (the stores as an age cascade, kv_policy.cascade_for_budget)."""
    rows = []
    for b in budgets:
        if b >= 1.0:
            continue
        if routed_by == "age":
            p, ratios = kv_policy.cascade_for_budget(pol, b, S, H, D), None
        else:
            p, ratios = kv_policy.for_budget(pol, b, S, H, D)

        def fn(m, ids, p=p, ratios=ratios):
            experts = None
            if ratios is not None and routed_by == "pattern":
                experts = static_pattern(*ids.shape, [round(r * 1000) for r in ratios], ids.device)
            o = m(ids, labels=ids, routing=Routing("policy", policy=p, ratios=ratios, experts=experts),
                  return_logits=False)
            return o.loss, sum(p.held_fraction(e, H, D) for e in o.experts) / len(o.experts)
        how = "; ".join([f"{st.name} to age {a}" for a, st in p.tiers] + [f"cap {p.cap}" if p.cap else ""] +
                        [("ratios " + ":".join(f"{r:.2f}" for r in ratios)) if ratios else ""]).strip("; ") or "fits"
        rows.append((name, b, f"{note}; {how}", fn))
    return rows


# ---------------------------------------------------------------------------------------------- methods

def methods_for(model, S, budgets=BUDGETS, candidates=()):
    """(method, budget, note, fn) where fn(model, ids) -> (loss, kv_fraction). candidates: extra untrained
    KV-policy specs, routed by a fixed pattern (method name 'cand:<spec>')."""
    rows = []
    H, D = model.cfg.num_kv_heads, model.cfg.head_dim

    def dense(m, ids):
        return m(ids, labels=ids, routing=Routing("dense"), return_logits=False).loss, 1.0

    rows.append(("full", 1.0, "dense attention", dense))
    if model.cfg.is_mixsga:
        for b in budgets:
            r = norm_ratios(MIXSGA_RATIOS[b])

            def ec(m, ids, r=r):
                o = m(ids, labels=ids, routing=Routing("expert_choice", ratios=r), return_logits=False)
                return o.loss, sum(held_fraction_of_experts(e) for e in o.experts) / len(o.experts)
            rows.append(("mixsga", b, "progressive expert-choice " + ":".join(map(str, MIXSGA_RATIOS[b])), ec))

        def am(m, ids):
            o = m(ids, labels=ids, routing=Routing("argmax"), return_logits=False)
            return o.loss, sum(held_fraction_of_experts(e) for e in o.experts) / len(o.experts)
        rows.append(("mixsga-argmax", None, "decode routing (causal); budget = achieved", am))
    for b in budgets:
        if b == 1.0:
            continue
        r = GQA_RATIOS[b]
        single = [e for e, x in enumerate(r) if x] if sum(1 for x in r if x) == 1 else None
        note = f"group {[1, 2, 4][single[0]]}" if single else "static positional pattern " + ":".join(map(str, r))

        def gqa(m, ids, r=r):
            ex = static_pattern(*ids.shape, r, ids.device)
            return m(ids, labels=ids, routing=Routing("fixed", experts=ex), return_logits=False).loss, \
                held_fraction_of_experts(ex)
        rows.append(("gqa", b, note, gqa))
    for b in budgets:
        if b == 1.0:
            continue
        cap = cap_for_budget(S, b)

        def win(m, ids, cap=cap):
            mask = window_mask(ids.shape[1], cap, ids.device)
            return m(ids, labels=ids, routing=Routing("dense"), attn_mask=mask, return_logits=False).loss, \
                held_fraction_of_cap(ids.shape[1], cap)

        def h2o(m, ids, cap=cap):
            return forward_h2o(m, ids, cap), held_fraction_of_cap(ids.shape[1], cap)
        rows.append(("window", b, f"{SINKS} sinks + {cap - SINKS} recent (cap {cap})", win))
        rows.append(("h2o", b, f"{cap - cap // 2} heavy + {cap // 2} recent (cap {cap})", h2o))
    for name, spec in QUANTISED.items():
        rows += policy_rows(name, kv_policy.policy(spec), S, budgets, H, D, spec)
    for name, spec in CASCADES.items():
        rows += policy_rows(name, kv_policy.policy(spec), S, budgets, H, D, spec, routed_by="age")
    if model.cfg.kv_policy:
        rows += policy_rows("proposed", kv_policy.policy(model.cfg.kv_policy), S, budgets, H, D,
                            model.cfg.kv_policy)
    for spec in candidates:
        rows += policy_rows("cand:" + spec, kv_policy.policy(spec), S, budgets, H, D, spec, routed_by="pattern")
    return rows
