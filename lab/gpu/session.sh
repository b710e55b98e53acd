#!/usr/bin/env bash
# The GPU-machine side of one training + benchmark session, one subcommand per device call (each call is limited
# to 10 minutes and carries at most 64 MiB, so parts arrive in separate calls; long jobs run detached and write
# under /root, polled with `status`).
#
#   lab/gpu/session.sh collect DIR      copy a carried part folder (.gpu/xfer/<part>) into $STAGE
#   lab/gpu/session.sh train            reassemble the corpus, then shards -> dense trunk -> branches (mixSGA,
#                                           dense reference, GQA-2, ablations) -> long-context phase -> eval_ppl,
#                                           detached (scripts/train-default.sh all), in $RUNS; TRAIN_STAGES picks
#                                           stages (e.g. shards,extend,eval after `seed`), PIPELINE_FLAGS adds
#                                           pipeline flags (--recipe toolchain/recipes/study-v1.json, --set ...)
#   lab/gpu/session.sh seed DIR NAME    a carried checkpoint folder as $RUNS/NAME/ckpt, for later stages
#   lab/gpu/session.sh tinyllama        detached: random TinyLlama-1.1B-shaped HF checkpoint -> convert ->
#                                           fp16 ONNX (lab/gpu/export-tinyllama.sh), in /root/tl
#   lab/gpu/session.sh status           progress of the detached jobs
#   lab/gpu/session.sh bench            detached, after training: stage Node 22 + engine + CUDA provider
#                                           (lab/gpu/unpack.sh), export the trained model, run the engine's GPU
#                                           suite on CUDA and CPU EPs, the completion suite and the PyTorch
#                                           reference; results in $BENCH
#   lab/gpu/session.sh shipped          detached: the shipped model as carried (models/default files collected into
#                                           /root/models/default, not re-exported): CUDA EP vs CPU EP on its fp16 file
#                                           (lab/gpu/ep-diff.js), the engine's GPU and completion suites on CUDA,
#                                           CUDA-vs-CPU completions (lab/gpu/agree.sh); the TinyLlama-shaped export
#                                           and its GPU suite; with CEILING=1 also the PyTorch references (eager, CUDA
#                                           graphs) and a dense static-KV CUDA-graph step
#                                           (lab/gpu/static-decode-ceiling.py); in $BENCH
#   lab/gpu/session.sh smoke            quick CUDA check of the graph (placement, one decode run), in the call
#   lab/gpu/session.sh fetch            into $OUT for the trip back: the trained checkpoint $RUNS/$FETCH_RUN
#                                           (default mixsga-2048; fp16, 15 MB parts), runs.tgz (logs, eval JSON,
#                                           configs), bench.tgz (bench JSON)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
STAGE=${STAGE:-/root/stage}; RUNS=${RUNS:-/root/runs}; REPO=${REPO:-/root/repo}; OUT=${OUT:-/tmp/out}
BENCH=${BENCH:-/root/bench}; TL=${TL:-/root/tl}
export NCCL_NVLS_ENABLE=0 PYTHONUNBUFFERED=1
snapshot_repo() {  # a stable copy in $1: later calls re-sync the working tree, detached jobs must not see that
  [ -f "$1/.snapshot" ] && return
  rm -rf "$1" && mkdir -p "$1" && cp -a "$ROOT"/. "$1"/ && touch "$1/.snapshot"
}
fresh_dist() { [ -d "$1/dist" ] && rm -rf /root/rt/dist && cp -r "$1/dist" /root/rt/dist; }  # dist/ travels via carry
case "${1:-}" in
  collect) mkdir -p "$STAGE" && cp -r "$2"/. "$STAGE"/ && ls "$STAGE" ;;
  seed) mkdir -p "$RUNS/$3" && rm -rf "$RUNS/$3/ckpt.tmp" && cp -r "$2" "$RUNS/$3/ckpt.tmp" \
          && rm -rf "$RUNS/$3/ckpt" && mv "$RUNS/$3/ckpt.tmp" "$RUNS/$3/ckpt" && ls -la "$RUNS/$3/ckpt" ;;
  train)
    snapshot_repo "$REPO"
    # near-duplicate removal needs datasketch, which the GPU machine lacks: carried as a wheel in .whl/
    if [ -d "$ROOT/.whl" ]; then python3 -m pip install -q --no-index --no-deps --target /root/site "$ROOT"/.whl/*.whl; fi
    export PYTHONPATH=/root/site:$REPO/toolchain
    cat $(ls "$STAGE"/corpus.tar.part* | sort) > /root/corpus.tar
    echo "$(awk '$2=="corpus.tar"{print $1}' "$STAGE/SHA256SUMS") /root/corpus.tar" | sha256sum -c
    mkdir -p /root/corpus && tar xf /root/corpus.tar -C /root/corpus && ls -la /root/corpus
    SP=$(python3 -c 'import site; print(site.getsitepackages()[0])')
    cd "$REPO"
    bash scripts/train-default.sh "${TRAIN_STAGES:-all}" "$RUNS" --set data.corpus=/root/corpus \
      --set data.site_packages="$SP" --set data.shards=/root/shards --set data.shard_workers=12 $PIPELINE_FLAGS
    ;;
  tinyllama)
    snapshot_repo "$REPO"
    mkdir -p "$TL/out"
    PYTHONPATH=$REPO/toolchain OUT=$TL/out WORK=$TL MIXSGA_ORT_CHECK=0 setsid nohup nice -n 5 \
      bash "$REPO/lab/gpu/export-tinyllama.sh" > "$TL/export.log" 2>&1 < /dev/null &
    echo "started TinyLlama export: $TL/export.log" ;;
  status)
    [ -d "$REPO" ] && (cd "$REPO" && bash scripts/train-default.sh status "$RUNS" 2>/dev/null | tail -n 24) || true
    tail -n 3 "$RUNS/all.log" 2>/dev/null || true
    echo "== tinyllama"; tail -n 2 "$TL/export.log" 2>/dev/null || true
    echo "== bench"; tail -n 4 "$BENCH/bench.log" 2>/dev/null || true
    nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader ;;
  smoke)
    # Placement and a real decode run on CUDA, on whatever model exists (TinyLlama export, else the fixture).
    [ -x /root/rt/node ] || bash "$ROOT/lab/gpu/unpack.sh" assemble
    fresh_dist "$ROOT"
    M=$TL/model; [ -f "$M/manifest.json" ] || M=$ROOT/test/fixtures/fixture-tiny
    cd /root/rt
    timeout 240 ./node dist/bench.js --suite gpu --model "$M" --device cuda --strict-placement --budgets 50 \
      --contexts 1024 --prefill 512 --warmup 1 --iterations 2 --profile-runs 0 --no-probe --out "$OUT/smoke.json" \
      || echo "SMOKE FAILED (rc $?)" ;;
  bench)
    snapshot_repo /root/repo-bench
    mkdir -p "$BENCH"
    [ -n "${DEFAULT_CKPT:-}" ] && rm -rf /root/default-ckpt && cp -r "$DEFAULT_CKPT" /root/default-ckpt
    REPO=/root/repo-bench DEFAULT_CKPT=${DEFAULT_CKPT:+/root/default-ckpt} setsid nohup bash /root/repo-bench/lab/gpu/session.sh bench-run > "$BENCH/bench.log" 2>&1 < /dev/null &
    echo "started bench: $BENCH/bench.log" ;;
  shipped)
    snapshot_repo /root/repo-bench
    mkdir -p "$BENCH"
    REPO=/root/repo-bench setsid nohup bash /root/repo-bench/lab/gpu/session.sh shipped-run > "$BENCH/bench.log" 2>&1 < /dev/null &
    echo "started: $BENCH/bench.log" ;;
  shipped-run)
    export PYTHONPATH=$REPO/toolchain
    [ -x /root/rt/node ] || bash "$REPO/lab/gpu/unpack.sh" assemble
    fresh_dist "$REPO"
    M=/root/models/default
    python3 -m mixsga export --verify "$M"  # the carried files against their manifest's sha256
    # the TinyLlama-shaped export runs beside the checks below (CPU-bound, niced)
    [ -f "$TL/model/manifest.json" ] || [ -n "${NO_TINYLLAMA:-}" ] || bash "$REPO/lab/gpu/session.sh" tinyllama
    cd /root/rt
    B="./node dist/bench.js --suite gpu"
    run() { echo "== $*"; timeout "$@" || echo "FAILED (rc $?): $*"; }
    # CUDA EP vs CPU EP on the same fp16 file: the graph's loop, one token per run, a second run on a cache
    python3 "$REPO/lab/gpu/ep-diff-model.py" --case-only "$BENCH/ep-case"
    NODE_PATH=/root/rt/node_modules run 200 ./node "$REPO/lab/gpu/ep-diff.js" "$M/model.cuda.onnx" "$BENCH/ep-case/case.json" "$BENCH/ep-diff-default.json" cuda cpu
    run 150 $B --model "$M" --device cuda --out "$BENCH/gpu-default-cuda.json"
    run 200 bash "$REPO/lab/gpu/agree.sh" ./node dist/cli.js "$M" cuda "$BENCH/agree-cuda" 24
    run 120 bash "$REPO/lab/gpu/agree.sh" ./node dist/cli.js "$M" cpu "$BENCH/agree-cpu" 24
    run 100 ./node dist/bench.js --model "$M" --device cuda --iterations 20 --out "$BENCH/completion-cuda.json"
    for i in $(seq 1 60); do [ -f "$TL/model/manifest.json" ] && break; sleep 5; done
    if [ -f "$TL/model/manifest.json" ]; then
      run 240 $B --model "$TL/model" --device cuda --profile-runs 0 --out "$BENCH/gpu-tinyllama-cuda.json"
      run 120 $B --model "$TL/model" --device cuda --decode-steps 1,8,32 --budgets 50 --contexts 2048 --profile-runs 0 --prefill 2048 --out "$BENCH/gpu-tinyllama-cuda-steps.json"
    fi
    if [ -n "${CEILING:-}" ]; then
      (cd "$REPO" && run 120 python3 lab/gpu/static-decode-ceiling.py --out "$BENCH/ceiling.json")
      (cd "$REPO" && run 150 python3 lab/gpu/bench_torch.py --device cuda --cuda-graph --out "$BENCH/torch-tinyllama-cudagraph.json")
      (cd "$REPO" && run 170 python3 lab/gpu/bench_torch.py --device cuda --out "$BENCH/torch-tinyllama.json")
    fi
    nvidia-smi > "$BENCH/nvidia-smi.txt"; ls -la "$BENCH"; echo BENCH DONE ;;
  bench-run)
    export PYTHONPATH=$REPO/toolchain
    [ -x /root/rt/node ] || bash "$REPO/lab/gpu/unpack.sh" assemble
    fresh_dist "$REPO"
    CKPT=${DEFAULT_CKPT:-$RUNS/mixsga-2048/ckpt}; [ -d "$CKPT" ] || CKPT=$RUNS/mixsga/ckpt  # the shipped model's checkpoint
    [ -f /root/models/default/manifest.json ] || python3 -m mixsga export "$CKPT" /root/models/default \
      --name mixsga-default --cuda --cpu-weights mixed
    cp "$TL"/out/*.json "$BENCH"/ 2>/dev/null || true
    cd /root/rt
    B="./node dist/bench.js --suite gpu"
    run() { echo "== $*"; timeout "$@" || echo "FAILED (rc $?): $*"; }
    # most important first: the session may end before the last ones
    if [ -f "$TL/model/manifest.json" ]; then
      run 240 $B --model "$TL/model" --device cuda --profile-runs 0 --out "$BENCH/gpu-tinyllama-cuda.json"
      run 120 $B --model "$TL/model" --device cuda --decode-steps 1 --profile-runs 0 --prefill 2048 --out "$BENCH/gpu-tinyllama-cuda-step1.json"
    fi
    run 120 $B --model /root/models/default --device cuda --out "$BENCH/gpu-default-cuda.json"
    run 120 $B --model /root/models/default --device cpu --variant cpu --out "$BENCH/gpu-default-cpu.json"
    run 100 ./node dist/bench.js --model /root/models/default --device cuda --iterations 20 --out "$BENCH/completion-cuda.json"
    (cd "$REPO" && run 150 python3 lab/gpu/bench_torch.py --device cuda --out "$BENCH/torch-tinyllama.json")
    if [ -f "$TL/model/manifest.json" ]; then
      run 120 $B --model "$TL/model" --device cpu --variant cuda --quick --budgets 50 --contexts 256 --prefill 256 \
        --iterations 2 --warmup 1 --profile-runs 0 --decode-steps 4 --out "$BENCH/gpu-tinyllama-cpu.json"
    fi
    (cd "$REPO" && run 90 python3 lab/gpu/bench_torch.py --checkpoint "$CKPT" --device cuda --out "$BENCH/torch-default.json")
    run 100 ./node dist/bench.js --model /root/models/default --device cpu --iterations 20 --out "$BENCH/completion-cpu.json"
    nvidia-smi > "$BENCH/nvidia-smi.txt"; ls -la "$BENCH"; echo BENCH DONE ;;
  fetch)
    mkdir -p "$OUT"
    export PYTHONPATH=$REPO/toolchain
    FETCH_RUN=${FETCH_RUN:-mixsga-2048}
    if [ -f "$RUNS/$FETCH_RUN/ckpt/model.safetensors" ]; then
      rm -rf /root/fetch
      python3 - "$RUNS/$FETCH_RUN/ckpt" /root/fetch <<'PY'
import sys, shutil, pathlib
from safetensors.torch import load_file, save_file
src, dst = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2]); dst.mkdir(parents=True, exist_ok=True)
state = load_file(str(src / "model.safetensors"))
save_file({k: v.half() for k, v in state.items()}, str(dst / "model.safetensors"))  # fp16 halves the trip
shutil.copy(src / "config.json", dst / "config.json")
PY
      tar -C /root/fetch -cf - . | split -b 15M -d -a 1 - "$OUT/ckpt.tar.part"
    fi
    tar -C "$RUNS" -czf "$OUT/runs.tgz" --exclude='*.safetensors' --exclude='*.pt' --exclude=shards . 2>/dev/null || true
    tar -C "$BENCH" -czf "$OUT/bench.tgz" . 2>/dev/null || true
    ls -la "$OUT" ;;
  *) sed -n 2,20p "$0"; exit 2 ;;
esac
