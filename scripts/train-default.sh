#!/usr/bin/env bash
# Reproduce the default model on the GPU machine (one H200). Every stage runs detached (setsid nohup) because a
# remote command is limited to 10 minutes; logs land in $RUN/<stage>.log, progress in $RUN/<run>/log.jsonl.
#
# Recipe (docs/training.md): a dense trunk, then branches from its checkpoint with identical hyperparameters that
# differ only in attention, so every comparison is at equal compute and equal data:
#   dense       from scratch; stops at DENSE_STEPS of a TOTAL_STEPS cosine schedule (the shared trunk)
#   mixsga      convert to mixSGA 3:1:6 + BRANCH_STEPS (snapshots at ABL_STEPS, GQA_STEPS)  <- the shipped model
#   dense-cont  the same BRANCH_STEPS without mixSGA: the full-KV reference at equal compute
#   gqa2        static GQA-2 (every token on the group-2 expert), GQA_STEPS of the same schedule
#   abl-lmgrad, abl-random   router with LM gradient / random router, ABL_STEPS of the same schedule
#
#   scripts/train-default.sh all        [RUN]   # every stage below in order, one detached job (~26 min on one H200 with the defaults: trunk 11, branches 7, extend 6, shards + eval 2)
#   scripts/train-default.sh shards     [RUN]   # corpus -> $SHARDS (skipped if $SHARDS/meta.json exists)
#   scripts/train-default.sh dense      [RUN]   # the dense trunk
#   scripts/train-default.sh branches   [RUN]   # convert + the branches above, one after the other
#   scripts/train-default.sh extend     [RUN]   # long-context phase: mixsga and dense-cont continued at 2048 tokens
#   scripts/train-default.sh eval       [RUN]   # eval_ppl for every checkpoint, concurrently (1024 and 2048 windows)
#   scripts/train-default.sh shards,extend,eval [RUN]   # several stages in order, one detached job
#   scripts/train-default.sh status     [RUN]   # last log lines of every run
#
# RUN defaults to runs/default. Env: SHARDS (token shard dir, default $RUN/shards), CORPUS (corpus dir for the
# shards stage), SHARDS_CMD (override the shard command), PY (python), TOTAL_STEPS / DENSE_STEPS / GQA_STEPS /
# ABL_STEPS, BRANCHES (which branches to train), FIM_LINE_RATE, and the size overrides below for a CPU dry run.
#
# Defaults = the shipped model's recipe (2026-12-01, late conversion): dense 1400 of an 1800-step cosine, then
# mixsga and dense-cont for 400 steps each, FIM with line cuts; then (extend) both continued for 300 steps on
# 2048-token windows, since the engine's prompts reach 1536+ positions and a model trained on 1024-token windows
# falls apart past position 1024 (held-out ppl 6 -> 21 -> 118 per 512 positions). The equal-compute study of docs/model-card.md
# (early conversion, every branch) is
#   TOTAL_STEPS=610 DENSE_STEPS=153 GQA_STEPS=76 ABL_STEPS=76 FIM_LINE_RATE=0 \
#     BRANCHES="mixsga dense-cont gqa2 abl-lmgrad abl-random" scripts/train-default.sh all runs/study
set -euo pipefail
STAGE=${1:?usage: scripts/train-default.sh all|shards|dense|branches|eval|status [RUN]}
RUN=${2:-runs/default}
PY=${PY:-python}
SHARDS=${SHARDS:-$RUN/shards}
CORPUS=${CORPUS:-.gpu/corpus}
TOTAL_STEPS=${TOTAL_STEPS:-1800}  # x 262,144 tokens = 472M tokens per model (trunk + branch)
DENSE_STEPS=${DENSE_STEPS:-1400}  # trunk: the first 78 %
BRANCHES=${BRANCHES:-mixsga dense-cont}
FIM_LINE_RATE=${FIM_LINE_RATE:-0.5}  # share of FIM documents cut at line starts (mixsga.fim)
GQA_STEPS=${GQA_STEPS:-229}       # static GQA-2 branch, compared with mixsga's snapshot at the same step
ABL_STEPS=${ABL_STEPS:-76}        # router ablations, compared with mixsga's snapshot at the same step
BRANCH_STEPS=$((TOTAL_STEPS - DENSE_STEPS))
EXTEND_STEPS=${EXTEND_STEPS:-300} # long-context phase (extend): steps on EXTEND_SEQ-token windows, LR 1e-4 -> 3e-5
EXTEND_SEQ=${EXTEND_SEQ:-2048}
EXTEND_BRANCHES=${EXTEND_BRANCHES:-mixsga dense-cont}
MIN_SCALE=${MIN_SCALE:-1}         # multiplies every time cap (safety nets; the runs are step-budgeted)
# Time caps: ~1.2x the H200's measured seconds per step (dense 0.49, branches 0.53), so a slow machine anneals
# early instead of overrunning the GPU session; scale with MIN_SCALE.
DENSE_CAP=$(python3 -c "print(round($DENSE_STEPS * 0.58 / 60 + 1, 1))")
BRANCH_CAP=$(python3 -c "print(round($BRANCH_STEPS * 0.62 / 60 + 1, 1))")
EXTEND_CAP=$(python3 -c "print(round($EXTEND_STEPS * 0.8 / 60 + 1, 1))")
SELF=$(readlink -f "$0")
cd "$(dirname "$SELF")/.."     # repo root; RUN and SHARDS are relative to it
export NCCL_NVLS_ENABLE=${NCCL_NVLS_ENABLE:-0} PYTHONUNBUFFERED=1 PYTHONPATH=$PWD/toolchain:${PYTHONPATH:-}
mkdir -p "$RUN"

