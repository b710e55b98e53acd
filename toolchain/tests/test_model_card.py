"""model_card: a synthetic results folder in the layout scripts/train-default.sh writes (dense trunk, branches,
snapshots, eval_ppl files) -> card + plots; the computed numbers (ratios, met / not met, ablation rows, equal
compute, routing shares) are checked."""
import json
import re

import pytest

pytest.importorskip("matplotlib")

from mixsga import model_card
from mixsga.errors import UserError

TPS = 2048                          # tokens per step of every run
TRUNK, BRANCH, ABL, GQA = 5, 12, 3, 6
SHARES = [[0.3, 0.1, 0.6]] * 3 + [[0.5, 0.1, 0.4]]     # last layer: KV 0.5 + 0.1/2 + 0.4/4 = 65%


def _row(method, budget, kv, ppl, note=""):
    return {"method": method, "budget": budget, "kv_fraction": kv, "loss": 2.0, "ppl": ppl, "note": note}


def _mix_rows(full, ec, argmax, argmax_kv, gqa50):
    """A mixSGA-family eval file: full, expert-choice at every budget, argmax, gqa 25/35/50/75."""
    rows = [_row("full", 1.0, 1.0, full)]
    rows += [_row("mixsga", b, b + 0.002, ec.get(b, ec[0.5] + 1.0)) for b in model_card.BUDGETS]
    rows.append(_row("mixsga-argmax", None, argmax_kv, argmax, "decode routing (causal); budget = achieved"))
    rows += [_row("gqa", b, b, gqa50 if b == 0.5 else gqa50 + 2.0, "group 2" if b == 0.5 else "pattern")
             for b in model_card.BUDGETS[:-1]]
    return rows


def _log(steps, *, loss0=5.0, val=(), shares=None):
    rows = [{"step": s, "loss": round(loss0 - 0.1 * s, 5), "lr": 8.682e-4, "tokens": s * TPS,
             "tok_per_s_per_gpu": 100000 + s, "elapsed_s": float(s)} for s in [1] + list(range(2, steps + 1, 2))]
    for s in val:
        v = {"step": s, "tokens": s * TPS, "val_loss": 2.5 - 0.01 * s}
        if shares:
            v.update(argmax_shares=shares if s else [[0.4, 0.3, 0.3]] * 4, argmax_kv_fraction=0.5 if s else 0.62)
        rows.append(v)
    return rows


