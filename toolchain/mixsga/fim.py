"""Fill-in-the-middle (FIM) on token ids, so one model both continues code and fills a hole.

A document [BOS] ids [EOS] is, with probability `fim_rate`, cut at two random points into prefix P, middle M
and suffix S and rearranged as
    PSM: [BOS] <fim_prefix> P <fim_suffix> S <fim_middle> M [EOS]
    SPM: [BOS] <fim_suffix> S <fim_prefix> P <fim_middle> M [EOS]
The EOS right after the middle teaches the model where to stop. SPM is the layout the extension prompts with
(`<fim_suffix>{suffix}<fim_prefix>{prefix}<fim_middle>`), PSM is trained too so both orderings work.

Two kinds of cuts, because completions are asked for in two ways:
  - token cuts: two token positions chosen uniformly (the extension's cursor can be anywhere in a line);
  - line cuts (share `line_rate` of FIM documents): the middle is 1-3 whole lines, each with its newline, and the
    prefix ends at a line start - the shape of a "complete this line" request (and of HumanEval's single-line
    infilling: prefix up to the line, the line, the rest). The Llama tokenizer always encodes a newline as the
    byte token <0x0A>, so line starts are the positions after it.
All randomness comes from the numpy Generator passed in, so the transform is deterministic given a seed.
"""
import numpy as np

FIM_PREFIX, FIM_MIDDLE, FIM_SUFFIX, FIM_PAD, FILE_SEP = 32000, 32001, 32002, 32003, 32004
BOS, EOS = 1, 2
NEWLINE = 13  # <0x0A>
MAX_MIDDLE_LINES = 3


def split_points(n: int, rng: np.random.Generator):
    """Two sorted cut points in [0, n]: prefix = [0, a), middle = [a, b), suffix = [b, n)."""
    a, b = sorted(rng.integers(0, n + 1, size=2).tolist())
    return a, b


def line_split_points(body, rng: np.random.Generator):
    """Cut points at line starts: the middle is k whole lines (k = 1 half of the time, else 2 or 3; fewer at the
    end of the piece). None when the piece has no newline to cut at."""
    starts = [0] + [i + 1 for i, t in enumerate(body[:-1]) if t == NEWLINE]
    if len(starts) < 2:
        return None
    a = int(rng.integers(0, len(starts)))
    k = 1 if rng.random() < 0.5 else int(rng.integers(2, MAX_MIDDLE_LINES + 1))
    b = starts[a + k] if a + k < len(starts) else len(body)
    return starts[a], b


def psm(p, m, s):
    return [FIM_PREFIX, *p, FIM_SUFFIX, *s, FIM_MIDDLE, *m]


def spm(p, m, s):
    return [FIM_SUFFIX, *s, FIM_PREFIX, *p, FIM_MIDDLE, *m]


def apply_fim(doc, rng: np.random.Generator, fim_rate=0.5, spm_rate=0.5, line_rate=0.0):
    """One document piece -> its training token list.

    `doc` is a 1-D int array that may start with BOS and/or end with EOS (a piece cut from a packed window may
    lack either). Non-FIM pieces come back unchanged. A FIM piece always gets BOS in front and EOS after the
    middle, because that is exactly what the model sees and must produce at inference."""
    doc = np.asarray(doc)
    if rng.random() >= fim_rate:
        return doc.tolist()
    body = doc[1:] if len(doc) and doc[0] == BOS else doc
    body = body[:-1] if len(body) and body[-1] == EOS else body
    body = body.tolist()
    cut = line_split_points(body, rng) if line_rate > 0 and rng.random() < line_rate else None
    a, b = cut or split_points(len(body), rng)
    p, m, s = body[:a], body[a:b], body[b:]
    layout = spm if rng.random() < spm_rate else psm
    return [BOS, *layout(p, m, s), EOS]


def parse_fim(tokens):
    """Inverse of apply_fim for tests and debugging: FIM tokens -> (prefix, middle, suffix, ordering)."""
    t = list(tokens)
    if t and t[0] == BOS:
        t = t[1:]
    if t and t[-1] == EOS:
        t = t[:-1]
    i_mid = t.index(FIM_MIDDLE)
    head, middle = t[:i_mid], t[i_mid + 1:]
    if head[0] == FIM_PREFIX:
        j = head.index(FIM_SUFFIX)
        return head[1:j], middle, head[j + 1:], "psm"
    j = head.index(FIM_PREFIX)
    return head[j + 1:], middle, head[1:j], "spm"
