#!/usr/bin/env bash
# Install, build and package the extension, then run its main job once on the shipped default model: complete a
# file with the in-process engine (no server, no network) and print the completion, the request trace and the
# KV memory report. Needs Node >= 20 and npm; nothing else.
set -euo pipefail
cd "$(dirname "$0")/.."
export ONNXRUNTIME_NODE_INSTALL=skip   # the CPU runtime is in the npm package; CUDA providers: see docs/gpu.md
npm ci --no-audit --no-fund
npm run --silent package               # dist/ + mixsga-complete-<version>.vsix
MODEL=models/default; [ -f "$MODEL/manifest.json" ] || MODEL=test/fixtures/fixture-tiny
node dist/cli.js info --model "$MODEL"
# Cursor after "return " on the last line of examples/stats.py (line and column are 1-based).
node dist/cli.js complete --model "$MODEL" --file examples/stats.py --line "$(wc -l < examples/stats.py)" --col 12 --budget-mb 64
echo
echo "Install in VS Code: code --install-extension $(ls -t mixsga-complete-*.vsix | head -1)"
