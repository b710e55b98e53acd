"""`model_card --section policy-phase`: the before/after section of a KV-policy arm that became the default model,
rewritten in place in an existing card from the study's eval files and the code evals."""
import json

from mixsga.__main__ import main


def _rows(method, ppls, full, cap=1.0):
    rows = [{"method": "full", "budget": 1.0, "kv_fraction": 1.0, "ppl": full}]
    return rows + [{"method": method, "budget": b, "kv_fraction": min(b, cap), "ppl": p} for b, p in ppls.items()]


def _code(path, sets):
    path.write_text(json.dumps({"sets": {k: {"n": n, "passed": k_, "pass@1": k_ / n} for k, (k_, n) in sets.items()},
                                "tasks": []}))
    return path


def test_policy_phase_section(tmp_path):
    ev = tmp_path / "study" / "eval"
    ev.mkdir(parents=True)
    (ev / "start-2048.json").write_text(json.dumps({"windows": 64, "rows": _rows(
        "mixsga", {0.25: 7.4, 0.35: 6.4, 0.5: 5.7, 0.75: 6.5}, 8.8)}))
    (ev / "arm-2048.json").write_text(json.dumps({"windows": 64, "rows": _rows(
        "proposed", {0.25: 5.44, 0.35: 5.38, 0.5: 5.37, 0.75: 5.368}, 5.368, cap=0.56)}))
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "kv-policy.json").write_text(json.dumps({"arm_tokens": {"arm": {"tokens": 31457280}}}))
    card = docs / "model-card.md"
    card.write_text("# Model card: m (2026-12-01)\n\nintro\n\n## The shipped model\n\nold text\n")
    before = _code(tmp_path / "b.json", {"single": (92, 1033), "ts": (0, 159)})
    after = _code(tmp_path / "a.json", {"single": (118, 1033), "ts": (1, 159), "js": (0, 161)})
    args = ["model_card", "--out", str(card), "--section", "policy-phase", "--phase-eval", str(ev), "--arm", "arm",
            "--evals-before", str(before), "--evals-after", str(after)]
    assert main(args) == 0
    text = card.read_text()
    assert text.startswith("# Model card: m (2026-12-01; KV-policy phase 2026-12-06)\n")
    assert text.index("## Since 2026-12-06") < text.index("## The shipped model")  # placed before the old section
    assert "31,457,280 tokens" in text
    assert "| before (mixSGA routing) | 7.400 | 6.400 | 5.700 | 6.500 | 8.800 |" in text
    assert "| after (`arm`, age cascade) | 5.440 | 5.380 | 5.370 | 5.368 (56%) | 5.368 |" in text
    assert "| HumanEval single-line infilling | 92/1033 | **118/1033** | 11.4% [9.6%, 13.5%] |" in text
    assert "JavaScript" not in text  # a set measured only after is not compared
    assert "paper's routing" not in text  # no --evals-paper
    assert main(args) == 0  # rewritten in place: one section, one title suffix
    again = card.read_text()
    assert not (docs / "model-card.json").exists()  # only with --train-tokens
    model = tmp_path / "model"
    model.mkdir()
    arch = {"vocab_size": 100, "hidden_size": 8, "intermediate_size": 16, "num_layers": 2, "num_attention_heads": 2,
            "num_kv_heads": 1, "head_dim": 4, "tie_word_embeddings": True}
    (model / "manifest.json").write_text(json.dumps({"name": "m", "architecture": arch, "kv_policy": "band=32"}))
    paper = _code(tmp_path / "p.json", {"single": (70, 1033)})
    assert main(args + ["--model", str(model), "--train-tokens", "581959680", "--evals-paper", str(paper)]) == 0
    assert "| HumanEval single-line infilling | 70/1033 | **118/1033** |" in card.read_text()
    facts = json.loads((docs / "model-card.json").read_text())
    # 100*8 tied embedding + 2 layers * (q,k,v,o 8*4*(2*2+2*1) + MLP 3*8*16 + 2 norms of 8) + final norm 8
    assert facts["parameters"] == 800 + 2 * (192 + 384 + 16) + 8
    assert facts["train_tokens"] == 581959680 and facts["name"] == "m"
    assert facts["heldout_ppl_50"]["ppl"] == 5.37 and facts["heldout_ppl_50"]["full_kv"] == 5.368
    assert facts["humaneval_single_line"] == {"passed": 118, "total": 1033}
    assert facts["multipl_e_js"] == {"passed": 0, "total": 161} and facts["humaneval_multi_line"] is None
    assert again.count("## Since 2026-12-06") == 1 and again.split("\n")[0].count("KV-policy phase") == 1 and "old text" in again
