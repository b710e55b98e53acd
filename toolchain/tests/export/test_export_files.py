"""What the export writes: external data, the model folder with its manifest (verified, format version 2),
dense checkpoints converted on the fly, head sizes ORT cannot serve refused, age-cascade checkpoints pinned to
full heads."""
import json
import numpy as np
import pytest
import torch

onnx = pytest.importorskip("onnx")

from mixsga import manifest as mf  # noqa: E402
from mixsga import runtime as rt  # noqa: E402
from mixsga.checkpoint import save_checkpoint  # noqa: E402
from mixsga.errors import UserError  # noqa: E402
from mixsga.export import export_folder, export_onnx  # noqa: E402
from mixsga.model import MixSGAForCausalLM  # noqa: E402
from mixsga.onnx_graph import output_names  # noqa: E402
from export_kit import BIASES, CFG, empty_cache, feeds, make_model, random_case, run, session  # noqa: E402

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
