"""The format-2 ONNX graph (docs/model-format.md, "The ONNX graph"): chunk + in-graph greedy decode loop on
token-major per-expert caches. Checked in ONNX Runtime's CPU EP against the PyTorch reference of one run
(`mixsga.runtime.run`) on heterogeneous caches, the loop against step-by-step runs, chunk invariance, the fp16
variant, int8/int4 weights (incl. the tied int8 embedding), external data, the model folder's manifest, and the
decode step's node budget."""
import json

import numpy as np
import pytest
import torch

ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")

from onnx import numpy_helper  # noqa: E402

from mixsga import manifest as mf  # noqa: E402
from mixsga import runtime as rt  # noqa: E402
from mixsga.checkpoint import save_checkpoint  # noqa: E402
from mixsga.config import ModelConfig  # noqa: E402
from mixsga.errors import UserError  # noqa: E402
from mixsga.export import export_folder, export_onnx  # noqa: E402
from mixsga.model import MixSGAForCausalLM  # noqa: E402
from mixsga.onnx_graph import build, graph_stats, input_names, output_names  # noqa: E402

CFG = ModelConfig(vocab_size=211, hidden_size=64, intermediate_size=96, num_layers=3, num_attention_heads=8,
                  num_kv_heads=4, head_dim=16, expert_group_sizes=(1, 2, 4))
L, E, V, D = CFG.num_layers, CFG.num_experts, CFG.vocab_size, CFG.head_dim
BETA = [0.3, 0.6, 0.2]  # router bias β of every layer: nonzero, so a graph that drops or doubles it is caught
# (S, T per layer and expert, first position): a different T per expert, T = 0 for some caches, all empty; the
# per-layer totals are equal (the graph's contract: every layer holds the same number of past tokens)
SHAPES = [(5, [[3, 0, 7], [0, 4, 6], [2, 6, 2]], 20), (1, [[0, 0, 0]] * 3, 0),
          (1, [[9, 0, 2], [0, 0, 11], [5, 5, 1]], 11), (13, [[0, 0, 0]] * 3, 0), (4, [[0, 6, 0], [6, 0, 0], [0, 0, 6]], 9)]
BIASES = [[0.0, 0.0, 0.0], [0.5, -0.4, 0.2]]

# fp16 variant vs the fp32 reference. The fp16 router logits are off by up to ~4e-3 on this model, so the fp16
# cases are ones whose reference routing margin (top-1 minus top-2 of router logits + route_bias) is >= 0.02:
# there a flipped route is a bug, not rounding.
FP16_LOGIT_ATOL = 3e-2
FP16_KV_ATOL = 1e-2
FP16_MIN_MARGIN = 0.02
# int8/int4 weights vs the fp32 graph (this model: |logits| <~ 7). Smoke bounds: on random Gaussian weights
# (std 0.1) per-column int8 with dynamically quantised activations and block-32 int4 both perturb K by a few % of
# its range and routes flip downstream; trained weights must be judged on eval_ppl.
QUANT_LOGIT_ATOL = {"int8": 5.0, "int4": 5.0, "mixed": 5.0}
QUANT_TOP1_MIN = 0.5
# decode-step budget: nodes per layer in the Loop body (18 documented) plus the per-step overhead (position and
# sequence-length arithmetic, final norm, lm_head, argmax, stop check, router-logit output)
STEP_NODES_PER_LAYER = 18
STEP_NODES_OVERHEAD = 18
# the CPU variants' attention over the caches as stored: per block of keys (3 experts' past + the tokens since)
# a reshape of the queries, two MatMuls, transposes and reshapes of the scores and the output, a Slice of the
# probabilities, the empty-block guard; RoPE, the softmax and the grown loop state
STEP_NODES_PER_LAYER_COMPACT = 70


def make_model(cfg=CFG, seed=0):
    torch.manual_seed(seed)
    m = MixSGAForCausalLM(cfg).init_weights(std=0.1, seed=seed)
    with torch.no_grad():
        m.model.norm.weight.fill_(3.0)  # spread logits so top-1 comparisons are meaningful
        for layer in m.model.layers:
            layer.self_attn.router.bias.copy_(torch.tensor(BETA))
    return m.eval()


def session(path):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def export_session(model, path, *args, **kw):
    export_onnx(model, path, *args, **kw)
    return session(path)


