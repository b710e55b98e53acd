"""`python -m mixsga fixture`: the engine's test model. Deterministically writes test/fixtures/fixture-tiny/:
a random-weight 2-layer mixSGA model (vocab 32008, tied embeddings, so the folder stays small), the real
tokenizer, model.cpu.onnx, manifest.json and vectors.json (docs/model-format.md, "Test vectors").

Expected values come from `mixsga.runtime.run` (the graph's semantics on `forward_chunk`) in float64: each run
is a chunk plus greedy decode steps, and every processed token is kept at its routed expert, pooled, for the
next run (no eviction or demotion). Before writing, the generator replays every case through ONNX Runtime the
way the engine does and checks it against the vectors.
"""
import json
from pathlib import Path

import numpy as np
import torch

from mixsga import manifest as mf
from mixsga.config import ModelConfig
from mixsga.errors import UserError
from mixsga import runtime
from mixsga.export import copy_tokenizer, export_onnx
from mixsga.model import MixSGAForCausalLM

NAME = "fixture-tiny"
SEED = 1243
ATOL = 2e-4  # logits (|value| up to ~40), ORT fp32 vs the float64 reference
SUM_ATOL = 1e-3  # kv_sum / scores_sum (sums of up to a few thousand fp32 values)
TOP = 10
CFG = ModelConfig(vocab_size=32008, hidden_size=24, intermediate_size=48, num_layers=2, num_attention_heads=8,
                  num_kv_heads=4, head_dim=16, rope_theta=10000.0, rms_norm_eps=1e-5, max_position_embeddings=2048,
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


# A run: (input ids, decode steps, stop ids, allowed first ids or None). "next" as ids continues after the
# previous run's last picked token (what the engine does to keep generating).
def cases(tokenizer):
    """(name, text or None, runs, route_bias)."""
    ids1 = tokenizer.encode(SNIPPET).ids[:40]
    ids2 = tokenizer.encode(SNIPPET_TS).ids
    fim = tokenizer.encode("<fim_prefix>def f(x):\n    <fim_suffix>\n    return y<fim_middle>").ids
    split = lambda ids, sizes: [ids[sum(sizes[:i]):sum(sizes[:i + 1])] for i in range(len(sizes))]  # noqa: E731
    c1 = split(ids1, [17, 1, 1, 9, 12])
    c2 = split(ids2, [10, 1, 1, len(ids2) - 12])
    c3 = split(tokenizer.encode(SNIPPET).ids[:20], [1, 1, 13, 1, 1, 3])
    c4 = split(fim, [len(fim) - 4, 1, 1, 1, 1])
    out = [
        ("python-chunks-then-generate", SNIPPET, [(c, 0, [], None) for c in c1[:-1]] + [(c1[-1], 6, [], None)], [0.0, 0.0, 0.0]),
        ("ts-route-bias-generate-continue", SNIPPET_TS, [(c, 0, [], None) for c in c2[:-1]] + [(c2[-1], 3, [], None), ("next", 4, [], None)],
         [-0.7, 0.3, 0.5]),
        ("single-token-first", SNIPPET, [(c, 0, [], None) for c in c3], [0.0, 0.0, 0.0]),
        ("fim-psm-token-by-token-tail", None, [(c, 0, [], None) for c in c4[:-1]] + [(c4[-1], 8, [], None), ("next", 5, [], None)],
         [0.0, 0.0, 0.0]),
        ("all-expert-2", SNIPPET, [(ids1[:5], 0, [], None), (ids1[5:12], 4, [], None)], [-50.0, -50.0, 0.0]),
    ]
    return out


def _f(x) -> float:
    return float(f"{float(x):.8g}")


def resolve(runs, tokenizer, model64, bias):
    """Runs every case's runs through the float64 reference; returns the run specs (with "next" resolved), the
    expected values and the smallest pick / router margins seen."""
    past = runtime.empty_past(model64, torch.float64)
    specs, expected, margins, route_margins = [], [], [], []
    start, last = 0, None
    for ids, steps, stop, first in runs:
        ids = [last] if ids == "next" else list(ids)
        pos = list(range(start, start + len(ids)))
        first_mask = None
        if first is not None:
            first_mask = np.full(model64.cfg.vocab_size, -np.inf)
            first_mask[first] = 0
        out = runtime.run(model64, ids, pos, bias, past, steps, set(stop), first_mask)
        n = len(out.route[0])
        top = torch.topk(out.logits[0], TOP + 1)
        vals = top.values.tolist()
        margins += [min(a - b for a, b in zip(vals, vals[1:]))] + out.margins
        for l in range(model64.cfg.num_layers):
            r = torch.stack(out.scores[l]).clamp(1e-12, 1 - 1e-12)
            lg = torch.log(r) - torch.log1p(-r) + torch.tensor(bias, dtype=torch.float64)
            t2 = lg.topk(2, dim=-1).values
            route_margins.append(float((t2[:, 0] - t2[:, 1]).min()))
        spec = {"input_ids": ids, "position_ids": pos, "gen_steps": steps}
        if stop:
            spec["stop_ids"] = stop
        if first is not None:
            spec["first_allowed"] = first
        specs.append(spec)
        expected.append({
            "logits_top": [[int(i), _f(v)] for i, v in zip(top.indices[:TOP].tolist(), vals[:TOP])],
            "logits_sum": _f(out.logits.sum()), "logits_absmax": _f(out.logits.abs().max()),
            "tokens": out.tokens, "route": out.route,
            "kv_sum": [_f(k.sum()) for k in out.kv], "kv_rows": [int(k.shape[0]) for k in out.kv],
            "scores_sum": [_f(torch.stack(s).sum()) for s in out.scores],
        })
        start += n
        last = out.tokens[-1]
    return specs, expected, min(margins), min(route_margins)


def replay(onnx_path, vectors, cfg):
    """Feeds every case through ONNX Runtime like the engine does; returns the worst deviations."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    worst = {"logits": 0.0, "sums": 0.0, "routes_equal": True, "tokens_equal": True}
    D, L, V = cfg.head_dim, cfg.num_layers, cfg.vocab_size
    for case in vectors["cases"]:
        past = [[np.zeros((1, 0, 2, h, D), np.float32) for h in cfg.expert_kv_heads()] for _ in range(L)]
        for run, exp in zip(case["runs"], case["expected"]):
            stop = np.zeros(V, bool)
            stop[run.get("stop_ids", [])] = True
            first = np.zeros(V, np.float32)
            if "first_allowed" in run:
                first[:] = -np.inf
                first[run["first_allowed"]] = 0
            feed = {"input_ids": np.array([run["input_ids"]], np.int64), "position_ids": np.array([run["position_ids"]], np.int64),
                    "route_bias": np.array(case["route_bias"], np.float32), "gen_steps": np.array(run["gen_steps"], np.int64),
                    "stop_mask": stop, "first_mask": first}
            for l in range(L):
                for e in range(cfg.num_experts):
                    feed[f"past.{l}.{e}"] = past[l][e]
            out = dict(zip(names, sess.run(None, feed)))
            lg = out["logits"][0].astype(np.float64)
            for i, v in exp["logits_top"]:
                worst["logits"] = max(worst["logits"], abs(lg[i] - v))
            worst["logits"] = max(worst["logits"], abs(lg.max() - exp["logits_top"][0][1]))
            worst["tokens_equal"] &= out["tokens"].tolist() == exp["tokens"]
            worst["routes_equal"] &= out["route"].tolist() == exp["route"]
            worst["sums"] = max([worst["sums"], abs(lg.sum() - exp["logits_sum"]) / 100] +
                                [abs(out[f"kv.{e}"].sum(dtype=np.float64) - exp["kv_sum"][e]) for e in range(cfg.num_experts)] +
                                [abs(out["scores"][l].sum(dtype=np.float64) - exp["scores_sum"][l]) for l in range(L)])
            runtime.append_outputs(past, out["route"], [out[f"kv.{e}"] for e in range(cfg.num_experts)])
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
    for name, text, runs, bias in cases(tok):
        specs, expected, gap, rmargin = resolve(runs, tok, model64, bias)
        stats["min_top_gap"] = min(stats["min_top_gap"], gap)
        stats["min_route_margin"] = min(stats["min_route_margin"], rmargin)
        for exp in expected:
            for r in exp["route"]:
                for e in r:
                    stats["expert_tokens"][e] += 1
        case = {"name": name}
        if text is not None:
            case["text"] = text
        case.update({"route_bias": bias, "runs": specs, "expected": expected})
        vcases.append(case)
    vectors = {"model": NAME, "variant": "cpu", "format_version": mf.FORMAT_VERSION, "atol": ATOL, "sum_atol": SUM_ATOL,
               "reference": "mixsga.runtime.run (forward_chunk + greedy loop) in float64; processed tokens carried "
                            "over to the next run, without eviction or demotion",
               "cases": vcases}
    (out / "vectors.json").write_text(json.dumps(vectors, indent=1) + "\n")
    m = mf.build(NAME, CFG, {"cpu": {"file": "model.cpu.onnx", "kv_dtype": "float32", "weights": "float32"}}, out)
    mf.write(out, m)
    if check:
        if stats["min_top_gap"] < 2 * ATOL or stats["min_route_margin"] < 1e-3 or min(stats["expert_tokens"][:3]) < 10:
            raise UserError(f"fixture not robust enough: {stats}")
        worst = replay(out / "model.cpu.onnx", vectors, CFG)
        stats.update(worst)
        if not (worst["routes_equal"] and worst["tokens_equal"]) or worst["logits"] > ATOL / 2 or worst["sums"] > SUM_ATOL / 2:
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
