"""ONNX export against PyTorch `forward_chunk` on heterogeneous caches (fp32, fp16, int8/int4 weights), the
model folder's manifest, and routing chunk-invariance in ONNX Runtime."""
import json

import numpy as np
import pytest
import torch

ort = pytest.importorskip("onnxruntime")

from mixsga import manifest as mf  # noqa: E402
from mixsga.checkpoint import save_checkpoint  # noqa: E402
from mixsga.config import ModelConfig  # noqa: E402
from mixsga.errors import UserError  # noqa: E402
from mixsga.export import export_folder, export_onnx  # noqa: E402
from mixsga.model import MixSGAForCausalLM, pool_heads  # noqa: E402
from mixsga.onnx_graph import output_names  # noqa: E402

CFG = ModelConfig(vocab_size=211, hidden_size=64, intermediate_size=96, num_layers=3, num_attention_heads=8,
                  num_kv_heads=4, head_dim=8, expert_group_sizes=(1, 2, 4))
# (S, T per layer and expert, first position): different T everywhere, T = 0 for some caches, and all-empty
SHAPES = [(5, [[3, 0, 7], [0, 4, 1], [2, 6, 0]], 20), (1, [[0, 0, 0]] * 3, 0), (1, [[9, 0, 2], [0, 0, 11], [5, 5, 1]], 11),
          (13, [[0, 0, 0]] * 3, 0)]

# fp16 variant vs the fp32 PyTorch model; int8/int4 weights vs the fp32 graph (this model: |logits| <~ 7). The
# quantised bounds are smoke bounds: on random Gaussian weights (std 0.1) block-32 int4 and dynamic int8 both
# perturb K by ~5% of its range and routes flip downstream; trained weights must be judged on eval_ppl.
FP16_LOGIT_ATOL = 3e-2
QUANT_LOGIT_ATOL = {"int8": 5.0, "int4": 5.0}  # random weights: int4 error ~15% of a weight
QUANT_TOP1_MIN = 0.5


def make_model(cfg=CFG, seed=0):
    torch.manual_seed(seed)
    m = MixSGAForCausalLM(cfg).init_weights(std=0.1, seed=seed)
    with torch.no_grad():
        m.model.norm.weight.fill_(3.0)  # spread logits so top-1 comparisons are meaningful
        for layer in m.model.layers:
            layer.self_attn.router.bias.copy_(torch.tensor([0.3, 0.6, 0.2]))
    return m.eval()


@pytest.fixture(scope="module")
def model():
    return make_model()


@pytest.fixture(scope="module")
def fp32_onnx(model, tmp_path_factory):
    p = tmp_path_factory.mktemp("fp32") / "model.onnx"
    export_onnx(model, p)
    return p


def random_case(cfg, S, Ts, pos0, seed, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, cfg.vocab_size, (1, S), generator=g)
    pos = torch.arange(pos0, pos0 + S)[None]
    past = [[(torch.randn(1, h, t, cfg.head_dim, generator=g), torch.randn(1, h, t, cfg.head_dim, generator=g))
             for h, t in zip(cfg.expert_kv_heads(), T)] for T in Ts]
    return ids, pos, past


def feed(ids, pos, bias, past, kv_dtype=np.float32):
    f = {"input_ids": ids.numpy(), "position_ids": pos.numpy(), "route_bias": np.asarray(bias, np.float32)}
    for l, lp in enumerate(past):
        for e, (k, v) in enumerate(lp):
            f[f"past_key.{l}.{e}"] = np.asarray(k, kv_dtype)
            f[f"past_value.{l}.{e}"] = np.asarray(v, kv_dtype)
    return f


def run(sess, cfg, f):
    return dict(zip(output_names(cfg), sess.run(None, f)))


def session(path):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def test_graph_io_names_and_dynamic_dims(fp32_onnx):
    import onnx

    g = onnx.load(str(fp32_onnx)).graph
    dims = {i.name: [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim] for i in g.input}
    assert dims["input_ids"] == [1, "S"] and dims["route_bias"] == [3]
    assert dims["past_key.2.1"] == [1, 2, "T_2_1", 8] and dims["past_value.0.2"] == [1, 1, "T_0_2", 8]
    outs = {o.name: [d.dim_param or d.dim_value for d in o.type.tensor_type.shape.dim] for o in g.output}
    assert outs["logits"] == [1, 211]
    assert outs["new_key.1"] == [1, 4, "S", 8] and outs["route.0"] == [1, "S"] and outs["scores.2"] == [1, "S", 3]


