#!/usr/bin/env bash
# Reproduce the default model on the GPU machine (one H200). Every stage runs detached (setsid nohup) because a
# remote command is limited to 10 minutes; logs land in $RUN/<stage>.log, progress in $RUN/<run>/log.jsonl.
#
#   scripts/train-default.sh all        [RUN]   # every stage below in order, one detached job (~16 min)
#   scripts/train-default.sh shards     [RUN]   # corpus -> $SHARDS (skipped if $SHARDS/meta.json exists)
#   scripts/train-default.sh dense      [RUN]   # dense pretraining from scratch, 8 min training budget
#   scripts/train-default.sh mixsga     [RUN]   # convert + mixSGA continued pretraining at 3:1:6, 2.5 min
#   scripts/train-default.sh ablations  [RUN]   # 4 concurrent short runs from the same converted checkpoint
#   scripts/train-default.sh eval       [RUN]   # eval_ppl for every checkpoint, concurrently
#   scripts/train-default.sh status     [RUN]   # last log lines of every run
#
# RUN defaults to runs/default. Env: SHARDS (token shard dir, default $RUN/shards), CORPUS (corpus dir for the
# shards stage), SHARDS_CMD (override the shard command), PY (python), DENSE_MIN / MIX_MIN / ABL_STEPS.
set -euo pipefail
STAGE=${1:?usage: scripts/train-default.sh all|shards|dense|mixsga|ablations|eval|status [RUN]}
RUN=${2:-runs/default}
PY=${PY:-python}
SHARDS=${SHARDS:-$RUN/shards}
CORPUS=${CORPUS:-.gpu/corpus}
DENSE_MIN=${DENSE_MIN:-8}      # training-loop minutes; startup + final eval/save add ~1 min
MIX_MIN=${MIX_MIN:-2.5}
ABL_STEPS=${ABL_STEPS:-100}    # equal steps for the ablations (time cap ABL_MIN as a safety net)
ABL_MIN=${ABL_MIN:-1.75}
SELF=$(readlink -f "$0")
cd "$(dirname "$SELF")/.."     # repo root; RUN and SHARDS are relative to it
export NCCL_NVLS_ENABLE=${NCCL_NVLS_ENABLE:-0} PYTHONUNBUFFERED=1 PYTHONPATH=$PWD/toolchain:${PYTHONPATH:-}
mkdir -p "$RUN"

# Overridable for a CPU dry run of the whole pipeline (tiny model, tiny batches).
MODEL_SIZE=${MODEL_SIZE:-default}; SEQ=${SEQ:-1024}; BATCH_TOKENS=${BATCH_TOKENS:-262144}; MB=${MB:-32}; ABL_MB=${ABL_MB:-16}
TRAIN="$PY -m mixsga train --data $SHARDS --seq-len $SEQ --batch-tokens $BATCH_TOKENS"

stage_shards() {
  [ -f "$SHARDS/meta.json" ] && { echo "shards exist in $SHARDS"; return; }
  ${SHARDS_CMD:-$PY -m mixsga shards --corpus $CORPUS --out $SHARDS}
}
stage_dense() {
  $TRAIN --init scratch --model-size $MODEL_SIZE --out "$RUN/dense" --resume --lr 1e-3 --warmup-steps 150 \
    --micro-batch $MB --time-budget-min "$DENSE_MIN" --eval-every 500 --save-every 500
}
stage_mixsga() {
  $PY -m mixsga convert "$RUN/dense/ckpt" "$RUN/mix0" --ratios 3:1:6
  $TRAIN --init "$RUN/mix0" --ratios 3:1:6 --out "$RUN/mixsga" --resume --lr 3e-4 --warmup-steps 30 \
    --micro-batch $MB --time-budget-min "$MIX_MIN" --eval-every 200 --save-every 200 --eval-at-start
}
stage_ablations() {
  [ -d "$RUN/mix0" ] || $PY -m mixsga convert "$RUN/dense/ckpt" "$RUN/mix0" --ratios 3:1:6
  local common="--init $RUN/mix0 --ratios 3:1:6 --lr 3e-4 --warmup-steps 10 --micro-batch $ABL_MB \
    --max-steps $ABL_STEPS --time-budget-min $ABL_MIN --eval-every 50 --eval-windows 16 --save-every 0"
  # A small model leaves the H200 mostly idle: the four runs share it as separate processes.
  $TRAIN $common --out "$RUN/abl-paper"                          > "$RUN/abl-paper.log" 2>&1 &
  $TRAIN $common --out "$RUN/abl-lmgrad" --router-lm-grad         > "$RUN/abl-lmgrad.log" 2>&1 &
  $TRAIN $common --out "$RUN/abl-random" --random-router          > "$RUN/abl-random.log" 2>&1 &
  $TRAIN $common --out "$RUN/abl-gqa2" --static-group 2           > "$RUN/abl-gqa2.log" 2>&1 &
  wait
}
stage_eval() {
  mkdir -p "$RUN/eval"
  for m in dense mixsga abl-paper abl-lmgrad abl-random abl-gqa2; do
    [ -f "$RUN/$m/ckpt/config.json" ] || continue
    $PY -m mixsga eval_ppl --model "$RUN/$m/ckpt" --data "$SHARDS" --windows ${EVAL_WINDOWS:-64} --seq-len $SEQ --batch 16 \
      --out "$RUN/eval/$m.json" > "$RUN/eval/$m.txt" 2>&1 &
  done
  wait
  tail -n 8 "$RUN"/eval/*.txt
}
stage_all() { stage_shards; stage_dense; stage_mixsga; stage_ablations; stage_eval; echo ALL DONE; }

case "$STAGE" in
  status)
    for f in "$RUN"/*.log "$RUN"/*/log.jsonl; do [ -f "$f" ] && { echo "== $f"; tail -n 2 "$f"; }; done; exit 0 ;;
  shards|dense|mixsga|ablations|eval|all)
    if [ -z "${MIXSGA_FOREGROUND:-}" ]; then
      MIXSGA_FOREGROUND=1 setsid nohup "$SELF" "$STAGE" "$RUN" > "$RUN/$STAGE.log" 2>&1 < /dev/null &
      echo "started $STAGE (pid $!); log: $RUN/$STAGE.log; check: $SELF status $RUN"
      exit 0
    fi
    "stage_$STAGE" ;;
  *) echo "unknown stage $STAGE" >&2; exit 2 ;;
esac
