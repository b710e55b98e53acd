"""Weight-only quantisation of the fp32 CPU graph with ONNX Runtime's tools (both ops run in onnxruntime-node's
CPU EP): int8 = dynamic quantisation (weights int8 per column, activations quantised on the fly: MatMulInteger /
DynamicQuantizeMatMul); int4 = MatMulNBits (4-bit weights in blocks of 32, fp32 activations).
Only MatMuls with a constant weight are touched: embeddings (Gather), norms and attention stay fp32, and so do
the routers (hidden x E weights: tiny, and a flipped route changes which KV resolution a token keeps)."""
import tempfile
from pathlib import Path

from mixsga.errors import UserError

INT4_BLOCK = 32


def quantize_file(src, dst, kind: str):
    try:
        import onnx
        from onnxruntime.quantization import QuantType, quantize_dynamic
    except ImportError as e:
        raise UserError(f"--cpu-weights {kind} needs the onnxruntime Python package ({e})") from None
    src, dst = Path(src), Path(dst)
    keep_fp32 = small_matmuls(onnx.load(str(src), load_external_data=False))
    if kind == "int8":
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "q.onnx"
            quantize_dynamic(str(src), str(out), weight_type=QuantType.QInt8, per_channel=True,
                             op_types_to_quantize=["MatMul"],
                             nodes_to_exclude=keep_fp32, extra_options={"MatMulConstBOnly": True})
            model = onnx.load(str(out))
    elif kind == "int4":
        from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

        q = MatMulNBitsQuantizer(onnx.load(str(src)), block_size=INT4_BLOCK, is_symmetric=True, accuracy_level=4,
                                 nodes_to_exclude=keep_fp32)
        q.process()
        model = q.model.model
    else:
        raise UserError(f"unknown weight type {kind!r} (int8 or int4)")
    model.producer_name, model.producer_version = "mixsga", "1"
    onnx.save_model(model, str(dst))
    return dst


def small_matmuls(model, max_cols=16) -> list:
    """Names of MatMuls whose constant weight has at most max_cols output columns (the routers)."""
    shapes = {t.name: list(t.dims) for t in model.graph.initializer}
    return [n.name for n in model.graph.node
            if n.op_type == "MatMul" and n.input[1] in shapes and shapes[n.input[1]][-1] <= max_cols]