# Overridable for a CPU dry run of the whole pipeline (tiny model, tiny batches).
MODEL_SIZE=${MODEL_SIZE:-default}; SEQ=${SEQ:-1024}; BATCH_TOKENS=${BATCH_TOKENS:-262144}; MB=${MB:-32}; EMB=${EMB:-$((MB * SEQ / EXTEND_SEQ > 0 ? MB * SEQ / EXTEND_SEQ : 1))}
TRAIN="$PY -m mixsga train --data $SHARDS --seq-len $SEQ --batch-tokens $BATCH_TOKENS --micro-batch $MB --fim-line-rate $FIM_LINE_RATE"
cap() { python3 -c "print(round($1 * $MIN_SCALE, 2))"; }
# The trunk's LR at DENSE_STEPS of its cosine (peak 1e-3, floor 1e-4) starts every branch; each branch anneals to
# the same floor over BRANCH_STEPS, i.e. the trunk's schedule continued (10 warmup steps for the fresh optimizer).
BRANCH_LR=$(python3 -c "import math; p=$DENSE_STEPS/$TOTAL_STEPS; print(f'{1e-3*(0.1+0.9*0.5*(1+math.cos(math.pi*p))):.3e}')")
BRANCH="--lr $BRANCH_LR --min-lr-ratio $(python3 -c "print(f'{1e-4/$BRANCH_LR:.4f}')") --warmup-steps 10 --max-steps $BRANCH_STEPS"

