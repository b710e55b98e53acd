"""Table cells and verdicts: formatted perplexities, KV fractions, losses, the 50% target's checks."""
from __future__ import annotations

import math

from mixsga.model_card.config import BUDGETS, TARGET_PPL_RATIO
from mixsga.model_card.facts import ppl_at


def wilson(k: int, n: int, z: float = 1.96):
    """95% Wilson score interval of a binomial proportion k/n."""
    if n <= 0:
        return 0.0, 1.0
    p = k / n
    den = 1 + z * z / n
    mid = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return max(0.0, mid - half), min(1.0, mid + half)


def fmt_ppl(r):
    return "n/a" if r is None else f"{r['ppl']:.3f}"


def fmt_tok(n: int) -> str:
    return f"{n / 1e6:.1f}M" if n >= 1e6 else f"{n:,}"


def fmt_loss(r, key="loss"):
    """'2.1234 (step)' of a log row, or n/a."""
    return "n/a" if r is None else f"{r[key]:.4f} ({r['step']})"


def fmt_kv(r):
    return "n/a" if r is None else f"{r['kv_fraction']:.1%}"


def budget_cells(rows, method, only=None):
    """Table cells over BUDGETS; the argmax row goes to the budget nearest its achieved KV fraction."""
    cells = [""] * len(BUDGETS)
    if method == "mixsga-argmax":
        r = ppl_at(rows, method)
        if r:
            i = min(range(len(BUDGETS)), key=lambda j: abs(BUDGETS[j] - r["kv_fraction"]))
            cells[i] = f"{r['ppl']:.3f} (at {r['kv_fraction']:.1%})"
        return cells
    for i, b in enumerate(BUDGETS):
        r = ppl_at(rows, method, b)
        if r and (only is None or b in only):
            cells[i] = f"{r['ppl']:.3f}"
    return cells


def lower(x, base) -> str:
    """'lower (-1.2%)' / '**not lower** (+0.3%)': mixSGA's perplexity X against a baseline's."""
    d = x["ppl"] / base["ppl"] - 1
    return f"lower ({d:+.1%})" if x["ppl"] < base["ppl"] else f"**not lower** ({d:+.1%})"


def target_checks(x, x_at_gqa, ref, bases) -> list[tuple[str, bool | None]]:
    """The 50% target's checks for one routing, as (table cell, passed; None = a row is missing): X's ratio to the
    full-KV reference REF, then X lower than each baseline; bases: (row, compare X_AT_GQA instead of X)."""
    if x is None or ref is None:
        checks = [("n/a", None)]
    else:
        ok = x["ppl"] / ref["ppl"] <= TARGET_PPL_RATIO
        checks = [(f"{x['ppl'] / ref['ppl']:.3f}× → {'met' if ok else '**not met**'}", ok)]
    for base, at_gqa in bases:
        y = x_at_gqa if at_gqa else x
        if y is None or base is None:
            checks.append(("n/a", None))
        else:
            checks.append((f"{y['ppl']:.3f} vs {base['ppl']:.3f} ({fmt_kv(base)} KV): {lower(y, base)}",
                           y["ppl"] < base["ppl"]))
    return checks


def verdict(checks) -> bool | None:
    oks = [ok for _, ok in checks]
    return None if None in oks else all(oks)
