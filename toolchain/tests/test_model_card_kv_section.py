"""model_card's KV-policy section: read from a kv_report JSON (not hard-coded), written into the full card, and
rewritten alone in an existing card (`--section kv-policy`) without touching any other line."""
import json

import pytest

pytest.importorskip("matplotlib")

from mixsga.__main__ import main
from mixsga.errors import UserError
from mixsga.model_card import build, kv_section
from mixsga.model_card.kv_section import BEGIN, END

from test_model_card import _write


def _kv_json(path, proposed25=5.30, windows=2048):
    """A kv_report result in its JSON layout (ppl / kv_fraction by method and budget, verdict, ablations)."""
    ppl = {"full": 5.0, "window": {"0.25": 6.0, "0.5": 5.4}, "int4": {"0.25": 5.2, "0.5": 5.1},
           "proposed": {"0.25": proposed25, "0.5": 5.05}}
    kv = {m: {b: float(b) for b in v} for m, v in ppl.items() if m != "full"}
    kv["int4"]["0.5"] = 0.33
    best25 = min(("window", 6.0), ("int4", 5.2), key=lambda x: x[1])
    verdict = {b: {"proposed": ppl["proposed"].get(b), "best_other": best25[0] if b == "0.25" else "int4",
                   "best_other_ppl": best25[1] if b == "0.25" else 5.1,
                   "wins": b != "0.35" and ppl["proposed"].get(b, 99) <= (best25[1] if b == "0.25" else 5.1),
                   "ratio_to_full": round(ppl["proposed"][b] / 5.0, 4) if b in ppl["proposed"] else None}
               for b in ("0.25", "0.35", "0.5")}
    verdict["within_1.03_at_0.25"] = proposed25 / 5.0 <= 1.03
    d = {"windows": windows, "ppl": ppl, "kv_fraction": kv, "notes": {}, "verdict": verdict, "ablations": {},
         "eval_dir": "runs/kv/eval", "arm_tokens": {"dense-cont": {"steps": 7, "tokens": 7000, "seconds": 1}}}
    path.write_text(json.dumps(d))
    return d


def test_section_in_the_full_card(tmp_path):
    res, code, corpus, doc = _write(tmp_path)
    out, img = tmp_path / "docs" / "model-card.md", tmp_path / "docs" / "img"
    _kv_json(tmp_path / "docs-kv.json")
    build(res, code, out, corpus, img, doc, kv_policy=tmp_path / "docs-kv.json")
    text = out.read_text()
    a, b = text.index(BEGIN), text.index(END)
    assert a < text.index("## Held-out perplexity vs KV budget") and b < text.index("## Held-out perplexity")
    sec = text[a:b]
    assert "### 2048-token windows (full KV: ppl 5.000)" in sec
    assert "| int4 | 5.200 (1.040×) | 5.100 (1.020×) at 33% |" in sec          # ppl, ratio, achieved bytes
    assert "| proposed | 5.300 (1.060×) | 5.050 (1.010×) |" in sec
    assert "25%: missed (best other int4 5.2)" in sec and "50%: met" in sec
    assert "7,000 tokens (7 steps)" in sec and "`runs/kv/eval`" in sec
    assert "![perplexity vs KV bytes](img/kv-policy-2048.png)" in sec
    assert (img / "kv-policy-2048.png").stat().st_size > 1000                  # plotted when it was missing


def test_section_alone_keeps_every_other_line(tmp_path):
    card = tmp_path / "model-card.md"
    head = ["# Model card", "", "## The shipped model", "", "text the GPU runs computed", ""]
    tail = ["# Study: mixSGA vs full KV at equal compute", "", "## Held-out perplexity vs KV budget", "", "rest", ""]
    card.write_text("\n".join(head + tail))
    (tmp_path / "img").mkdir()
    (tmp_path / "img" / "kv-policy-2048.png").write_bytes(b"existing plot")
    _kv_json(tmp_path / "kv-policy.json", proposed25=5.30)
    assert main(["model_card", "--section", "kv-policy", "--out", str(card)]) == 0   # JSON next to the card
    text = card.read_text()
    assert text.startswith("\n".join(head) + "\n" + BEGIN) and text.endswith(END + "\n\n" + "\n".join(tail))
    assert (tmp_path / "img" / "kv-policy-2048.png").read_bytes() == b"existing plot"  # kv_report's plot is kept

    # new results: the section is replaced in place, the rest is byte for byte the same
    _kv_json(tmp_path / "kv-policy.json", proposed25=5.10)
    assert main(["model_card", "--section", "kv-policy", "--out", str(card)]) == 0
    new = card.read_text()
    assert new.count(BEGIN) == 1 and "| proposed | 5.100 (1.020×)" in new and "5.300" not in new
    assert "25%: met" in new and "1.03× at 25 %: met (1.02×)" in new
    assert new[:new.index(BEGIN)] == text[:text.index(BEGIN)]
    assert new[new.index(END):] == text[text.index(END):]


def test_bad_input_says_what_and_changes_nothing(tmp_path, capsys):
    card = tmp_path / "model-card.md"
    card.write_text("# Model card\n")
    assert main(["model_card", "--section", "kv-policy", "--out", str(card)]) == 2
    assert "kv-policy.json: missing" in capsys.readouterr().err
    (tmp_path / "kv-policy.json").write_text('{"windows": 2048, "rows": []}')
    assert main(["model_card", "--section", "kv-policy", "--out", str(card)]) == 2
    assert "not a kv_report file" in capsys.readouterr().err
    (tmp_path / "kv-policy.json").write_text("{not json")
    assert main(["model_card", "--section", "kv-policy", "--out", str(card)]) == 2
    assert "not a readable JSON file" in capsys.readouterr().err
    assert card.read_text() == "# Model card\n"
    _kv_json(tmp_path / "kv-policy.json")
    card.write_text(f"# Model card\n{BEGIN}\nhalf a section\n")
    assert main(["model_card", "--section", "kv-policy", "--out", str(card)]) == 2
    assert "without" in capsys.readouterr().err and card.read_text() == f"# Model card\n{BEGIN}\nhalf a section\n"
    assert main(["model_card", "--out", str(card)]) == 2                        # the whole card needs the runs
    assert "--results and --evals" in capsys.readouterr().err
    with pytest.raises(UserError, match="no card to update"):
        kv_section.update_section(tmp_path / "none.md", [])
