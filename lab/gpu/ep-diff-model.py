"""A debug copy of a model file for lab/gpu/ep-diff.js: every main-graph node's first output becomes a graph
output, and so does every decode-loop node's first output up to the first MatMul of layer 1 (as a Loop scan
output: one row per decode step), plus a case file of real token ids (the start of a repo source file).

    python3 lab/gpu/ep-diff-model.py models/default/model.cuda.onnx OUT_DIR
    python3 lab/gpu/ep-diff-model.py --case-only OUT_DIR      # only case.json (compare a model's own outputs)
"""
import json
import pathlib
import sys

import onnx
from tokenizers import Tokenizer

ROOT = pathlib.Path(__file__).resolve().parents[2]
case_only = sys.argv[1] == "--case-only"
src, out = (None if case_only else sys.argv[1]), pathlib.Path(sys.argv[2])
out.mkdir(parents=True, exist_ok=True)
tok = Tokenizer.from_file(str(ROOT / "toolchain/mixsga/assets/tokenizer.json"))
ids = tok.encode((ROOT / "src/engine/core.ts").read_text(), add_special_tokens=False).ids
case = {"ids": [1] + ids[:299], "ids2": ids[299:319], "gen_steps": 8, "stepwise": 8, "outputs": []}
if case_only:
    (out / "case.json").write_text(json.dumps(case))
    sys.exit(0)
m = onnx.load(src)
have = {o.name for o in m.graph.output}
added = []
for n in m.graph.node:
    if n.op_type == "Loop" or not n.output or not n.output[0] or n.output[0] in have:
        continue
    m.graph.output.append(onnx.ValueInfoProto(name=n.output[0]))  # no type: ORT infers it (contrib ops too)
    added.append((n.output[0], n.op_type))
    have.add(n.output[0])
# the decode loop: per-step tensors of one shape (not the growing caches) as scan outputs
loop = next(n for n in m.graph.node if n.op_type == "Loop")
body = next(a.g for a in loop.attribute if a.name == "body")
for n in body.node:
    if "layers.1." in "".join(n.input):
        break
    outs = n.output[:1]
    if n.op_type == "GroupQueryAttention":  # the caches grow per step: their shapes, as [4] int64 rows
        for name, what in ((n.input[3], "past_shape"), (n.output[1], "present_shape")):
            shape_out = f"dbg/{what}"
            body.node.append(onnx.helper.make_node("Shape", [name], [shape_out]))
            outs = outs + [shape_out]
    for o in outs:
        body.output.append(onnx.ValueInfoProto(name=o))
        scan = f"loop/{o}"
        loop.output.append(scan)
        m.graph.output.append(onnx.ValueInfoProto(name=scan))
        added.append((scan, "loop:" + (n.op_type if o in n.output else "Shape")))
onnx.save(m, str(out / "model.dbg.onnx"))
case["outputs"] = added
(out / "case.json").write_text(json.dumps(case))
print(f"{len(added)} outputs added -> {out}")
