#!/usr/bin/env bash
# The GPU machine's side of one v2 round (lab/v2/README.md), one subcommand per device call. Calls are limited to
# 10 minutes and 64 MiB each way, and files persist only while the machine is held, so a round is: stage the
# carried folders one call each (the corpus slice first: its shards start building, detached, as soon as it is
# complete), start the detached training in the last staging call, poll, then fetch the checkpoint in parts.
#
#   lab/v2/gpu.sh stage DIR              check DIR's pieces (sha256) into $V2/stage (a carry folder of
#                                        `rounds.py prepare`, or a `corpus --xfer` part); once corpus.tar is complete,
#                                        start prep (join, untar, shards of the corpus + this machine's
#                                        site-packages) detached
#   lab/v2/gpu.sh train --minutes M [--finish] [--round-steps N]
#                                        detached: wait for the shards, join the checkpoint, train the recipe's
#                                        phases from the carried state.json (warm restart) until M minutes from now
#                                        minus the packing, save, pack the checkpoint into 15 MiB pieces
#   lab/v2/gpu.sh status                 progress
#   lab/v2/gpu.sh wait S                 sleep until the round is DONE (at most S seconds), then status
#   lab/v2/gpu.sh fetch N [S]            call N's files of the round into $OUT (waits up to S seconds for DONE)
#
# Env: V2 (work folder, default /root/v2), OUT, RECIPE (default lab/v2/recipe-v2.json), SITE_PACKAGES
# (default: this python's site-packages; "none" for a dry run), WORKERS (shards).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
V2=${V2:-/root/v2}; OUT=${OUT:-/tmp/out}; RECIPE=${RECIPE:-$ROOT/lab/v2/recipe-v2.json}
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 PYTHONUNBUFFERED=1
export PYTHONPATH=$V2/site:$V2/repo/toolchain${PYTHONPATH:+:$PYTHONPATH}
R="python3 $V2/repo/lab/v2/rounds.py --recipe $V2/recipe.json"

snapshot() {  # later calls re-sync the working tree: the detached jobs run from a copy taken once
  [ -f "$V2/repo/.snapshot" ] && return
  mkdir -p "$V2/repo/lab" && cp -a "$ROOT/toolchain" "$V2/repo/" && cp -a "$ROOT/lab/v2" "$V2/repo/lab/"
  touch "$V2/repo/.snapshot"
  cp "$RECIPE" "$V2/recipe.json"
  # near-duplicate removal needs datasketch, which the GPU image lacks: carried as a wheel in .whl/
  if ls "$ROOT"/.whl/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --target "$V2/site" "$ROOT"/.whl/*.whl
  fi
}
wait_done() { for _ in $(seq 1 "$(( ${1:-0} / 5 ))"); do [ -f "$V2/DONE" ] || [ -f "$V2/FAILED" ] && return; sleep 5; done; }

case "${1:-}" in
  stage)
    snapshot
    complete=$($R collect "$2" --work "$V2")
    echo "$complete"
    if [[ " $complete " == *" corpus.tar "* ]] && [ ! -f "$V2/prep.started" ]; then
      touch "$V2/prep.started"
      SP=${SITE_PACKAGES:-$(python3 -c 'import site; print(site.getsitepackages()[0])')}
      [ "$SP" = none ] && SP=""
      setsid nohup bash -c "$R prep --work $V2 ${SP:+--site-packages $SP} --workers ${WORKERS:-14} || touch $V2/prep.failed" \
        > "$V2/prep.log" 2>&1 < /dev/null &
      echo "prep started: $V2/prep.log"
    fi
    df -h "$V2" | tail -n 1 ;;
  train)
    shift
    snapshot
    [ -f "$V2/round.started" ] && { echo "a round was already started here: $V2/round.log"; exit 1; }
    touch "$V2/round.started"
    setsid nohup bash -c "$R run-round --work $V2 $* || touch $V2/FAILED" > "$V2/round.log" 2>&1 < /dev/null &
    echo "round started: $V2/round.log" ;;
  status)
    tail -n 3 "$V2/prep.log" 2>/dev/null || true
    grep -E '^\[round\]|Error|error' "$V2/round.log" 2>/dev/null | tail -n 4 | cut -c1-400 || true
    for f in "$V2"/runs/*/log.jsonl; do [ -f "$f" ] && { echo "== $f"; tail -n 1 "$f" | cut -c1-300; }; done
    [ -f "$V2/fetch/PLAN.json" ] && echo "fetch calls: $(python3 -c "import json; print(len(json.load(open('$V2/fetch/PLAN.json'))))")"
    [ -f "$V2/DONE" ] && echo "DONE $(cat "$V2/DONE")"
    [ -f "$V2/FAILED" ] && { echo "FAILED:"; tail -n 20 "$V2/round.log"; }
    nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader 2>/dev/null || true ;;
  wait) wait_done "${2:-570}"; bash "$0" status ;;
  fetch)
    wait_done "${3:-0}"
    [ -f "$V2/DONE" ] || { echo "the round is not done yet"; bash "$0" status; exit 1; }
    $R fetch-files "$2" --work "$V2" --out "$OUT"
    ls -la "$OUT" ;;
  *) sed -n 2,20p "$0"; exit 2 ;;
esac
