"""`python -m mixsga fixture`: the engine's test model. Deterministically writes test/fixtures/fixture-tiny/:
a random-weight 2-layer mixSGA model (vocab 32008, tied embeddings, so the folder stays small), the real
tokenizer, model.cpu.onnx, manifest.json and vectors.json (docs/model-format.md, "Test vectors").

Expected values come from `MixSGAForCausalLM.forward_chunk` in float64, with the runtime's cache rule applied
between chunks (each chunk token kept at its routed expert, pooled; no eviction or demotion). Before writing,
the generator replays every case through ONNX Runtime and checks it against the vectors.
"""
import json
from pathlib import Path

import numpy as np
import torch

from mixsga import manifest as mf
from mixsga.config import ModelConfig
from mixsga.errors import UserError
from mixsga.export import copy_tokenizer, export_onnx
from mixsga.model import MixSGAForCausalLM, pool_heads

NAME = "fixture-tiny"
SEED = 1243
ATOL = 2e-4  # logits (|value| up to ~40), ORT fp32 vs the float64 reference
SUM_ATOL = 1e-3  # new_key_sum / new_value_sum (sums of up to a few hundred fp32 values)
TOP = 10
CFG = ModelConfig(vocab_size=32008, hidden_size=24, intermediate_size=48, num_layers=2, num_attention_heads=8,
                  num_kv_heads=4, head_dim=8, rope_theta=10000.0, rms_norm_eps=1e-5, max_position_embeddings=2048,
                  tie_word_embeddings=True, expert_group_sizes=(1, 2, 4), ratios=(0.3, 0.1, 0.6))

SNIPPET = '''def fib(n: int) -> int:
    """Return the n-th Fibonacci number."""
    a, b = 0, 1
    for _ in range(n):
        a, b = b, a + b
    return a
'''
SNIPPET_TS = '''export function clamp(x: number, lo = 0, hi = 1): number {
  return Math.min(hi, Math.max(lo, x)); // keep x in [lo, hi]
}
'''


def build_model() -> MixSGAForCausalLM:
    """Random weights large enough that attention, routing and the top logits are far from ties."""
    torch.manual_seed(SEED)
    model = MixSGAForCausalLM(CFG).init_weights(std=0.3, seed=SEED)
    gen = torch.Generator().manual_seed(SEED + 1)
    with torch.no_grad():
        model.model.embed_tokens.weight.copy_(torch.randn(CFG.vocab_size, CFG.hidden_size, generator=gen) * 0.6)
        for layer in model.model.layers:
            r = layer.self_attn.router
            r.weight.copy_(torch.randn(r.weight.shape, generator=gen) * 1.0)
            r.bias.copy_(torch.tensor([0.4, 0.7, 0.3]))  # pushes tokens off expert 0 so every expert is used
        for layer in model.model.layers:  # non-trivial norm weights
            for norm in (layer.input_layernorm, layer.post_attention_layernorm):
                norm.weight.copy_(1 + 0.2 * torch.randn(CFG.hidden_size, generator=gen))
        model.model.norm.weight.fill_(4.0)  # spreads the logits: top-10 values far apart compared to atol
    return model.eval()


def cases(tokenizer):
    """(name, text or None, input ids, chunk sizes, route_bias)."""
    ids1 = tokenizer.encode(SNIPPET).ids[:40]
    ids2 = tokenizer.encode(SNIPPET_TS).ids
    fim = tokenizer.encode("<fim_prefix>def f(x):\n    <fim_suffix>\n    return y<fim_middle>").ids
    out = [
        ("python-chunks-17-1-1-9-12", SNIPPET, ids1, [17, 1, 1, 9, 12], [0.0, 0.0, 0.0]),
        ("ts-route-bias", SNIPPET_TS, ids2, [10, 1, 1, len(ids2) - 12], [-0.7, 0.3, 0.5]),
        ("single-token-first", SNIPPET, tokenizer.encode(SNIPPET).ids[:20], [1, 1, 13, 1, 1, 3], [0.0, 0.0, 0.0]),
        ("fim-psm-token-by-token-tail", None, fim, [len(fim) - 4, 1, 1, 1, 1], [0.0, 0.0, 0.0]),
        ("all-expert-2", SNIPPET, ids1[:12], [5, 7], [-50.0, -50.0, 0.0]),
    ]
    for name, _, ids, sizes, _ in out:
        assert sum(sizes) == len(ids), (name, sizes, len(ids))
    return out


