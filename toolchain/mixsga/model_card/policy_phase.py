"""The shipped model's KV-policy phase: what changed when an arm of the KV-policy study became the default model.
Compares the weights before the phase (the study's common start, read with its own mixSGA routing, as the engine
served it) and after (the arm, read with its age cascade, as the engine serves it now) on the study's held-out
windows, and their code evals on the same tasks. Rewritten alone, between its markers (`--section policy-phase`)."""
from __future__ import annotations

import json
import os
from pathlib import Path

from mixsga.errors import UserError
from mixsga.model_card.cells import wilson

BEGIN, END = "<!-- model_card:policy-phase -->", "<!-- /model_card:policy-phase -->"
ANCHORS = ("## The shipped model",)
BUDGETS = ("0.25", "0.35", "0.5", "0.75")
SETS = (("single", "HumanEval single-line infilling"), ("multi", "HumanEval multi-line infilling"),
        ("light", "HumanEval random-span-light"), ("humaneval", "HumanEval left-to-right"),
        ("ts", "MultiPL-E HumanEval TypeScript"), ("js", "MultiPL-E HumanEval JavaScript"))


def _json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise UserError(f"{path}: not a readable JSON file ({e})") from None


def _ppl(rows, method, budget=None):
    for r in rows:
        if r["method"] == method and (budget is None or abs(r["budget"] - float(budget)) < 1e-9):
            return r["ppl"], r["kv_fraction"]
    return None, None


def code_sets(files: list[Path]) -> dict:
    """{set: (passed, n, file name)} over eval_code JSON files; a later file's set replaces an earlier one's."""
    out = {}
    for f in files:
        for name, s in _json(f)["sets"].items():
            out[name] = (s["passed"], s["n"], f.name)
    return out


def policy_phase_lines(eval_dir: Path, arm: str, seq: int, before: list[Path], after: list[Path],
                       out: Path, paper: list[Path] = ()) -> list[str]:
    start = _json(eval_dir / f"start-{seq}.json")
    new = _json(eval_dir / f"{arm}-{seq}.json")
    policy = json.loads((eval_dir.parent / arm / "ckpt" / "config.json").read_text()).get("kv_policy") \
        if (eval_dir.parent / arm / "ckpt" / "config.json").is_file() else None
    kv_json = out.parent / "kv-policy.json"
    tokens = ((json.loads(kv_json.read_text()).get("arm_tokens") or {}).get(arm) or {}).get("tokens") \
        if kv_json.is_file() else None
    rel = lambda p: Path(os.path.relpath(p, out.parent)).as_posix()  # noqa: E731
    L = [BEGIN, "## Since 2026-12-06: the KV-policy phase", "",
         f"`models/default` now holds arm `{arm}` of the KV-policy study ([kv-policy.md](kv-policy.md)): the "
         "long-context weights described below, continued for "
         + (f"{tokens:,} tokens" if tokens else "the study's equal-compute tokens") + " with the age "
         f"cascade{f' `{policy}`' if policy else ''} (newest 32 tokens and 4 sinks in fp16, then int8, then KIVI "
         "int4, then 2 pooled heads at int4, by age; the ages follow from the budget). The export pins the routers "
         "to expert 0 and writes the policy into the manifest; the engine serves it (`src/engine/kvCascade.ts`). "
         f"Held-out perplexity on the study's {new['windows']} × {seq}-token windows "
         f"(`{rel(eval_dir)}`): before = the shipped weights as the engine served them (mixSGA 3:1:6 routing), "
         "after = the arm with its cascade; budgets are fractions of the fp16 full cache's bytes.", "",
         "| held-out ppl | " + " | ".join(f"{float(b):.0%}" for b in BUDGETS) + " | full KV |",
         "|---|" + "---|" * (len(BUDGETS) + 1)]
    for label, rows, method in (("before (mixSGA routing)", start["rows"], "mixsga"),
                                (f"after (`{arm}`, age cascade)", new["rows"], "proposed")):
        cells = []
        for b in BUDGETS:
            p, kv = _ppl(rows, method, b)
            cells.append("" if p is None else f"{p:.3f}" + (f" ({kv:.0%})" if abs(kv - float(b)) > 0.015 else ""))
        full, _ = _ppl(rows, "full")
        L.append(f"| {label} | " + " | ".join(cells) + (f" | {full:.3f} |" if full else " | |"))
    L += ["", "A KV fraction in brackets: the method cannot use more than that share of the budget.", "",
          "Code evals (pass@1, greedy, the exported CPU file through `eval_code`, the same tasks before and after):",
          "", "| set | before | after | after [95% Wilson CI] |", "|---|---|---|---|"]
    b, a = code_sets(before), code_sets(after)
    for key, name in SETS:
        if key in b and key in a and b[key][1] == a[key][1]:
            lo, hi = wilson(a[key][0], a[key][1])
            L.append(f"| {name} | {b[key][0]}/{b[key][1]} | **{a[key][0]}/{a[key][1]}** | "
                     f"{a[key][0] / a[key][1]:.1%} [{lo:.1%}, {hi:.1%}] |")
    p = code_sets(paper)
    both = [(name, p[k], a[k]) for k, name in SETS if k in p and k in a and p[k][1] == a[k][1]]
    if both:  # the KV-policy study's equal-compute comparison: same start, same tokens, other attention
        L += ["", "Against the paper's routing at equal compute (the study's `mixsga` arm: the same start weights and "
              "tokens, trained with expert-choice routing at 3:1:6 and decoded with argmax routing):", "",
              f"| set | mixSGA arm | `{arm}` |", "|---|---|---|"]
        L += [f"| {name} | {x[0]}/{x[1]} | **{y[0]}/{y[1]}** |" for name, x, y in both]
    L += ["", "Files: before " + ", ".join(f"`{rel(p)}`" for p in before) + "; after "
          + ", ".join(f"`{rel(p)}`" for p in after)
          + ("; mixSGA arm " + ", ".join(f"`{rel(x)}`" for x in paper) if both else "") + ".", END]
    return L