def _write(tmp_path, gqa2_ppl=11.0, cont_steps=BRANCH):
    res = tmp_path / "res"
    train = res / "train"
    ev = train / "eval"
    ev.mkdir(parents=True)
    runs = [("dense", TRUNK, False), ("mixsga", BRANCH, True), ("dense-cont", cont_steps, False),
            ("gqa2", GQA, True), ("abl-lmgrad", ABL, True), ("abl-random", ABL, True)]
    log = ['{\n "total_tokens": {"train": 1000000, "val": 5000},\n "tokens": {"train": {"npm/typescript": 1000000}},\n'
           ' "drops": {"eval_signature": 3}\n}']
    for name, steps, mix in runs:
        n = "22,923,672 params (10,632,600 non-embedding), mixsga=True" if mix else \
            "22,914,432 params (10,623,360 non-embedding), mixsga=False"
        log.append(f"[train] {n} ratios=-; 1 x 2 rows x 1 accum x 1024 = {TPS:,} tokens/step; start step 0")
        log.append(f"[train] done at step {steps} ({steps * TPS:,} tokens, {10 * steps}s); checkpoint /root/runs/{name}/ckpt")
    (train / "all.log").write_text("\n".join(log) + "\n")

    logs = {"dense": _log(TRUNK, loss0=6.0), "mixsga": _log(BRANCH, val=(0, BRANCH), shares=SHARES),
            "dense-cont": _log(cont_steps, loss0=4.9, val=(cont_steps,)), "gqa2": _log(GQA, loss0=5.1, val=(GQA,)),
            "abl-lmgrad": _log(ABL, loss0=5.2, val=(ABL,)), "abl-random": _log(ABL, loss0=5.3, val=(ABL,))}
    logs["mixsga"].insert(1, dict(logs["mixsga"][0], loss=9.9))     # a rerun appended rows: the last copy wins
    for name, rows in logs.items():
        (train / name).mkdir()
        (train / name / "log.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    (train / "mixsga" / "ckpt").mkdir()
    (train / "mixsga" / "ckpt" / "config.json").write_text(json.dumps({
        "hidden_size": 384, "num_hidden_layers": 4, "num_attention_heads": 8, "num_key_value_heads": 4,
        "head_dim": 48, "intermediate_size": 768, "vocab_size": 32008, "max_position_embeddings": 2048,
        "tie_word_embeddings": True, "mixsga": {"group_sizes": [1, 2, 4], "ratios": [0.3, 0.1, 0.6]}}))

    evals = {
        "dense": [_row("full", 1.0, 1.0, 12.0)],
        "dense-cont": [_row("full", 1.0, 1.0, 10.0)]
        + [_row("gqa", b, b, 14.0 if b == 0.5 else 20.0, "group 2" if b == 0.5 else "pattern") for b in model_card.BUDGETS[:-1]]
        + [_row("window", b, b + 0.004, 10.4 if b == 0.5 else 11.0) for b in model_card.BUDGETS[:-1]]
        + [_row("h2o", b, b + 0.004, 10.6 if b == 0.5 else 11.5) for b in model_card.BUDGETS[:-1]],
        "mixsga": _mix_rows(10.1, {0.5: 10.25}, 10.5, 0.47, 10.9),
        f"mixsga-ckpt-step{GQA}": _mix_rows(11.0, {0.5: 10.8}, 11.2, 0.48, 11.5),
        f"mixsga-ckpt-step{ABL}": _mix_rows(12.6, {0.5: 12.5}, 12.4, 0.51, 13.0),
        "gqa2": _mix_rows(11.5, {0.5: 30.0}, 40.0, 0.55, gqa2_ppl),
        f"gqa2-ckpt-step{ABL}": _mix_rows(13.5, {0.5: 31.0}, 41.0, 0.56, 12.7),
        "abl-lmgrad": _mix_rows(12.3, {0.5: 12.0}, 11.9, 0.6, 13.2),
        "abl-random": _mix_rows(13.1, {0.5: 13.0}, 12.8, 0.55, 13.4),
    }
    for name, rows in evals.items():
        (ev / f"{name}.json").write_text(json.dumps({"windows": 64, "seq_len": 1024, "rows": rows}))

    code = tmp_path / "evals"
    code.mkdir()
    (code / "single.json").write_text(json.dumps({"model": "runs/x/ckpt", "config": {"limit": None}, "wall_s": 1.0,
                                                  "sets": {"single": {"n": 1033, "passed": 52, "failed": 981,
                                                                      "timeout": 0, "pass@1": 52 / 1033}}}))
    (code / "multi.json").write_text(json.dumps({"config": {"multi_subset": 500, "seed": 1234, "limit": 60},
                                                 "sets": {"multi": {"n": 60, "passed": 1, "failed": 59,
                                                                    "timeout": 0, "pass@1": 1 / 60}}}))
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "stats.json").write_text(json.dumps({"packages": {"npm": 2, "debian": 1}, "licences": {"MIT": 7},
                                                   "val_packages": ["npm:zz"], "decontaminated": ["a: x"]}))
    (corpus / "decontam.json").write_text(json.dumps({"signatures": [["f", "x"]] * 4, "doc_lines": ["d"]}))
    doc = tmp_path / "training.md"
    doc.write_text("# T\n\n## Model size: 22.9M parameters\n\nsize reason here\n\n## Next\n")
    return res, code, corpus, doc


def _build(tmp_path, **kw):
    res, code, corpus, doc = _write(tmp_path, **kw)
    out = tmp_path / "docs" / "model-card.md"
    img = tmp_path / "docs" / "img"
    nums = model_card.build(res, code, out, corpus, img, doc, date="2031-01-02", machine="a test box")
    return nums, out.read_text(), img


