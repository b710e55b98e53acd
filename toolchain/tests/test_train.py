"""The trainer end to end on a toy corpus: 2-process CPU torchrun (gloo), resume, mixSGA continued training."""
import json
import os
import subprocess
import sys

import numpy as np

from mixsga.__main__ import main
from mixsga.convert import convert
from mixsga.checkpoint import load_checkpoint, save_checkpoint

CFG = '{"vocab_size": 256, "max_position_embeddings": 128}'
COMMON = ["--seq-len", "64", "--micro-batch", "4", "--batch-tokens", "512", "--lr", "3e-3", "--warmup-steps", "3",
          "--log-every", "2", "--eval-windows", "4", "--fim-rate", "0", "--save-every", "0"]


def toy_shards(d):
    """Documents of arithmetic sequences: learnable quickly, framed [BOS] ids [EOS]."""
    rng = np.random.default_rng(0)

    def docs(n):
        out = []
        for _ in range(n):
            a, step, L = rng.integers(10, 60), rng.integers(1, 4), rng.integers(20, 90)
            out += [1] + [10 + (a + step * j) % 200 for j in range(L)] + [2]
        return np.array(out, dtype=np.uint16)
    d.mkdir(exist_ok=True)
    docs(800).tofile(d / "train_000.bin")
    docs(400).tofile(d / "train_001.bin")
    docs(60).tofile(d / "val_000.bin")
    (d / "meta.json").write_text("{}")
    return d


def read_log(out):
    return [json.loads(l) for l in (out / "log.jsonl").read_text().splitlines()]


def torchrun(args):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "mixsga", *args]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return r.stdout


def test_ddp_train_and_resume(tmp_path):
    data = toy_shards(tmp_path / "data")
    out = tmp_path / "dense"
    base = ["train", "--init", "scratch", "--model-size", "tiny", "--config-json", CFG, "--data", str(data),
            "--out", str(out), "--max-steps", "24", "--eval-every", "12", *COMMON]
    stdout = torchrun([*base, "--stop-at-step", "12"])
    assert "2 x 4 rows x 1 accum" in stdout
    assert (out / "ckpt" / "trainer_state.pt").exists() and (out / "ckpt" / "model.safetensors").exists()
    first = read_log(out)
    torchrun([*base, "--resume"])
    log = read_log(out)
    train = [r for r in log if "loss" in r]
    steps = [r["step"] for r in train]
    # resumed at step 12, not from 0 (logged every 2 steps)
    assert steps[len([r for r in first if "loss" in r]):] == [14, 16, 18, 20, 22, 24]
    evals = [r for r in log if "val_loss" in r]
    assert [e["step"] for e in evals] == [12, 12, 24]
    assert train[-1]["loss"] < train[0]["loss"] - 1.5  # loss falls
    assert abs(evals[1]["val_loss"] - evals[0]["val_loss"]) < 1e-4  # restored weights exactly
    assert evals[-1]["val_loss"] < evals[0]["val_loss"]


def test_mixsga_continued_training_learns_ratios(tmp_path):
    data = toy_shards(tmp_path / "data")
    dense = tmp_path / "dense"
    main(["train", "--init", "scratch", "--model-size", "tiny", "--config-json", CFG, "--data", str(data),
          "--out", str(dense), "--max-steps", "10", "--eval-every", "0", *COMMON])
    save_checkpoint(convert(load_checkpoint(dense / "ckpt")), tmp_path / "mix0")
    out = tmp_path / "mix"
    assert main(["train", "--init", str(tmp_path / "mix0"), "--data", str(data), "--out", str(out),
                 "--ratios", "3:1:6", "--max-steps", "30", "--eval-every", "30", "--eval-at-start",
                 *COMMON]) == 0
    log = read_log(out)
    train = [r for r in log if "loss" in r]
    assert all("aux" in r for r in train)
    assert train[-1]["aux"] < train[0]["aux"]
    target = np.array([0.3, 0.1, 0.6])
    evals = [r for r in log if "argmax_shares" in r and "val_loss" in r]
    dist0 = np.abs(np.array(evals[0]["argmax_shares"]) - target).sum(-1).mean()
    dist1 = np.abs(np.array(evals[-1]["argmax_shares"]) - target).sum(-1).mean()
    assert dist1 < dist0 * 0.6, (evals[0]["argmax_shares"], evals[-1]["argmax_shares"])
    assert abs(evals[-1]["argmax_kv_fraction"] - 0.5) < abs(evals[0]["argmax_kv_fraction"] - 0.5) + 1e-9


def test_bad_input_is_user_error(tmp_path):
    data = toy_shards(tmp_path / "data")
    assert main(["train", "--init", "scratch", "--data", str(tmp_path / "nope"), "--out", str(tmp_path / "o"),
                 "--max-steps", "1"]) == 2
    assert main(["train", "--init", "scratch", "--config-json", "{bad", "--data", str(data),
                 "--out", str(tmp_path / "o"), "--max-steps", "1"]) == 2
