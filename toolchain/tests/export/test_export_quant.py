"""int8 / int4 CPU weights of the exported graph against its fp32 source, and the tied embedding stored once as
int8."""
import numpy as np
import pytest

ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")

from mixsga import runtime as rt  # noqa: E402
from mixsga.errors import UserError  # noqa: E402
from mixsga.export import export_onnx  # noqa: E402
from onnx import numpy_helper  # noqa: E402
from export_kit import (  # noqa: E402
    CFG, E, L, QUANT_LOGIT_ATOL, QUANT_TOP1_MIN, V, all_nodes, empty_cache, feeds, make_model, random_case, run,
    session
)

# ---------------------------------------------------------------------------------------------------- int8 / int4

@pytest.fixture(scope="module")
def quantized(model, tmp_path_factory):
    d = tmp_path_factory.mktemp("quant")
    paths = {}
    for kind in ("int8", "int4", "mixed"):
        paths[kind] = d / f"{kind}.onnx"
        export_onnx(model, paths[kind], "float32", kind)
    return paths


def quant_agreement(ref_sess, quant_sess, seed):
    """Top-1 agreement and worst logit difference of a quantised graph against its fp32 source, on 12 random
    chunks over mixed-size caches."""
    top1, worst = [], 0.0
    for i in range(12):
        ids, pos, past = random_case(CFG, 6, [[4, 2, 9], [9, 4, 2], [2, 9, 4]], 16, seed=seed + i)
        f = feeds(rt.as_feeds(past), ids, pos)
        a, b = run(ref_sess, f)["logits"], run(quant_sess, f)["logits"]
        top1.append(a.argmax() == b.argmax())
        worst = max(worst, float(np.abs(a - b).max()))
    return float(np.mean(top1)), worst


@pytest.mark.parametrize("kind", ["int8", "int4", "mixed"])
def test_quantized_cpu_weights(fp32, fp32_onnx, quantized, kind):
    path = quantized[kind]
    g = onnx.load(str(path)).graph
    body = next(a.g for n in g.node if n.op_type == "Loop" for a in n.attribute if a.name == "body")
    ops = [n.op_type for n in body.node]
    if kind == "mixed":  # int8 q/K/V, o, gate, up; int4 down (a decode step; the chunk's are the same)
        assert ops.count("DynamicQuantizeMatMul") == 4 * L and ops.count("MatMulNBits") == L
        assert all(n.input[1].endswith("down.int4") for n in g.node if n.op_type == "MatMulNBits")
    else:
        quant_op = {"int8": "DynamicQuantizeMatMul", "int4": "MatMulNBits"}[kind]
        assert ops.count(quant_op) == 5 * L  # qkv, o, gate, up, down of every layer
    # the only float weight matrices left in the layers are the routers [hidden, E], kept fp32 (a flipped
    # route changes a token's KV size); embedding and lm_head of this untied model stay float too
    mats = [tuple(t.dims) for t in g.initializer if t.data_type == onnx.TensorProto.FLOAT and len(t.dims) == 2
            and t.dims[0] in (CFG.hidden_size, CFG.intermediate_size)]
    assert mats == [(CFG.hidden_size, E)] * L
    sess = session(path)
    top1, worst = quant_agreement(fp32, sess, seed=100)
    assert top1 >= QUANT_TOP1_MIN, (kind, top1)
    assert worst < QUANT_LOGIT_ATOL[kind], (kind, worst)
    out = run(sess, feeds(empty_cache(), [5, 6, 7], [0, 1, 2], gen_steps=4))  # the loop runs on these weights
    assert len(out["tokens"]) == 5 and np.isfinite(out["logits"]).all()
    assert path.stat().st_size < fp32_onnx.stat().st_size


def test_quantized_sizes_ordered(fp32_onnx, quantized):
    sizes = {k: p.stat().st_size for k, p in quantized.items()}
    assert sizes["int4"] < sizes["mixed"] < sizes["int8"] < 0.6 * fp32_onnx.stat().st_size


TIED = CFG.replace(tie_word_embeddings=True)


@pytest.fixture(scope="module")
def tied(tmp_path_factory):
    m = make_model(TIED, seed=3)
    p = tmp_path_factory.mktemp("tied") / "model.onnx"
    export_onnx(m, p)
    return m, p


