"""CPU pre-screen of untrained KV policies on the shipped weights, before spending GPU time on training arms.

Text: this repository's own TypeScript and Python sources (never in the training corpus), cut into windows.
Candidates are routed by a fixed interleaved pattern at the rule's ratios (no trained router), so this only ranks
store sets by what their bytes cost in quality; the GPU study trains the chosen one.

    PYTHONPATH=toolchain python3 lab/kv-policy/prescreen.py --out lab/kv-policy/prescreen.json
"""
import argparse
import json
import math
import time
from pathlib import Path

import torch

from mixsga.baselines import methods_for
from mixsga.from_onnx import model_from_onnx
from mixsga.kv_policy import strip_routers
from mixsga.shards import load_tokenizer, ASSETS

ROOT = Path(__file__).resolve().parents[2]


def windows(n, S):
    tok = load_tokenizer(ASSETS / "tokenizer.json")
    ids = []
    for f in sorted(list((ROOT / "src").rglob("*.ts")) + list((ROOT / "toolchain" / "mixsga").glob("*.py"))):
        ids += [1] + tok.encode(f.read_text()).ids + [2]
    w = torch.tensor(ids[: (len(ids) // S) * S]).view(-1, S)
    step = max(1, len(w) // n)
    return w[::step][:n]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--windows", type=int, default=6)
    ap.add_argument("--seq-len", type=int, default=1024)
    ap.add_argument("--budgets", default="0.25,0.35,0.5")
    ap.add_argument("--candidates", default="band=32,stores=g1-int8|g1-int4|g2-int4|g4-int4;"
                    "band=32,stores=g1-int8|g1-int4|g1-int2c;band=32,stores=g1-int8|g1-int4|g2-int4|evict;"
                    "band=32,stores=g1-fp16|g2-fp16|g4-fp16")
    ap.add_argument("--methods", default="full,window,int8,int4,int4-token,int2")
    ap.add_argument("--out")
    a = ap.parse_args()
    torch.set_num_threads(2)
    model = strip_routers(model_from_onnx(ROOT / "models" / "default")).eval()
    w = windows(a.windows, a.seq_len)
    budgets = [float(b) for b in a.budgets.split(",")]
    rows = []
    with torch.no_grad():
        for name, b, note, fn in methods_for(model, a.seq_len, budgets, [c for c in a.candidates.split(";") if c]):
            if name not in a.methods.split(",") and not name.startswith("cand:"):
                continue
            t0 = time.time()
            losses, kvs = zip(*[fn(model, w[i:i + 1]) for i in range(len(w))])
            loss = sum(x.item() for x in losses) / len(losses)
            rows.append({"method": name, "budget": b, "ppl": round(math.exp(loss), 4), "kv": round(sum(kvs) / len(kvs), 4), "note": note})
            print(f"{name[:60]:60s} {b} ppl={math.exp(loss):.4f} kv={rows[-1]['kv']:.3f} ({time.time() - t0:.0f}s)", flush=True)
    if a.out:
        Path(a.out).write_text(json.dumps({"windows": len(w), "seq_len": a.seq_len, "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
