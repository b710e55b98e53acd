#!/usr/bin/env bash
# All tests: lint (ruff, eslint + prettier), the Python toolchain (pytest), the engine (node --test: unit, then
# integration on the real fixture model through onnxruntime-node), and the extension end to end in a real VS Code
# (code-server + chromium).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-dev.sh
status=0
run() { echo; echo "=== $*"; "$@" || { echo "FAILED: $*"; status=1; }; }
run python3 -m ruff check toolchain
run npm run --silent lint
run python3 scripts/results-index.py --check
run env PYTHONPATH="$PWD/toolchain" python3 -m pytest toolchain/tests -q -p no:cacheprovider
run npm run --silent test:unit
run npm run --silent test:integration
run npm run --silent test:e2e
exit $status
