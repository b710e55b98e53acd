"""The training pipeline (mixsga.pipeline) runs a recipe's stages in order with the recipe's flags: the tiny dry-run
recipe end to end on the CPU on toy shards, and the recipes' checks on bad input."""
import json
import math
from pathlib import Path

import pytest

from mixsga.__main__ import main
from mixsga.pipeline import branch_lr, load_recipe
from test_train import toy_shards

RECIPES = Path(__file__).parents[1] / "recipes"


def flag(argv, name):
    return argv[argv.index(name) + 1]


def test_tiny_recipe_runs_every_stage_in_order_with_its_flags(tmp_path, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    data, run = toy_shards(tmp_path / "data"), tmp_path / "run"
    rc = main(["pipeline", "--recipe", str(RECIPES / "tiny-dry-run.json"), "--run", str(run),
               "--set", f"data.shards={data}",
               "--set", 'branches.names=["dense-cont", "mixsga"]', "--set", 'extend.branches=["mixsga"]',
               "--set", "eval.budgets=0.5", "--set", "eval.windows=2"])
    assert rc == 0
    log = [json.loads(line) for line in (run / "pipeline.jsonl").read_text().splitlines()]
    recipe = log[0]["recipe"]
    assert log[0]["stages"] == ["shards", "dense", "branches", "extend", "eval"]
    assert log[1] == {**log[1], "stage": "shards", "event": "skipped"}  # the shards were there already
    ends = [r for r in log if r.get("event") == "end"]
    assert all(r["rc"] == 0 for r in ends), ends
    starts = [r for r in log if r.get("event") == "start"]
    what = [(r["stage"], r["argv"][3], r["argv"][4] if r["argv"][3] == "convert" else flag(r["argv"], "--out"))
            for r in starts if r["stage"] != "eval"]
    # trunk -> convert -> branches in the pipeline's order, whatever the recipe lists -> the long-context phase
    assert what == [("dense", "train", str(run / "dense")), ("branches", "convert", str(run / "dense" / "ckpt")),
                    ("branches", "train", str(run / "mixsga")), ("branches", "train", str(run / "dense-cont")),
                    ("extend", "train", str(run / "mixsga-256"))]
    dense, _, mixsga, cont, ext = [r["argv"] for r in starts[:5]]
    t, b, e = recipe["trunk"], recipe["branches"], recipe["extend"]
    assert flag(dense, "--stop-at-step") == str(t["dense_steps"]) and flag(dense, "--max-steps") == str(
        t["total_steps"])
    assert json.loads(flag(dense, "--config-json")) == recipe["model"]["config"] and flag(dense, "--seq-len") == str(recipe["seq_len"])
    # every branch starts at the trunk's LR where it stopped (the trunk's cosine) and runs the rest of its steps
    trunk_lr = t["lr"] * (t["min_lr_ratio"] + (1 - t["min_lr_ratio"]) * 0.5 * (
        1 + math.cos(math.pi * t["dense_steps"] / t["total_steps"])))
    for argv in (mixsga, cont):
        assert float(flag(argv, "--lr")) == pytest.approx(trunk_lr, rel=1e-3)
        assert flag(argv, "--max-steps") == str(t["total_steps"] - t["dense_steps"])
        assert flag(argv, "--fim-line-rate") == str(recipe["fim_line_rate"])
    assert flag(mixsga, "--ratios") == b["ratios"] and "--snapshot-steps" not in mixsga  # no short branch to match
    assert flag(ext, "--seq-len") == str(e["seq_len"]) and flag(ext, "--init") == str(run / "mixsga" / "ckpt")
    # what the stages left: a checkpoint of every phase, an eval of each (long ones on long windows)
    assert all((run / m / "ckpt" / "config.json").exists() for m in ("dense", "mixsga", "dense-cont", "mixsga-256"))
    evals = sorted(p.name for p in (run / "eval").glob("*.json"))
    assert evals == sorted(["dense.json", "dense-cont.json", "mixsga.json", "mixsga-at256.json", "mixsga-256.json",
                            "mixsga-256-at256.json"])
    long_eval = json.loads((run / "eval" / "mixsga-256-at256.json").read_text())
    assert long_eval["seq_len"] == e["seq_len"] and long_eval["model"] == str(run / "mixsga-256" / "ckpt")


def test_shipped_recipe_branch_lr_is_the_trunks_schedule_where_it_stops():
    r = load_recipe(RECIPES / "default-v1.json")
    assert f"{branch_lr(r):.3e}" == "2.053e-04"  # 1e-3 cosine to 1e-4 over 1800 steps, at step 1400


def test_bad_recipes_and_overrides_say_what_is_wrong(tmp_path, capsys):
    good = json.loads((RECIPES / "default-v1.json").read_text())
    bad = tmp_path / "bad.json"
    trunk = {**good["trunk"], "total_step": 1}
    del trunk["total_steps"]
    bad.write_text(json.dumps({**good, "trunk": trunk}))
    cases = [
        (["--recipe", str(tmp_path / "none.json")], "cannot read recipe"),
        (["--recipe", str(bad)], "section `trunk` lacks ['total_steps'] has unknown ['total_step']"),
        (["--recipe", str(RECIPES / "default-v1.json"), "--set", "trunk.steps=3"], "--set trunk.steps=3: expected"),
        (["--recipe", str(RECIPES / "default-v1.json"), "--set", "trunk.dense_steps=1800"], "dense_steps must be"),
        (["--recipe", str(RECIPES / "default-v1.json"), "--set", 'branches.names=["gqa4"]'], "unknown branch 'gqa4'"),
        (["--recipe", str(RECIPES / "default-v1.json"), "--stages", "dense,train"], "unknown stage train"),
    ]
    for args, message in cases:
        assert main(["pipeline", "--run", str(tmp_path / "run"), *args]) == 2
        assert message in capsys.readouterr().err
    assert main(["pipeline", "--run", str(tmp_path / "run"), "--recipe", str(RECIPES / "study-v1.json"), "--check"]) == 0
    assert "recipe study-v1: shards,dense,branches,extend,eval" in capsys.readouterr().out
    assert not (tmp_path / "run").exists()  # nothing started
