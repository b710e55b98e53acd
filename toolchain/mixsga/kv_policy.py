"""Age-aware token-wise KV policies: which view of each cached token a query reads, and what the cache holds.

A policy keeps the first `sinks` tokens and the newest `band` tokens (counted back from the reading query) at full
KV: every head, fp16. A token older than the band is read through its *store*, the expert its router chose among
`stores`: K/V heads mean-pooled in groups of `group` (mixSGA's experts), quantised to `bits` (kv_quant), or
evicted (`group` 0). `cap` > 0 also evicts every non-sink key older than `cap` tokens (a sliding window).

One definition covers every cache the study compares at equal bytes:
  proposed   band + routed stores that differ in heads and precision (issue 19's age-aware mixSGA)
  int8/int4  one quantised store for every token (int4: KIVI's per-channel keys with a full-precision residual
             band); windowed with `cap` where the quantised cache alone exceeds the budget
  trained window: band only, every older token on the evict store

Attention reads [K; K_old] (2S keys) under a mask that shows key s to query t in full when t - s < band (or s is a
sink) and through its store otherwise, so one SDPA call gives the exact semantics in training and evaluation.
Byte accounting (`held_fraction`) is that of baselines.py: sum over queries of the bytes held, relative to a full
fp16 cache holding every token, so rows of every method are comparable.
"""
from dataclasses import dataclass, replace
from functools import lru_cache

import torch
import torch.nn.functional as F

from mixsga.kv_quant import bytes_per_head, fake_quant
from mixsga.model import expand_heads, pool_heads

KIVI_GROUP = 32  # tokens per key scale in channel mode (KIVI's group size)


@dataclass(frozen=True)
class Store:
    """How one expert stores an old token's K/V."""
    group: int = 1           # KV heads pooled in groups of this size (1 = every head); 0 = evicted
    bits: int = 16
    key_mode: str = "token"  # "token": per token and head; "channel": per key channel over KIVI_GROUP tokens
    group_channels: int = 0  # channels per (scale, min) in token mode; 0 = the whole head

    @property
    def name(self) -> str:
        if self.group == 0:
            return "evict"
        return f"g{self.group}-" + ("fp16" if self.bits >= 16 else f"int{self.bits}" + ("c" if self.key_mode == "channel" else ""))

    @property
    def needs_band(self) -> int:
        """A channel-mode key group is complete only KIVI_GROUP tokens later: until then it must be read in full."""
        return KIVI_GROUP if self.bits < 16 and self.key_mode == "channel" else 0

    def fraction(self, H: int, D: int) -> float:
        """Bytes of one token in this store relative to the full fp16 cache (all H heads, K and V)."""
        if self.group == 0:
            return 0.0
        tg = self.group_channels or D
        kb = bytes_per_head(D, self.bits, KIVI_GROUP if self.key_mode == "channel" else tg)
        vb = bytes_per_head(D, self.bits, tg)
        return (kb + vb) / (self.group * 4 * D)

    def view(self, k, v):
        """[B, H, S, D] keys/values as this store returns them, expanded back to H heads."""
        if self.group == 0:
            return torch.zeros_like(k), torch.zeros_like(v)
        k, v = pool_heads(k, self.group), pool_heads(v, self.group)
        tg = self.group_channels or k.shape[-1]
        k = fake_quant(k, self.bits, -2, KIVI_GROUP) if self.key_mode == "channel" else fake_quant(k, self.bits, -1, tg)
        v = fake_quant(v, self.bits, -1, tg)
        return expand_heads(k, self.group), expand_heads(v, self.group)


