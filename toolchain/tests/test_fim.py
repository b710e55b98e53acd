"""FIM layouts, middle + EOS, round trip, determinism; and FIM packing in the data loader."""
import numpy as np

from mixsga.data import fim_row
from mixsga.fim import BOS, EOS, FIM_MIDDLE, FIM_PREFIX, FIM_SUFFIX, MAX_MIDDLE_LINES, NEWLINE, apply_fim, parse_fim

DOC = np.array([BOS, *range(100, 140), EOS])


def test_layouts_and_round_trip():
    seen = set()
    for seed in range(40):
        out = apply_fim(DOC, np.random.default_rng(seed), fim_rate=1.0, spm_rate=0.5)
        assert out[0] == BOS and out[-1] == EOS  # middle ends with EOS: the model learns to stop
        p, m, s, order = parse_fim(out)
        seen.add(order)
        assert p + m + s == DOC[1:-1].tolist()
        if order == "spm":
            assert out[1] == FIM_SUFFIX and out[2 + len(s)] == FIM_PREFIX
        else:
            assert out[1] == FIM_PREFIX and out[2 + len(p)] == FIM_SUFFIX
        assert out[-2 - len(m)] == FIM_MIDDLE
    assert seen == {"psm", "spm"}


def test_rates_and_determinism():
    a = [apply_fim(DOC, np.random.default_rng(s)) for s in range(200)]
    b = [apply_fim(DOC, np.random.default_rng(s)) for s in range(200)]
    assert a == b
    fim = sum(FIM_MIDDLE in x for x in a) / len(a)
    assert 0.35 < fim < 0.65
    assert all(x == DOC.tolist() for x in a if FIM_MIDDLE not in x)
    only_spm = [apply_fim(DOC, np.random.default_rng(s), 1.0, 1.0) for s in range(20)]
    assert all(parse_fim(x)[3] == "spm" for x in only_spm)


def test_row_packing():
    docs = np.concatenate([DOC, DOC[:30]])
    ids, labels = fim_row(docs[:64], np.random.default_rng(0), 64, fim_rate=1.0, spm_rate=1.0)
    assert ids.shape == (64,) and (labels == ids).all()
    assert ids[0] == BOS and ids[1] == FIM_SUFFIX
    ids, labels = fim_row(docs[:20], np.random.default_rng(0), 32, fim_rate=0.0, spm_rate=0.0)
    assert (labels[20:] == -100).all() and (ids[:20] == docs[:20]).all()


def test_line_cuts_take_whole_lines():
    # 12 lines of 3-5 tokens, each ending with the newline token
    lines = [[100 + i, 200 + i, *([300] * (i % 3)), NEWLINE] for i in range(12)]
    doc = np.array([BOS, *[t for ln in lines for t in ln], EOS])
    body = doc[1:-1].tolist()
    starts = {0} | {i + 1 for i, t in enumerate(body) if t == NEWLINE}
    sizes = []
    for seed in range(200):
        out = apply_fim(doc, np.random.default_rng(seed), fim_rate=1.0, line_rate=1.0)
        p, m, s, _ = parse_fim(out)
        assert p + m + s == body
        assert len(p) in starts and len(p) + len(m) in starts | {len(body)}  # cut at line starts only
        assert m and m[-1] == NEWLINE  # whole lines, newline included (every line here ends with one)
        sizes.append(m.count(NEWLINE))
    assert set(sizes) <= set(range(1, MAX_MIDDLE_LINES + 1)) and 0.35 < sizes.count(1) / len(sizes) < 0.75
    # line_rate 0 never consults the line cutter: the output equals the token-cut transform
    assert [apply_fim(doc, np.random.default_rng(s), 1.0) for s in range(20)] == \
           [apply_fim(doc, np.random.default_rng(s), 1.0, line_rate=0.0) for s in range(20)]
    # no newline to cut at: falls back to token cuts
    out = apply_fim(DOC, np.random.default_rng(3), fim_rate=1.0, line_rate=1.0)
    p, m, s, _ = parse_fim(out)
    assert p + m + s == DOC[1:-1].tolist()


def test_line_rate_share():
    lines = [[100 + i, NEWLINE] for i in range(30)]
    doc = np.array([BOS, *[t for ln in lines for t in ln], EOS])
    body = doc[1:-1].tolist()
    starts = {0} | {i + 1 for i, t in enumerate(body) if t == NEWLINE}
    at_lines = 0
    for seed in range(400):
        p, m, s, _ = parse_fim(apply_fim(doc, np.random.default_rng(seed), fim_rate=1.0, line_rate=0.5))
        at_lines += len(p) in starts and len(p) + len(m) in starts | {len(body)} and len(m) > 0
    # line cuts (~50 %) plus the token cuts that happen to fall on line starts (~1/4 of the rest)
    assert 0.5 < at_lines / 400 < 0.75