@pytest.mark.parametrize("bias", [[0.0, 0.0, 0.0], [0.5, -0.4, 0.2]])
def test_fp32_matches_pytorch_on_heterogeneous_caches(model, fp32_onnx, bias):
    sess = session(fp32_onnx)
    used = set()
    for i, (S, Ts, pos0) in enumerate(SHAPES):
        ids, pos, past = random_case(CFG, S, Ts, pos0, seed=i)
        with torch.no_grad():
            logits, nk, nv, routes, scores = model.forward_chunk(ids, pos, torch.tensor(bias), past)
        out = run(sess, CFG, feed(ids, pos, bias, past))
        np.testing.assert_allclose(out["logits"], logits.numpy(), atol=1e-4, rtol=0)
        for l in range(CFG.num_layers):
            assert np.array_equal(out[f"route.{l}"], routes[l].numpy())
            np.testing.assert_allclose(out[f"new_key.{l}"], nk[l].numpy(), atol=1e-5, rtol=0)
            np.testing.assert_allclose(out[f"new_value.{l}"], nv[l].numpy(), atol=1e-5, rtol=0)
            np.testing.assert_allclose(out[f"scores.{l}"], scores[l].numpy(), atol=1e-5, rtol=0)
            used |= set(routes[l].flatten().tolist())
    assert used == {0, 1, 2}


def test_fp16_variant_close_to_fp32_pytorch(model, tmp_path):
    """The CUDA variant, run on ORT's CPU EP (every op in the graph has a CPU fp16 kernel in ORT 1.30)."""
    half = make_model().half()
    p = tmp_path / "model.cuda.onnx"
    export_onnx(half, p)
    sess = session(p)
    assert sess.get_inputs()[3].type == "tensor(float16)" and sess.get_outputs()[0].type == "tensor(float)"
    agree = total = 0
    for i, (S, Ts, pos0) in enumerate(SHAPES):
        ids, pos, past = random_case(CFG, S, Ts, pos0, seed=i)
        past = [[(k.half().float(), v.half().float()) for k, v in lp] for lp in past]  # what the fp16 cache holds
        with torch.no_grad():
            logits, nk, _, routes, _ = model.forward_chunk(ids, pos, torch.zeros(3), past)
        out = run(sess, CFG, feed(ids, pos, [0, 0, 0], past, np.float16))
        assert out["logits"].dtype == np.float32 and out["new_key.0"].dtype == np.float16
        assert np.abs(out["logits"] - logits.numpy()).max() < FP16_LOGIT_ATOL
        assert np.abs(out["new_key.0"].astype(np.float32) - nk[0].numpy()).max() < 1e-2
        for l in range(CFG.num_layers):
            agree += int((out[f"route.{l}"] == routes[l].numpy()).sum())
            total += routes[l].numel()
    assert agree / total >= 0.95


def quant_agreement(ref_path, quant_path, cfg, seed):
    """Top-1 agreement and worst logit difference of a quantised graph against its fp32 source, on 12
    random chunks over mixed-size caches."""
    ref, got = session(ref_path), session(quant_path)
    top1, worst = [], 0.0
    for i in range(12):
        ids, pos, past = random_case(cfg, 6, [[4, 2, 9]] * 3, 16, seed=seed + i)
        a = run(ref, cfg, feed(ids, pos, [0, 0, 0], past))["logits"]
        b = run(got, cfg, feed(ids, pos, [0, 0, 0], past))["logits"]
        top1.append(a.argmax() == b.argmax())
        worst = max(worst, float(np.abs(a - b).max()))
    return float(np.mean(top1)), worst


@pytest.mark.parametrize("kind", ["int8", "int4"])
def test_quantized_cpu_weights(fp32_onnx, tmp_path, kind):
    from mixsga.quantize import quantize_file

    q = quantize_file(fp32_onnx, tmp_path / f"{kind}.onnx", kind)
    top1, worst = quant_agreement(fp32_onnx, q, CFG, seed=100)
    assert top1 >= QUANT_TOP1_MIN, (kind, top1)
    assert worst < QUANT_LOGIT_ATOL[kind], (kind, worst)


def test_routing_chunk_invariance_in_ort(model, fp32_onnx):
    """A text routes the same fed as one chunk or token by token (cache carried as the runtime does)."""
    sess = session(fp32_onnx)
    ids = torch.randint(0, CFG.vocab_size, (1, 24), generator=torch.Generator().manual_seed(7))
    empty = [[(np.zeros((1, h, 0, CFG.head_dim), np.float32),) * 2 for h in CFG.expert_kv_heads()]
             for _ in range(CFG.num_layers)]
    one = run(sess, CFG, feed(ids, torch.arange(24)[None], [0, 0, 0], empty))
    past = [list(lp) for lp in empty]
    routes = [[] for _ in range(CFG.num_layers)]
    for t in range(24):
        out = run(sess, CFG, feed(ids[:, t:t + 1], torch.tensor([[t]]), [0, 0, 0], past))
        for l in range(CFG.num_layers):
            e = int(out[f"route.{l}"][0, 0])
            routes[l].append(e)
            g = CFG.expert_group_sizes[e]
            k = pool_heads(torch.from_numpy(out[f"new_key.{l}"]), g).numpy()
            v = pool_heads(torch.from_numpy(out[f"new_value.{l}"]), g).numpy()
            past[l][e] = (np.concatenate([past[l][e][0], k], 2), np.concatenate([past[l][e][1], v], 2))
    for l in range(CFG.num_layers):
        assert routes[l] == one[f"route.{l}"][0].tolist()
    np.testing.assert_allclose(out["logits"], one["logits"], atol=1e-4, rtol=0)


