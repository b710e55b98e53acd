"""PyTorch eager reference for the engine's speed figures: the same chunk semantics as the ONNX graph
(`forward_chunk`: per-expert past caches, pooled in-chunk K/V), timed on one device.

    python lab/gpu/bench_torch.py [--checkpoint DIR] [--device cuda] [--dtype float16] [--cuda-graph]

Prints a table and writes JSON: prefill tokens/s for 512- and 2048-token prompts, decode tokens/s at 256/1024/2048
context for KV budgets 100/75/50/25% (capacity ratios 1:0:0, 1:1:0, 3:1:6, 0:0:1), peak GPU memory.

--cuda-graph captures each timed call in one CUDA graph and replays it: the same kernels without the host's
per-kernel launch cost, i.e. what the GPU itself needs for a step (the ceiling a runtime without launch overhead
could reach). forward_chunk has no host syncs, and each configuration's inputs keep their shapes, so it captures."""
import argparse
import json
import platform
import time
from datetime import datetime, timezone

import torch

from mixsga.checkpoint import load_checkpoint
from mixsga.config import ModelConfig
from mixsga.convert import convert
from mixsga.model import MixSGAForCausalLM

BUDGETS = {"100%": (1, 0, 0), "75%": (0.5, 0.5, 0), "50%": (0.3, 0.1, 0.6), "25%": (0, 0, 1)}
TINYLLAMA = dict(vocab_size=32000, hidden_size=2048, intermediate_size=5632, num_layers=22, num_attention_heads=32,
                 num_kv_heads=4, head_dim=64, max_position_embeddings=2048)


def synthetic_past(model, context, ratios, dtype, device):
    """Per-layer, per-expert caches holding `context` tokens split by `ratios` (random K/V: speed only)."""
    D = model.cfg.head_dim
    sizes = [round(r * context) for r in ratios]
    sizes[-1] = context - sum(sizes[:-1])
    return [[(torch.randn(1, h, t, D, dtype=dtype, device=device),) * 2
             for h, t in zip(model.cfg.expert_kv_heads(), sizes)] for _ in range(model.cfg.num_layers)]


def cuda_graphed(fn):
    """fn captured in a CUDA graph; returns its replay. Warm-up on a side stream first (cuBLAS handles, the
    allocator), as torch.cuda.graph requires; the outputs live in the graph's private pool."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(2):
            fn()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        fn()
    return graph.replay


def timed(fn, device, repeat):
    fn()  # warm-up (kernel selection, allocator)
    if device == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(repeat):
        fn()
    if device == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - t) / repeat


@torch.no_grad()
def run(args):
    if args.cuda_graph and args.device != "cuda":
        raise SystemExit("--cuda-graph needs --device cuda")
    dtype = getattr(torch, args.dtype)
    if args.checkpoint:
        model = load_checkpoint(args.checkpoint)
        model = model if model.cfg.is_mixsga else convert(model)
    else:
        torch.manual_seed(0)
        with torch.device(args.device):
            model = convert(MixSGAForCausalLM(ModelConfig(**TINYLLAMA)))
    model = model.to(device=args.device, dtype=dtype).eval()
    bias = torch.zeros(model.cfg.num_experts, dtype=dtype, device=args.device)
    wrap = cuda_graphed if args.cuda_graph else (lambda fn: fn)
    rows = []
    for n in (512, 2048):
        ids = torch.randint(0, 32000, (1, n), device=args.device)
        past = model.empty_past(dtype, args.device)
        pos = torch.arange(n, device=args.device)[None]
        s = timed(wrap(lambda ids=ids, pos=pos, past=past: model.forward_chunk(ids, pos, bias, past)), args.device,
                  args.repeat)
        rows.append({"kind": "prefill", "tokens": n, "ms": s * 1e3, "tokens_per_s": n / s})
    for budget, ratios in BUDGETS.items():
        for ctx in (256, 1024, 2048):
            if args.device == "cuda":
                torch.cuda.reset_peak_memory_stats()
            past = synthetic_past(model, ctx, ratios, dtype, args.device)
            ids = torch.randint(0, 32000, (1, 1), device=args.device)
            pos = torch.tensor([[ctx]], device=args.device)
            s = timed(wrap(lambda ids=ids, pos=pos, past=past: model.forward_chunk(ids, pos, bias, past)),
                      args.device, args.repeat * 4)
            kv_bytes = sum(k.numel() * k.element_size() * 2 for layer in past for k, _ in layer)
            peak = torch.cuda.max_memory_allocated() if args.device == "cuda" else None
            rows.append({"kind": "decode", "budget": budget, "context": ctx, "ms": s * 1e3, "tokens_per_s": 1 / s,
                         "kv_bytes": kv_bytes, "gpu_peak_bytes": peak})
    result = {"engine": "pytorch-cudagraph" if args.cuda_graph else "pytorch-eager", "torch": torch.__version__, "device": args.device,
              "device_name": torch.cuda.get_device_name() if args.device == "cuda" else platform.processor(),
              "dtype": args.dtype, "model": args.checkpoint or "tinyllama-1.1b-shape (random weights)",
              "params": model.num_params(), "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "rows": rows}
    for r in rows:
        what = f"prefill {r['tokens']}" if r["kind"] == "prefill" else f"decode @{r['context']} KV {r['budget']}"
        print(f"{what:28s} {r['ms']:9.2f} ms  {r['tokens_per_s']:10.1f} tok/s")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=1)
    return result


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", help="checkpoint folder; default: a random TinyLlama-1.1B-shaped mixSGA model")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--dtype", default="float16")
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--cuda-graph", action="store_true", help="time CUDA-graph replays of each call (no launch cost)")
    p.add_argument("--out")
    run(p.parse_args())


if __name__ == "__main__":
    main()
