"""The ONNX completer (model format 2) of the code evals against PyTorch greedy decoding on a tiny exported model,
the eval_code CLI on it, and the fixture model's vectors replayed through the completer's cache."""
import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from mixsga import code_tasks
from mixsga.code_tasks import truncate_at_stops
from mixsga.errors import UserError

np = pytest.importorskip("numpy")
torch = pytest.importorskip("torch")
pytest.importorskip("tokenizers")
pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

from mixsga.eval_code import OnnxCompleter  # noqa: E402

EVAL_DIR = code_tasks.default_eval_dir()
needs_data = pytest.mark.skipif(not (EVAL_DIR / "humaneval").is_dir(), reason=f"no eval data at {EVAL_DIR}")
REPO = Path(__file__).resolve().parents[2]
FIXTURE = REPO / "test" / "fixtures" / "fixture-tiny"


# ------------------------------------------------------------------------------------------ ONNX completer (format 2)
# A tiny random mixSGA model (real tokenizer, tied embeddings, experts (1, 2, 4)) exported with export_folder and
# run through onnxruntime: OnnxCompleter's greedy ids must equal mixsga.generate.TorchCompleter's (PyTorch, same
# checkpoint, one token per forward), however the prompt is chunked and however many runs the generation takes.
# The model is diverse enough (30 distinct ids in 30 steps, top-2 logit gaps >= 0.1, every expert used) that
# feeding a wrong token or position, or a misplaced cache row, changes the ids.

MAX_POS = 64
TINY = dict(vocab_size=32008, hidden_size=32, intermediate_size=64, num_layers=2, num_attention_heads=8,
            num_kv_heads=4, head_dim=16, max_position_embeddings=MAX_POS, tie_word_embeddings=True,
            expert_group_sizes=(1, 2, 4))
PREFIX = "def add(a, b):\n    "
SUFFIX = "\n\nfor i in range(10):\n    print(add(i, i))\n"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    import onnxruntime as ort
    from mixsga.checkpoint import save_checkpoint
    from mixsga.config import ModelConfig
    from mixsga.export import export_folder
    from mixsga.generate import TorchCompleter
    from mixsga.model import MixSGAForCausalLM

    torch.manual_seed(1)
    model = MixSGAForCausalLM(ModelConfig(**TINY)).init_weights(std=1.0, seed=1).eval()
    with torch.no_grad():
        for layer in model.model.layers:
            layer.self_attn.router.bias.copy_(torch.tensor([0.3, 0.6, 0.2]))
    root = tmp_path_factory.mktemp("tiny")
    save_checkpoint(model, root / "ckpt")
    export_folder(root / "ckpt", root / "model", cpu_weights="float32")
    ref = TorchCompleter(root / "ckpt", device="cpu")
    sess = ort.InferenceSession(str(root / "model" / "model.cpu.onnx"), providers=["CPUExecutionProvider"])
    return SimpleNamespace(dir=root / "model", ref=ref, sess=sess)


class Recorder:
    """The real onnxruntime session, recording what every run is fed and which tokens it returns."""

    def __init__(self, sess):
        self.sess, self.calls = sess, []

    def get_inputs(self):
        return self.sess.get_inputs()

    def get_outputs(self):
        return self.sess.get_outputs()

    def run(self, names, feeds):
        out = self.sess.run(names, feeds)
        self.calls.append({"ids": feeds["input_ids"][0].tolist(), "pos": feeds["position_ids"][0].tolist(),
                           "gen_steps": int(feeds["gen_steps"]),
                           "stop": set(np.flatnonzero(feeds["stop_mask"]).tolist()),
                           "tokens": out[names.index("tokens")].tolist()})
        return out


def completer(tiny, **kw):
    rec = Recorder(tiny.sess)
    return OnnxCompleter(tiny.dir, session=rec, **kw), rec


