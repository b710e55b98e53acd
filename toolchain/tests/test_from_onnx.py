"""`from_onnx` inverts the exporter: a model folder's unquantised ONNX file gives back the checkpoint's weights."""
import pytest
import torch

from mixsga.checkpoint import load_checkpoint
from mixsga.errors import UserError
from mixsga.export import export_folder
from mixsga.from_onnx import model_from_onnx
from mixsga.__main__ import main
from test_train import CFG, COMMON, toy_shards


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    d = tmp_path_factory.mktemp("from_onnx")
    data = toy_shards(d / "data")
    assert main(["train", "--init", "scratch", "--model-size", "tiny", "--config-json", CFG, "--data", str(data),
                 "--out", str(d / "dense"), "--max-steps", "2", "--eval-every", "0", *COMMON]) == 0
    assert main(["convert", str(d / "dense" / "ckpt"), str(d / "mix")]) == 0
    export_folder(d / "mix", d / "model", cuda=True, cpu_weights="int8")
    return d


def test_weights_come_back_exactly(exported):
    ref = load_checkpoint(exported / "mix")
    fp16 = model_from_onnx(exported / "model", "cuda")
    assert fp16.cfg.expert_group_sizes == ref.cfg.expert_group_sizes and fp16.cfg.ratios == ref.cfg.ratios
    for (name, a), (_, b) in zip(ref.state_dict().items(), fp16.state_dict().items()):
        assert torch.equal(a.half().float(), b), name  # the fp16 file holds the weights rounded to fp16


def test_quantised_variant_is_refused(exported):
    with pytest.raises(UserError, match="int8 weights"):
        model_from_onnx(exported / "model", "cpu")
