"""FIM layouts, middle + EOS, round trip, determinism; and FIM packing in the data loader."""
import numpy as np

from mixsga.data import fim_row
from mixsga.fim import BOS, EOS, FIM_MIDDLE, FIM_PREFIX, FIM_SUFFIX, apply_fim, parse_fim

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