def embedding_output(path, ids):
    """The chunk's embedded hidden states [1, S, hidden]: the input of the first layer's RMSNorm, exposed as an
    extra graph output."""
    m = onnx.load(str(path))
    name = next(n for n in m.graph.node if n.op_type == "SimplifiedLayerNormalization").input[0]
    m.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    sess = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run([name], feeds(empty_cache(), ids, list(range(len(ids)))))[0]


@pytest.mark.parametrize("kind", ["int8", "int4", "mixed"])
def test_tied_embedding_stored_once_as_int8(tied, tmp_path, kind):
    """int8|int4 weights with tied embeddings: one int8 [hidden, V] matrix (one scale per vocab row) serves the
    Gather and the lm_head, in the chunk and in the loop body; no float [V, hidden] copy is left;
    dequantisation error <= scale/2; logits agree with fp32; embedding="float32" keeps the float matrix."""
    model, fp32_path = tied
    w = model.model.embed_tokens.weight.detach().numpy()
    q = tmp_path / "q.onnx"
    export_onnx(model, q, "float32", kind)
    export_onnx(model, tmp_path / "q2.onnx", "float32", kind)
    assert q.read_bytes() == (tmp_path / "q2.onnx").read_bytes()  # deterministic
    g = onnx.load(str(q)).graph
    inits = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    assert not [n for n, v in inits.items() if v.dtype.kind == "f" and sorted(v.shape) == sorted(w.shape)]
    big = [n for n, v in inits.items() if v.dtype == np.int8 and v.shape == w.shape[::-1]]
    assert len(big) == 1
    b_name = big[0]
    users = sorted(n.op_type for n in all_nodes(g) if b_name in n.input)
    assert users == ["DynamicQuantizeMatMul"] * 3 + ["Gather"] * 3  # long chunk, short chunk, decode step
    scale_name = next(n.input[2] for n in all_nodes(g) if n.op_type == "DynamicQuantizeMatMul" and n.input[1] == b_name)
    scale = inits[scale_name]
    deq = inits[b_name].T.astype(np.float32) * scale[:, None]
    assert np.all(np.abs(deq - w) <= scale[:, None] / 2 + 1e-7)
    np.testing.assert_allclose(scale, np.abs(w).max(1) / 127, rtol=1e-6)
    ids = [0, 17, 210, 17, 99]  # the lookup returns the dequantised rows (each with its own scale)
    flat = tmp_path / "flat.onnx"  # the same lookup in a graph whose chunk is in the main graph (not in an If)
    export_onnx(model, flat, "float32", kind, attention="expand")
    np.testing.assert_allclose(embedding_output(flat, ids), deq[ids][None], atol=1e-6, rtol=0)
    top1, worst = quant_agreement(session(fp32_path), session(q), seed=200)
    assert top1 >= QUANT_TOP1_MIN, (kind, top1)
    assert worst < QUANT_LOGIT_ATOL[kind], (kind, worst)
    keep = tmp_path / "keep.onnx"
    export_onnx(model, keep, "float32", kind, embedding="float32")
    kept = [t for t in onnx.load(str(keep)).graph.initializer if tuple(t.dims) == w.shape]
    assert len(kept) == 1 and kept[0].data_type == onnx.TensorProto.FLOAT
    assert q.stat().st_size < keep.stat().st_size


def test_int8_embedding_needs_tied_weights(model, tied, tmp_path):
    with pytest.raises(UserError, match="tied"):
        export_onnx(model, tmp_path / "q.onnx", "float32", "int8", embedding="int8")
    with pytest.raises(UserError, match="int8/int4 weights"):  # tied, but float weights
        export_onnx(tied[0], tmp_path / "q.onnx", "float32", "float32", embedding="int8")
    with pytest.raises(UserError, match="float16"):
        export_onnx(model, tmp_path / "q.onnx", "float16", "int8")
    export_onnx(model, tmp_path / "q.onnx", "float32", "int8")  # auto: an untied embedding stays float
    inits = onnx.load(str(tmp_path / "q.onnx")).graph.initializer
    assert [t.data_type for t in inits if tuple(t.dims) == (V, CFG.hidden_size)] == [onnx.TensorProto.FLOAT] * 2
