"""What one decode step of the TinyLlama-1.1B shape needs on this GPU when no host launches are paid: a dense fp16
decoder (random weights) written for speed — static KV buffers, fused q/k/v and gate/up weights, SDPA with
grouped KV heads — with the whole step captured in one CUDA graph and replayed. Not the model the engine runs
(no experts, no routing), a ceiling for the hardware: docs/benchmarks.md compares the engine's step against it.

    PYTHONPATH=toolchain python3 lab/gpu/static-decode-ceiling.py --out ceiling.json [--contexts 256,1024,2048]
"""
import argparse
import json
import os
import time
from datetime import datetime, timezone

import torch
import torch.nn.functional as F

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_torch import cuda_graphed  # noqa: E402  (beside this file; mixsga itself via PYTHONPATH=toolchain)

L, D, I, HQ, HKV, HD, V, MAXLEN = 22, 2048, 5632, 32, 4, 64, 32000, 2048


def rms(x, w):
    return (x.float() * torch.rsqrt(x.float().pow(2).mean(-1, keepdim=True) + 1e-5)).to(x.dtype) * w


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--contexts", default="256,1024,2048")
    p.add_argument("--repeat", type=int, default=50)
    p.add_argument("--out")
    a = p.parse_args()
    dev, dt = "cuda", torch.float16
    torch.manual_seed(0)
    w = lambda *s: (torch.randn(*s, device=dev, dtype=dt) * 0.02)
    layers = [dict(ln1=torch.ones(D, device=dev, dtype=dt), qkv=w(D, (HQ + 2 * HKV) * HD), o=w(HQ * HD, D),
                   ln2=torch.ones(D, device=dev, dtype=dt), gu=w(D, 2 * I), down=w(I, D)) for _ in range(L)]
    emb, lm, lnf = w(V, D), w(D, V), torch.ones(D, device=dev, dtype=dt)
    kc = torch.randn(L, 1, HKV, MAXLEN, HD, device=dev, dtype=dt)
    vc = torch.randn(L, 1, HKV, MAXLEN, HD, device=dev, dtype=dt)
    inv = 1.0 / (10000 ** (torch.arange(0, HD, 2, device=dev).float() / HD))
    ang = torch.arange(MAXLEN, device=dev).float()[:, None] * inv
    cos_t, sin_t = torch.cat([ang, ang], -1).cos().to(dt), torch.cat([ang, ang], -1).sin().to(dt)
    tok = torch.zeros(1, dtype=torch.long, device=dev)
    pos = torch.zeros(1, dtype=torch.long, device=dev)
    mask = torch.zeros(1, 1, 1, MAXLEN, device=dev, dtype=dt)

    def rope(x, c, s):
        h = x.shape[-1] // 2
        return x * c + torch.cat([-x[..., h:], x[..., :h]], -1) * s

    def step():
        h = emb[tok][None]  # [1, 1, D]
        c, s = cos_t[pos][None, None], sin_t[pos][None, None]
        for li, lw in enumerate(layers):
            qkv = rms(h, lw["ln1"]) @ lw["qkv"]
            q, k, v = qkv.split([HQ * HD, HKV * HD, HKV * HD], -1)
            q = rope(q.view(1, 1, HQ, HD).transpose(1, 2), c, s)
            k = rope(k.view(1, 1, HKV, HD).transpose(1, 2), c, s)
            kc[li].index_copy_(2, pos, k)
            vc[li].index_copy_(2, pos, v.view(1, 1, HKV, HD).transpose(1, 2))
            o = F.scaled_dot_product_attention(q, kc[li], vc[li], attn_mask=mask, enable_gqa=True)
            h = h + o.transpose(1, 2).reshape(1, 1, HQ * HD) @ lw["o"]
            g, u = (rms(h, lw["ln2"]) @ lw["gu"]).split([I, I], -1)
            h = h + (F.silu(g) * u) @ lw["down"]
        return (rms(h, lnf) @ lm).argmax(-1)

    with torch.no_grad():
        replay = cuda_graphed(step)
        rows = []
        for ctx in [int(x) for x in a.contexts.split(",")]:
            ctx = min(ctx, MAXLEN - 1)
            pos.fill_(ctx)
            mask.fill_(0)
            mask[..., ctx + 1:] = float("-inf")  # cached positions 0..ctx (the step's own key included)
            for kind, fn in (("cuda-graph", replay), ("eager", step)):
                fn()
                torch.cuda.synchronize()
                t = time.perf_counter()
                for _ in range(a.repeat):
                    fn()
                torch.cuda.synchronize()
                ms = (time.perf_counter() - t) / a.repeat * 1e3
                rows.append({"context": ctx, "mode": kind, "ms": ms, "tokens_per_s": 1e3 / ms})
                print(f"{kind:10s} context {ctx:5d}: {ms:7.3f} ms/token  {1e3 / ms:8.1f} tok/s")
    res = {"what": "dense TinyLlama-1.1B-shape fp16 decode step, static KV, one CUDA graph (ceiling; not the engine)",
           "torch": torch.__version__, "device_name": torch.cuda.get_device_name(),
           "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "rows": rows}
    if a.out:
        os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
        with open(a.out, "w") as f:
            json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
