"""The KV-policy section: the comparison at equal bytes that `python -m mixsga kv_report` writes to
docs/kv-policy.json (table of perplexity by method and budget, the verdict) and its plot. The rest of the card
needs the GPU runs' folders; this section needs only that file, so it can also be rewritten alone in an existing
card (`--section kv-policy`), between its markers."""
from __future__ import annotations

import json
import os
from pathlib import Path

from mixsga import kv_report
from mixsga.errors import UserError

BEGIN, END = "<!-- model_card:kv-policy -->", "<!-- /model_card:kv-policy -->"
# The section goes before the first of these lines (after the shipped model's sections), else at the end.
ANCHORS = ("# Study:", "## Held-out perplexity")


def read_kv_policy(path: Path) -> dict:
    try:
        d = json.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(f"{path}: missing (python -m mixsga kv_report writes it)") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise UserError(f"{path}: not a readable JSON file ({e})") from None
    if not (isinstance(d, dict) and isinstance(d.get("ppl"), dict) and "full" in d["ppl"] and "windows" in d):
        raise UserError(f"{path}: no 'windows' and no 'ppl' with a 'full' entry: not a kv_report file")
    return d


def kv_policy_lines(d: dict, source: Path, out: Path, img: Path) -> list[str]:
    """The section, markers included, as lines; plots the comparison when its image is missing."""
    seq = d["windows"]
    rel = lambda p: Path(os.path.relpath(p, out.parent)).as_posix()  # noqa: E731
    plot = img / f"kv-policy-{seq}.png"
    if not plot.is_file():
        kv_report.plot(d, plot)
    ref = (d.get("arm_tokens") or {}).get("dense-cont")
    detail = source.with_suffix(".md")
    L = [BEGIN, "## KV policies at equal bytes", "",
         f"Read from `{source}` (`python -m mixsga kv_report`"
         + (f" over `{d['eval_dir']}`" if d.get("eval_dir") else "") + "): ways to hold the KV cache in a fraction of "
         "the fp16 full cache's bytes, compared at equal bytes and equal compute — every arm starts from the default "
         "model's weights before its KV-policy phase and trains the same "
         + (f"{ref['tokens']:,} tokens ({ref['steps']} steps)" if ref else "tokens")
         + f"; held-out perplexity on {seq}-token windows, bytes counted as stored (scales included)"
         + (f". Setup, every arm and the other window lengths: [{detail.name}]({rel(detail)})." if detail.is_file()
            else "."), "",
         f"![perplexity vs KV bytes]({rel(plot)})", ""]
    L += kv_report.markdown([d]).rstrip("\n").split("\n")
    return L + [END]


def update_section(card: Path, lines: list[str], begin=BEGIN, end=END, anchors=ANCHORS) -> None:
    """Replaces the section between its markers in CARD, or inserts it before the first anchor line; every other
    line of the card stays as it was."""
    if not card.is_file():
        raise UserError(f"{card}: no card to update (build it first: python -m mixsga model_card --results ...)")
    text = card.read_text().split("\n")
    if begin in text:
        a = text.index(begin)
        if end not in text[a:]:
            raise UserError(f"{card}: '{begin}' without '{end}'; fix the markers by hand")
        b = a + text[a:].index(end)
        text[a:b + 1] = lines
    else:
        at = next((i for i, line in enumerate(text) if line.startswith(anchors)), None)
        if at is None:
            text[len(text) - (text[-1] == ""):] = ["", *lines, ""]
        else:
            text[at:at] = [*lines, ""]
    card.write_text("\n".join(text))
