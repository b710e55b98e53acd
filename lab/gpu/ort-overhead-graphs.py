"""Micro-benchmark graphs: what a node and a `Loop` iteration cost on ONNX Runtime's CUDA EP, apart from any
model (docs/benchmarks.md, "Why the TinyLlama decode target is missed"). Writes into DIR:

  flat_k400[_implicit]   400 chained fp16 Adds (constant operand shared / one outer initializer per node)
  loop_k0[_cpucond]      a Loop whose body does nothing (stop check on device data / plain CPU passthrough)
  loop_k400[_implicit]   the 400-Add chain as the Loop body (constants shared / 400 outer-scope inputs)

    python3 lab/gpu/ort-overhead-graphs.py DIR && node lab/gpu/ort-overhead.js DIR   # JSON on stdout
"""
import sys, numpy as np, onnx
from onnx import helper, TensorProto, numpy_helper
out = sys.argv[1]
W = 2048
def model(name, K, implicit, loop=True, cond_gpu=True):
    inits = [numpy_helper.from_array(np.full(W, 1e-3, np.float16), "zero"),
             numpy_helper.from_array(np.zeros(16, bool), "stop")]
    if implicit:
        inits += [numpy_helper.from_array(np.full(W, 1e-3, np.float16), f"w{i}") for i in range(K)]
    def chain(prefix, x):
        nodes = []
        for i in range(K):
            y = f"{prefix}a{i}"
            nodes.append(helper.make_node("Add", [x, f"w{i}" if implicit else "zero"], [y]))
            x = y
        return nodes, x
    vi = helper.make_tensor_value_info
    if not loop:
        nodes, y = chain("m/", "x")
        g = helper.make_graph(nodes + [helper.make_node("Identity", [y], ["y"])], name,
                              [vi("x", TensorProto.FLOAT16, [W]), vi("n", TensorProto.INT64, [])], [vi("y", TensorProto.FLOAT16, [W])], inits)
    else:
        bn, y = chain("b/", "b/x")
        if cond_gpu:  # like the model: the stop check reads device data
            bn += [helper.make_node("Gather", ["stop", "b/i0"], ["b/s"]), helper.make_node("Not", ["b/s"], ["b/c"])]
        else:
            bn += [helper.make_node("Identity", ["b/cin"], ["b/c"])]
        bn += [helper.make_node("Identity", [y], ["b/y"]), helper.make_node("Identity", [y], ["b/scan"])]
        body = helper.make_graph(bn, "body", [vi("b/i", TensorProto.INT64, []), vi("b/cin", TensorProto.BOOL, []), vi("b/x", TensorProto.FLOAT16, [W])],
                                 [vi("b/c", TensorProto.BOOL, []), vi("b/y", TensorProto.FLOAT16, [W]), vi("b/scan", TensorProto.FLOAT16, [W])])
        if cond_gpu:
            body.node.insert(0, helper.make_node("Constant", [], ["b/i0"], value=helper.make_tensor("z", TensorProto.INT64, [], [0])))
        nodes = [helper.make_node("Constant", [], ["t"], value=helper.make_tensor("t", TensorProto.BOOL, [], [True])),
                 helper.make_node("Loop", ["n", "t", "x"], ["y", "scan"], body=body)]
        g = helper.make_graph(nodes, name, [vi("x", TensorProto.FLOAT16, [W]), vi("n", TensorProto.INT64, [])],
                              [vi("y", TensorProto.FLOAT16, [W]), vi("scan", TensorProto.FLOAT16, ["N", W])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.save(m, f"{out}/{name}.onnx")
import os; os.makedirs(out, exist_ok=True)
model("loop_k0", 0, False)
model("loop_k0_cpucond", 0, False, cond_gpu=False)
model("loop_k400", 400, False)
model("loop_k400_implicit", 400, True)
model("flat_k400", 400, False, loop=False)
model("flat_k400_implicit", 400, True, loop=False)
print("built", sorted(os.listdir(out)))
