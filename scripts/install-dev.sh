#!/usr/bin/env bash
# Everything the tests need on a fresh Debian 12 machine with Node 20 and Python 3.11, from the registries only
# (npm, PyPI, apt). Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."
# onnxruntime-node's postinstall would fetch CUDA providers from NuGet (unreachable here and not needed on CPU);
# npm 11 does not run dependency install scripts by default anyway.
export ONNXRUNTIME_NODE_INSTALL=skip
if [ ! -d node_modules/onnxruntime-node ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi
npm run --silent build
if ! python3 -c "import mixsga, torch, transformers, onnxruntime, onnx, onnxscript, pytest, datasketch, matplotlib, hypothesis, ruff" 2>/dev/null; then
  python3 -m pip install --quiet --disable-pip-version-check -c toolchain/constraints.txt -e "toolchain[test,data,eval]"
fi