def _table_row(text, first_cell):
    rows = [l for l in text.splitlines() if l.startswith(f"| {first_cell} |")]
    assert len(rows) == 1, (first_cell, rows)
    return [c.strip() for c in rows[0].strip("|").split("|")]


def test_steps_and_run_facts_from_files(tmp_path):
    res, *_ = _write(tmp_path)
    ev = res / "train" / "eval"
    assert model_card.comparison_steps(ev) == (ABL, GQA)
    facts = model_card.log_facts(res / "train" / "all.log")
    assert sorted(facts) == sorted(model_card.RUNS)
    assert facts["gqa2"]["steps"] == GQA and facts["gqa2"]["tokens"] == GQA * TPS
    assert facts["dense"]["tokens_per_step"] == TPS and facts["dense"]["mixsga"] is False
    rows = model_card.run_log(res / "train" / "mixsga" / "log.jsonl")
    assert [r["loss"] for r in rows if r["step"] == 1] == [9.9]      # the rerun's copy, once


def test_model_card_numbers(tmp_path):
    nums, text, img = _build(tmp_path)
    for f in ("model-card-ppl-kv.png", "model-card-routing.png", "model-card-loss.png"):
        assert (img / f).stat().st_size > 1000
        assert f"img/{f}" in text
    assert "# Model card: mixsga-default (2031-01-02)" in text and "a test box" in text

    # the target: 10.25 / 10.0 = 1.025 met, argmax 10.5 / 10.0 = 1.05 not met; expert-choice is below every baseline
    assert nums["abl_steps"] == ABL and nums["gqa_steps"] == GQA
    assert nums["ratio_ec"] == pytest.approx(1.025) and nums["ratio_argmax"] == pytest.approx(1.05)
    assert nums["target_ec"] is True and nums["target_argmax"] is False
    row = _table_row(text, "≤ 1.03× dense-cont full KV")
    assert row[1] == "1.025× → met" and row[2] == "1.050× → **not met**"
    row = _table_row(text, f"below trained static GQA-2 at equal compute ({GQA} steps; mixsga@{GQA} vs gqa2)")
    assert row[1] == f"10.800 vs 11.000 (50.0% KV): lower ({10.8 / 11 - 1:+.1%})"    # snapshot at GQA_STEPS vs gqa2
    assert row[2].startswith("11.200 vs 11.000") and "**not lower**" in row[2]
    row = _table_row(text, "below sliding window + sinks on dense-cont at 50%")
    assert row[1].startswith("10.250 vs 10.400 (50.4% KV): lower")
    assert _table_row(text, "**target**")[1:] == ["**met**", "**not met**"]
    assert "holds 47.0% of the KV bytes" in text

    # ppl table: the trained GQA-2 row has its 50% cell only; argmax sits at the budget nearest its KV
    assert _table_row(text, f"gqa2 ({GQA})")[2:] == ["", "", "11.000", "", ""]
    assert _table_row(text, f"dense-cont ({BRANCH}) | full KV (reference)")[6] == "10.000"

    # ablations at ABL_STEPS
    abl = nums["ablations"]
    assert abl["mixsga"] == {"steps": ABL, "ppl50": 12.5, "argmax": 12.4, "argmax_kv": 0.51}
    assert abl["abl-lmgrad"]["ppl50"] == 12.0 and abl["abl-lmgrad"]["argmax_kv"] == 0.6
    assert abl["gqa2"]["ppl50"] == 12.7 and abl["gqa2"]["argmax"] is None
    row = _table_row(text, "router + LM gradient (straight-through)")
    assert row[1:7] == ["`abl-lmgrad.json`", f"{ABL} ({ABL * TPS:,})", "12.000", "11.900", "60.0%",
                        f"{5.2 - 0.2:.4f} (2)"]
    assert _table_row(text, "paper router (consistency loss only) = mixsga snapshot")[1] == f"`mixsga-ckpt-step{ABL}.json`"
    assert _table_row(text, "static GQA-2 = gqa2 snapshot")[3].startswith("12.700")
    assert nums["gqa2_vs_mix"] == pytest.approx(10.8 / 11.0)

    # routing shares of the last val row, KV per layer from the experts' group sizes
    assert "| 3 | 50.0% | 10.0% | 40.0% | 65.0% |" in text
    assert "(at conversion, step 0: 62.0%)" in text

    # compute: trunk + branch tokens, equal for mixsga and dense-cont
    assert nums["equal_compute"] is True
    total = (TRUNK + BRANCH) * TPS
    assert f"{TRUNK * TPS:,} (trunk) + {BRANCH * TPS:,} (branch) = {total:,} tokens" in text
    assert re.search(r"dense-cont [\d,]+ \+ [\d,]+ = " + re.escape(f"{total:,}") + r" tokens → equal", text)
    assert _table_row(text, "`gqa2`")[3:6] == [str(GQA), f"{GQA * TPS:,}", f"{TPS:,}"]
    assert ("scripts/train-default.sh all runs/default --recipe toolchain/recipes/study-v1.json --set "
            f"trunk.total_steps={TRUNK + BRANCH} --set trunk.dense_steps={TRUNK} --set branches.gqa_steps={GQA} "
            f"--set branches.abl_steps={ABL} ") in text

    # facts and code evals as before
    assert "5.0%" in text and "single-line infilling pass@1 ≥ 0.30" in text
    assert "seeded subset of 500 (seed 1234), first 60" in text and "`runs/x/ckpt`" in text
    assert "22,914,432" in text and "22,923,672" in text and "size reason here" in text
    assert "eval_signature 3" in text and nums["tok_s_mixsga"] == 100008     # median of steps 2..12


