"""model_card: synthetic result files in tmp -> card + plots written, the computed numbers appear."""
import json

import pytest

pytest.importorskip("matplotlib")

from mixsga import model_card


def _rows(full, mix=None, argmax=None):
    rows = [{"method": "full", "budget": 1.0, "kv_fraction": 1.0, "loss": 2.0, "ppl": full, "note": ""}]
    for b in model_card.BUDGETS[:-1]:
        if mix:
            rows.append({"method": "mixsga", "budget": b, "kv_fraction": b, "loss": 2.0, "ppl": mix[b], "note": ""})
        for m, f in (("gqa", 3.0), ("window", 1.5), ("h2o", 1.6)):
            rows.append({"method": m, "budget": b, "kv_fraction": b, "loss": 2.0, "ppl": full * f / (b + 0.5),
                         "note": ""})
    if argmax:
        rows.append({"method": "mixsga-argmax", "budget": None, "kv_fraction": 0.497, "loss": 2.0, "ppl": argmax,
                     "note": ""})
    return rows


def _write(tmp_path):
    res = tmp_path / "res"
    train = res / "train"
    (train / "eval").mkdir(parents=True)
    (train / "all.log").write_text(
        '{\n "total_tokens": {"train": 1000000, "val": 5000},\n "tokens": {"train": {"npm/typescript": 1000000}},\n'
        ' "drops": {"eval_signature": 3}\n}\n'
        "[train] 22,914,432 params (10,623,360 non-embedding), mixsga=False ratios=-; x\n"
        "[train] done at step 10 (2,621,440 tokens, 42s); checkpoint x\n"
        "[train] 22,923,672 params (10,632,600 non-embedding), mixsga=True ratios=(0.3, 0.1, 0.6); x\n"
        "[train] done at step 5 (1,310,720 tokens, 20s); checkpoint y\n")
    shares = [[0.3, 0.1, 0.6]] * 7 + [[0.4, 0.2, 0.4]]
    for name, n in (("dense", 10), ("mixsga", 5), ("abl-paper", 3), ("abl-lmgrad", 3), ("abl-random", 3),
                    ("abl-gqa2", 3)):
        (train / name).mkdir()
        lines = [{"step": s, "loss": 5.0 - s * 0.1, "tokens": s * 262144, "tok_per_s_per_gpu": 123456 + s,
                  "elapsed_s": s * 1.0} for s in range(1, n + 1)]
        lines.append({"step": n, "tokens": n * 262144, "val_loss": 2.5, "argmax_shares": shares,
                      "argmax_kv_fraction": 0.4975})
        (train / name / "log.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n")
        (train / f"{name}.log").write_text(f"[train] done at step {n} (786,432 tokens, 9s); checkpoint z\n")
    mix = {0.25: 9.0, 0.35: 8.5, 0.5: 7.77, 0.75: 8.0}
    (train / "eval" / "dense.json").write_text(json.dumps({"rows": _rows(7.5)}))
    for name in ("mixsga", "abl-paper", "abl-lmgrad", "abl-random", "abl-gqa2"):
        (train / "eval" / f"{name}.json").write_text(json.dumps({"rows": _rows(11.0, mix, 7.654)}))
    evals = tmp_path / "evals"
    evals.mkdir()
    (evals / "single.json").write_text(json.dumps({"config": {"limit": None}, "wall_s": 1.0, "sets": {
        "single": {"n": 1033, "passed": 52, "failed": 981, "timeout": 0, "pass@1": 52 / 1033}}}))
    (evals / "multi.json").write_text(json.dumps({"config": {"multi_subset": 500, "seed": 1234, "limit": 60},
                                                  "sets": {"multi": {"n": 60, "passed": 1, "failed": 59,
                                                                     "timeout": 0, "pass@1": 1 / 60}}}))
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "stats.json").write_text(json.dumps({"packages": {"npm": 2, "debian": 1}, "licences": {"MIT": 7},
                                                   "val_packages": ["npm:zz"], "decontaminated": ["a: x"]}))
    (corpus / "decontam.json").write_text(json.dumps({"signatures": [["f", "x"]] * 4, "doc_lines": ["d"]}))
    doc = tmp_path / "training.md"
    doc.write_text("# T\n\n## Model size: 22.9M parameters\n\nsize reason here\n\n## Next\n")
    return res, evals, corpus, doc


def test_model_card_written(tmp_path):
    res, evals, corpus, doc = _write(tmp_path)
    out = tmp_path / "docs" / "model-card.md"
    img = tmp_path / "docs" / "img"
    nums = model_card.build(res, evals, out, corpus, img, doc)
    text = out.read_text()
    for f in ("model-card-ppl-kv.png", "model-card-routing.png", "model-card-loss.png"):
        assert (img / f).stat().st_size > 1000
        assert f"img/{f}" in text
    assert "7.770" in text and "7.500" in text                  # mixSGA@50% and dense full KV
    assert f"{7.77 / 7.5:.3f}×" in text and "**not met**" in text  # 1.036x > 1.03
    assert "7.654" in text and "49.7%" in text                  # argmax decode row
    assert "5.0%" in text and "single-line infilling pass@1 ≥ 0.30" in text
    assert "seeded subset of 500 (seed 1234), first 60" in text
    assert "22,914,432" in text and "size reason here" in text
    assert "123," in text and "2026-11-29" in text and "H200" in text
    assert "eval_signature 3" in text
    assert abs(nums["ratio_dense"] - 7.77 / 7.5) < 1e-9


def test_cli_registered(tmp_path):
    from mixsga.__main__ import main
    res, evals, corpus, doc = _write(tmp_path)
    out = tmp_path / "card.md"
    assert main(["model_card", "--results", str(res), "--evals", str(evals), "--out", str(out),
                 "--corpus", str(corpus), "--training-doc", str(doc)]) == 0
    assert (tmp_path / "img" / "model-card-loss.png").is_file()
    assert "Model card" in out.read_text()
