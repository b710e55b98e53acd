#!/usr/bin/env bash
# On the GPU machine: gather the parts that lab/gpu/stage.sh made (each carried by one device call into
# $STAGE), then reassemble Node 22 + the engine runtime + the CUDA provider into $RT (default /root/rt).
#   lab/gpu/unpack.sh collect .gpu/xfer/cuda0     # once per carried part folder
#   lab/gpu/unpack.sh assemble                    # after the last part
set -euo pipefail
STAGE=${STAGE:-/root/stage}; RT=${RT:-/root/rt}
case "${1:-}" in
  collect) mkdir -p "$STAGE" && cp -r "$2"/. "$STAGE"/ && ls -la "$STAGE" ;;
  assemble)
    mkdir -p "$RT"
    (cd "$STAGE" && sha256sum -c SHA256SUMS.node)
    xz -dc "$STAGE/node.xz" > "$RT/node" && chmod +x "$RT/node"
    tar -C "$RT" -xJf "$STAGE/runtime.tar.xz"
    ORTDIR="$RT/node_modules/onnxruntime-node/bin/napi-v6/linux/x64"
    cat "$STAGE"/providers_cuda.so.xz.part* | xz -dc > "$ORTDIR/libonnxruntime_providers_cuda.so"
    cp "$STAGE/libonnxruntime_providers_shared.so" "$ORTDIR/"
    (cd "$ORTDIR" && sha256sum -c "$STAGE/SHA256SUMS.cuda")
    "$RT/node" --version
    (ldd "$ORTDIR/libonnxruntime_providers_cuda.so" | grep -E "cublas|cudart|not found") || true
    ;;
  *) echo "usage: unpack.sh collect DIR | assemble" >&2; exit 2 ;;
esac
