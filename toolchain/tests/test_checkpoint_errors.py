"""Broken checkpoints and bad CLI arguments fail with one clear message that names the problem."""
import json
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file, save_file

from mixsga.checkpoint import load_checkpoint, save_checkpoint
from mixsga.config import ModelConfig
from mixsga.errors import UserError
from mixsga.model import MixSGAForCausalLM

CFG = dict(vocab_size=50, hidden_size=32, intermediate_size=48, num_layers=2, num_attention_heads=4,
           num_kv_heads=4, head_dim=8)


@pytest.fixture
def ckpt(tmp_path):
    save_checkpoint(MixSGAForCausalLM(ModelConfig(**CFG)).init_weights(seed=0), tmp_path / "ck")
    return tmp_path / "ck"


def edit_weights(path, fn):
    state = load_file(str(path / "model.safetensors"))
    fn(state)
    save_file(state, str(path / "model.safetensors"))


def test_missing_tensor_is_named(ckpt):
    edit_weights(ckpt, lambda s: s.pop("model.layers.1.mlp.up_proj.weight"))
    with pytest.raises(UserError, match=r"missing tensor 'model.layers.1.mlp.up_proj.weight'"):
        load_checkpoint(ckpt)


def test_wrong_shape_is_named(ckpt):
    edit_weights(ckpt, lambda s: s.__setitem__("model.layers.0.self_attn.k_proj.weight", torch.zeros(8, 32)))
    with pytest.raises(UserError, match=r"'model.layers.0.self_attn.k_proj.weight' has shape \[8, 32\], expected \[32, 32\]"):
        load_checkpoint(ckpt)


def test_unsupported_architecture(ckpt):
    cfg = json.loads((ckpt / "config.json").read_text())
    cfg.update(architectures=["MistralForCausalLM"], model_type="mistral")
    (ckpt / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(UserError, match="unsupported architecture 'MistralForCausalLM'"):
        load_checkpoint(ckpt)


def test_corrupt_safetensors_and_missing_files(ckpt, tmp_path):
    (ckpt / "model.safetensors").write_bytes(b"\x00" * 20)
    with pytest.raises(UserError, match="cannot read model.safetensors"):
        load_checkpoint(ckpt)
    with pytest.raises(UserError, match="does not exist"):
        load_checkpoint(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no config.json"):
        load_checkpoint(tmp_path / "empty")


def test_sharded_checkpoint_with_index(ckpt):
    state = load_file(str(ckpt / "model.safetensors"))
    names = sorted(state)
    half = len(names) // 2
    shards = {"model-00001-of-00002.safetensors": names[:half], "model-00002-of-00002.safetensors": names[half:]}
    for f, keys in shards.items():
        save_file({k: state[k] for k in keys}, str(ckpt / f))
    (ckpt / "model.safetensors").unlink()
    (ckpt / "model.safetensors.index.json").write_text(json.dumps(
        {"metadata": {}, "weight_map": {k: f for f, keys in shards.items() for k in keys}}))
    m = load_checkpoint(ckpt)
    assert torch.equal(m.state_dict()["model.norm.weight"], state["model.norm.weight"])
    (ckpt / "model-00002-of-00002.safetensors").unlink()
    with pytest.raises(UserError, match="shard model-00002-of-00002.safetensors .* missing"):
        load_checkpoint(ckpt)


def cli(*args):
    return subprocess.run([sys.executable, "-m", "mixsga", *args], capture_output=True, text=True, timeout=120)


def test_cli_bad_arguments(ckpt, tmp_path):
    r = cli("convert", str(tmp_path / "missing"), str(tmp_path / "out"))
    assert r.returncode == 2 and "error: checkpoint folder" in r.stderr and "Traceback" not in r.stderr
    r = cli("convert", str(ckpt), str(tmp_path / "out"), "--ratios", "3:x:6")
    assert r.returncode == 2 and "bad ratios '3:x:6'" in r.stderr
    r = cli("convert", str(ckpt), str(tmp_path / "out"), "--group-sizes", "1,3")
    assert r.returncode == 2 and "group size 3 does not divide" in r.stderr
    r = cli("no-such-command")
    assert r.returncode == 2 and "invalid choice" in r.stderr
    r = cli("convert", str(ckpt), str(tmp_path / "out"))
    assert r.returncode == 0 and "50% KV" in r.stdout
    assert ModelConfig.load(tmp_path / "out").expert_group_sizes == (1, 2, 4)
