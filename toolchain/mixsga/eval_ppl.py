"""`eval_ppl`: held-out perplexity vs KV budget for mixSGA and the baselines of mixsga.baselines.

    python -m mixsga eval_ppl --model runs/mix/ckpt --data SHARDS --out runs/eval/mix.json [--windows 64]

Every method sees the same fixed windows (mixsga.data.fixed_windows, no FIM). The KV fraction column is the
achieved average per-position cache size relative to the dense model (see baselines.py), so for mixSGA's
decode-style argmax routing it is whatever the router does, not a target.
"""
import json
import math
import time
from contextlib import nullcontext
from pathlib import Path

import torch
import torch.nn.functional as F

from mixsga.baselines import BUDGETS, methods_for
from mixsga.checkpoint import load_checkpoint
from mixsga.data import fixed_windows
from mixsga.errors import UserError
from mixsga.model import Routing


def _device_and_autocast(model):
    device = next(model.parameters()).device
    return device, torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else nullcontext()


@torch.no_grad()
def evaluate_model(model, windows, batch=8, budgets=BUDGETS, methods=None, log=print, candidates=()):
    device, autocast = _device_and_autocast(model)
    model.eval()
    S = windows.shape[1]
    rows = []
    for name, budget, note, fn in methods_for(model, S, budgets, candidates):
        if methods and name not in methods and not name.startswith("cand:"):
            continue
        t0 = time.time()
        loss_sum, kv_sum, n = 0.0, 0.0, 0
        for i in range(0, len(windows), batch):
            ids = windows[i:i + batch].to(device)
            with autocast:
                loss, kv = fn(model, ids)
            loss_sum += loss.float().item() * len(ids)
            kv_sum += kv * len(ids)
            n += len(ids)
        loss = loss_sum / n
        rows.append({"method": name, "budget": budget, "kv_fraction": round(kv_sum / n, 4), "loss": round(loss, 5),
                     "ppl": round(math.exp(min(loss, 50)), 4), "note": note})
        log(f"  {name[:40]:14s} {'' if budget is None else f'{budget:.0%}':>5s} kv={kv_sum / n:.3f} "
            f"ppl={math.exp(min(loss, 50)):.3f}  ({time.time() - t0:.1f}s)")
    return rows


@torch.no_grad()
def position_profile(model, windows, buckets, batch=8):
    """Held-out perplexity per position bucket (equal slices of the window), for the routings the extension uses:
    decode-style argmax and the trained-ratio expert-choice for a mixSGA model, dense attention otherwise. Shows
    whether the model holds up at positions it was (not) trained on; RoPE models fall apart past their training
    length."""
    device, autocast = _device_and_autocast(model)
    model.eval()
    S = windows.shape[1]
    if S % buckets:
        raise UserError(f"--position-buckets {buckets} does not divide --seq-len {S}")
    modes = ([("mixsga-argmax", Routing("argmax")),
              ("mixsga", Routing("expert_choice", ratios=tuple(model.cfg.ratios)))] if model.cfg.is_mixsga
             else [("full", Routing("dense"))])
    out = []
    for name, routing in modes:
        sums = torch.zeros(buckets, dtype=torch.float64)
        for i in range(0, len(windows), batch):
            ids = windows[i:i + batch].to(device)
            with autocast:
                logits = model(ids, routing=routing).logits
            nll = F.cross_entropy(logits[:, :-1].float().transpose(1, 2), ids[:, 1:], reduction="none")
            nll = F.pad(nll, (1, 0), value=float("nan"))  # position p holds the loss of predicting token p
            sums += nll.reshape(len(ids), buckets, S // buckets).nanmean(-1).sum(0).double().cpu()
        loss = (sums / len(windows)).tolist()
        out.append({"method": name, "bucket_tokens": S // buckets,
                    "ppl": [round(math.exp(min(x, 50)), 4) for x in loss], "loss": [round(x, 5) for x in loss]})
    return out


def format_table(rows):
    methods = list(dict.fromkeys(r["method"] for r in rows))
    budgets = sorted({r["budget"] for r in rows if r["budget"] is not None})
    lines = ["method          " + "".join(f"{b:>10.0%}" for b in budgets) + "   other"]
    for m in methods:
        cells, other = [], ""
        for b in budgets:
            r = next((r for r in rows if r["method"] == m and r["budget"] == b), None)
            cells.append(f"{r['ppl']:>10.3f}" if r else f"{'n/a':>10s}")
        for r in rows:
            if r["method"] == m and r["budget"] is None:
                other = f"   ppl {r['ppl']:.3f} at kv {r['kv_fraction']:.1%}"
        lines.append(f"{m:16s}" + "".join(cells) + other)
    return "\n".join(lines)


def run(args):
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    model = load_checkpoint(args.model, device=device)
    windows = fixed_windows(args.data, args.windows, args.seq_len)
    if args.seq_len > model.cfg.max_position_embeddings:
        raise UserError(f"--seq-len {args.seq_len} exceeds max_position_embeddings {model.cfg.max_position_embeddings}")
    print(f"[eval_ppl] {args.model}: {len(windows)} windows x {args.seq_len} tokens on {device}")
    methods = [] if args.methods == "none" else args.methods.split(",") if args.methods else None
    budgets = [float(b) for b in args.budgets.split(",")] if args.budgets else BUDGETS
    candidates = [c for c in (args.candidates or "").split(";") if c]
    rows = evaluate_model(model, windows, batch=args.batch, budgets=budgets, methods=methods,
                          candidates=candidates) if methods != [] else []
    print(format_table(rows))
    profile = position_profile(model, windows, args.position_buckets, args.batch) if args.position_buckets else None
    for r in profile or []:
        print(f"  by position ({r['bucket_tokens']} per bucket) {r['method']:14s} " + " ".join(f"{x:.3f}" for x in r["ppl"]))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps({"model": str(args.model), "windows": len(windows),
                                              "seq_len": args.seq_len, "mixsga": model.cfg.is_mixsga,
                                              "trained_ratios": list(model.cfg.ratios) if model.cfg.is_mixsga else None,
                                              "rows": rows, **({"by_position": profile} if profile else {})},
                                             indent=1) + "\n")
    return 0


def register(sub):
    p = sub.add_parser("eval_ppl", help="held-out perplexity vs KV budget: mixSGA, GQA, sliding window, H2O")
    p.add_argument("--model", required=True, help="checkpoint folder")
    p.add_argument("--data", required=True, help="folder with val_*.bin shards")
    p.add_argument("--windows", type=int, default=64)
    p.add_argument("--seq-len", type=int, default=1024)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--methods", help="comma list of full,mixsga,mixsga-argmax,gqa,window,h2o,int8,int4,"
                   "int4-token,int2,age-tiered,age-tiered-int2,age-tiered-g2,age-tiered-g4,proposed (default all; 'none' with --position-buckets for the profile alone)")
    p.add_argument("--candidates", help="';'-separated untrained KV-policy specs to try (kv_policy.policy), routed "
                   "by a fixed pattern at the rule's ratios")
    p.add_argument("--position-buckets", type=int, default=0,
                   help="also report perplexity per position bucket (K equal slices of each window)")
    p.add_argument("--budgets", help="comma list of KV fractions (default 0.25,0.35,0.5,0.75,1.0)")
    p.add_argument("--device")
    p.add_argument("--out", help="JSON results file")
    p.set_defaults(func=run)
