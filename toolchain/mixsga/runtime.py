"""One run of the exported graph, restated in PyTorch on top of `MixSGAForCausalLM.forward_chunk`: the chunk,
then up to `gen_steps` greedy decode steps, each token's K/V pooled to its routed expert and appended to that
expert's cache. The reference that the ONNX graph (tests), the fixture's test vectors and the engine agree on
(docs/model-format.md, "The ONNX graph").

Cache layout here is the model's: past[l][e] = (key, value), each [1, H_e, T, D]. `as_feeds`/`from_feeds`
convert to and from the graph's token-major `past.{l}.{e}` [1, T, 2, H_e, D].
"""
from dataclasses import dataclass, field

import numpy as np
import torch

from mixsga.model import pool_heads


@dataclass
class RunOutput:
    logits: torch.Tensor  # [1, V] after the chunk's last position
    tokens: list  # t_0 (picked after the chunk) .. t_N (picked after the last loop step)
    route: list = field(default_factory=list)  # [L][N_processed] expert per processed token
    scores: list = field(default_factory=list)  # [L][N_processed] sigmoid router scores [E]
    kv: list = field(default_factory=list)  # [E] -> [n_e, 2, H_e, D], ordered by layer, then token
    margins: list = field(default_factory=list)  # top-1 minus top-2 logit of every pick (t_0 .. t_N)


@torch.no_grad()
def run(model, ids, pos, route_bias, past, gen_steps=0, stop_mask=None, first_mask=None) -> RunOutput:
    """ids/pos: lists (the chunk); past: per-layer per-expert caches, updated in place with every processed
    token; stop_mask: set of ids that end generation; first_mask: additive [V] mask for t_0 (token healing)."""
    cfg = model.cfg
    dev = next(model.parameters()).device
    bias = torch.as_tensor(route_bias, dtype=torch.float32, device=dev)
    stop = set(stop_mask or ())
    L, E = cfg.num_layers, cfg.num_experts
    route = [[] for _ in range(L)]
    scores = [[] for _ in range(L)]
    kv_rows = [[[] for _ in range(L)] for _ in range(E)]

    def feed(tok_ids, tok_pos):
        x = torch.tensor([tok_ids], device=dev)
        p = torch.tensor([tok_pos], device=dev)
        logits, nk, nv, routes, sc = model.forward_chunk(x, p, bias, past)
        for l in range(L):
            for e, g in enumerate(cfg.expert_group_sizes):
                sel = (routes[l][0] == e).nonzero()[:, 0]
                if len(sel):
                    k, v = pool_heads(nk[l][:, :, sel], g), pool_heads(nv[l][:, :, sel], g)
                    pk, pv = past[l][e]
                    past[l][e] = (torch.cat([pk, k.to(pk.dtype)], dim=2), torch.cat([pv, v.to(pv.dtype)], dim=2))
                    kv_rows[e][l].append(torch.stack([k[0], v[0]], dim=0).permute(2, 0, 1, 3))
            route[l] += routes[l][0].tolist()
            scores[l] += list(sc[l][0].double() if sc[l].dtype == torch.float64 else sc[l][0].float())
        return logits if logits.dtype == torch.float64 else logits.float()

    logits = feed(list(ids), list(pos))
    margins = []

    def pick(lg):
        top = torch.topk(lg, 2).values
        margins.append(float(top[0] - top[1]))
        return int(lg.argmax())

    mask = torch.as_tensor(first_mask, dtype=logits.dtype, device=dev) if first_mask is not None else 0
    tokens = [pick(logits[0] + mask)]
    p = int(pos[-1]) + 1
    for _ in range(gen_steps):
        if tokens[-1] in stop:
            break
        tokens.append(pick(feed([tokens[-1]], [p])[0]))
        p += 1
    kv = []
    for e, he in enumerate(cfg.expert_kv_heads()):
        rows = [r for l in range(L) for r in kv_rows[e][l]]
        kv.append(torch.cat(rows, dim=0) if rows else torch.zeros(0, 2, he, cfg.head_dim, dtype=past[0][e][0].dtype))
    return RunOutput(logits=logits, tokens=tokens, route=route, scores=scores, kv=kv, margins=margins)


def as_feeds(past, dtype=np.float32) -> dict:
    """past[l][e] = (k, v) [1, H_e, T, D] -> {past.l.e: [1, T, 2, H_e, D]}."""
    out = {}
    for l, layer in enumerate(past):
        for e, (k, v) in enumerate(layer):
            out[f"past.{l}.{e}"] = np.ascontiguousarray(
                torch.stack([k[0], v[0]], dim=0).permute(2, 0, 1, 3)[None].float().cpu().numpy()).astype(dtype)
    return out


def append_outputs(cache, route, kv):
    """The runtime's cache update on the graph's token-major caches: cache[l][e] = past.{l}.{e} [1, T, 2, H_e, D]
    (numpy, updated in place), route [L, N] and kv[e] [n_e, 2, H_e, D] the outputs of one run. For layer l the rows
    of kv[e] are the tokens t with route[l, t] = e, in token order (what the engine's DocCache.append does).
    Raises ValueError when kv[e] does not hold the rows the route names."""
    route = np.asarray(route)
    for e, rows in enumerate(kv):
        counts = (route == e).sum(axis=1)
        if rows.shape[0] != int(counts.sum()):
            raise ValueError(f"kv.{e} has {rows.shape[0]} rows, route says {int(counts.sum())}")
        at = 0
        for l, n in enumerate(counts.tolist()):
            if n:
                part = rows[None, at:at + n].astype(cache[l][e].dtype, copy=False)
                cache[l][e] = np.concatenate([cache[l][e], part], axis=1)
            at += n


def empty_past(model, dtype=torch.float32):
    return [list(layer) for layer in model.empty_past(dtype=dtype)]
