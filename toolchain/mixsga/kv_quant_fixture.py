"""`python -m mixsga kv_quant_fixture`: vectors tying the engine's quantised KV tiers (src/engine/kvQuant.ts,
kvTier.ts, kvCascade.ts) to the PyTorch reference the KV-policy study measured (kv_quant.fake_quant, kv_policy.Store).

Writes test/fixtures/kv-quant/vectors.json (float32 arrays as little-endian base64): random K/V [H, S, D] (with outlier channels, as real keys have) and a
group with exact rounding ties, each quantised by fake_quant as kv_policy reads it (int8/int4 per token and head,
int4 keys per channel over KIVI_GROUP tokens with a padded last group, and whole Store views of the cascade's
stores, pooled heads included), plus each store's bytes per token (Store.fraction, kv_quant.bytes_per_head).
"""
import base64
import json
from pathlib import Path

import torch

from mixsga.kv_policy import KIVI_GROUP, store
from mixsga.kv_quant import bytes_per_head, fake_quant

SEED = 1919
H, S, D = 4, 40, 48  # S: one full KIVI group and a padded one; H, D: the default model's
STORES = ("g1-int8", "g1-int4c", "g2-int4c")
OUT = Path(__file__).resolve().parents[2] / "test" / "fixtures" / "kv-quant" / "vectors.json"


def _flat(t: torch.Tensor) -> str:
    """float32 values, little-endian, base64 (exact and a third of the size of decimals)."""
    return base64.b64encode(t.float().contiguous().numpy().astype("<f4").tobytes()).decode()


def build() -> dict:
    g = torch.Generator().manual_seed(SEED)
    k = torch.randn(H, S, D, generator=g)
    k[:, :, 5] *= 12  # outlier channels (why KIVI quantises keys per channel)
    k[:, :, 17] += 6
    v = torch.randn(H, S, D, generator=g) * 0.7
    ties = torch.arange(D, dtype=torch.float32)[None, None, :].repeat(1, 2, 1) % 16  # int4, scale 1
    ties[0, 0] = torch.arange(D) % 15 + 0.5  # x.5 steps exactly (min 0, max 15: scale 1): round half to even
    ties[0, 0, 0], ties[0, 0, 1] = 0.0, 15.0
    ties[0, 1] = 3.25  # a constant group: scale clamped at 1e-8
    cases = [
        {"name": "int8 per token", "bits": 8, "mode": "token", "shape": [H, S, D], "x": _flat(k),
         "y": _flat(fake_quant(k, 8, -1, D))},
        {"name": "int4 per token", "bits": 4, "mode": "token", "shape": [H, S, D], "x": _flat(v),
         "y": _flat(fake_quant(v, 4, -1, D))},
        {"name": "int4 keys per channel", "bits": 4, "mode": "channel", "shape": [H, S, D], "x": _flat(k),
         "y": _flat(fake_quant(k, 4, -2, KIVI_GROUP))},
        {"name": "int4 ties and a constant group", "bits": 4, "mode": "token", "shape": [1, 2, D], "x": _flat(ties),
         "y": _flat(fake_quant(ties, 4, -1, D))},
    ]
    views = []
    for name in STORES:
        st = store(name)
        if st.key_mode == "channel":  # one KIVI group per record in the engine: the view of the first group
            kk, vv = k[None, :, :KIVI_GROUP], v[None, :, :KIVI_GROUP]
        else:
            kk, vv = k[None], v[None]
        ko, vo = st.view(kk, vv)
        views.append({"store": name, "tokens": kk.shape[2], "k": _flat(ko[0, ::st.group]), "v": _flat(vo[0, ::st.group]),
                      "fraction": st.fraction(H, D)})
    return {"seed": SEED, "heads": H, "tokens": S, "head_dim": D, "kivi_group": KIVI_GROUP, "cases": cases,
            "views": views,
            "bytes_per_head": [{"bits": b, "group": gr, "bytes": bytes_per_head(D, b, gr)}
                               for b, gr in ((8, D), (4, D), (4, KIVI_GROUP))]}


def run(args):
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(build()) + "\n")
    print(f"wrote {out}")


def register(sub):
    p = sub.add_parser("kv_quant_fixture", help="vectors tying the engine's quantised KV to kv_quant.py")
    p.add_argument("--out", default=str(OUT))
    p.set_defaults(func=run)
