#!/usr/bin/env bash
# Greedy completions of the engine CLI at fixed cursor positions in the repo's own sources, one file per position:
# run it with --device cuda and --device cpu (or on two machines) and diff the folders to see whether the CUDA EP
# on model.cuda.onnx writes what the CPU EP writes. Positions: the middle of every 7th line of 20+ characters in
# src/engine/{core,kvStore,runner}.ts (the same on every machine: the files are tracked).
#
#   lab/gpu/agree.sh NODE CLI_JS MODEL_DIR DEVICE OUT_DIR [MAX_POSITIONS]
set -euo pipefail
NODE=$1 CLI=$2 MODEL=$3 DEVICE=$4 OUT=$5 MAX=${6:-1000}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
mkdir -p "$OUT"
python3 - "$ROOT" <<'PY' > "$OUT/positions.txt"
import sys, pathlib
root = pathlib.Path(sys.argv[1])
for name in ("core", "kvStore", "runner"):
    f = root / "src/engine" / f"{name}.ts"
    lines = f.read_text().split("\n")
    picked = [i for i, l in enumerate(lines) if len(l.strip()) >= 20][::7]
    for i in picked:
        print(f, i + 1, len(lines[i]) // 2 + 1)
PY
head -n "$MAX" "$OUT/positions.txt" > "$OUT/picked.txt" && mv "$OUT/picked.txt" "$OUT/positions.txt"
n=0
while read -r file line col; do
  n=$((n + 1))
  # the completion text only (the CLI prints it, then '--- trace' and JSON)
  if "$NODE" "$CLI" complete --model "$MODEL" --device "$DEVICE" --file "$file" --line "$line" --col "$col" \
      > "$OUT/raw.txt" 2> "$OUT/stderr-$n.txt"; then
    sed '/^--- trace$/,$d' "$OUT/raw.txt" > "$OUT/$n.txt"
    grep -m1 -o '"device": *"[a-z]*"' "$OUT/raw.txt" > "$OUT/device-$n.txt" || true
  else
    echo "FAILED (rc $?)" > "$OUT/$n.txt"
  fi
done < "$OUT/positions.txt"
rm -f "$OUT/raw.txt"
echo "$n positions → $OUT"