@pytest.fixture(scope="module")
def model():
    return make_model()


@pytest.fixture(scope="module")
def fp32_onnx(model, tmp_path_factory):
    p = tmp_path_factory.mktemp("fp32") / "model.onnx"
    export_onnx(model, p)
    return p


@pytest.fixture(scope="module")
def fp32(fp32_onnx):
    return session(fp32_onnx)


@pytest.fixture(scope="module")
def fp16(model, tmp_path_factory):
    """The CUDA variant, run on ORT's CPU EP (every op in the graph has a CPU fp16 kernel)."""
    return export_session(model, tmp_path_factory.mktemp("fp16") / "model.cuda.onnx", "float16", "float16")


# ---------------------------------------------------------------------------------------------------- helpers

def random_case(cfg, S, Ts, pos0, seed):
    """ids, positions (lists) and past caches in the model's layout (past[l][e] = (k, v) [1, H_e, T, D])."""
    assert len({sum(T) for T in Ts}) == 1, "every layer must hold the same number of past tokens"
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, cfg.vocab_size, (S,), generator=g).tolist()
    past = [[(torch.randn(1, h, t, cfg.head_dim, generator=g), torch.randn(1, h, t, cfg.head_dim, generator=g))
             for h, t in zip(cfg.expert_kv_heads(), T)] for T in Ts]
    return ids, list(range(pos0, pos0 + S)), past


def copy_past(past):
    return [list(layer) for layer in past]


def empty_cache(cfg=CFG, dtype=np.float32):
    return {f"past.{l}.{e}": np.zeros((1, 0, 2, h, cfg.head_dim), dtype)
            for l in range(cfg.num_layers) for e, h in enumerate(cfg.expert_kv_heads())}


def feeds(cache, ids, pos, bias=(0, 0, 0), gen_steps=0, stop=(), first_mask=None, cfg=CFG):
    stop_mask = np.zeros(cfg.vocab_size, bool)
    stop_mask[list(stop)] = True
    return {"input_ids": np.array([ids], np.int64), "position_ids": np.array([pos], np.int64),
            "route_bias": np.asarray(bias, np.float32), "gen_steps": np.array(gen_steps, np.int64),
            "stop_mask": stop_mask,
            "first_mask": np.zeros(cfg.vocab_size, np.float32) if first_mask is None else first_mask, **cache}


def run(sess, f):
    return dict(zip([o.name for o in sess.get_outputs()], sess.run(None, f)))


def append(cache, out, cfg=CFG):
    """The runtime's cache update: kv.{e}'s rows for layer l are the tokens t with route[l, t] = e, in token
    order; they go to the end of past.{l}.{e}."""
    new = dict(cache)
    for e in range(cfg.num_experts):
        rows = out[f"kv.{e}"]
        counts = [int((out["route"][l] == e).sum()) for l in range(cfg.num_layers)]
        assert rows.shape[0] == sum(counts), (e, rows.shape, counts)
        for l, part in enumerate(np.split(rows, np.cumsum(counts)[:-1])):
            key = f"past.{l}.{e}"
            new[key] = np.concatenate([cache[key], part[None].astype(cache[key].dtype)], axis=1)
    return new


def assert_matches_reference(out, ref, logit_atol=1e-4, atol=1e-5):
    """A graph run against `runtime.run` of the same inputs."""
    np.testing.assert_allclose(out["logits"], ref.logits.numpy(), atol=logit_atol, rtol=0)
    assert out["tokens"].tolist() == ref.tokens
    assert out["route"].dtype == np.int32 and np.array_equal(out["route"], np.array(ref.route))
    assert out["route"].shape[1] == out["scores"].shape[1]
    ref_scores = np.array([[s.numpy() for s in layer] for layer in ref.scores])
    np.testing.assert_allclose(out["scores"], ref_scores, atol=atol, rtol=0)
    for e in range(E):
        assert out[f"kv.{e}"].shape == tuple(ref.kv[e].shape), e
        np.testing.assert_allclose(out[f"kv.{e}"].astype(np.float32), ref.kv[e].numpy(), atol=atol, rtol=0)


def route_margin(ref, bias):
    """Smallest gap between the best and second-best expert over every routing decision of a reference run."""
    s = np.array([[x.numpy() for x in layer] for layer in ref.scores], np.float64)
    r = np.sort(np.log(s / (1 - s)) + np.asarray(bias), axis=-1)
    return float((r[..., -1] - r[..., -2]).min())