def check_runs(c, rec, ids, max_new, stop_strings=()):
    """The runs of the last complete(): the prompt in chunks (gen_steps 0 but for the last), then continuations
    fed [t_N] at the next position; no position reaches max_position_embeddings; generated = the runs' tokens."""
    calls, gen = rec.calls, c.last["generated_ids"]
    n_prompt, fed = 0, []
    while len(fed) < len(ids):
        fed += calls[n_prompt]["ids"]
        n_prompt += 1
    assert fed == ids and c.last["runs"] == len(calls)
    step = c.chunk_size or len(ids)
    assert [len(x["ids"]) for x in calls[:n_prompt]] == [len(ids[i:i + step]) for i in range(0, len(ids), step)]
    assert all(x["gen_steps"] == 0 for x in calls[:n_prompt - 1])
    room = MAX_POS - len(ids)
    cap = c.max_gen_steps if c.max_gen_steps is not None else max_new
    assert calls[n_prompt - 1]["gen_steps"] == min(max_new - 1, room, cap)
    pos, toks = 0, []
    for i, x in enumerate(calls):
        assert x["pos"] == list(range(pos, pos + len(x["ids"])))
        assert x["pos"][-1] + x["gen_steps"] < MAX_POS
        assert x["stop"] == c.stop_ids or "\n" in stop_strings
        assert 1 <= len(x["tokens"]) <= x["gen_steps"] + 1
        if i >= n_prompt:  # a continuation: the previous run's t_N, not a stop token, at the next position
            assert x["ids"] == [calls[i - 1]["tokens"][-1]] and x["ids"][0] not in c.stop_ids
            assert len(calls[i - 1]["tokens"]) == calls[i - 1]["gen_steps"] + 1
            assert x["gen_steps"] == min(max_new - len(toks) - 1, MAX_POS - pos - 1, cap)
        pos += len(x["ids"]) + len(x["tokens"]) - 1
        if i >= n_prompt - 1:
            toks += x["tokens"]
    assert toks[:len(gen)] == gen


def test_onnx_completer_rejects_other_format_versions(tmp_path):
    for version in (1, 3, None):
        (tmp_path / "manifest.json").write_text(json.dumps({"format": "mixsga-onnx", "format_version": version}))
        with pytest.raises(UserError, match=f"version {version!r}"):
            OnnxCompleter(tmp_path)


def test_onnx_completer_prompts_match_torch(tiny):
    c, _ = completer(tiny)
    ids = c.prompt_ids(PREFIX, SUFFIX, 8)
    assert ids == tiny.ref.prompt_ids(PREFIX, SUFFIX, 8)
    assert ids[:2] == [1, 32002] and ids[-1] == 32001 and 32000 in ids
    assert c.stop_ids == tiny.ref.stop_ids == {2, 32000, 32001, 32002, 32003, 32004}
    assert c.prompt_ids(PREFIX, "", 8) == [1] + c.encode_segment(PREFIX)
    f, _ = completer(tiny, fim_always=True)
    assert f.prompt_ids(PREFIX, "", 8) == [1, 32002, 32000] + c.encode_segment(PREFIX) + [32001]
    p, _ = completer(tiny, ordering="psm")
    assert p.prompt_ids(PREFIX, SUFFIX, 8) == [1, 32000] + c.encode_segment(PREFIX) + [32002] + \
        c.encode_segment(SUFFIX) + [32001]


def test_prefix_at_start_encodes_the_prefix_as_a_file_start(tiny):
    """--prefix-at-start: the prefix gets the normalizer's leading "▁" (training's encoding of a document start),
    the suffix stays a fragment."""
    c, _ = completer(tiny)
    s, _ = completer(tiny, prefix_at_start=True)
    start = c.tok.encode(PREFIX, add_special_tokens=False).ids
    assert start != c.encode_segment(PREFIX) and s.decode(start).lstrip() == PREFIX.lstrip()
    assert s.prompt_ids(PREFIX, SUFFIX, 8) == [1, 32002] + c.encode_segment(SUFFIX) + [32000] + start + [32001]
    assert s.prompt_ids(PREFIX, "", 8) == [1] + start


def test_fim_segments_lose_dummy_prefix_only(tiny):
    c, _ = completer(tiny)
    d, _ = completer(tiny, fim_dummy_prefix=True)
    for text in ("return a + b", "    print(i)\n", "\n\nx"):
        ids = c.encode_segment(text)
        assert c.decode(ids) == text
        assert ids != c.tok.encode(text, add_special_tokens=False).ids == d.encode_segment(text)


