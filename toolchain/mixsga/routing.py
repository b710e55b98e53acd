"""Token-to-expert routing: progressive expert-choice (training, prefill) and argmax (decode), plus the
consistency loss that teaches the argmax rule to reproduce the expert-choice assignment.

Experts are ordered from most to least expensive (group size 1, 2, 4). Paper: mixSGA, Eqs. 1-5.
"""
import math

import torch
import torch.nn.functional as F


def capacities(seq_len: int, ratios) -> list:
    """Tokens each expert takes from a sequence: ceil(rho_e * L) in order, capped by what is left; the last
    expert takes the rest so that every token gets exactly one expert."""
    left = seq_len
    caps = []
    for i, r in enumerate(ratios):
        k = left if i == len(ratios) - 1 else min(left, math.ceil(r * seq_len - 1e-9))
        caps.append(k)
        left -= k
    return caps


@torch.no_grad()
def expert_choice(scores: torch.Tensor, ratios) -> torch.Tensor:
    """Progressive, exclusive expert-choice routing over each sequence (Eq. 2).

    scores: [B, S, E] router scores in [0, 1]. Returns expert ids [B, S] (int64).
    Expert e picks the top ceil(rho_e * S) tokens by its own score column among tokens not yet taken.
    """
    B, S, E = scores.shape
    expert = torch.full((B, S), E - 1, dtype=torch.long, device=scores.device)
    taken = torch.zeros(B, S, dtype=torch.bool, device=scores.device)
    for e, k in enumerate(capacities(S, ratios)[:-1]):
        if k == 0:
            continue
        # Taken tokens get -1 (< any sigmoid score) instead of the paper's x0 so ties never pick them.
        col = scores[:, :, e].float().masked_fill(taken, -1.0)
        idx = col.topk(k, dim=1).indices
        expert.scatter_(1, idx, e)
        taken.scatter_(1, idx, True)
    return expert


def argmax_route(logits: torch.Tensor, route_bias: torch.Tensor | None = None) -> torch.Tensor:
    """Decode-time routing (Eq. 3): argmax over experts of the router logits (+ runtime bias).
    argmax of sigmoid(r) equals argmax of r, so the bias is added to the logits."""
    if route_bias is not None:
        logits = logits + route_bias
    return logits.argmax(dim=-1)


def consistency_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """L_aux (Eq. 4) as softmax cross-entropy on the pre-sigmoid router logits (reading 2 of the spec).

    Why this reading: decode routes by argmax of the logits, and softmax cross-entropy trains exactly a
    classifier whose argmax is the target expert; its learned class prior reproduces the capacity ratios
    (3:1:6) at decode time. Binary cross-entropy on the sigmoid scores treats the experts as independent
    yes/no questions, so nothing makes the largest score land on the target when several are high."""
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), target.reshape(-1))


def route_shares(expert: torch.Tensor, num_experts: int) -> list:
    counts = torch.bincount(expert.reshape(-1), minlength=num_experts).float()
    return (counts / counts.sum().clamp(min=1)).tolist()