def all_nodes(graph):
    """Nodes of a graph and of its subgraphs (the Loop body)."""
    for n in graph.node:
        yield n
        for a in n.attribute:
            if a.type == onnx.AttributeProto.GRAPH:
                yield from all_nodes(a.g)


# ---------------------------------------------------------------------------------------------------- interface

def test_graph_io_names_and_dynamic_dims(fp32_onnx, fp16):
    g = onnx.load(str(fp32_onnx)).graph
    assert [i.name for i in g.input] == input_names(CFG)
    assert [o.name for o in g.output] == output_names(CFG)
    dims = {i.name: [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim] for i in g.input}
    assert dims["input_ids"] == [1, "S"] and dims["position_ids"] == [1, "S"] and dims["route_bias"] == [3]
    assert dims["gen_steps"] == [] and dims["stop_mask"] == [211] and dims["first_mask"] == [211]
    assert dims["past.2.1"] == [1, "T_2_1", 2, 2, 16] and dims["past.0.2"] == [1, "T_0_2", 2, 1, 16]
    assert dims["past.1.0"] == [1, "T_1_0", 2, 4, 16]
    outs = {o.name: [d.dim_param or d.dim_value for d in o.type.tensor_type.shape.dim] for o in g.output}
    assert outs["logits"] == [1, 211] and outs["tokens"] == ["N1"]
    assert outs["route"] == [3, "N"] and outs["scores"] == [3, "N", 3]
    assert outs["kv.0"] == ["n_0", 2, 4, 16] and outs["kv.2"] == ["n_2", 2, 1, 16]
    types = {i.name: i.type for i in fp16.get_inputs() + fp16.get_outputs()}
    assert types["past.0.0"] == "tensor(float16)" and types["kv.1"] == "tensor(float16)"
    assert types["logits"] == "tensor(float)" and types["scores"] == "tensor(float)"
    assert types["route"] == "tensor(int32)" and types["tokens"] == "tensor(int64)"
    assert types["route_bias"] == "tensor(float)" and types["stop_mask"] == "tensor(bool)"


# ---------------------------------------------------------------------------------------------------- fp32

@pytest.mark.parametrize("gen_steps", [0, 5])
@pytest.mark.parametrize("bias", BIASES)
def test_fp32_matches_runtime_on_heterogeneous_caches(model, fp32, bias, gen_steps):
    used = set()
    for i, (S, Ts, pos0) in enumerate(SHAPES):
        ids, pos, past = random_case(CFG, S, Ts, pos0, seed=i)
        out = run(fp32, feeds(rt.as_feeds(past), ids, pos, bias, gen_steps))
        ref = rt.run(model, ids, pos, bias, copy_past(past), gen_steps)
        assert len(ref.tokens) == gen_steps + 1  # no stop token: the loop runs every step
        assert out["route"].shape == (L, S + gen_steps)
        assert_matches_reference(out, ref)
        used |= set(out["route"].flatten().tolist())
    assert used == {0, 1, 2}


def test_stop_mask_ends_the_loop(model, fp32):
    ids, pos, past = random_case(CFG, 4, [[2, 1, 3], [0, 6, 0], [3, 3, 0]], 6, seed=21)
    cache, bias = rt.as_feeds(past), BIASES[1]
    full = run(fp32, feeds(cache, ids, pos, bias, gen_steps=8))
    toks = full["tokens"].tolist()
    assert len(toks) == 9
    i = next(j for j in range(2, len(toks)) if toks[j] not in toks[:j])  # first seen at step j >= 2
    out = run(fp32, feeds(cache, ids, pos, bias, gen_steps=8, stop={toks[i]}))
    assert out["tokens"].tolist() == toks[:i + 1]  # the stop token is picked, not processed
    assert np.array_equal(out["route"], full["route"][:, :4 + i])
    assert_matches_reference(out, rt.run(model, ids, pos, bias, copy_past(past), 8, stop_mask={toks[i]}))
    # t_0 is a stop token: the loop does not start
    out = run(fp32, feeds(cache, ids, pos, bias, gen_steps=8, stop={toks[0], toks[i]}))
    assert out["tokens"].tolist() == toks[:1] and out["route"].shape == (L, 4)
    assert sum(out[f"kv.{e}"].shape[0] for e in range(E)) == L * 4
    assert_matches_reference(out, rt.run(model, ids, pos, bias, copy_past(past), 8, stop_mask={toks[0]}))


