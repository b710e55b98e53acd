"""Weight-only quantisation of the fp32 CPU graph with ONNX Runtime's tools (both ops run in onnxruntime-node's
CPU EP): int8 = dynamic quantisation (weights int8 per column, activations quantised on the fly: MatMulInteger /
DynamicQuantizeMatMul); int4 = MatMulNBits (4-bit weights in blocks of 32, fp32 activations).
Only MatMuls with a constant weight are touched: embeddings (Gather), norms and attention stay fp32, and so do
the routers (hidden x E weights: tiny, and a flipped route changes which KV resolution a token keeps)."""
import tempfile
from pathlib import Path

from mixsga.errors import UserError

INT4_BLOCK = 32


def quantize_file(src, dst, kind: str, embedding="auto"):
    """kind int8|int4; embedding: "auto" (= "int8" when the embedding is tied, i.e. used by the lm_head too),
    "int8" (tied embedding stored once as int8, see tie_int8_embedding) or "float32" (kept as is)."""
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
    if embedding not in ("auto", "int8", "float32"):
        raise UserError(f"unknown embedding type {embedding!r} (auto, int8 or float32)")
    if embedding != "float32":
        model, done = tie_int8_embedding(model)
        if embedding == "int8" and not done:
            raise UserError("--cpu-embedding int8 needs tied embeddings (one matrix read by the Gather and lm_head)")
    model.producer_name, model.producer_version = "mixsga", "1"
    onnx.save_model(model, str(dst))
    return dst


def small_matmuls(model, max_cols=16) -> list:
    """Names of MatMuls whose constant weight has at most max_cols output columns (the routers)."""
    shapes = {t.name: list(t.dims) for t in model.graph.initializer}
    return [n.name for n in model.graph.node
            if n.op_type == "MatMul" and n.input[1] in shapes and shapes[n.input[1]][-1] <= max_cols]


def tie_int8_embedding(model, granularity="row"):
    """Stores a tied embedding once, as int8: B = round(W / s)ᵀ [hidden, V] with one symmetric scale per vocab
    row (granularity "row"; "tensor" = one scale for all, for comparison). B serves both uses of W:
      lookup  Gather(B, ids, axis=1) [hidden, 1, S] -> Transpose -> Cast -> Mul(Gather(s, ids))  = W[ids] (dequant)
      lm_head DynamicQuantizeLinear(x) -> MatMulInteger(x_q, B) -> Cast -> Mul(x_scale · s)      (ORT fuses it
              into DynamicQuantizeMatMul, like the other int8 MatMuls)
    Finds W as the fp32 initializer read by both a Gather (data) and a MatMul (as A: the graph computes W·xᵀ);
    returns the model unchanged (and False) when there is no such pair. Deterministic (numpy round-half-even)."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    g = model.graph
    inits = {t.name: t for t in g.initializer}
    gathers = {n.input[0]: n for n in g.node if n.op_type == "Gather" and n.input[0] in inits}
    matmuls = {n.input[0]: n for n in g.node if n.op_type == "MatMul" and n.input[0] in inits}
    tied = [w for w in gathers if w in matmuls and inits[w].data_type == TensorProto.FLOAT
            and len(inits[w].dims) == 2]
    if not tied:
        return model, False
    name = tied[0]
    gather, matmul = gathers[name], matmuls[name]
    if any(n is not gather and n is not matmul and name in n.input for n in g.node):
        return model, False
    w = numpy_helper.to_array(inits[name]).astype(np.float32)  # [V, hidden]
    amax = np.abs(w).max(axis=1) if granularity == "row" else np.full(w.shape[0], np.abs(w).max(), np.float32)
    scale = np.where(amax > 0, amax / 127.0, 1.0).astype(np.float32)  # [V]
    q = np.clip(np.rint(w / scale[:, None]), -127, 127).astype(np.int8)
    b_name, s_name, p = name + ".int8_t", name + ".scale", "/tied_embedding_int8"
    ax = p + "/axes_last"
    new_inits = [numpy_helper.from_array(np.ascontiguousarray(q.T), b_name), numpy_helper.from_array(scale, s_name),
                 numpy_helper.from_array(np.array([-1], np.int64), ax)]
    ids, emb = gather.input[1], gather.output[0]
    lookup = [
        helper.make_node("Gather", [b_name, ids], [p + "/rows_t"], name=p + "/Gather", axis=1),
        helper.make_node("Transpose", [p + "/rows_t"], [p + "/rows_q"], name=p + "/Transpose", perm=[1, 2, 0]),
        helper.make_node("Cast", [p + "/rows_q"], [p + "/rows_f"], name=p + "/Cast", to=TensorProto.FLOAT),
        helper.make_node("Gather", [s_name, ids], [p + "/row_scale"], name=p + "/GatherScale", axis=0),
        helper.make_node("Unsqueeze", [p + "/row_scale", ax], [p + "/row_scale3"], name=p + "/Unsqueeze"),
        helper.make_node("Mul", [p + "/rows_f", p + "/row_scale3"], [emb], name=p + "/Dequantize"),
    ]
    x, y = matmul.input[1], matmul.output[0]  # x [hidden, 1] (last hidden state, transposed); y = W·x [V, 1]
    head = [
        helper.make_node("Transpose", [x], [p + "/x"], name=p + "/lm_head/TransposeIn", perm=[1, 0]),
        helper.make_node("DynamicQuantizeLinear", [p + "/x"], [p + "/x_q", p + "/x_scale", p + "/x_zp"],
                         name=p + "/lm_head/DynamicQuantizeLinear"),
        helper.make_node("MatMulInteger", [p + "/x_q", b_name, p + "/x_zp"], [p + "/y_i32"],
                         name=p + "/lm_head/MatMulInteger"),
        helper.make_node("Cast", [p + "/y_i32"], [p + "/y_f"], name=p + "/lm_head/Cast", to=TensorProto.FLOAT),
        helper.make_node("Mul", [p + "/x_scale", s_name], [p + "/y_scale"], name=p + "/lm_head/ScaleMul"),
        helper.make_node("Mul", [p + "/y_f", p + "/y_scale"], [p + "/y"], name=p + "/lm_head/Mul"),
        helper.make_node("Transpose", [p + "/y"], [y], name=p + "/lm_head/TransposeOut", perm=[1, 0]),
    ]
    nodes = []
    for n in g.node:
        nodes += lookup if n is gather else head if n is matmul else [n]
    del g.node[:]
    g.node.extend(nodes)
    keep = [t for t in g.initializer if t.name != name]
    del g.initializer[:]
    g.initializer.extend(keep + new_inits)
    return model, True