@pytest.mark.parametrize("prefix,suffix,n,kw", [
    (PREFIX, SUFFIX, 24, {}),                                   # one run does the whole generation
    ("x = 1\n", "", 12, {}),                                    # left to right
    (PREFIX, "", 10, {"fim_always": True}),
    (PREFIX, SUFFIX, 24, {"chunk_size": 5}),                    # prompt in 5 runs, the last one decodes
    (PREFIX, SUFFIX, 24, {"max_gen_steps": 3}),                 # 6 runs of 4 tokens
    (PREFIX, SUFFIX, 11, {"max_gen_steps": 0, "chunk_size": 7}),  # one token per run
])
def test_onnx_completer_matches_torch_greedy(tiny, prefix, suffix, n, kw):
    c, rec = completer(tiny, **kw)
    ids = c.prompt_ids(prefix, suffix, n)
    want = list(tiny.ref.generate_ids(ids, n))
    assert len(want) == n and len(set(want)) > n // 2  # no stop token, not one repeated id
    text = c.complete(prefix, suffix, n, [])
    assert c.last["generated_ids"] == want and text == c.decode(want)
    assert c.last["stop_reason"] == "max-tokens" and c.last["generated_tokens"] == n
    assert c.last["prompt_tokens"] == len(ids)
    check_runs(c, rec, ids, n)
    steps = kw.get("max_gen_steps")
    decode_runs = 1 if steps is None else -(-n // (steps + 1))
    assert len(rec.calls) == decode_runs + -(-len(ids) // kw.get("chunk_size", len(ids))) - 1


@pytest.mark.parametrize("max_gen_steps", [None, 2])
def test_onnx_completer_context_limit(tiny, max_gen_steps):
    """A prompt longer than the context is cut; generation stops when the next position would reach
    max_position_embeddings, having fed every position below it (gen_steps clamped)."""
    c, rec = completer(tiny, max_gen_steps=max_gen_steps)
    prefix, suffix, n = "x = 1\n" * 200, "y = 2\n" * 200, 100
    ids = c.prompt_ids(prefix, suffix, n)
    assert len(ids) < 30
    want = list(tiny.ref.generate_ids(ids, n))
    c.complete(prefix, suffix, n, [])
    assert c.last["generated_ids"] == want and len(want) == MAX_POS - len(ids) + 1
    assert c.last["stop_reason"] == "context"
    check_runs(c, rec, ids, n)
    assert max(x["pos"][-1] + x["gen_steps"] for x in rec.calls) == MAX_POS - 1


@pytest.mark.parametrize("max_gen_steps", [None, 1, 2])
def test_onnx_completer_stop_token_ends_generation(tiny, max_gen_steps):
    full, _ = completer(tiny)
    full.complete(PREFIX, SUFFIX, 20, [])
    gen = full.last["generated_ids"]
    stop_tok = gen[7]
    k = gen.index(stop_tok)  # its first occurrence
    assert k >= 3
    c, rec = completer(tiny, max_gen_steps=max_gen_steps)
    c.stop_ids = c.stop_ids | {stop_tok}
    tiny.ref.stop_ids = tiny.ref.stop_ids | {stop_tok}
    try:
        want = list(tiny.ref.generate_ids(c.prompt_ids(PREFIX, SUFFIX, 20), 20))
    finally:
        tiny.ref.stop_ids = tiny.ref.stop_ids - {stop_tok}
    text = c.complete(PREFIX, SUFFIX, 20, [])
    assert want == gen[:k] == c.last["generated_ids"] and text == c.decode(gen[:k])
    assert c.last["stop_reason"] == "fim-token"
    check_runs(c, rec, c.prompt_ids(PREFIX, SUFFIX, 20), 20)
    last = rec.calls[-1]
    assert last["tokens"][-1] == stop_tok and stop_tok not in last["tokens"][:-1]
    if max_gen_steps is None:  # the graph's loop stopped early at the stop token
        assert len(rec.calls) == 1 and len(last["tokens"]) == k + 1 < last["gen_steps"] + 1


@pytest.mark.parametrize("max_gen_steps", [None, 2])
def test_onnx_completer_stop_strings(tiny, max_gen_steps):
    c, rec = completer(tiny, max_gen_steps=max_gen_steps)
    full = c.complete(PREFIX, SUFFIX, 24, [])
    full_ids = c.last["generated_ids"]
    assert len(full) > 12
    for stop in ([full[len(full) // 2:len(full) // 2 + 2]], ["\x00never", full[5:7]]):
        out = c.complete(PREFIX, SUFFIX, 24, stop)
        assert out == truncate_at_stops(full, stop) and len(out) < len(full)
        assert c.last["stop_reason"] == "stop"
        gen = c.last["generated_ids"]
        # generation ended at the token that completed the stop string, as sequential decoding does
        assert gen == full_ids[:len(gen)] and any(s in c.decode(gen) for s in stop)
        assert not any(s in c.decode(gen[:-1]) for s in stop)
        assert c.last["generated_tokens"] == len(gen) < 24


def test_onnx_completer_newline_stop_string_extends_the_loop_stop_mask(tiny):
    c, rec = completer(tiny)
    full = c.complete(PREFIX, SUFFIX, 24, [])
    out = c.complete(PREFIX, SUFFIX, 24, ["\n"])
    assert out == truncate_at_stops(full, ["\n"])
    masks = [x["stop"] for x in rec.calls[-c.last["runs"]:]]
    newline = c.tok.token_to_id("<0x0A>")
    # the graph may end the loop at a newline token (the host still sees it and cuts the text there)
    assert all(c.stop_ids < m and newline in m for m in masks)
    assert all(newline not in x["stop"] for x in rec.calls[:-c.last["runs"]])


def test_onnx_completer_small_limits(tiny):
    c, rec = completer(tiny, chunk_size=9)
    assert c.complete(PREFIX, SUFFIX, 0, []) == "" and c.last["generated_ids"] == [] and rec.calls == []
    ids = c.prompt_ids(PREFIX, SUFFIX, 1)
    c.complete(PREFIX, SUFFIX, 1, [])
    assert c.last["generated_ids"] == list(tiny.ref.generate_ids(ids, 1)) and len(c.last["generated_ids"]) == 1
    assert rec.calls[-1]["gen_steps"] == 0 and all(x["gen_steps"] == 0 for x in rec.calls)
    check_runs(c, rec, ids, 1)


def test_onnx_completer_cache_matches_runtime_reference(tiny):
    """The per-layer per-expert cache the completer keeps (kv.{e} split by route) equals the PyTorch reference
    of the same runs (mixsga.runtime), after a prefill + decode run and after a continuation run."""
    from mixsga import runtime
    c, _ = completer(tiny)
    model = tiny.ref.model
    ids = c.prompt_ids(PREFIX, SUFFIX, 8)
    cache, past = c.new_cache(), runtime.empty_past(model)
    pos, feed = 0, ids
    for steps in (6, 3):
        _, toks = c.run_chunk(feed, cache, pos, steps)
        ref = runtime.run(model, feed, list(range(pos, pos + len(feed))), [0.0] * 3, past, gen_steps=steps,
                          stop_mask=c.stop_ids)
        assert toks == ref.tokens and len(toks) == steps + 1
        pos += len(feed) + steps
        feed = [toks[-1]]
        want = runtime.as_feeds(past)
        for l in range(c.L):
            assert sum(cache[l][e].shape[1] for e in range(c.E)) == pos  # every layer holds every token
            for e, (_g, he) in enumerate(c.experts):
                assert cache[l][e].shape == want[f"past.{l}.{e}"].shape == (1, cache[l][e].shape[1], 2, he, c.D)
                np.testing.assert_allclose(cache[l][e], want[f"past.{l}.{e}"], atol=1e-4, rtol=0)
    assert all(cache[l][e].shape[1] > 0 for l in range(c.L) for e in range(c.E))  # every expert holds tokens


def test_onnx_completer_chunked_prefill_equals_whole(tiny):
    c, _ = completer(tiny)
    ids = c.prompt_ids(PREFIX, SUFFIX, 8)
    ca, cb = c.new_cache(), c.new_cache()
    la = c.forward(ids, ca, 0)
    for i, t in enumerate(ids):
        lb = c.forward([t], cb, i)
    np.testing.assert_allclose(la, lb, rtol=0, atol=1e-4)
    for l in range(c.L):
        for e in range(c.E):
            assert ca[l][e].shape == cb[l][e].shape
            np.testing.assert_allclose(ca[l][e], cb[l][e], atol=1e-4, rtol=0)


@needs_data
def test_eval_code_cli_end_to_end(tiny, tmp_path):
    import argparse
    from mixsga import eval_code
    parser = argparse.ArgumentParser()
    eval_code.register(parser.add_subparsers())
    args = parser.parse_args(["eval_code", "--model", str(tiny.dir), "--sets", "single,js", "--limit", "2",
                              "--max-new-tokens", "4", "--out", str(tmp_path / "r.json")])
    assert args.func(args) == 0
    res = json.loads((tmp_path / "r.json").read_text())
    assert res["sets"]["single"]["n"] == 2 and res["sets"]["js"]["n"] == 2
    assert all(r["generated_tokens"] <= 4 and r["status"] in ("passed", "failed", "timeout") for r in res["tasks"])
    assert any(r["generated_tokens"] > 0 for r in res["tasks"])


# ------------------------------------------------------------------------------------------ real fixture model
# test/fixtures/fixture-tiny: tiny random-weight ONNX model written by `python -m mixsga fixture`. These run once the
# fixture is regenerated in format version 2.

def _fixture_version():
    try:
        return json.loads((FIXTURE / "manifest.json").read_text()).get("format_version")
    except (OSError, ValueError):
        return None


needs_fixture = pytest.mark.skipif(_fixture_version() != OnnxCompleter.FORMAT_VERSION,
                                   reason="no fixture-tiny model in format version 2 (python -m mixsga fixture)")


@needs_fixture
def test_fixture_vectors_replay_through_completer_cache():
    """The completer's runs and cache bookkeeping reproduce the fixture's reference runs (float64 PyTorch) one
    after the other: logits, picked tokens, routes and the rows each expert receives."""
    vec = json.loads((FIXTURE / "vectors.json").read_text())
    c = OnnxCompleter(FIXTURE)
    for case in vec["cases"]:
        c.route_bias = np.asarray(case["route_bias"], np.float32)
        cache, pos = c.new_cache(), 0
        for run, exp in zip(case["runs"], case["expected"], strict=True):
            assert run["position_ids"] == list(range(pos, pos + len(run["input_ids"])))
            stop = np.zeros(c.V, bool)
            stop[run.get("stop_ids", [])] = True
            first = None
            if "first_allowed" in run:
                first = np.full(c.V, -np.inf, np.float32)
                first[run["first_allowed"]] = 0
            before = [sum(cache[l][e].shape[1] for l in range(c.L)) for e in range(c.E)]
            logits, tokens = c.run_chunk(run["input_ids"], cache, pos, run["gen_steps"], stop, first)
            pos += len(run["input_ids"]) + len(tokens) - 1
            for tid, val in exp["logits_top"]:
                assert abs(float(logits[tid]) - val) <= 10 * vec["atol"], (case["name"], tid)
            assert tokens == exp["tokens"], case["name"]
            assert [sum(cache[l][e].shape[1] for l in range(c.L)) - before[e] for e in range(c.E)] == exp["kv_rows"]
        assert all(sum(cache[l][e].shape[1] for e in range(c.E)) == pos for l in range(c.L))


@needs_fixture
def test_fixture_completer_runs_limits_stops_and_incremental():
    c = OnnxCompleter(FIXTURE)
    prefix, suffix = "def add(a, b):\n    ", "\n\nprint(add(1, 2))\n"
    for n in (0, 1, 7):
        out = c.complete(prefix, suffix, n, [])
        assert c.last["generated_tokens"] <= n and isinstance(out, str)
    full = c.complete(prefix, suffix, 16, [])
    ids = c.last["generated_ids"]
    for chunk in (1, 5):
        c.chunk_size = chunk
        assert c.complete(prefix, suffix, 16, []) == full and c.last["generated_ids"] == ids
    c.chunk_size = None
    for steps in (0, 3):  # generation spread over several runs
        c.max_gen_steps = steps
        assert c.complete(prefix, suffix, 16, []) == full and c.last["generated_ids"] == ids
        assert c.last["runs"] > 1
    c.max_gen_steps = None
    assert len(full) > 4
    stop = full[3:5]
    assert c.complete(prefix, suffix, 16, [stop]) == truncate_at_stops(full, [stop])
    c.complete("x = 1\n", "", 5, ["\n"])  # left to right
    assert c.last["generated_tokens"] <= 5