def test_first_mask_restricts_t0_only(model, fp32):
    ids, pos, past = random_case(CFG, 3, [[1, 2, 2]] * 3, 5, seed=22)
    cache = rt.as_feeds(past)
    base = run(fp32, feeds(cache, ids, pos, gen_steps=4))
    order = np.argsort(-base["logits"][0])
    allowed = order[[4, 9]]  # the 5th- and 10th-best tokens
    fm = np.full(V, -np.inf, np.float32)
    fm[allowed] = 0
    out = run(fp32, feeds(cache, ids, pos, gen_steps=4, first_mask=fm))
    assert out["tokens"][0] == order[4] != base["tokens"][0]
    np.testing.assert_array_equal(out["logits"], base["logits"])  # logits are before first_mask
    assert not set(out["tokens"][1:].tolist()) <= set(allowed.tolist())  # t_1.. are not restricted
    assert_matches_reference(out, rt.run(model, ids, pos, [0, 0, 0], copy_past(past), 4, first_mask=fm))


@pytest.mark.parametrize("variant", ["float32", "float16"])
def test_loop_matches_step_by_step_runs(request, variant):
    """gen_steps=k in one run == k+1 runs of gen_steps=0, each feeding back the last token, with the caches
    grown from the graph's own kv/route outputs (fp16 too: the same kernels on the same values)."""
    sess = request.getfixturevalue("fp32" if variant == "float32" else "fp16")
    kv_dtype, atol, rtol = (np.float32, 1e-5, 0) if variant == "float32" else (np.float16, 2e-3, 2e-3)  # ~1 fp16 ulp
    bias, k = [0.2, -0.1, 0.1], 7
    ids, pos, past = random_case(CFG, 6, [[3, 2, 4], [1, 5, 3], [4, 4, 1]], 10, seed=31)
    cache0 = rt.as_feeds(past, kv_dtype)
    one = run(sess, feeds(cache0, ids, pos, bias, gen_steps=k))
    assert len(one["tokens"]) == k + 1 and one["route"].shape == (L, 6 + k)
    assert set(one["route"][:, 6:].flatten().tolist()) == {0, 1, 2}  # generated tokens reach every expert
    cache, tokens, routes, scores = cache0, [], [], []
    chunk, p = ids, pos
    for _ in range(k + 1):
        out = run(sess, feeds(cache, chunk, p, bias))
        assert out["tokens"].shape == (1,)
        if not tokens:
            np.testing.assert_allclose(out["logits"], one["logits"], atol=atol, rtol=rtol)
        tokens.append(int(out["tokens"][0]))
        routes.append(out["route"])
        scores.append(out["scores"])
        cache = append(cache, out)
        chunk, p = [tokens[-1]], [p[-1] + 1]
    assert tokens == one["tokens"].tolist()
    assert np.array_equal(np.concatenate(routes, axis=1), one["route"])
    np.testing.assert_allclose(np.concatenate(scores, axis=1), one["scores"], atol=atol, rtol=rtol)
    grown = append(cache0, one)
    for key, want in grown.items():
        assert cache[key].shape == want.shape, key
        np.testing.assert_allclose(cache[key].astype(np.float32), want.astype(np.float32), atol=atol, rtol=rtol)


def test_routing_chunk_invariance(fp32):
    """A text routes the same fed as one chunk or in pieces (caches grown from the outputs as the runtime
    does); logits and the final caches agree up to float rounding."""
    n, bias = 24, BIASES[1]
    ids = torch.randint(0, V, (n,), generator=torch.Generator().manual_seed(7)).tolist()
    one = run(fp32, feeds(empty_cache(), ids, list(range(n)), bias))
    cache, routes, start = empty_cache(), [], 0
    for size in (7, 1, 1, 9, 2, 4):
        out = run(fp32, feeds(cache, ids[start:start + size], list(range(start, start + size)), bias))
        routes.append(out["route"])
        cache = append(cache, out)
        start += size
    assert start == n
    assert np.array_equal(np.concatenate(routes, axis=1), one["route"])
    assert set(one["route"].flatten().tolist()) == {0, 1, 2}
    np.testing.assert_allclose(out["logits"], one["logits"], atol=1e-4, rtol=0)
    for key, want in append(empty_cache(), one).items():
        np.testing.assert_allclose(cache[key], want, atol=1e-5, rtol=0)


