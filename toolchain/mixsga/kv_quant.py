"""Quantised KV storage, simulated exactly: values are rounded to `bits`-bit codes with one asymmetric (scale,
minimum) pair per group and read back, so attention sees precisely what a cache storing those codes plus fp16
scales returns. In training the rounding is straight-through (identity gradient).

Groups: 'token' mode quantises each token's head vector in groups of `group` channels (values, and keys in the
simple scheme); 'channel' mode (KIVI, Liu et al. ICML 2024) quantises each key channel over groups of `group`
consecutive tokens, which keeps the outlier channels of keys apart. A 'channel' group is only complete once its
last token exists, so such keys must sit in a full-precision recent band of at least `group` tokens first
(kv_policy.Store.needs_band).
"""
import torch

SCALE_BYTES = 4  # one fp16 scale + one fp16 minimum per group


def fake_quant(x: torch.Tensor, bits: int, dim: int, group: int) -> torch.Tensor:
    """Quantise-dequantise `x` along `dim` in groups of `group` elements (the last group padded by repeating
    the final element, which never widens its range)."""
    if bits >= 16:
        return x
    xt = x.movedim(dim, -1)
    n = xt.shape[-1]
    pad = (-n) % group
    if pad:
        xt = torch.cat([xt, xt[..., -1:].expand(*xt.shape[:-1], pad)], dim=-1)
    g = xt.float().reshape(*xt.shape[:-1], -1, group)
    lo, hi = g.amin(-1, keepdim=True), g.amax(-1, keepdim=True)
    levels = 2 ** bits - 1
    scale = ((hi - lo) / levels).clamp(min=1e-8)
    q = ((g - lo) / scale).round().clamp(0, levels) * scale + lo
    q = q.reshape(*xt.shape)[..., :n].to(x.dtype).movedim(-1, dim)
    return x + (q - x).detach()


def bytes_per_head(head_dim: int, bits: int, group: int) -> float:
    """Stored bytes of one token's key (or value) for one head, scales included. Both modes store one (scale,
    min) pair per `group` numbers: per `group` channels of a token, or per channel for `group` tokens."""
    if bits >= 16:
        return 2.0 * head_dim
    return head_dim * bits / 8 + SCALE_BYTES * head_dim / group