def test_trained_gqa_better_and_unequal_compute(tmp_path):
    nums, text, _ = _build(tmp_path, gqa2_ppl=10.5, cont_steps=BRANCH - 2)
    assert nums["ratio_ec"] == pytest.approx(1.025)           # the ratio alone would be met ...
    assert nums["target_ec"] is False                         # ... but trained GQA-2 (10.5) beats mixsga@6 (10.8)
    assert _table_row(text, "**target**")[1] == "**not met**"
    assert nums["equal_compute"] is False and "**not equal**" in text


def test_missing_files_degrade(tmp_path):
    res, code, corpus, doc = _write(tmp_path)
    (res / "train" / "eval" / "abl-random.json").unlink()
    (res / "train" / "eval" / "gqa2.json").unlink()
    out = tmp_path / "card.md"
    nums = model_card.build(res, code, out, corpus, tmp_path / "img", doc)
    text = out.read_text()
    assert _table_row(text, "random router (3:1:6)")[1] == "missing"
    assert nums["target_ec"] is None and "cannot be judged" in text     # no trained GQA-2 row to compare with
    assert nums["ratio_ec"] == pytest.approx(1.025)
    assert model_card.DATE in text


def test_cli_registered(tmp_path):
    from mixsga.__main__ import main
    res, code, corpus, doc = _write(tmp_path)
    out = tmp_path / "card.md"
    assert main(["model_card", "--results", str(res), "--evals", str(code), "--out", str(out),
                 "--corpus", str(corpus), "--training-doc", str(doc), "--date", "2030-05-06",
                 "--machine", "cli box"]) == 0
    assert (tmp_path / "img" / "model-card-loss.png").is_file()
    text = out.read_text()
    assert "Model card: mixsga-default (2030-05-06)" in text and "machine: cli box" in text


def test_shipped_model_from_another_run(tmp_path):
    """--shipped: the card names the model in models/default (another run, old layout) and compares it with
    the study's mixSGA branch; the shipped run's ratio is flagged as unequal compute."""
    res, code, corpus, doc = _write(tmp_path)
    out, img = tmp_path / "docs" / "model-card.md", tmp_path / "docs" / "img"
    old = tmp_path / "old" / "train"
    (old / "eval").mkdir(parents=True)
    (old / "eval" / "mixsga.json").write_text(json.dumps({"rows": _mix_rows(12.0, {0.25: 9.0, 0.35: 8.5, 0.5: 8.0, 0.75: 8.4, 1.0: 12.0}, 7.9, 0.497, 9.5)}))
    (old / "eval" / "dense.json").write_text(json.dumps({"rows": [_row("full", 1.0, 1.0, 7.5)]}))
    for name, tokens in (("dense", 2_000_000), ("mixsga", 500_000)):
        (old / name).mkdir()
        (old / name / "log.jsonl").write_text(json.dumps({"step": 10, "loss": 2.0, "tokens": tokens}) + "\n")
    model_card.build(res, code, out, corpus, img, doc, shipped=old.parent)
    text = out.read_text()
    assert "## The shipped model" in text and "2,500,000 in all" in text
    assert "1.067×" in text and "**unequal** compute" in text  # 8.0 / 7.5
    assert "--shipped" in text and text.index("## The shipped model") < text.index("# Study")
    with pytest.raises(UserError):
        model_card.build(res, code, out, corpus, img, doc, shipped=tmp_path / "nowhere")