# ---------------------------------------------------------------------------------------------------- fp16

# seeds chosen so that every routing decision has a reference margin >= FP16_MIN_MARGIN (asserted)
FP16_CASES = [(5, [[3, 0, 7], [0, 4, 6], [2, 6, 2]], 20, 0), (1, [[9, 0, 2], [0, 0, 11], [5, 5, 1]], 11, 2),
              (11, [[0, 0, 0]] * 3, 0, 5), (8, [[4, 2, 9], [9, 4, 2], [2, 9, 4]], 30, 1), (1, [[0, 0, 0]] * 3, 0, 3)]


@pytest.mark.parametrize("bias", BIASES)
def test_fp16_variant_close_to_fp32_reference(model, fp16, bias):
    """The fp16 graph (CPU EP) against the fp32 PyTorch reference on the same (fp16-rounded) caches."""
    used = set()
    for S, Ts, pos0, seed in FP16_CASES:
        ids, pos, past = random_case(CFG, S, Ts, pos0, seed)
        past = [[(k.half().float(), v.half().float()) for k, v in lp] for lp in past]  # what an fp16 cache holds
        ref = rt.run(model, ids, pos, bias, copy_past(past), 0)
        assert route_margin(ref, bias) >= FP16_MIN_MARGIN, (seed, route_margin(ref, bias))  # test setup
        out = run(fp16, feeds(rt.as_feeds(past, np.float16), ids, pos, bias))
        assert out["logits"].dtype == np.float32 and out["kv.0"].dtype == np.float16
        assert np.array_equal(out["route"], np.array(ref.route)), (seed, out["route"], ref.route)
        used |= set(out["route"].flatten().tolist())
        assert np.abs(out["logits"] - ref.logits.numpy()).max() < FP16_LOGIT_ATOL
        ref_scores = np.array([[s.numpy() for s in layer] for layer in ref.scores])
        assert np.abs(out["scores"] - ref_scores).max() < 5e-3
        for e in range(E):
            assert out[f"kv.{e}"].shape == tuple(ref.kv[e].shape)
            assert np.abs(out[f"kv.{e}"].astype(np.float32) - ref.kv[e].numpy()).max(initial=0) < FP16_KV_ATOL
    assert used == {0, 1, 2}


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


# ---------------------------------------------------------------------------------------------------- files

def test_external_data(model, fp32, tmp_path):
    files = export_onnx(model, tmp_path / "m.onnx", external_data=True)
    assert [f.name for f in files] == ["m.onnx", "m.onnx.data"]
    assert files[0].stat().st_size < 100_000 < files[1].stat().st_size  # the weights are in the .data file
    ids, pos, past = random_case(CFG, 3, [[1, 0, 2], [0, 3, 0], [2, 1, 0]], 5, seed=3)
    f = feeds(rt.as_feeds(past), ids, pos, BIASES[1], gen_steps=3)
    got, want = run(session(files[0]), f), run(fp32, f)
    assert got["tokens"].tolist() == want["tokens"].tolist() and np.array_equal(got["route"], want["route"])
    np.testing.assert_allclose(got["logits"], want["logits"], atol=1e-6, rtol=0)
    assert export_onnx(model, tmp_path / "m.onnx") == [tmp_path / "m.onnx"]  # inline again: stale .data removed
    assert not (tmp_path / "m.onnx.data").exists()


