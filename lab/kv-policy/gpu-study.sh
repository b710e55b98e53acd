#!/usr/bin/env bash
# Issue 19's equal-compute KV-policy study on one GPU machine, as one detached pipeline (device calls are limited
# to 10 minutes and the machine is held only while calls follow each other, so calls poll with `wait-status`).
#
#   lab/kv-policy/gpu-study.sh start         setsid pipeline: shards (the machine's site-packages, decontaminated
#                                           against the carried .gpu/eval) -> the shipped weights as the common
#                                           start (carried .gpu/start, or from_onnx) -> the arms, concurrently, the
#                                           same steps and data -> eval_ppl of every arm at 2048 and 1024 tokens
#   lab/kv-policy/gpu-study.sh wait-status S  sleep up to S seconds (returns early when the pipeline ends), status
#   lab/kv-policy/gpu-study.sh fetch          results (eval JSON, logs) into $OUT; FETCH_CKPT=arm adds its fp16
#                                           weights in 15 MB parts
#
# Arms (every one starts from the shipped weights and trains STEPS x 262,144 tokens on 2048-token windows, LR
# 1e-4 -> 3e-5 like the long-context phase):
#   dense-cont   routers stripped, full KV: the reference for full, window, H2O and the quantised caches
#   mixsga       the paper's expert-choice at 3:1:6 (the shipped recipe)
#   proposed     the age-aware policy $PROPOSED (band + routed stores), budget-conditioned over 25/35/50 %
#   EXTRA_ARMS   "name|train flags" pairs separated by ';' (ablations)
#   ARMS         which of the three standard arms to train (default all: "dense-cont mixsga proposed")
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
W=${W:-/root/study}; OUT=${OUT:-/tmp/out}
STEPS=${STEPS:-150}; CAP_MIN=${CAP_MIN:-9}
SEQ=${SEQ:-2048}; MB=${MB:-16}; BATCH=${BATCH:-262144}; EVAL_SEQS=${EVAL_SEQS:-2048 1024}  # small for a CPU dry run
PROPOSED=${PROPOSED:-band=32,stores=g1-int8|g1-int4|g2-int4|g4-int4}
ARMS=${ARMS:-dense-cont mixsga proposed}
export NCCL_NVLS_ENABLE=0 PYTHONUNBUFFERED=1