def _f(x) -> float:
    return float(f"{float(x):.8g}")


def reference(model64, ids, sizes, route_bias):
    """Runs the chunks through forward_chunk (float64), carrying the cache as the runtime does."""
    cfg = model64.cfg
    past = model64.empty_past(dtype=torch.float64)
    bias = torch.tensor(route_bias, dtype=torch.float64)
    chunks, expected, margins = [], [], []
    start = 0
    for n in sizes:
        x = torch.tensor([ids[start:start + n]])
        pos = torch.arange(start, start + n)[None]
        with torch.no_grad():
            logits, nk, nv, routes, _ = model64.forward_chunk(x, pos, bias, past)
        top = torch.topk(logits[0], TOP + 1)
        vals = top.values.tolist()
        margins.append(min(a - b for a, b in zip(vals, vals[1:])))
        chunks.append({"input_ids": x[0].tolist(), "position_ids": pos[0].tolist()})
        expected.append({
            "logits_top": [[int(i), _f(v)] for i, v in zip(top.indices[:TOP].tolist(), vals[:TOP])],
            "logits_sum": _f(logits.sum()), "logits_absmax": _f(logits.abs().max()),
            "route": [r[0].tolist() for r in routes],
            "new_key_sum": [_f(k.sum()) for k in nk], "new_value_sum": [_f(v.sum()) for v in nv],
        })
        for l in range(cfg.num_layers):  # the runtime's cache update
            for e, g in enumerate(cfg.expert_group_sizes):
                sel = routes[l][0] == e
                k, v = past[l][e]
                past[l][e] = (torch.cat([k, pool_heads(nk[l][:, :, sel], g)], 2),
                              torch.cat([v, pool_heads(nv[l][:, :, sel], g)], 2))
        start += n
    return chunks, expected, min(margins)


def router_margin(model64, ids, route_bias):
    """Smallest gap between the best and second-best biased router logit over all tokens and layers (one chunk)."""
    gaps = []
    hooks = [layer.self_attn.router.register_forward_hook(lambda m, i, o: gaps.append(o)) for layer in model64.model.layers]
    with torch.no_grad():
        model64.forward_chunk(torch.tensor([ids]), torch.arange(len(ids))[None],
                              torch.tensor(route_bias, dtype=torch.float64), model64.empty_past(torch.float64))
    for h in hooks:
        h.remove()
    r = torch.cat([g[0] for g in gaps]) + torch.tensor(route_bias, dtype=torch.float64)
    top2 = r.topk(2, dim=-1).values
    return float((top2[:, 0] - top2[:, 1]).min())