def test_export_folder_manifest_and_verify(model, fp32, tmp_path):
    save_checkpoint(model, tmp_path / "ckpt")
    m, _ = export_folder(tmp_path / "ckpt", tmp_path / "out", name="tiny", cuda=True)
    out = tmp_path / "out"
    on_disk = json.loads((out / "manifest.json").read_text())
    assert on_disk == m
    assert m["format"] == "mixsga-onnx" and m["format_version"] == 2 and m["name"] == "tiny"
    files = m["files"]
    assert set(files) == {"model.cpu.onnx", "model.cuda.onnx", "tokenizer.json", "tokenizer_config.json"}
    assert set(files) == {p.name for p in out.iterdir()} - {"manifest.json"}
    for f, sha in files.items():
        assert sha == mf.sha256_file(out / f), f
    assert m["variants"] == {"cpu": {"file": "model.cpu.onnx", "kv_dtype": "float32", "weights": "float32"},
                             "cuda": {"file": "model.cuda.onnx", "kv_dtype": "float16", "weights": "float16"}}
    assert m["fim"] is None  # vocab 211 has no rows for the FIM ids
    fim = mf.fim_for_vocab(mf.fim_block(out / "tokenizer.json"), 32008)
    assert fim["prefix_id"] == 32000 and fim["middle_id"] == 32001 and fim["file_sep_id"] == 32004
    assert m["experts"] == [{"group_size": 1, "kv_heads": 4}, {"group_size": 2, "kv_heads": 2},
                            {"group_size": 4, "kv_heads": 1}]
    assert m["architecture"]["num_layers"] == 3 and m["architecture"]["vocab_size"] == 211
    # the folder's cpu graph is the model's (checkpoint round trip)
    ids, pos, past = random_case(CFG, 4, [[1, 2, 0]] * 3, 3, seed=5)
    f = feeds(rt.as_feeds(past), ids, pos, gen_steps=2)
    np.testing.assert_allclose(run(session(out / "model.cpu.onnx"), f)["logits"], run(fp32, f)["logits"], atol=1e-6)
    mf.verify(out)
    p = out / "tokenizer_config.json"
    p.write_text(p.read_text() + " ")
    with pytest.raises(UserError, match="tokenizer_config.json: sha256 mismatch"):
        mf.verify(out)
    p.write_text(p.read_text()[:-1])
    mf.verify(out)
    with open(out / "model.cuda.onnx", "r+b") as fh:  # one flipped byte in a graph
        fh.seek(100)
        b = fh.read(1)
        fh.seek(100)
        fh.write(bytes([b[0] ^ 1]))
    with pytest.raises(UserError, match="model.cuda.onnx: sha256 mismatch"):
        mf.verify(out)


def test_verify_rejects_format_version_1(model, tmp_path):
    save_checkpoint(model, tmp_path / "ckpt")
    export_folder(tmp_path / "ckpt", tmp_path / "out")
    p = tmp_path / "out" / "manifest.json"
    m = json.loads(p.read_text())
    m["format_version"] = 1
    p.write_text(json.dumps(m))
    with pytest.raises(UserError, match="version 1"):
        mf.verify(tmp_path / "out")


def test_dense_checkpoint_is_converted_on_the_fly(tmp_path, capsys):
    dense = MixSGAForCausalLM(CFG.replace(expert_group_sizes=())).init_weights(seed=1)
    save_checkpoint(dense, tmp_path / "dense")
    m, _ = export_folder(tmp_path / "dense", tmp_path / "out")
    assert "dense checkpoint" in capsys.readouterr().out
    assert len(m["experts"]) == 3 and m["format_version"] == 2
    mf.verify(tmp_path / "out")
    sess = session(tmp_path / "out" / "model.cpu.onnx")
    out = run(sess, feeds(empty_cache(), [3, 4, 5], [0, 1, 2], gen_steps=2))
    assert len(out["tokens"]) == 3 and np.isfinite(out["logits"]).all()


# ---------------------------------------------------------------------------------------------------- budget