def parameters(arch: dict) -> int:
    """Parameter count of a Llama-family model from the manifest's architecture (the routers pinned to expert 0 by
    the export are left out: they do not change what the model computes)."""
    d, hd, layers = arch["hidden_size"], arch["head_dim"], arch["num_layers"]
    attn = d * hd * (2 * arch["num_attention_heads"] + 2 * arch["num_kv_heads"])
    per_layer = attn + 3 * d * arch["intermediate_size"] + 2 * d
    emb = arch["vocab_size"] * d * (1 if arch.get("tie_word_embeddings") else 2)
    return emb + layers * per_layer + d


def card_facts(model_dir: Path, eval_dir: Path, arm: str, seq: int, after: list[Path], train_tokens: int) -> dict:
    """docs/model-card.json: the shipped model's key figures, for tools and for the model-v2 comparison."""
    manifest = _json(model_dir / "manifest.json")
    new = _json(eval_dir / f"{arm}-{seq}.json")
    ppl = {b: _ppl(new["rows"], "proposed", b)[0] for b in BUDGETS}
    sets = code_sets(after)
    passed = lambda k: {"passed": sets[k][0], "total": sets[k][1]} if k in sets else None  # noqa: E731
    multi = passed("multi")
    if multi:
        multi["of_tasks"] = 5815  # a seeded subset of HumanEval multi-line infilling (eval_code --multi-subset)
    return {"name": manifest["name"], "parameters": parameters(manifest["architecture"]),
            "train_tokens": train_tokens, "kv_policy": manifest.get("kv_policy"),
            "heldout_ppl_50": {"ppl": ppl["0.5"], "kv_fraction": 0.5, "windows": new["windows"], "seq_len": seq,
                               "full_kv": _ppl(new["rows"], "full")[0], "eval": f"{eval_dir}/{arm}-{seq}.json"},
            "heldout_ppl_by_budget": ppl,
            "humaneval_single_line": passed("single"), "humaneval_multi_line": multi,
            "humaneval_light": passed("light"), "humaneval_left_to_right": passed("humaneval"),
            "multipl_e_ts": passed("ts"), "multipl_e_js": passed("js")}


def update_title(card: Path, suffix: str) -> None:
    text = card.read_text().split("\n")
    if text and text[0].startswith("# Model card:") and suffix not in text[0]:
        text[0] = text[0].rstrip(")") + f"; {suffix})"
        card.write_text("\n".join(text))
