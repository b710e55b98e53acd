#!/usr/bin/env bash
# Train a recipe detached (setsid nohup): on the GPU machine a remote command is limited to 10 minutes. What runs is
# `python -m mixsga pipeline` (toolchain/mixsga/pipeline.py); the recipe is data (toolchain/recipes/*.json).
#
#   scripts/train-default.sh STAGES [RUN] [pipeline flags]
#     STAGES   all, or a comma list of shards,dense,branches,extend,eval (run in that order); status: progress
#     RUN      run folder, default runs/default (log: RUN/<stages>.log, commands: RUN/pipeline.jsonl)
#     flags    --recipe R (default toolchain/recipes/default-v1.json), --set SECTION.KEY=VALUE ...
#   e.g. scripts/train-default.sh all runs/study --recipe toolchain/recipes/study-v1.json
set -euo pipefail
STAGES=${1:?usage: scripts/train-default.sh all|shards,dense,branches,extend,eval|status [RUN] [pipeline flags]}
RUN=${2:-runs/default}
shift $(($# < 2 ? $# : 2))
cd "$(dirname "$(readlink -f "$0")")/.."   # repo root; RUN and the recipe's paths are relative to it
export NCCL_NVLS_ENABLE=${NCCL_NVLS_ENABLE:-0} PYTHONUNBUFFERED=1 PYTHONPATH=$PWD/toolchain:${PYTHONPATH:-}
PIPELINE=(python3 -m mixsga pipeline --recipe toolchain/recipes/default-v1.json --run "$RUN" "$@")
if [ "$STAGES" = status ]; then exec "${PIPELINE[@]}" --status; fi
"${PIPELINE[@]}" --stages "$STAGES" --check   # a bad recipe, value or stage is refused here, not in the log
mkdir -p "$RUN"
LOG=$RUN/${STAGES//,/-}.log
setsid nohup "${PIPELINE[@]}" --stages "$STAGES" > "$LOG" 2>&1 < /dev/null &
echo "started $STAGES (pid $!); log: $LOG; check: $0 status $RUN"