def replay(onnx_path, vectors, cfg):
    """Feeds every case through ONNX Runtime like the engine does; returns the worst deviations."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    worst = {"logits": 0.0, "sums": 0.0, "routes_equal": True}
    D = cfg.head_dim
    for case in vectors["cases"]:
        past = [[(np.zeros((1, h, 0, D), np.float32),) * 2 for h in cfg.expert_kv_heads()] for _ in range(cfg.num_layers)]
        for chunk, exp in zip(case["chunks"], case["expected"]):
            feed = {"input_ids": np.array([chunk["input_ids"]], np.int64),
                    "position_ids": np.array([chunk["position_ids"]], np.int64),
                    "route_bias": np.array(case["route_bias"], np.float32)}
            for l in range(cfg.num_layers):
                for e in range(cfg.num_experts):
                    feed[f"past_key.{l}.{e}"], feed[f"past_value.{l}.{e}"] = past[l][e]
            out = dict(zip(names, sess.run(None, feed)))
            lg = out["logits"][0].astype(np.float64)
            for i, v in exp["logits_top"]:
                worst["logits"] = max(worst["logits"], abs(lg[i] - v))
            worst["logits"] = max(worst["logits"], abs(lg.max() - exp["logits_top"][0][1]))
            worst["sums"] = max([worst["sums"], abs(lg.sum() - exp["logits_sum"]) / 100] +
                                [abs(out[f"new_key.{l}"].sum(dtype=np.float64) - exp["new_key_sum"][l]) for l in range(cfg.num_layers)] +
                                [abs(out[f"new_value.{l}"].sum(dtype=np.float64) - exp["new_value_sum"][l]) for l in range(cfg.num_layers)])
            for l in range(cfg.num_layers):
                route = out[f"route.{l}"][0]
                worst["routes_equal"] &= route.tolist() == exp["route"][l]
                for e, g in enumerate(cfg.expert_group_sizes):
                    sel = route == e
                    pk = out[f"new_key.{l}"][:, :, sel]
                    pv = out[f"new_value.{l}"][:, :, sel]
                    H = pk.shape[1]
                    pk = pk.reshape(1, H // g, g, -1, D).mean(2)
                    pv = pv.reshape(1, H // g, g, -1, D).mean(2)
                    k, v = past[l][e]
                    past[l][e] = (np.concatenate([k, pk], 2), np.concatenate([v, pv], 2))
    return worst


def generate(out: Path, check=True) -> dict:
    from tokenizers import Tokenizer

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for f in out.iterdir():
        if f.is_file():
            f.unlink()
    copy_tokenizer(out)
    tok = Tokenizer.from_file(str(out / "tokenizer.json"))
    model = build_model()
    export_onnx(model, out / "model.cpu.onnx", external_data=False)
    model64 = build_model().double()
    model64.lm_head.weight = model64.model.embed_tokens.weight
    vcases, stats = [], {"min_top_gap": 1e9, "min_route_margin": 1e9, "expert_tokens": [0] * CFG.num_experts}
    for name, text, ids, sizes, bias in cases(tok):
        chunks, expected, gap = reference(model64, ids, sizes, bias)
        stats["min_top_gap"] = min(stats["min_top_gap"], gap)
        stats["min_route_margin"] = min(stats["min_route_margin"], router_margin(model64, ids, bias))
        for exp in expected:
            for r in exp["route"]:
                for e in r:
                    stats["expert_tokens"][e] += 1
        case = {"name": name}
        if text is not None:
            case["text"] = text
        case.update({"input_ids": ids, "route_bias": bias, "chunks": chunks, "expected": expected})
        vcases.append(case)
    vectors = {"model": NAME, "variant": "cpu", "atol": ATOL, "sum_atol": SUM_ATOL,
               "reference": "PyTorch forward_chunk in float64; cache carried over without eviction or demotion",
               "cases": vcases}
    (out / "vectors.json").write_text(json.dumps(vectors, indent=1) + "\n")
    m = mf.build(NAME, CFG, {"cpu": {"file": "model.cpu.onnx", "kv_dtype": "float32", "weights": "float32"}}, out)
    mf.write(out, m)
    if check:
        if stats["min_top_gap"] < 2 * ATOL or stats["min_route_margin"] < 1e-3 or min(stats["expert_tokens"][:3]) < 10:
            raise UserError(f"fixture not robust enough: {stats}")
        worst = replay(out / "model.cpu.onnx", vectors, CFG)
        stats.update(worst)
        if not worst["routes_equal"] or worst["logits"] > ATOL / 2 or worst["sums"] > SUM_ATOL / 2:
            raise UserError(f"ONNX Runtime disagrees with the vectors: {worst}")
    return stats


def run(args):
    stats = generate(Path(args.output), check=not args.no_check)
    total = sum(f.stat().st_size for f in Path(args.output).iterdir())
    print(f"wrote {args.output} ({total / 1e6:.2f} MB): {json.dumps(stats)}")


def register(sub):
    default = Path(__file__).resolve().parents[2] / "test" / "fixtures" / NAME
    p = sub.add_parser("fixture", help="tiny random mixSGA model + test vectors for the TypeScript engine")
    p.add_argument("--output", default=str(default), help=f"default {default}")
    p.add_argument("--no-check", action="store_true", help="skip the ONNX Runtime replay check")
    p.set_defaults(func=run)
