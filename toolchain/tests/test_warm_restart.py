"""A run split into two rounds by a warm restart (lab/v2: weights carried in bf16, the optimizer state not) against
one uninterrupted run on the same toy data: the second round continues the step counter, the LR schedule and the
data order, and its loss stays within a stated margin of the uninterrupted run's."""
import torch

from mixsga.__main__ import main
from mixsga.checkpoint import load_checkpoint, save_checkpoint
from test_train import CFG, read_log, toy_shards

ARGS = ["--model-size", "tiny", "--config-json", CFG, "--seq-len", "64", "--micro-batch", "4", "--batch-tokens", "256",
        "--lr", "3e-3", "--warmup-steps", "3", "--log-every", "1", "--eval-windows", "4", "--fim-rate", "0",
        "--save-every", "0", "--eval-every", "8", "--max-steps", "16"]
SPLIT, REWARM = 8, 2
MAX_JUMP_NATS = 0.15      # train loss of round 2 vs the uninterrupted run, any step
MAX_FINAL_VAL_RATIO = 1.03


def test_two_rounds_continue_one_run(tmp_path):
    data = toy_shards(tmp_path / "data")
    base = ["train", "--data", str(data), *ARGS]
    main([*base, "--init", "scratch", "--out", str(tmp_path / "whole")])
    main([*base, "--init", "scratch", "--out", str(tmp_path / "r1"), "--stop-at-step", str(SPLIT)])
    # what travels between GPU sessions: the weights in bf16 (lab/v2/parts.py), no trainer_state.pt
    save_checkpoint(load_checkpoint(tmp_path / "r1" / "ckpt").to(torch.bfloat16), tmp_path / "carried")
    main([*base, "--init", str(tmp_path / "carried"), "--out", str(tmp_path / "r2"), "--start-step", str(SPLIT),
          "--rewarm-steps", str(REWARM)])

    whole, r2 = read_log(tmp_path / "whole"), read_log(tmp_path / "r2")
    w = {r["step"]: r for r in whole if "loss" in r}
    t = {r["step"]: r for r in r2 if "loss" in r}
    assert sorted(t) == list(range(SPLIT + 1, 17))  # the step counter continues
    assert all(t[s]["tokens"] == w[s]["tokens"] for s in t)
    # the LR schedule continues: ramped over REWARM steps, then the uninterrupted run's LR exactly
    assert abs(t[SPLIT + 1]["lr"] - w[SPLIT + 1]["lr"] / REWARM) < 1e-12
    assert all(abs(t[s]["lr"] - w[s]["lr"]) < 1e-12 for s in t if s > SPLIT + REWARM)
    # the first step's loss is measured before any update: same weights (bf16-rounded) on the same batch, so the
    # data position continues too (another batch of this toy data differs by far more)
    assert abs(t[SPLIT + 1]["loss"] - w[SPLIT + 1]["loss"]) < 2e-3
    assert max(t[s]["loss"] - w[s]["loss"] for s in t) < MAX_JUMP_NATS
    val_w = {r["step"]: r["val_loss"] for r in whole if "val_loss" in r}
    val_r2 = {r["step"]: r["val_loss"] for r in r2 if "val_loss" in r}
    assert sorted(val_r2) == [SPLIT, 16]
    assert abs(val_r2[SPLIT] - val_w[SPLIT]) < 2e-3   # round 2 starts where round 1 stopped
    assert val_r2[16] < val_w[16] * MAX_FINAL_VAL_RATIO
    assert val_r2[16] < val_r2[SPLIT] - 0.1           # and keeps learning


def test_stop_after_min_saves_where_it_stopped(tmp_path):
    """--stop-after-min ends a session's share cleanly: with no time left the restarted run stops at its start step,
    trains nothing and still saves the (restored) weights."""
    data = toy_shards(tmp_path / "data")
    base = ["train", "--data", str(data), *ARGS]
    main([*base, "--init", "scratch", "--out", str(tmp_path / "r1"), "--stop-at-step", "3", "--eval-every", "0"])
    out = tmp_path / "r2"
    main([*base, "--init", str(tmp_path / "r1" / "ckpt"), "--out", str(out), "--start-step", "3",
          "--stop-after-min", "1e-9"])
    log = read_log(out)
    assert not [r for r in log if "loss" in r]
    assert [r["step"] for r in log if "val_loss" in r] == [3]
    assert torch.load(out / "ckpt" / "trainer_state.pt", weights_only=False)["step"] == 3
    a, b = load_checkpoint(tmp_path / "r1" / "ckpt"), load_checkpoint(out / "ckpt")
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_start_step_needs_weights(tmp_path, capsys):
    data = toy_shards(tmp_path / "data")
    assert main(["train", "--data", str(data), *ARGS, "--init", "scratch", "--out", str(tmp_path / "x"),
                 "--start-step", "4"]) == 2
    assert "--start-step continues a run" in capsys.readouterr().err