def test_export_folder_manifest_and_verify(model, tmp_path):
    save_checkpoint(model, tmp_path / "ckpt")
    m, _ = export_folder(tmp_path / "ckpt", tmp_path / "out", name="tiny")
    files = json.loads((tmp_path / "out" / "manifest.json").read_text())["files"]
    assert set(files) == {"model.cpu.onnx", "tokenizer.json", "tokenizer_config.json"}
    assert m["fim"] is None  # vocab 211 has no rows for the FIM ids
    fim = mf.fim_for_vocab(mf.fim_block(tmp_path / "out" / "tokenizer.json"), 32008)
    assert fim["prefix_id"] == 32000 and fim["middle_id"] == 32001 and fim["file_sep_id"] == 32004
    assert m["experts"] == [{"group_size": 1, "kv_heads": 4}, {"group_size": 2, "kv_heads": 2},
                            {"group_size": 4, "kv_heads": 1}]
    mf.verify(tmp_path / "out")
    p = tmp_path / "out" / "tokenizer_config.json"
    p.write_text(p.read_text() + " ")
    with pytest.raises(UserError, match="tokenizer_config.json: sha256 mismatch"):
        mf.verify(tmp_path / "out")


def test_dense_checkpoint_is_converted_on_the_fly(tmp_path):
    dense = MixSGAForCausalLM(CFG.replace(expert_group_sizes=())).init_weights(seed=1)
    save_checkpoint(dense, tmp_path / "dense")
    m, _ = export_folder(tmp_path / "dense", tmp_path / "out")
    assert len(m["experts"]) == 3
    mf.verify(tmp_path / "out")


def test_external_data(model, tmp_path):
    files = export_onnx(model, tmp_path / "m.onnx", external_data=True)
    assert [f.name for f in files] == ["m.onnx", "m.onnx.data"]
    ids, pos, past = random_case(CFG, 3, [[1, 0, 2]] * 3, 5, seed=3)
    with torch.no_grad():
        logits = model.forward_chunk(ids, pos, torch.zeros(3), past)[0]
    out = run(session(files[0]), CFG, feed(ids, pos, [0, 0, 0], past))
    np.testing.assert_allclose(out["logits"], logits.numpy(), atol=1e-4, rtol=0)


TIED = CFG.replace(tie_word_embeddings=True)


@pytest.fixture(scope="module")
def tied_fp32(tmp_path_factory):
    m = make_model(TIED, seed=3)
    p = tmp_path_factory.mktemp("tied") / "model.onnx"
    export_onnx(m, p)
    return p


@pytest.mark.parametrize("kind", ["int8", "int4"])
def test_tied_embedding_stored_once_as_int8(tied_fp32, tmp_path, kind):
    """--cpu-weights int8|int4 with tied embeddings: one int8 [hidden, V] matrix (per-row scales) serves the Gather
    and the lm_head; no fp32 [V, hidden] copy is left; dequantisation error <= scale/2; logits agree with fp32."""
    import onnx
    from onnx import numpy_helper

    from mixsga.quantize import quantize_file

    q = quantize_file(tied_fp32, tmp_path / "q.onnx", kind)
    q2 = quantize_file(tied_fp32, tmp_path / "q2.onnx", kind)
    assert q.read_bytes() == q2.read_bytes()  # deterministic
    ref_w = {t.name: numpy_helper.to_array(t) for t in onnx.load(str(tied_fp32)).graph.initializer}
    w = next(v for v in ref_w.values() if v.shape == (TIED.vocab_size, TIED.hidden_size))
    g = onnx.load(str(q)).graph
    inits = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    assert not [n for n, v in inits.items() if v.shape == w.shape]
    b_name = next(n for n, v in inits.items() if v.dtype == np.int8 and v.shape == w.shape[::-1])
    users = sorted(n.op_type for n in g.node if b_name in n.input)
    assert users == ["Gather", "MatMulInteger"]
    scale = inits[b_name.replace(".int8_t", ".scale")]
    deq = inits[b_name].T.astype(np.float32) * scale[:, None]
    assert np.all(np.abs(deq - w) <= scale[:, None] / 2 + 1e-7)
    assert np.allclose(scale, np.abs(w).max(1) / 127)
    top1, worst = quant_agreement(tied_fp32, q, TIED, seed=200)
    assert top1 >= QUANT_TOP1_MIN, (kind, top1)
    assert worst < QUANT_LOGIT_ATOL[kind], (kind, worst)
    keep = quantize_file(tied_fp32, tmp_path / "keep.onnx", kind, embedding="float32")
    assert q.stat().st_size < keep.stat().st_size


def test_int8_embedding_needs_tied_weights(fp32_onnx, tmp_path):
    from mixsga.quantize import quantize_file

    with pytest.raises(UserError, match="tied"):
        quantize_file(fp32_onnx, tmp_path / "q.onnx", "int8", embedding="int8")
    quantize_file(fp32_onnx, tmp_path / "q.onnx", "int8")  # auto: untied stays as is
