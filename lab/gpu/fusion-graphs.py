"""Micro-benchmark graphs for decode-step fusions on ONNX Runtime's CUDA EP (TinyLlama-1.1B sizes, fp16): each
graph is a Loop whose body chains the same block 22 times (one per layer), so (t(65 trips) - t(1)) / 64 / 22 is
the block's cost per layer and token. Pairs compute the same function, so the JS side also compares outputs.

  mlp5    gate MatMul, up MatMul, QuickGelu, Mul, down MatMul          (graph revision 2's MLP)
  moe1    one com.microsoft.MoE node: 1 expert, SwiGLU (interleaved gate/up rows), k = 1
  pool    q|K|V MatMul, router MatMul -> Cast -> Add -> ArgMax, Reshape, Gather pooling matrix, MatMul, Reshape,
          o MatMul                                                     (revision 2's routed projection)
  gnd     router MatMul -> Add -> ArgMax (fp16), GatherND of the route's pre-pooled q|K|V weights, MatMul, o MatMul

    python3 lab/gpu/fusion-graphs.py DIR [small] && node lab/gpu/fusion.js DIR   # JSON on stdout
"""
import os, sys
import numpy as np, onnx
from onnx import helper, TensorProto, numpy_helper

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
h, F, nq, H, D, E, LAYERS = 2048, 5632, 32, 4, 64, 3, 22
if len(sys.argv) > 2 and sys.argv[2] == "small":  # a quick CPU check of the graphs themselves
    h, F, nq, D = 256, 512, 8, 32
P = nq + 2 * H
rng = np.random.default_rng(0)
f16 = lambda *s, scale=0.02: (rng.standard_normal(s, dtype=np.float32) * scale).astype(np.float16)
vi = helper.make_tensor_value_info
gate, up, down = f16(h, F), f16(h, F), f16(F, h)
wqkv, wo, wr = f16(h, P * D), f16(P * D, h), f16(h, E, scale=0.5)
bias = np.array([0.1, -0.2, 0.3], np.float32)
pool = np.zeros((E, P, P), np.float32)
pool[:, :nq, :nq] = np.eye(nq)
for e, g in enumerate((1, 2, 4)):
    for blk in (nq, nq + H):
        for i in range(H):
            pool[e, blk + i, blk + (i // g) * g: blk + (i // g + 1) * g] = 1.0 / g
stack = np.einsum("epq,hqd->ehpd", pool, wqkv.astype(np.float32).reshape(h, P, D)).reshape(E, h, P * D).astype(np.float16)
w1 = np.stack([gate.T, up.T], axis=1).reshape(1, 2 * F, h)  # rows g0, u0, g1, u1, ... (swiglu_fusion=1)
inits = {"gate": gate, "up": up, "down": down, "w1": w1, "w2": down.T[None].copy(), "rp": np.zeros((1, 1), np.float16),
         "wqkv": wqkv, "wo": wo, "wr": wr, "bias32": bias, "bias16": bias.astype(np.float16),
         "pool": pool.astype(np.float16), "stack": stack, "shape4": np.array([1, -1, P, D], np.int64),
         "shape3": np.array([1, -1, P * D], np.int64)}


def block(kind, x, i):
    n = lambda s: f"b/{s}{i}"
    if kind == "mlp5":
        g, u = n("g"), n("u")
        return [helper.make_node("MatMul", [x, "gate"], [g]), helper.make_node("MatMul", [x, "up"], [u]),
                helper.make_node("QuickGelu", [g], [n("s")], domain="com.microsoft", alpha=1.0),
                helper.make_node("Mul", [n("s"), u], [n("m")]), helper.make_node("MatMul", [n("m"), "down"], [n("y")])], n("y")
    if kind == "moe1":
        return [helper.make_node("MoE", [x, "rp", "w1", "", "w2"], [n("y")], domain="com.microsoft", k=1,
                                 activation_type="swiglu", swiglu_fusion=1, activation_alpha=1.0,
                                 activation_beta=0.0, swiglu_limit=1e9)], n("y")
    if kind == "pool":
        return [helper.make_node("MatMul", [x, "wqkv"], [n("q")]), helper.make_node("MatMul", [x, "wr"], [n("r")]),
                helper.make_node("Cast", [n("r")], [n("rc")], to=TensorProto.FLOAT),
                helper.make_node("Add", [n("rc"), "bias32"], [n("ra")]),
                helper.make_node("ArgMax", [n("ra")], [n("e")], axis=-1, keepdims=0),
                helper.make_node("Reshape", [n("q"), "shape4"], [n("q4")]),
                helper.make_node("Gather", ["pool", n("e")], [n("pm")]),
                helper.make_node("MatMul", [n("pm"), n("q4")], [n("p4")]),
                helper.make_node("Reshape", [n("p4"), "shape3"], [n("p")]),
                helper.make_node("MatMul", [n("p"), "wo"], [n("y")])], n("y")
    if kind == "gnd":
        return [helper.make_node("MatMul", [x, "wr"], [n("r")]), helper.make_node("Add", [n("r"), "bias16"], [n("ra")]),
                helper.make_node("ArgMax", [n("ra")], [n("e")], axis=-1, keepdims=0),
                helper.make_node("GatherND", ["stack", n("e")], [n("w")]),
                helper.make_node("MatMul", [x, n("w")], [n("p")]),
                helper.make_node("MatMul", [n("p"), "wo"], [n("y")])], n("y")
    raise ValueError(kind)


def model(kind):
    nodes, x = [], "b/x"
    for i in range(LAYERS):
        bn, y = block(kind, x, i)
        nodes += bn + [helper.make_node("Add", [x, y], [f"b/res{i}"])]  # residual: keeps the chain's scale
        x = f"b/res{i}"
    # bounded scale over 64 trips (the pairs are compared on one trip)
    nodes += [helper.make_node("SimplifiedLayerNormalization", [x, "ones"], ["b/y"], axis=-1, epsilon=1e-5),
              helper.make_node("Identity", ["b/cin"], ["b/c"]), helper.make_node("Identity", [x], ["b/scan"])]
    body = helper.make_graph(nodes, "body", [vi("b/i", TensorProto.INT64, []), vi("b/cin", TensorProto.BOOL, []),
                                             vi("b/x", TensorProto.FLOAT16, [1, 1, h])],
                             [vi("b/c", TensorProto.BOOL, []), vi("b/y", TensorProto.FLOAT16, [1, 1, h]),
                              vi("b/scan", TensorProto.FLOAT16, [1, 1, h])])
    used = {i for nd in nodes for i in nd.input}
    init = [numpy_helper.from_array(v, k) for k, v in inits.items() if k in used]
    init.append(numpy_helper.from_array(np.ones(h, np.float16), "ones"))
    top = [helper.make_node("Constant", [], ["t"], value=helper.make_tensor("t", TensorProto.BOOL, [], [True])),
           helper.make_node("Loop", ["n", "t", "x"], ["y", "scan"], body=body)]
    g = helper.make_graph(top, kind, [vi("x", TensorProto.FLOAT16, [1, 1, h]), vi("n", TensorProto.INT64, [])],
                          [vi("y", TensorProto.FLOAT16, [1, 1, h]), vi("scan", TensorProto.FLOAT16, ["N", 1, 1, h])], init)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)])
    m.ir_version = 8
    onnx.save(m, f"{out}/{kind}.onnx", save_as_external_data=True, location=f"{kind}.data")


for k in ("mlp5", "moe1", "pool", "gnd"):
    model(k)
print("built", sorted(os.listdir(out)))