def test_decode_step_node_budget(model):
    """What one generated token launches, per layer in the Loop body. The fp16 (CUDA) variant: at most 18 nodes,
    one fused GroupQueryAttention with RoPE inside. The CPU variants attend over the per-expert caches as stored
    (onnx_attention.py): one RotaryEmbedding and one softmax per layer, two MatMuls per block of keys (each
    expert's past, the tokens since), no GroupQueryAttention. No Split anywhere (costly on CUDA)."""
    small = make_model(CFG.replace(num_layers=1), seed=1)
    blocks = E + 1
    for dtype, weights in [("float32", "float32"), ("float32", "int4"), ("float16", "float16")]:
        compact = dtype == "float32"
        per_layer = STEP_NODES_PER_LAYER_COMPACT if compact else STEP_NODES_PER_LAYER
        per = {}
        for m in (small, model):
            proto = build(m, dtype, weights)
            stats = graph_stats(proto)
            n_layers = m.cfg.num_layers
            assert stats["step_nodes"] <= per_layer * n_layers + STEP_NODES_OVERHEAD, (dtype, weights, stats)
            body = next(a.g for n in proto.graph.node if n.op_type == "Loop" for a in n.attribute if a.name == "body")
            ops = [n.op_type for n in body.node]
            assert "Split" not in ops, (dtype, weights)
            if compact:
                assert "GroupQueryAttention" not in ops and "Expand" not in ops
                assert ops.count("RotaryEmbedding") == ops.count("Softmax") == n_layers
                assert ops.count("FusedMatMul") == 2 * blocks * n_layers
            else:
                assert ops.count("GroupQueryAttention") == n_layers and "RotaryEmbedding" not in ops
            if not compact:  # (the compact variant's chunk is in an If's branches)
                assert stats["nodes"] > stats["step_nodes"]
            per[n_layers] = stats["step_nodes"]
        slope = (per[L] - per[1]) / (L - 1)
        assert slope <= per_layer, (dtype, weights, per)


def test_decode_loop_caches_are_buffers_with_room_for_every_step(model):
    """The Loop carries each layer's K and V as a buffer of T+S+gen_steps positions (Pad by gen_steps), not a cache
    grown by one token per step: ORT 1.29's CUDA GroupQueryAttention sizes a decode step's present like its past,
    so a growing cache dropped every step's key and value on the GPU (found by lab/gpu/ep-diff.js on the H200;
    the CPU kernel grew it, so only this structure can be checked here)."""
    proto = build(model, "float16", "float16")
    producer = {o: n for n in proto.graph.node for o in n.output}
    loop = next(n for n in proto.graph.node if n.op_type == "Loop")
    caches = loop.input[3:]
    assert len(caches) == 2 * model.cfg.num_layers
    for name in caches:
        pad = producer[name]
        assert pad.op_type == "Pad", name
        pads = producer[pad.input[1]]
        assert pads.op_type == "Concat" and any(producer.get(i) is not None and "gen_steps" in producer[i].input
                                                for i in pads.input), name


def test_export_refuses_head_dim_not_multiple_of_16(tmp_path):
    """ORT's GroupQueryAttention applies RoPE only for head sizes that are multiples of 16: a clear error, no file."""
    m = make_model(CFG.replace(head_dim=8, num_layers=1), seed=2)
    with pytest.raises(UserError, match="multiple of 16"):
        export_onnx(m, tmp_path / "model.onnx")
    assert not (tmp_path / "model.onnx").exists()


def test_age_cascade_checkpoint_exports_pinned_to_full_heads(tmp_path):
    """A model trained for an age cascade (kv_policy order=age) has no routing: the export pins every new token
    to expert 0 (full heads), so the graph computes the dense model, and the manifest names the policy the engine
    serves."""
    from mixsga import kv_policy

    dense_cfg = CFG.replace(expert_group_sizes=())
    torch.manual_seed(3)
    dense = MixSGAForCausalLM(dense_cfg).init_weights(std=0.1, seed=3).eval()
    spec = "band=8,order=age,stores=g1-int8|g1-int4c|g2-int4c"
    trained = kv_policy.attach(MixSGAForCausalLM(dense_cfg), spec)
    trained.load_state_dict(dense.state_dict(), strict=False)
    save_checkpoint(trained, tmp_path / "ckpt")
    m, _ = export_folder(tmp_path / "ckpt", tmp_path / "out")
    assert m["kv_policy"] == spec
    sess = session(tmp_path / "out" / "model.cpu.onnx")
    ids = list(range(7, 19))
    out = dict(zip(output_names(CFG), sess.run(None, feeds(empty_cache(), ids, list(range(len(ids))),
                                                           bias=(0.0, 5.0, 5.0)))))
    assert (out["route"] == 0).all()  # a route_bias the budget might set does not move tokens off expert 0
    with torch.no_grad():
        ref = dense(torch.tensor([ids])).logits[0, -1]
    np.testing.assert_allclose(out["logits"][0], ref.numpy(), atol=2e-4)
    with pytest.raises(UserError):
        routed = kv_policy.attach(MixSGAForCausalLM(dense_cfg), "band=8,stores=g1-int8|evict")
        save_checkpoint(routed, tmp_path / "routed")
        export_folder(tmp_path / "routed", tmp_path / "out2")