pipeline() {
  cd "$W/repo"
  python3 -m pip install -q --no-index --no-deps --no-compile --target /root/site "$ROOT"/.whl/*.whl
  export PYTHONPATH=/root/site:$W/repo/toolchain
  SP=$(python3 -c 'import site; print(site.getsitepackages()[0])')
  [ -f "$W/shards/meta.json" ] || python3 -m mixsga shards --site-packages "$SP" --eval-dir "$ROOT/.gpu/eval" \
    --out "$W/shards" --workers 14
  if [ -d "$ROOT/.gpu/start" ]; then cp -r "$ROOT/.gpu/start" "$W/start"; else python3 -m mixsga from_onnx models/default "$W/start"; fi
  local T="python3 -m mixsga train --data $W/shards --seq-len $SEQ --batch-tokens $BATCH --micro-batch $MB
    --fim-line-rate 0.5 --lr 1e-4 --min-lr-ratio 0.3 --warmup-steps 10 --max-steps $STEPS --eval-every 100000
    --eval-windows 16 --save-every 0 --seed 1 --time-budget-min $CAP_MIN --init $W/start"
  case " $ARMS " in *" dense-cont "*) $T --strip-routers --out "$W/dense-cont" > "$W/dense-cont.log" 2>&1 & ;; esac
  case " $ARMS " in *" mixsga "*) $T --ratios 3:1:6 --out "$W/mixsga" > "$W/mixsga.log" 2>&1 & ;; esac
  case " $ARMS " in *" proposed "*) $T --kv-policy "$PROPOSED" --out "$W/proposed" > "$W/proposed.log" 2>&1 & ;; esac
  local arm
  IFS=';' read -ra extra <<< "${EXTRA_ARMS:-}"
  for arm in "${extra[@]}"; do
    [ -n "$arm" ] || continue
    $T ${arm#*|} --out "$W/${arm%%|*}" > "$W/${arm%%|*}.log" 2>&1 &
  done
  wait
  echo "TRAINED $(date +%T)"
  mkdir -p "$W/eval"
  local budgets=0.25,0.35,0.5,0.75 m s
  for s in $EVAL_SEQS; do
    local E="python3 -m mixsga eval_ppl --data $W/shards --windows ${EVAL_WINDOWS:-64} --seq-len $s --batch 8 --budgets $budgets"
    [ -f "$W/dense-cont/ckpt/config.json" ] && $E --model "$W/dense-cont/ckpt" --methods full,window,h2o,int8,int4,int4-token,int2,${CASCADE_METHODS:-age-tiered,age-tiered-int2} --out "$W/eval/dense-cont-$s.json" > "$W/eval/dense-cont-$s.txt" 2>&1 &
    [ -f "$W/mixsga/ckpt/config.json" ] && $E --model "$W/mixsga/ckpt" --methods full,mixsga,mixsga-argmax --out "$W/eval/mixsga-$s.json" > "$W/eval/mixsga-$s.txt" 2>&1 &
    for m in proposed "${extra[@]%%|*}"; do
      [ -f "$W/$m/ckpt/config.json" ] || continue
      $E --model "$W/$m/ckpt" --methods full,proposed,int8,int4,window,${CASCADE_METHODS:-age-tiered,age-tiered-int2} --out "$W/eval/$m-$s.json" > "$W/eval/$m-$s.txt" 2>&1 &
    done
  done
  $E --model "$W/start" --seq-len ${EVAL_SEQS%% *} --methods full,mixsga,window,int8,int4 --candidates "$PROPOSED" \
    --out "$W/eval/start-${EVAL_SEQS%% *}.json" > "$W/eval/start-${EVAL_SEQS%% *}.txt" 2>&1 &
  wait
  echo "ALL DONE $(date +%T)"
}

case "${1:-}" in
  start)
    mkdir -p "$W" && rm -rf "$W/repo" && cp -a "$ROOT" "$W/repo"  # later calls re-sync the tree: run from a copy
    setsid nohup bash "$0" pipeline > "$W/pipeline.log" 2>&1 < /dev/null &
    echo "started: $W/pipeline.log" ;;
  pipeline) pipeline ;;
  wait-status)
    for _ in $(seq 1 "$((${2:-60} / 10))"); do grep -q "ALL DONE" "$W/pipeline.log" 2>/dev/null && break; sleep 10; done
    tail -n 4 "$W/pipeline.log"
    for f in "$W"/*.log; do echo "== $f"; grep -E '^\[train\]|Error|error' "$f" | tail -n 2 | cut -c1-300; done
    ls "$W/eval" 2>/dev/null | tr '\n' ' '; echo
    nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader ;;
  fetch)
    mkdir -p "$OUT"
    tar -C "$W" -czf "$OUT/study.tgz" --exclude='*.safetensors' --exclude='*.pt' --exclude=shards --exclude=repo \
      --exclude=start . 2>/dev/null || true
    if [ -n "${FETCH_CKPT:-}" ]; then
      PYTHONPATH=$W/repo/toolchain python3 - "$W/$FETCH_CKPT/ckpt" /root/fetch <<'PY'
import sys, shutil, pathlib
from safetensors.torch import load_file, save_file
src, dst = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2]); dst.mkdir(parents=True, exist_ok=True)
save_file({k: v.half() for k, v in load_file(str(src / "model.safetensors")).items()}, str(dst / "model.safetensors"))
shutil.copy(src / "config.json", dst / "config.json")
PY
      tar -C /root/fetch -cf - . | split -b 15M -d -a 1 - "$OUT/$FETCH_CKPT.tar.part"
    fi
    ls -la "$OUT" ;;
  *) sed -n 2,20p "$0"; exit 2 ;;
esac