@dataclass(frozen=True)
class Policy:
    stores: tuple            # old-token experts, most bytes first
    band: int = 0
    sinks: int = 4
    cap: int = 0
    tiers: tuple = ()        # ((until_age, Store), ...): after the band, keys younger than until_age are read
                             # through that tier's store, whatever their routing (an age cascade); older ones
                             # through their routed store
    by_age: bool = False     # `stores` form an age cascade (cascade_for_budget), not a routed set: no router

    def fractions(self, H, D):
        return [s.fraction(H, D) for s in self.stores]

    def age_limits(self):
        """Upper age bound of the full view, of each tier, and of the routed stores (0 = none)."""
        return [self.band] + [a for a, _ in self.tiers] + [self.cap]

    def base_masks(self, S, device):
        """[S, S] masks of the full view, each tier's view and the routed-store view, before evictions."""
        t = torch.arange(S, device=device)[:, None]
        s = torch.arange(S, device=device)[None, :]
        age, causal, sink = t - s, s <= t, s < self.sinks
        masks, lo = [], 0
        limits = self.age_limits()
        for i, hi in enumerate(limits):
            inside = (age >= lo) & ((age < hi) if hi or i < len(limits) - 1 else torch.ones_like(causal))
            masks.append(causal & (sink | inside) if i == 0 else causal & ~sink & inside)
            lo = max(lo, hi)
        return masks

    def attention_mask(self, S, kept, device):
        """[B, 1, S, V*S] bool over the views [K; K_tier...; K_store]; kept [B, S] = not on an evict store."""
        *fixed, old = self.base_masks(S, device)
        old = old[None] & kept[:, None, :]
        return torch.cat([m[None].expand_as(old) for m in fixed] + [old], dim=-1)[:, None]

    def views(self, k, v, experts, soft=None):
        """(keys, values, kept): the full K/V, each tier's, and every token's routed store's, concatenated along
        the token axis in the order of attention_mask."""
        ko, vo, kept = self.old_view(k, v, experts, soft)
        tk, tv = zip(*[st.view(k, v) for _, st in self.tiers]) if self.tiers else ((), ())
        return torch.cat([k, *tk, ko], dim=2), torch.cat([v, *tv, vo], dim=2), kept

    def old_view(self, k, v, experts, soft=None):
        """(k_old, v_old, kept): every token's K/V as its store returns them. experts [B, S] index self.stores.
        soft [B, S, E] (optional): straight-through weights, so the LM loss reaches the router."""
        if len(self.stores) == 1 and soft is None:
            ko, vo = self.stores[0].view(k, v)
            return ko, vo, torch.full(experts.shape, self.stores[0].group != 0, device=k.device)
        onehot = F.one_hot(experts, len(self.stores)).to(k.dtype)
        if soft is not None:
            onehot = onehot + soft.to(k.dtype) - soft.to(k.dtype).detach()
        ko, vo = torch.zeros_like(k), torch.zeros_like(v)
        used = torch.unique(experts).tolist() if soft is None else range(len(self.stores))
        for e in used:
            sk, sv = self.stores[e].view(k, v)
            w = onehot[:, None, :, e, None]
            ko, vo = ko + w * sk, vo + w * sv
        evict = torch.tensor([s.group == 0 for s in self.stores], device=k.device)
        return ko, vo, ~evict[experts]

    # ------------------------------------------------------------------------------------------ accounting

    def pair_counts(self, S, device="cpu"):
        """Per key position s, the queries reading it through each view: full, each tier, its routed store."""
        s = torch.arange(S, device=device, dtype=torch.float64)
        later = S - s  # queries t >= s, i.e. ages 0 .. later - 1
        counts, lo = [], torch.zeros_like(later)
        limits = self.age_limits()
        for i, hi in enumerate(limits):
            top = later if (i == len(limits) - 1 and not hi) else torch.minimum(later, torch.full_like(later, hi))
            top = torch.maximum(top, lo)
            counts.append(top - lo)
            lo = top
        sink = s < self.sinks
        return [torch.where(sink, later, counts[0])] + [torch.where(sink, torch.zeros_like(c), c) for c in counts[1:]]

    def held_fraction(self, experts, H, D) -> float:
        """Mean over sequences of sum_t bytes held at query t / sum_t bytes of a full fp16 cache."""
        B, S = experts.shape
        full, *tier, old = self.pair_counts(S, experts.device)
        f = torch.tensor(self.fractions(H, D), dtype=torch.float64, device=experts.device)[experts]
        fixed = full + sum(c * st.fraction(H, D) for c, (_, st) in zip(tier, self.tiers))
        return ((fixed + old * f).sum(-1) / (S * (S + 1) / 2)).mean().item()

    def ratios_for_budget(self, budget, S, H, D) -> tuple:
        """The stated rule: the mean store cost c that makes the expected fraction equal `budget`, met by
        splitting old tokens between the two adjacent stores whose costs bracket c (all on the first store if
        even it fits, all on the last if nothing does)."""
        full, *tier, old = self.pair_counts(S)
        total = S * (S + 1) / 2
        fixed = full.sum().item() + sum(c.sum().item() * st.fraction(H, D) for c, (_, st) in zip(tier, self.tiers))
        c = (budget * total - fixed) / max(old.sum().item(), 1e-9)
        f = self.fractions(H, D)
        r = [0.0] * len(f)
        if c >= f[0]:
            r[0] = 1.0
        elif c <= f[-1]:
            r[-1] = 1.0
        else:
            i = next(i for i in range(len(f) - 1) if f[i] >= c >= f[i + 1])
            r[i] = (c - f[i + 1]) / (f[i] - f[i + 1])
            r[i + 1] = 1.0 - r[i]
        return tuple(r)

    def with_cap_for_budget(self, budget, S, H, D) -> "Policy":
        """For a one-store policy: the largest window (cap) whose fraction stays within `budget` (no cap when
        the store fits)."""
        ex = torch.zeros(1, S, dtype=torch.long)
        uncapped = replace(self, cap=0)
        if uncapped.held_fraction(ex, H, D) <= budget + 1e-9:
            return uncapped
        floor = max([self.band, self.sinks + 1] + [a for a, _ in self.tiers])
        cap = _largest(floor, S, lambda c: replace(self, cap=c).held_fraction(ex, H, D) <= budget + 1e-9)
        return replace(self, cap=cap)


