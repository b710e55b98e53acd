"""The format-2 ONNX graph (docs/model-format.md, "The ONNX graph"): chunk + in-graph greedy decode loop on
token-major per-expert caches, in ONNX Runtime's CPU EP against the PyTorch reference of one run
(`mixsga.runtime.run`) on heterogeneous caches; the loop against step-by-step runs, chunk invariance, the fp16
variant, and the decode step's node budget."""
import numpy as np
import pytest
import torch

onnx = pytest.importorskip("onnx")

from mixsga import runtime as rt  # noqa: E402
from mixsga.onnx_graph import build, graph_stats, input_names, output_names  # noqa: E402
from export_kit import (  # noqa: E402
    BIASES, CFG, E, FP16_KV_ATOL, FP16_LOGIT_ATOL, FP16_MIN_MARGIN, L, SHAPES, STEP_NODES_OVERHEAD,
    STEP_NODES_PER_LAYER, STEP_NODES_PER_LAYER_COMPACT, V, append, assert_matches_reference, copy_past,
    empty_cache, feeds, make_model, random_case, route_margin, run
)

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
