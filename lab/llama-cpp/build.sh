#!/usr/bin/env bash
# Builds llama.cpp's CPU backend (llama-bench, llama-server, llama-quantize) from the source bundled in the PyPI
# sdist of llama-cpp-python 0.3.36 (llama.cpp 0c1e570) into a cache folder; idempotent (skips what exists).
# The AMX paths are compiled out: llama.cpp's Q8_0 AMX kernel segfaults on this CPU with head_dim 48 (issue 18).
# Usage: lab/llama-cpp/build.sh [CACHE]   (default ~/.cache/mixsga-llama-cpp; JOBS=2, runs under nice)
set -euo pipefail
CACHE=${1:-${LLAMA_CACHE:-$HOME/.cache/mixsga-llama-cpp}}
VERSION=0.3.36
JOBS=${JOBS:-2}
mkdir -p "$CACHE"
cd "$CACHE"
if [ ! -f "llama_cpp_python-$VERSION.tar.gz" ]; then
  python -m pip download --no-deps --no-binary :all: "llama-cpp-python==$VERSION" -d .
fi
[ -d "llama_cpp_python-$VERSION" ] || tar xzf "llama_cpp_python-$VERSION.tar.gz"
SRC="$CACHE/llama_cpp_python-$VERSION/vendor/llama.cpp"
command -v cmake >/dev/null || python -m pip install --user cmake
NOAMX="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
if [ ! -x build/bin/llama-server ]; then
  cmake -S "$SRC" -B build -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON -DLLAMA_CURL=OFF -DGGML_CUDA=OFF \
    -DBUILD_SHARED_LIBS=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=ON \
    -DLLAMA_BUILD_TOOLS=ON -DCMAKE_C_FLAGS="$NOAMX" -DCMAKE_CXX_FLAGS="$NOAMX"
  nice -n 10 cmake --build build -j "$JOBS" --target llama-bench llama-server llama-quantize
fi
echo "$CACHE/build/bin"