def _largest(lo, hi, ok):
    """Largest x in [lo, hi] with ok(x) (ok monotone: true up to some x); lo when none is."""
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if ok(mid) else (lo, mid - 1)
    return lo


@lru_cache(maxsize=256)  # Policy is frozen (hashable); the trainer asks for the same few budgets every micro-batch
def cascade_for_budget(pol: Policy, budget, S, H, D) -> Policy:
    """The age cascade's stated rule. `pol.stores` lists precisions from the most bytes down (e.g. int8, int4,
    int2); after the band, a key is read at the first store while young and at later ones as it ages. The rule
    takes the most precise pair of adjacent stores that can meet the budget without eviction, and moves the age
    at which a key drops from the first to the second until the budget is met; if even the last store alone is too
    big, it is windowed (cap). No router: every token of an age is stored alike."""
    stores = pol.stores
    ex = torch.zeros(1, S, dtype=torch.long)
    only = lambda st, **kw: Policy(stores=(st,), band=pol.band, sinks=pol.sinks, **kw)  # noqa: E731
    if only(stores[0]).held_fraction(ex, H, D) <= budget + 1e-9:
        return only(stores[0])
    for a, b in zip(stores, stores[1:]):
        if only(b).held_fraction(ex, H, D) <= budget + 1e-9:
            fits = lambda age, a=a, b=b: only(b, tiers=((age, a),)).held_fraction(ex, H, D) <= budget + 1e-9  # noqa: E731
            return only(b, tiers=((_largest(pol.band, S, fits), a),))
    return only(stores[-1]).with_cap_for_budget(budget, S, H, D)


# ---------------------------------------------------------------------------------------------- the candidates

def store(spec: str) -> Store:
    """'g1-int4' / 'g2-fp16' / 'g1-int4c' (channel-mode keys) / 'evict'."""
    if spec == "evict":
        return Store(group=0)
    g, prec = spec.split("-")
    bits = 16 if prec == "fp16" else int(prec[3:].rstrip("c"))
    return Store(group=int(g[1:]), bits=bits, key_mode="channel" if prec.endswith("c") else "token")


@lru_cache(maxsize=64)
def policy(spec: str) -> Policy:
    """'band=32,sinks=4,stores=g1-int8|g1-int4|g2-int4|evict' -> Policy; 'order=age' makes the stores an age
    cascade (precisions by age, the ages from the budget) instead of routed experts."""
    kw = dict(x.split("=") for x in spec.split(","))
    if kw.get("order", "route") not in ("route", "age"):
        raise ValueError(f"order must be 'route' or 'age', not {kw['order']!r}")
    return Policy(stores=tuple(store(s) for s in kw["stores"].split("|")), band=int(kw.get("band", 0)),
                  sinks=int(kw.get("sinks", 4)), cap=int(kw.get("cap", 0)), by_age=kw.get("order") == "age")


@lru_cache(maxsize=256)
def for_budget(pol: Policy, budget, S, H, D):
    """(policy, ratios) that serve `budget` at sequence length S: a one-store policy is windowed (cap) to fit and
    routes nothing; an age cascade gets its ages (cascade_for_budget); a routed policy keeps its band and gets the
    rule's capacity ratios."""
    if pol.by_age:
        return cascade_for_budget(pol, budget, S, H, D), None
    if len(pol.stores) == 1:
        return pol.with_cap_for_budget(budget, S, H, D), None
    return pol, pol.ratios_for_budget(budget, S, H, D)


def attach(model, spec: str):
    """Make `model` a KV-policy model: routers sized to the policy's stores (fresh, He-initialised) unless it
    already has that policy; mixSGA experts dropped (the stores replace them)."""
    from mixsga.model import init_router
    if model.cfg.kv_policy == spec:
        return model
    model.cfg = model.cfg.replace(kv_policy=spec, expert_group_sizes=())
    n = model.cfg.router_outputs
    for layer in model.model.layers:
        attn = layer.self_attn
        attn.cfg = model.cfg
        attn.router = torch.nn.Linear(model.cfg.hidden_size, n).to(attn.q_proj.weight.device)
        init_router(attn.router)
    return model


def strip_routers(model):
    """A dense model from a mixSGA one (expert 0 is the original attention): the full-KV reference branch."""
    model.cfg = model.cfg.replace(expert_group_sizes=(), kv_policy="")
    for layer in model.model.layers:
        layer.self_attn.cfg = model.cfg
        if hasattr(layer.self_attn, "router"):
            del layer.self_attn.router
    return model
