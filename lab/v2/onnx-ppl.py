"""Held-out perplexity of exported model folders (teacher-forced, all positions) on a small fixed sample.

The graph scores only its last position, so an eval copy adds an output: the lm_head applied to every position of
the chunk (in each branch of the CPU variant's If, in the main graph of the CUDA variant). Each window is one chunk
on empty caches with route_bias pinning every token to expert 0 (the r1 checkpoint is dense: its routers are
untrained, so the dense model is what is measured; the route output is checked). gen_steps = 0.

usage: onnx-ppl.py windows.npy OUT.json FOLDER[:variant] ...   (or --windows to build windows.npy)
"""
import json
import lzma
import math
import sys
import time
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper

ROUTE_PIN = 1000.0


def last_gather(g):
    prod = {o: n for n in g.node for o in n.output}
    for n in g.node:
        if n.op_type == "Gather" and any(a.name == "axis" and a.i == 1 for a in n.attribute):
            p = prod.get(n.input[0])
            if p is not None and p.op_type == "SkipSimplifiedLayerNormalization" and len(p.output) == 1:
                return n
    raise RuntimeError(f"no last-position Gather in {g.name}")


def add_all_logits(g, hidden, out_name):
    """Appends nodes computing fp32 logits [S, V] of every position; returns the output name."""
    gather = last_gather(g)
    flat = out_name + "/flat"
    shape = out_name + "/shape"
    g.initializer.append(helper.make_tensor(shape, TensorProto.INT64, [2], [-1, hidden]))
    new = [helper.make_node("Reshape", [gather.input[0], shape], [flat], name=flat)]
    cur_in, cur_out = gather.output[0], flat
    while True:  # the lm_head chain: DynamicQuantizeMatMul | Gemm [-> Cast]
        users = [n for n in g.node if cur_in in n.input]
        if len(users) != 1 or users[0].op_type not in ("DynamicQuantizeMatMul", "Gemm", "Cast", "MatMul"):
            break
        u = users[0]
        c = onnx.NodeProto()
        c.CopyFrom(u)
        c.name = u.name + "/all"
        c.input[:] = [cur_out if i == cur_in else i for i in u.input]
        c.output[:] = [u.output[0] + "/all"]
        new.append(c)
        cur_in, cur_out = u.output[0], c.output[0]
    g.node.extend(new)
    g.node.append(helper.make_node("Identity", [cur_out], [out_name], name=out_name))
    return out_name


def eval_model(path, hidden):
    m = onnx.load(str(path))
    g = m.graph
    ifs = [n for n in g.node if n.op_type == "If"]
    if ifs:  # compact CPU variant: both branches get the output (a 1024-token chunk takes the long one)
        node = ifs[0]
        for a in node.attribute:
            add_all_logits(a.g, hidden, "all_logits")
            a.g.output.append(helper.make_tensor_value_info("all_logits", TensorProto.FLOAT, None))
        node.output.append("all_logits_if")
        g.node.append(helper.make_node("Identity", ["all_logits_if"], ["all_logits"], name="all_logits_out"))
    else:
        add_all_logits(g, hidden, "all_logits")
    g.output.append(helper.make_tensor_value_info("all_logits", TensorProto.FLOAT, None))
    return m


def session(model_proto):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    return ort.InferenceSession(model_proto.SerializeToString(), so, providers=["CPUExecutionProvider"])


def feeds(man, ids, kv_dtype, gen_steps=0):
    a = man["architecture"]
    E = len(man["experts"])
    f = {"input_ids": np.asarray([ids], np.int64), "position_ids": np.arange(len(ids), dtype=np.int64)[None],
         "route_bias": np.array([ROUTE_PIN] + [0.0] * (E - 1), np.float32), "gen_steps": np.array(gen_steps, np.int64),
         "stop_mask": np.zeros(a["vocab_size"], bool), "first_mask": np.zeros(a["vocab_size"], np.float32)}
    for l in range(a["num_layers"]):
        for e, x in enumerate(man["experts"]):
            f[f"past.{l}.{e}"] = np.zeros((1, 0, 2, x["kv_heads"], a["head_dim"]), kv_dtype)
    return f


def nll(logits, targets):
    x = logits.astype(np.float64)
    mx = x.max(-1, keepdims=True)
    lse = np.log(np.exp(x - mx).sum(-1)) + mx[:, 0]
    return lse - x[np.arange(len(targets)), targets]


def measure(folder, variant, windows):
    man = json.loads((folder / "manifest.json").read_text())
    v = man["variants"][variant]
    kv = np.float16 if v["kv_dtype"] == "float16" else np.float32
    t = time.time()
    sess = session(eval_model(folder / v["file"], man["architecture"]["hidden_size"]))
    names = [o.name for o in sess.get_outputs()]
    total, n, top1 = 0.0, 0, []
    for w in windows:
        out = dict(zip(names, sess.run(None, feeds(man, w.tolist(), kv))))
        assert (out["route"] == 0).all(), "route_bias did not pin expert 0"
        lg = out["all_logits"]
        assert lg.shape == (len(w), man["architecture"]["vocab_size"]), lg.shape
        total += float(nll(lg[:-1], w[1:]).sum())
        n += len(w) - 1
        top1.append(lg[:-1].argmax(-1))
    return {"folder": str(folder), "variant": variant, "file": v["file"], "weights": v["weights"],
            "int4_block": v.get("int4_block"), "int4_accuracy_level": v.get("int4_accuracy_level"),
            "file_bytes": (folder / v["file"]).stat().st_size, "loss": round(total / n, 5),
            "ppl": round(math.exp(total / n), 4), "tokens_scored": n, "eval_s": round(time.time() - t, 1),
            "_argmax": np.concatenate(top1)}


def build_windows(val_xz, tokenizer, n=8, seq=1024, every=100, cap=256):
    """Every `every`-th document of the val file, BOS + its first `cap` tokens (+ EOS if it ends there), spread
    over the whole file (it is ordered by package), cut into n windows of seq tokens."""
    sys.path.insert(0, "/work/wt-export/toolchain")
    from mixsga.shards import encode_exact, load_tokenizer

    tok = load_tokenizer(tokenizer)
    stream = []
    with lzma.open(val_xz, "rt") as fh:
        for i, line in enumerate(fh):
            if i % every:
                continue
            ids = encode_exact(tok, json.loads(line)["text"]) + [2]
            stream += [1] + ids[:cap]
            if len(stream) >= n * seq:
                break
    return np.asarray(stream[:n * seq], np.int64).reshape(n, seq)


if __name__ == "__main__":
    if sys.argv[1] == "--windows":
        w = build_windows(sys.argv[2], sys.argv[3])
        np.save(sys.argv[4], w)
        print(w.shape, w[:, :8])
        sys.exit(0)
    windows = np.load(sys.argv[1])
    out = Path(sys.argv[2])
    rows = json.loads(out.read_text()) if out.exists() else []
    for spec in sys.argv[3:]:
        folder, _, variant = spec.partition(":")
        r = measure(Path(folder), variant or "cpu", windows)
        np.save(out.with_name(Path(folder).name + f".{variant or 'cpu'}.argmax.npy"), r.pop("_argmax"))
        print(json.dumps(r), flush=True)
        rows = [x for x in rows if (x["folder"], x["variant"]) != (r["folder"], r["variant"])] + [r]
        out.write_text(json.dumps(rows, indent=1) + "\n")