stage_shards() {
  [ -f "$SHARDS/meta.json" ] && { echo "shards exist in $SHARDS"; return; }
  ${SHARDS_CMD:-$PY -m mixsga shards --corpus $CORPUS --out $SHARDS}
}
stage_dense() {
  $TRAIN --init scratch --model-size $MODEL_SIZE --out "$RUN/dense" --resume --lr 1e-3 --warmup-steps 50 \
    --max-steps $TOTAL_STEPS --stop-at-step $DENSE_STEPS --time-budget-min "$(cap $DENSE_CAP)" --eval-every 0 --save-every 0
}
wants() { [[ " $BRANCHES " == *" $1 "* ]]; }
stage_branches() {
  $PY -m mixsga convert "$RUN/dense/ckpt" "$RUN/mix0" --ratios 3:1:6
  local mix="--init $RUN/mix0 --ratios 3:1:6 $BRANCH --eval-every 100000 --eval-windows 32 --save-every 0"
  local snaps=""  # mixsga snapshots at the short branches' step counts (compared at equal steps)
  { wants gqa2 || wants abl-lmgrad || wants abl-random; } && snaps="--snapshot-steps $ABL_STEPS,$GQA_STEPS"
  local c; c=$(cap $BRANCH_CAP)
  if wants mixsga; then $TRAIN $mix --out "$RUN/mixsga" --eval-at-start $snaps --time-budget-min "$c"; fi
  if wants dense-cont; then $TRAIN --init "$RUN/dense/ckpt" $BRANCH --out "$RUN/dense-cont" --eval-every 100000 \
    --eval-windows 32 --save-every 0 --time-budget-min "$c"; fi
  if wants gqa2; then $TRAIN $mix --out "$RUN/gqa2" --static-group 2 --stop-at-step $GQA_STEPS --snapshot-steps "$ABL_STEPS" --time-budget-min "$c"; fi
  if wants abl-lmgrad; then $TRAIN $mix --out "$RUN/abl-lmgrad" --router-lm-grad --stop-at-step $ABL_STEPS --time-budget-min "$c"; fi
  if wants abl-random; then $TRAIN $mix --out "$RUN/abl-random" --random-router --stop-at-step $ABL_STEPS --time-budget-min "$c"; fi
  return 0
}
stage_extend() {
  # The branches' weights continued on EXTEND_SEQ-token windows (same data, FIM, fresh AdamW, 10 warmup steps to
  # the branches' floor LR 1e-4, cosine to 3e-5): every branch gets the same phase, so they stay at equal compute.
  local b
  for b in $EXTEND_BRANCHES; do
    [ -f "$RUN/$b/ckpt/config.json" ] || { echo "extend: no $RUN/$b/ckpt, skipped"; continue; }
    $PY -m mixsga train --data $SHARDS --seq-len $EXTEND_SEQ --batch-tokens $BATCH_TOKENS --micro-batch $EMB \
      --fim-line-rate $FIM_LINE_RATE --init "$RUN/$b/ckpt" --out "$RUN/$b-${EXTEND_SEQ}" --lr 1e-4 --min-lr-ratio 0.3 \
      --warmup-steps 10 --max-steps $EXTEND_STEPS --eval-every 100000 --eval-windows 16 --save-every 0 \
      --seed 1 --time-budget-min "$(cap $EXTEND_CAP)"
  done
}
stage_eval() {
  mkdir -p "$RUN/eval"
  local ev="$PY -m mixsga eval_ppl --data $SHARDS --windows ${EVAL_WINDOWS:-64} --seq-len $SEQ --batch 16"
  local ev2="$PY -m mixsga eval_ppl --data $SHARDS --windows ${EVAL_WINDOWS:-64} --seq-len $EXTEND_SEQ --batch 8"
  if [ -f "$RUN/dense-cont/ckpt/config.json" ]; then
    $ev --model "$RUN/dense-cont/ckpt" --out "$RUN/eval/dense-cont.json" > "$RUN/eval/dense-cont.txt" 2>&1 &
  fi
  if [ -f "$RUN/dense/ckpt/config.json" ]; then
    $ev --model "$RUN/dense/ckpt" --methods full --out "$RUN/eval/dense.json" > "$RUN/eval/dense.txt" 2>&1 &
  fi
  # long context: every extended branch and the branch it started from, on EXTEND_SEQ-token windows (and the
  # extended ones on SEQ windows too, to show the phase costs nothing at short range)
  local b m
  for b in $EXTEND_BRANCHES; do
    for m in "$b" "$b-${EXTEND_SEQ}"; do
      [ -f "$RUN/$m/ckpt/config.json" ] || continue
      local how="--methods full,mixsga,mixsga-argmax"
      [[ $b == dense* ]] && how="--methods full,window,h2o"
      $ev2 --model "$RUN/$m/ckpt" $how --out "$RUN/eval/$m-at${EXTEND_SEQ}.json" > "$RUN/eval/$m-at${EXTEND_SEQ}.txt" 2>&1 &
      if [ "$m" != "$b" ]; then
        $ev --model "$RUN/$m/ckpt" $how --out "$RUN/eval/$m.json" > "$RUN/eval/$m.txt" 2>&1 &
      fi
    done
  done
  for m in mixsga mixsga/ckpt-step$GQA_STEPS mixsga/ckpt-step$ABL_STEPS gqa2 gqa2/ckpt-step$ABL_STEPS abl-lmgrad abl-random; do
    local dir="$RUN/$m"; [ -d "$dir/ckpt" ] && dir="$dir/ckpt"
    [ -f "$dir/config.json" ] || continue
    local name=${m//\//-}
    $ev --model "$dir" --methods full,mixsga,mixsga-argmax,gqa --out "$RUN/eval/$name.json" > "$RUN/eval/$name.txt" 2>&1 &
  done
  wait
  tail -n 12 "$RUN"/eval/*.txt
}
stage_all() { stage_shards; stage_dense; stage_branches; stage_extend; stage_eval; echo ALL DONE; }

case "$STAGE" in
  status)
    for f in "$RUN"/*.log "$RUN"/*/log.jsonl; do [ -f "$f" ] && { echo "== $f"; tail -n 2 "$f"; }; done; exit 0 ;;
  *)
    for s in ${STAGE//,/ }; do
      case "$s" in shards|dense|branches|extend|eval|all) ;; *) echo "unknown stage $s" >&2; exit 2 ;; esac
    done
    if [ -z "${MIXSGA_FOREGROUND:-}" ]; then
      MIXSGA_FOREGROUND=1 setsid nohup "$SELF" "$STAGE" "$RUN" > "$RUN/${STAGE//,/-}.log" 2>&1 < /dev/null &
      echo "started $STAGE (pid $!); log: $RUN/${STAGE//,/-}.log; check: $SELF status $RUN"
      exit 0
    fi
    for s in ${STAGE//,/ }; do "stage_$s"; done ;;
esac