def test_shipped_run_with_equal_compute_reference(tmp_path):
    """A shipped run that has dense-cont (the trunk continued as long as mixsga): its ratio is at equal compute,
    checked against the target and against window / H2O at 50%; the reproduce block gives its step counts."""
    res, code, corpus, doc = _write(tmp_path)
    out, img = tmp_path / "docs" / "model-card.md", tmp_path / "docs" / "img"
    new = tmp_path / "new" / "train"
    (new / "eval").mkdir(parents=True)
    (new / "eval" / "mixsga.json").write_text(json.dumps({"rows": _mix_rows(9.0, {0.5: 6.0}, 6.001, 0.506, 7.3)}))
    (new / "eval" / "dense.json").write_text(json.dumps({"rows": [_row("full", 1.0, 1.0, 5.5)]}))
    cont = [_row("full", 1.0, 1.0, 5.4)] + [_row("window", b, b + 0.001, 5.9 if b == 0.5 else 6.5) for b in model_card.BUDGETS[:-1]] \
        + [_row("h2o", b, b + 0.001, 5.8 if b == 0.5 else 6.4) for b in model_card.BUDGETS[:-1]]
    (new / "eval" / "dense-cont.json").write_text(json.dumps({"rows": cont}))
    for name, steps in (("dense", 14), ("mixsga", 4), ("dense-cont", 4)):
        (new / name).mkdir()
        (new / name / "log.jsonl").write_text(json.dumps({"step": steps, "loss": 2.0, "tokens": steps * 1000}) + "\n")
    model_card.build(res, code, out, corpus, img, doc, shipped=new.parent)
    text = out.read_text()
    assert "**1.111×** at **equal** compute" in text and "18,000 tokens" in text  # 6.0 / 5.4; 14k + 4k
    assert "target ≤ 1.03× **not met**" in text and "50%: **not lower**" in text  # 6.0 > window 5.9, H2O 5.8
    assert "| dense-cont (trunk continued 4,000 tokens), full KV | | | | | 5.400 | |" in text
    assert "trunk.total_steps=18 trunk.dense_steps=14" in text and "scripts/train-default.sh all runs/default " in text


