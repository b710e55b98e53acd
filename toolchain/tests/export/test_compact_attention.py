"""The CPU variant's attention over the per-expert caches as stored (issue 18, mixsga/onnx_attention.py): each
cache is read at its own head count (nothing expanded outside a long chunk's branch), and the results equal the
graph with every cache expanded to H heads (today's CUDA attention, `attention="expand"`) and the PyTorch reference
at 100/50/25 % KV budgets, through short and long chunks and the decode loop."""
import numpy as np
import pytest

ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")

from mixsga import runtime as rt  # noqa: E402
from mixsga.onnx_graph import LONG_CHUNK  # noqa: E402
from export_kit import (BIASES, CFG, E, L, assert_matches_reference, copy_past, export_session, feeds,  # noqa: E402
                        random_case, run)


@pytest.fixture(scope="module")
def expand(model, tmp_path_factory):
    """The CPU variant with the CUDA variant's attention (caches expanded to H heads): today's graph before
    issue 18, the reference of the compact attention."""
    return export_session(model, tmp_path_factory.mktemp("expand") / "model.onnx", attention="expand")


def test_compact_attention_reads_each_cache_as_stored(fp32_onnx):
    """Attention work follows the bytes held: each past.{l}.{e} is split into its keys and values by two Gathers
    (once per run), each feeding one Transpose whose output a short chunk (the If's else branch) and every decode
    step multiply at H_e heads; only a long chunk (the then branch: a prompt's, GroupQueryAttention) expands the
    caches to H heads. The decode loop's body expands nothing."""
    g = onnx.load(str(fp32_onnx)).graph
    (cond,) = [n for n in g.node if n.op_type == "If"]
    branch = {a.name: a.g for a in cond.attribute}
    body = next(a.g for n in g.node if n.op_type == "Loop" for a in n.attribute if a.name == "body")
    for sub in (g, branch["else_branch"], body):
        assert not [n for n in sub.node if n.op_type in ("Expand", "Tile", "GroupQueryAttention")], sub.name
    assert [n.op_type for n in branch["then_branch"].node].count("GroupQueryAttention") == L
    users = {}
    for n in list(g.node) + list(branch["else_branch"].node) + list(body.node):
        for i in n.input:
            users.setdefault(i, []).append(n)
    for l in range(L):
        for e in range(E):
            readers = users[f"past.{l}.{e}"]
            assert sorted(n.op_type for n in readers) == ["Gather", "Gather"], (l, e)
            for gather in readers:
                (t,) = users[gather.output[0]]
                assert t.op_type == "Transpose"
                mm = [n.op_type for n in users[t.output[0]]]
                assert mm.count("FusedMatMul") == 2, (l, e, mm)  # the short chunk's and the decode step's


@pytest.mark.parametrize("pct", [100, 50, 25])
def test_compact_attention_equals_expanded_cache_at_each_budget(model, fp32, expand, pct):
    """The CPU graph's attention over the caches as stored gives today's results (attention="expand": every
    cache expanded to H heads, one GroupQueryAttention per layer) on caches filled to 100/50/25 % of full KV (the
    bench's expert mixes 1:0:0, 3:1:6, 0:0:1 of 4/2/1 KV heads), through a chunk and a decode loop."""
    mix = {100: (1, 0, 0), 50: (3, 1, 6), 25: (0, 0, 1)}[pct]
    T = 40
    Ts = [[T * r // sum(mix) for r in mix] for _ in range(L)]
    held = sum(t * h for t, h in zip(Ts[0], CFG.expert_kv_heads())) / (T * CFG.num_kv_heads)
    assert held == pytest.approx(pct / 100)  # test setup: the cache holds pct % of full KV
    for S, seed in [(1, 40), (5, 41), (LONG_CHUNK, 42)]:  # the last: GroupQueryAttention's chunk, then the loop
        ids, pos, past = random_case(CFG, S, Ts, T, seed)
        f = feeds(rt.as_feeds(past), ids, pos, BIASES[1], gen_steps=6)
        got, want = run(fp32, f), run(expand, f)
        np.testing.assert_allclose(got["logits"], want["logits"], atol=1e-5, rtol=0)
        assert got["tokens"].tolist() == want["tokens"].tolist() and np.array_equal(got["route"], want["route"])
        for e in range(E):
            np.testing.assert_allclose(got[f"kv.{e}"], want[f"kv.{e}"], atol=1e-5, rtol=0)
        assert_matches_reference(got, rt.run(model, ids, pos, BIASES[1], copy_past(past), 6))
