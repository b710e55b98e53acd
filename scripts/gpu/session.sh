#!/usr/bin/env bash
# The GPU-machine side of one training + benchmark session, one subcommand per device call (each call is limited
# to 10 minutes and carries at most 64 MiB, so parts arrive in separate calls; long jobs run detached).
#
#   scripts/gpu/session.sh collect DIR      copy a carried part folder (.gpu/xfer/<part>) into $STAGE
#   scripts/gpu/session.sh train            reassemble the corpus, then shards -> dense -> mixSGA -> ablations ->
#                                           eval_ppl, detached (scripts/train-default.sh all), in $RUNS
#   scripts/gpu/session.sh status           progress of the detached job
#   scripts/gpu/session.sh fetch            the trained mixSGA checkpoint (fp16, split in 15 MB parts) + eval
#                                           JSON + logs into $OUT for the trip back
#   scripts/gpu/session.sh bench            stage Node 22 + engine + CUDA provider (scripts/gpu/unpack.sh), export
#                                           the default model's CUDA variant and a TinyLlama-1.1B-shaped model,
#                                           run the engine's GPU suite on CUDA and CPU EPs + the PyTorch reference
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
STAGE=${STAGE:-/root/stage}; RUNS=${RUNS:-/root/runs}; REPO=${REPO:-/root/repo}; OUT=${OUT:-/tmp/out}
export NCCL_NVLS_ENABLE=0 PYTHONUNBUFFERED=1
case "${1:-}" in
  collect) mkdir -p "$STAGE" && cp -r "$2"/. "$STAGE"/ && ls "$STAGE" ;;
  train)
    # A stable copy of the repo: later calls re-sync the working tree, the detached job must not see that.
    rm -rf "$REPO" && mkdir -p "$REPO" && cp -a "$ROOT"/. "$REPO"/
    if [ -d "$ROOT/.whl" ]; then python3 -m pip install -q --no-index --no-deps --target /root/site "$ROOT"/.whl/*.whl; fi
    export PYTHONPATH=/root/site:$REPO/toolchain
    cat $(ls "$STAGE"/corpus.tar.part* | sort) > /root/corpus.tar
    echo "$(awk '$2=="corpus.tar"{print $1}' "$STAGE/SHA256SUMS") /root/corpus.tar" | sha256sum -c
    mkdir -p /root/corpus && tar xf /root/corpus.tar -C /root/corpus && ls -la /root/corpus
    SP=$(python3 -c 'import site; print(site.getsitepackages()[0])')
    cd "$REPO"
    CORPUS=/root/corpus SHARDS=/root/shards PY=python3 \
      SHARDS_CMD="python3 -m mixsga shards --corpus /root/corpus --site-packages $SP --out /root/shards --workers 16" \
      DENSE_MIN=${DENSE_MIN:-7} bash scripts/train-default.sh all "$RUNS"
    ;;
  status)
    cd "$REPO" && bash scripts/train-default.sh status "$RUNS" || true
    tail -n 5 "$RUNS/all.log" 2>/dev/null; nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader ;;
  fetch)
    mkdir -p "$OUT"
    export PYTHONPATH=/root/site:$REPO/toolchain
    python3 - "$RUNS/mixsga/ckpt" /root/fetch <<'PY'
import sys, torch
from safetensors.torch import load_file, save_file
import shutil, pathlib
src, dst = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2]); dst.mkdir(parents=True, exist_ok=True)
state = load_file(str(src / "model.safetensors"))
save_file({k: v.half() for k, v in state.items()}, str(dst / "model.safetensors"))  # fp16 halves the trip
shutil.copy(src / "config.json", dst / "config.json")
PY
    tar -C /root/fetch -cf - . | split -b 15M -d -a 1 - "$OUT/ckpt.tar.part"
    tar -C "$RUNS" -czf "$OUT/runs.tgz" --exclude='*.safetensors' --exclude='*.pt' --exclude=shards .
    ls -la "$OUT" ;;
  tinyllama)
    # Detached: random-weight TinyLlama-1.1B-shaped HF checkpoint -> convert -> fp16 CUDA export (external data).
    export PYTHONPATH=/root/site:$REPO/toolchain
    mkdir -p /root/tlout
    OUT=/root/tlout WORK=/root/tl MIXSGA_ORT_CHECK=0 setsid nohup bash "$REPO/scripts/gpu-export-tinyllama.sh" \
      > /root/tlout/export.log 2>&1 < /dev/null &
    echo "started TinyLlama export: /root/tlout/export.log" ;;
  bench)
    # Needs: the parts collected (node, runtime, CUDA provider), the trained checkpoint, the TinyLlama export.
    export PYTHONPATH=/root/site:$REPO/toolchain
    mkdir -p "$OUT"
    [ -x /root/rt/node ] || bash "$ROOT/scripts/gpu/unpack.sh" assemble
    [ -f /root/models/default/manifest.json ] || python3 -m mixsga export "$RUNS/mixsga/ckpt" /root/models/default \
      --name mixsga-default --cuda --cpu-weights int8
    cp /root/tlout/*.json "$OUT"/ 2>/dev/null || true
    cd /root/rt
    B="./node dist/bench.js --suite gpu"
    timeout 150 $B --model /root/models/default --device cuda --out "$OUT/gpu-default-cuda.json" || echo "FAILED default cuda"
    timeout 100 $B --model /root/models/default --device cpu --variant cpu --out "$OUT/gpu-default-cpu.json" || echo "FAILED default cpu"
    if [ -f /root/tl/model/manifest.json ]; then
      timeout 200 $B --model /root/tl/model --device cuda --out "$OUT/gpu-tinyllama-cuda.json" || echo "FAILED tl cuda"
      timeout 120 $B --model /root/tl/model --device cpu --variant cuda --quick --out "$OUT/gpu-tinyllama-cpu.json" || echo "FAILED tl cpu"
    fi
    timeout 60 ./node dist/bench.js --model /root/models/default --device cuda --iterations 20 --out "$OUT/completion-cuda.json" || echo "FAILED completion cuda"
    cd "$REPO"
    timeout 120 python3 -m mixsga.bench_torch --device cuda --out "$OUT/torch-tinyllama.json" || echo "FAILED torch tl"
    timeout 60 python3 -m mixsga.bench_torch --checkpoint "$RUNS/mixsga/ckpt" --device cuda --out "$OUT/torch-default.json" || echo "FAILED torch default"
    nvidia-smi > "$OUT/nvidia-smi.txt"; ls -la "$OUT" ;;
  *) sed -n 2,14p "$0"; exit 2 ;;
esac