def _long_run(root, *, mix_long=5.7, cont_long=5.0, window_long=6.8):
    """A run folder of the long-context phase: mixsga / dense-cont and their -2048 extensions, each evaluated on
    1024- and 2048-token windows, the phase's logs, and a dev-box position profile."""
    train = root / "train"
    ev = train / "eval"
    ev.mkdir(parents=True)
    mix = lambda ec, am: [_row("full", 1.0, 1.0, ec + 3)] + [  # noqa: E731
        _row("mixsga", b, b + 0.002, ec if b == 0.5 else ec + 1) for b in model_card.BUDGETS] + [
        _row("mixsga-argmax", None, 0.505, am)]
    cont = lambda full, win: [_row("full", 1.0, 1.0, full)] + [  # noqa: E731
        _row("window", b, b, win if b == 0.5 else win + 0.5) for b in model_card.BUDGETS[:-1]] + [
        _row("h2o", b, b, win + 0.2 if b == 0.5 else win + 0.7) for b in model_card.BUDGETS[:-1]]
    files = {"mixsga": mix(6.3, 6.3), "mixsga-at2048": mix(18.9, 18.5), "mixsga-2048": mix(6.2, 6.2),
             "mixsga-2048-at2048": mix(mix_long, mix_long), "dense-cont-2048": cont(5.2, 5.5),
             "dense-cont-2048-at2048": cont(cont_long, window_long), "dense-cont-at2048": cont(12.7, 7.3)}
    for name, rows in files.items():
        (ev / f"{name}.json").write_text(json.dumps({"rows": rows}))
    for name, steps in (("dense", 30), ("mixsga", 10), ("dense-cont", 10), ("mixsga-2048", 5), ("dense-cont-2048", 5)):
        (train / name).mkdir()
        (train / name / "log.jsonl").write_text(json.dumps({"step": steps, "loss": 2.0, "tokens": steps * 1000}) + "\n")
    (root / "local-ppl").mkdir()
    for name, ppl in (("r3-2048", [8.0, 8.1, 25.0, 150.0]), ("r3x-2048", [8.0, 7.5, 7.0, 6.9])):
        prof = [{"method": m, "bucket_tokens": 512, "ppl": ppl, "loss": ppl} for m in ("mixsga-argmax", "mixsga")]
        (root / "local-ppl" / f"{name}.json").write_text(json.dumps({"windows": 32, "seq_len": 2048, "rows": [],
                                                                     "by_position": prof}))
    return root


def test_long_context_phase_sections(tmp_path):
    """--extension / --long-study: before/after the 2048-token phase on the same windows, the position profile
    (table + plot), and the equal-compute ratio at 2048 tokens against the target and the window / H2O."""
    res, code, corpus, doc = _write(tmp_path)
    out, img = tmp_path / "docs" / "model-card.md", tmp_path / "docs" / "img"
    ship = tmp_path / "ship" / "train"
    (ship / "eval").mkdir(parents=True)
    (ship / "eval" / "mixsga.json").write_text(json.dumps({"rows": _mix_rows(9.0, {0.5: 6.0}, 6.001, 0.506, 7.3)}))
    for name, steps in (("dense", 14), ("mixsga", 4)):
        (ship / name).mkdir()
        (ship / name / "log.jsonl").write_text(json.dumps({"step": steps, "loss": 2.0, "tokens": steps * 1000}) + "\n")
    ext, lc = _long_run(tmp_path / "ext"), _long_run(tmp_path / "lc")
    model_card.build(res, code, out, corpus, img, doc, shipped=ship.parent, extension=ext, long_study=lc)
    text = out.read_text()
    assert "then a long-context phase of 5,000 tokens on 2048-token windows" in text and "23,000 in all" in text
    assert "| + 2048-token phase (**shipped**) | 2048 | 5.700 | 5.700 (50.5%) | 8.700 |" in text
    assert "| r3 branch (trained on 1024) | 2048 | 18.900 | 18.500 (50.5%) | 21.900 |" in text
    assert "from 18.900 to 5.700 (-70%)" in text and "6.300 → 6.200 (-1.6%)" in text
    assert "| shipped (`r3x-2048`) | mixsga-argmax | 8.000 | 7.500 | 7.000 | 6.900 |" in text
    assert (img / "model-card-position.png").stat().st_size > 5000
    assert "**1.140×**" in text and "target ≤ 1.03×: **not met**" in text  # 5.7 / 5.0
    assert "on 1024-token windows 1.192×" in text  # 6.2 / 5.2
    assert "Against the window (6.800) and H2O (7.000) at 50%: **not lower**" not in text  # 5.7 < 6.8: lower
    assert "at 50%: lower." in text
    assert "extend.steps=5 on 2048-token windows" in text and "--extension" in text and "--long-study" in text
    assert "--set trunk.total_steps=40 --set trunk.dense_steps=30 --set extend.steps=5" in text
    model_card.build(res, code, out, corpus, img, doc, shipped=ship.parent, long_study=_long_run(
        tmp_path / "lc2", mix_long=7.7, window_long=6.8))
    assert "**not lower**: a longer context does not turn the comparison" in out.read_text()
    with pytest.raises(UserError):
        model_card.build(res, code, out, corpus, img, doc, shipped=ship.parent, extension=tmp_path / "nowhere")
