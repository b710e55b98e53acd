#!/usr/bin/env bash
# End-to-end export of a random-weight TinyLlama-1.1B-shaped Llama on the GPU machine (no network needed):
#   1. transformers LlamaForCausalLM (22 layers, hidden 2048, 32 heads, 4 KV heads, intermediate 5632,
#      vocab 32000, rope_theta 10000, 2048 positions), random weights, saved as sharded safetensors
#   2. python -m mixsga convert          (adds routers: experts with 4, 2, 1 KV heads)
#   3. python -m mixsga export --cuda    (model.cuda.onnx, fp16 weights + KV, external data; built by onnx_graph.py)
#   4. optional: ONNX Runtime (Python, CPU EP) loads the graph and runs one 4-token chunk on empty caches + 4
#      greedy decode steps (format 2 graph)
# Times every step and writes sizes + timings to $OUT/tinyllama-export.json.
#
# Env: OUT (default ./out)  WORK (default /tmp/mixsga-tinyllama)  MIXSGA_TINYLLAMA_SHAPE=small (a few-MB model
# of the same structure, to test the script anywhere)  MIXSGA_EXPORT_CPU=1 (also write the fp32 CPU variant)
#      MIXSGA_ORT_CHECK=0 (skip step 4)  MIXSGA_DEVICE=cuda|cpu (where the checkpoint is loaded; default cuda if available)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
OUT="${OUT:-$ROOT/out}"
WORK="${WORK:-/tmp/mixsga-tinyllama}"
SHAPE="${MIXSGA_TINYLLAMA_SHAPE:-full}"
mkdir -p "$OUT" "$WORK"
rm -rf "$WORK/hf" "$WORK/mixsga" "$WORK/model"
export PYTHONPATH="$ROOT/toolchain${PYTHONPATH:+:$PYTHONPATH}"
export SHAPE WORK OUT
DEVICE="${MIXSGA_DEVICE:-$(python -c 'import torch; print("cuda" if torch.cuda.is_available() else "cpu")')}"
CPU_FLAG="--skip-cpu"; [ "${MIXSGA_EXPORT_CPU:-0}" = "1" ] && CPU_FLAG=""
now() { python -c 'import time; print(time.time())'; }

t0=$(now)
python - <<'EOF'
import os, torch, transformers
shape = os.environ["SHAPE"]
if shape == "small":
    dims = dict(num_hidden_layers=2, hidden_size=128, num_attention_heads=8, num_key_value_heads=4, intermediate_size=344)
else:
    dims = dict(num_hidden_layers=22, hidden_size=2048, num_attention_heads=32, num_key_value_heads=4, intermediate_size=5632)
cfg = transformers.LlamaConfig(vocab_size=32000, rope_theta=10000.0, max_position_embeddings=2048, rms_norm_eps=1e-5,
                               tie_word_embeddings=False, bos_token_id=1, eos_token_id=2, **dims)
torch.manual_seed(0)
model = transformers.LlamaForCausalLM(cfg)
model.save_pretrained(os.path.join(os.environ["WORK"], "hf"), safe_serialization=True, max_shard_size="1GB")
print("hf params", sum(p.numel() for p in model.parameters()))
EOF
t1=$(now)
python -m mixsga convert "$WORK/hf" "$WORK/mixsga"
t2=$(now)
python -m mixsga export "$WORK/mixsga" "$WORK/model" --name "tinyllama-random-$SHAPE" --cuda $CPU_FLAG \
  --device "$DEVICE" --timings-json "$WORK/export-timings.json"
t3=$(now)
python -m mixsga export --verify "$WORK/model"
t4=$(now)

ORT_JSON="$WORK/ort-check.json"
echo '{"skipped": true}' > "$ORT_JSON"
if [ "${MIXSGA_ORT_CHECK:-1}" = "1" ]; then
  timeout "${MIXSGA_ORT_TIMEOUT:-480}" python - "$WORK/model" "$ORT_JSON" <<'EOF' || echo "ORT check failed or timed out (see above)"
import json, sys, time
import numpy as np, onnxruntime as ort
folder, out = sys.argv[1], sys.argv[2]
m = json.load(open(f"{folder}/manifest.json"))
a = m["architecture"]
t = time.time()
sess = ort.InferenceSession(f"{folder}/model.cuda.onnx", providers=["CPUExecutionProvider"])
load_s = time.time() - t
S, STEPS, V = 4, 4, a["vocab_size"]
# format 2: a 4-token chunk on empty token-major caches past.{l}.{e} [1, 0, 2, H_e, D], then 4 greedy decode steps
feed = {"input_ids": np.array([[1, 822, 788, 29898]], np.int64), "position_ids": np.arange(S, dtype=np.int64)[None],
        "route_bias": np.zeros(len(m["experts"]), np.float32), "gen_steps": np.array(STEPS, np.int64),
        "stop_mask": np.zeros(V, bool), "first_mask": np.zeros(V, np.float32)}
for l in range(a["num_layers"]):
    for e, ex in enumerate(m["experts"]):
        feed[f"past.{l}.{e}"] = np.zeros((1, 0, 2, ex["kv_heads"], a["head_dim"]), np.float16)
t = time.time()
outs = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, feed)))
run_s = time.time() - t
lg = outs["logits"]
res = {"skipped": False, "provider": "CPUExecutionProvider", "load_s": load_s, "run_4_tokens_s": run_s,
       "gen_steps": STEPS, "logits_shape": list(lg.shape), "logits_finite": bool(np.isfinite(lg).all()),
       "tokens": outs["tokens"].tolist(), "route_0": outs["route"][0].tolist(), "kv_0_shape": list(outs["kv.0"].shape)}
print(res)
json.dump(res, open(out, "w"))
EOF
fi
t5=$(now)

python - "$t0" "$t1" "$t2" "$t3" "$t4" "$t5" "$DEVICE" <<'EOF'
import json, os, sys
from pathlib import Path
t = [float(x) for x in sys.argv[1:7]]
work, out = Path(os.environ["WORK"]), Path(os.environ["OUT"])
sizes = lambda d: {p.name: p.stat().st_size for p in sorted(Path(d).iterdir()) if p.is_file()}
res = {
    "shape": os.environ["SHAPE"], "trace_device": sys.argv[7],
    "seconds": {"build_hf_random": t[1] - t[0], "convert": t[2] - t[1], "export": t[3] - t[2], "verify": t[4] - t[3],
                "ort_check": t[5] - t[4], "total": t[5] - t[0]},
    "export_steps_s": json.loads((work / "export-timings.json").read_text())["timings_s"],
    "sizes_bytes": {"hf": sizes(work / "hf"), "mixsga": sizes(work / "mixsga"), "model": sizes(work / "model")},
    "ort_check": json.loads((work / "ort-check.json").read_text()),
}
try:
    import torch, onnx, onnxruntime
    res["versions"] = {"torch": torch.__version__, "onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__,
                       "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}
except Exception as e:  # versions are informative only
    res["versions"] = str(e)
(out / "tinyllama-export.json").write_text(json.dumps(res, indent=1) + "\n")
print(json.dumps(res, indent=1))
EOF
