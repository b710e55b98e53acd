"""Code-eval harness: task loading, stop handling, sandbox outcomes, canonical self-check (fast subset)."""
import os
import sys
from pathlib import Path

import pytest

try:
    import mixsga  # noqa: F401
except ImportError:  # running from the repository root without an install
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mixsga import code_tasks, sandbox
from mixsga.code_tasks import CodeTask, first_line, truncate_at_stops
from mixsga.errors import UserError
from mixsga.eval_code import (STUB_MARK, CanonicalCompleter, completer_stop, evaluate, format_table,
                              load_completer)

EVAL_DIR = code_tasks.default_eval_dir()
needs_data = pytest.mark.skipif(not (EVAL_DIR / "humaneval").is_dir(), reason=f"no eval data at {EVAL_DIR}")

REPO = Path(__file__).resolve().parents[2]
FIXTURE = REPO / "test" / "fixtures" / "fixture-tiny"


class FixedCompleter:
    """Returns the same text for every task (a deliberately wrong / hanging / hand-written completion)."""

    def __init__(self, text):
        self.text = text

    def complete(self, prefix, suffix, max_new_tokens, stop):
        return self.text


def by_id(tasks, task_id):
    return next(t for t in tasks if t.task_id == task_id)


# ------------------------------------------------------------------------------------------ stop handling (pure)

def test_truncate_at_earliest_stop():
    assert truncate_at_stops("a\n#x\ndef f", ["\ndef ", "\n#"]) == "a"
    assert truncate_at_stops("abc", ["\ndef "]) == "abc"
    assert truncate_at_stops("abc", []) == "abc"
    assert truncate_at_stops("    return 1\n\n\ndef g():\n", code_tasks.PYTHON_L2R_STOPS) == "    return 1\n\n"
    assert truncate_at_stops("  return x;\n}\n\nfunction g(){", ["\nfunction ", "\n/*", "\n//"]) == \
        "  return x;\n}\n"


def test_single_line_keeps_one_line_with_newline():
    assert first_line("    x = 1\n    y = 2\n") == "    x = 1\n"
    assert first_line("    x = 1") == "    x = 1\n"
    assert first_line("") == "\n"
    t = CodeTask("t", "single", "python", "def f():\n", "    return x\n", "def check(c): pass", "f",
                 single_line=True)
    assert t.postprocess("    x = 1\n    junk") == "    x = 1\n"
    assert "\n" in completer_stop(t)


def test_python_l2r_postprocess_and_program():
    t = CodeTask("t", "humaneval", "python", "def f():\n", "", "def check(c):\n    assert c() == 1\n", "f",
                 stop=list(code_tasks.PYTHON_L2R_STOPS))
    comp = t.postprocess("    return 1\n\nprint(f())\n")
    assert comp == "    return 1\n"
    prog = t.program(comp)
    assert prog.startswith("def f():\n    return 1\n") and prog.rstrip().endswith("check(f)")
    assert sandbox.run_program("python", prog, timeout=10).status == "passed"


# ------------------------------------------------------------------------------------------ loading

@needs_data
def test_set_sizes_and_fields():
    for name, n in code_tasks.EXPECTED_COUNTS.items():
        tasks = code_tasks.load_set(name, EVAL_DIR)
        assert len(tasks) == n, name
    single = code_tasks.load_set("single", EVAL_DIR)
    assert all(t.single_line and t.canonical.endswith("\n") for t in single)
    # Some spans end the function (empty suffix): completed left to right, with the Python stop sequences.
    assert all(t.stop == ([] if t.suffix else code_tasks.PYTHON_L2R_STOPS) for t in single)
    he = code_tasks.load_set("humaneval", EVAL_DIR)
    assert all(t.suffix == "" and t.stop == code_tasks.PYTHON_L2R_STOPS for t in he)
    ts = code_tasks.load_set("ts", EVAL_DIR)
    assert all(t.canonical is None and "\nclass" in t.stop for t in ts)
    js = code_tasks.load_set("js", EVAL_DIR)
    assert all("\nconsole.log" in t.stop for t in js)
    rv = by_id(js, "HumanEval_51_remove_vowels")
    assert '"abcdef\\nghijklm"' in rv.test and '"abcdef\nghijklm"' not in rv.test


@needs_data
def test_multi_subset_is_fixed():
    a = code_tasks.load_set("multi", EVAL_DIR, subset=40, seed=7)
    b = code_tasks.load_set("multi", EVAL_DIR, subset=40, seed=7)
    c = code_tasks.load_set("multi", EVAL_DIR, subset=40, seed=8)
    assert len(a) == 40 and [t.task_id for t in a] == [t.task_id for t in b] != [t.task_id for t in c]


def test_missing_dir_and_unknown_set(tmp_path):
    with pytest.raises(UserError):
        code_tasks.load_set("humaneval", tmp_path)
    with pytest.raises(UserError):
        code_tasks.parse_sets("single,nope")


# ------------------------------------------------------------------------------------------ sandbox / canonical

@needs_data
def test_canonical_sample_passes():
    tasks = []
    for name in ("humaneval", "single", "multi", "light"):
        tasks += code_tasks.load_set(name, EVAL_DIR)[::8][:20]  # 20 tasks spread over each set
    res = evaluate(CanonicalCompleter(tasks), tasks, timeout=20)
    bad = [(r["task_id"], r["stderr_tail"][-300:]) for r in res["tasks"] if r["status"] != "passed"]
    assert not bad, bad
    assert all(s["n"] == 20 and s["pass@1"] == 1.0 for s in res["sets"].values())
    assert "humaneval" in format_table(res["sets"])


@needs_data
def test_wrong_completion_fails():
    tasks = code_tasks.load_set("single", EVAL_DIR)[:3] + code_tasks.load_set("humaneval", EVAL_DIR)[:3]
    res = evaluate(FixedCompleter("    return None\n"), tasks, timeout=20)
    assert all(r["status"] == "failed" for r in res["tasks"])
    assert all(s["passed"] == 0 and s["pass@1"] == 0.0 for s in res["sets"].values())


@needs_data
def test_infinite_loop_times_out_and_counts_as_fail():
    tasks = code_tasks.load_set("humaneval", EVAL_DIR)[:2]
    res = evaluate(FixedCompleter("    while True:\n        pass\n"), tasks, timeout=2)
    assert [r["status"] for r in res["tasks"]] == ["timeout", "timeout"]
    s = res["sets"]["humaneval"]
    assert s["timeout"] == 2 and s["passed"] == 0 and s["pass@1"] == 0.0


def test_sandbox_outcomes_and_limits():
    assert sandbox.run_program("python", "import sys\nsys.exit(0)\n").passed
    r = sandbox.run_program("python", "raise ValueError('boom')\n")
    assert r.status == "failed" and "boom" in r.stderr_tail
    r = sandbox.run_program("python", "x = bytearray(4 << 30)\n")  # over RLIMIT_AS (2 GiB)
    assert r.status == "failed" and "MemoryError" in r.stderr_tail
    r = sandbox.run_program("python", "import os\nprint(os.getcwd())\nopen('f', 'w').write('x')\n")
    assert r.passed


@needs_data
def test_multipl_e_stub_fails_at_the_stub():
    ts = code_tasks.load_set("ts", EVAL_DIR)[:4]
    js = code_tasks.load_set("js", EVAL_DIR)
    js = js[:4] + [by_id(js, "HumanEval_51_remove_vowels")]  # repaired literal: must parse and reach the stub
    tasks = ts + js
    res = evaluate(CanonicalCompleter(tasks), tasks, timeout=20)
    for r in res["tasks"]:
        assert r["status"] == "failed" and r.get("stub_reached"), (r["task_id"], r["stderr_tail"])
    assert res["sets"]["js"]["stub_reached"] == 5 and res["sets"]["ts"]["stub_reached"] == 4


@needs_data
def test_multipl_e_hand_written_body_passes():
    # Test inputs written here by hand (strlen: the length of the string).
    js = by_id(code_tasks.load_set("js", EVAL_DIR), "HumanEval_23_strlen")
    ts = by_id(code_tasks.load_set("ts", EVAL_DIR), "HumanEval_23_strlen")
    body = "  return string.length;\n}\n\n// trailing junk after a stop token\nconsole.log('x')\n"
    res = evaluate(FixedCompleter(body), [js, ts], timeout=20)
    assert [r["status"] for r in res["tasks"]] == ["passed", "passed"], res["tasks"]
    assert res["tasks"][0]["completion"] == "  return string.length;\n}\n"
    wrong = evaluate(FixedCompleter("  return 0;\n}\n"), [js, ts], timeout=20)
    assert [r["status"] for r in wrong["tasks"]] == ["failed", "failed"]


def test_typescript_syntax_error_fails():
    r = sandbox.run_program("typescript", "function f(x: number: number { return x }\n")
    assert r.status == "failed" and "TS1005" in r.stderr_tail


# ------------------------------------------------------------------------------------------ completer loading

def test_load_completer_errors(tmp_path):
    with pytest.raises(UserError):
        load_completer(tmp_path / "nope")
    try:
        import mixsga.generate  # noqa: F401
    except ModuleNotFoundError:
        with pytest.raises(UserError):
            load_completer(tmp_path)


# ------------------------------------------------------------------------------------------ ONNX completer logic
# A numpy reference of the graph contract in docs/model-format.md (routing, per-token pooling of the chunk's K/V
# to the routed expert, past caches expanded by repetition, GQA, causal chunk attention), injected into
# OnnxCompleter in place of the onnxruntime session. Feeding a prompt whole or in pieces gives the same logits
# only if the completer pools each token's new K/V into the right expert cache, as the contract requires.

np = pytest.importorskip("numpy")
tokenizers = pytest.importorskip("tokenizers")
pytest.importorskip("onnxruntime")

from types import SimpleNamespace  # noqa: E402

from mixsga.eval_code import OnnxCompleter  # noqa: E402

SPECIALS = ["<unk>", "<s>", "</s>", "<fim_prefix>", "<fim_middle>", "<fim_suffix>", "<fim_pad>", "<file_sep>"]
EXPERTS = [(1, 4), (2, 2), (4, 1)]  # (group_size, kv_heads), H = 4


class RefSession:
    def __init__(self, V, L=2, H=4, D=4, Q=8, hidden=16, max_pos=64, seed=0):
        rng = np.random.default_rng(seed)
        self.V, self.L, self.H, self.D, self.Q, self.max_pos = V, L, H, D, Q, max_pos
        self.emb = rng.normal(size=(V, hidden))
        self.freq = rng.uniform(0.05, 1.0, size=hidden)
        self.layers = [dict(q=rng.normal(size=(hidden, Q * D)) / 4, k=rng.normal(size=(hidden, H * D)) / 4,
                            v=rng.normal(size=(hidden, H * D)), o=rng.normal(size=(Q * D, hidden)) / 4,
                            phi=rng.normal(size=(hidden, len(EXPERTS))) * 2, beta=rng.normal(size=len(EXPERTS)))
                       for _ in range(L)]
        self.out = rng.normal(size=(hidden, V))
        self.routes_seen = set()

    def get_inputs(self):
        names = ["input_ids", "position_ids", "route_bias"] + [
            f"past_{kv}.{l}.{e}" for kv in ("key", "value") for l in range(self.L) for e in range(len(EXPERTS))]
        return [SimpleNamespace(name=n) for n in names]

    def run(self, names, feeds):
        ids, pos, rb = feeds["input_ids"][0], feeds["position_ids"][0], feeds["route_bias"]
        assert pos.max() < self.max_pos
        S, H, D, Q = len(ids), self.H, self.D, self.Q
        h = self.emb[ids] + np.sin(pos[:, None] * self.freq)
        outs = {}
        for l, w in enumerate(self.layers):
            x = h / np.sqrt((h * h).mean(-1, keepdims=True) + 1e-5)
            route = np.argmax(x @ w["phi"] + w["beta"] + rb, axis=-1)
            self.routes_seen.update(route.tolist())
            q = (x @ w["q"]).reshape(S, Q, D)
            k = (x @ w["k"]).reshape(S, H, D)
            v = (x @ w["v"]).reshape(S, H, D)
            outs[f"new_key.{l}"] = k.transpose(1, 0, 2)[None].astype(np.float32)
            outs[f"new_value.{l}"] = v.transpose(1, 0, 2)[None].astype(np.float32)
            outs[f"route.{l}"] = route[None].astype(np.int64)
            kp, vp = k.copy(), v.copy()
            for t in range(S):
                g = EXPERTS[route[t]][0]
                kp[t] = np.repeat(k[t].reshape(H // g, g, D).mean(1), g, axis=0)
                vp[t] = np.repeat(v[t].reshape(H // g, g, D).mean(1), g, axis=0)
            pk = [np.repeat(feeds[f"past_key.{l}.{e}"][0], g, axis=0).transpose(1, 0, 2)
                  for e, (g, _) in enumerate(EXPERTS)]
            pv = [np.repeat(feeds[f"past_value.{l}.{e}"][0], g, axis=0).transpose(1, 0, 2)
                  for e, (g, _) in enumerate(EXPERTS)]
            Tp = sum(a.shape[0] for a in pk)
            K = np.repeat(np.concatenate(pk + [kp]), Q // H, axis=1)  # [Tp+S, Q, D]
            Vv = np.repeat(np.concatenate(pv + [vp]), Q // H, axis=1)
            sc = np.einsum("sqd,tqd->qst", q, K) / np.sqrt(D)
            allowed = np.concatenate([np.ones((S, Tp), bool), np.tril(np.ones((S, S), bool))], axis=1)
            sc = np.where(allowed[None], sc, -np.inf)
            p = np.exp(sc - sc.max(-1, keepdims=True))
            p /= p.sum(-1, keepdims=True)
            h = h + np.einsum("qst,tqd->sqd", p, Vv).reshape(S, Q * D) @ w["o"]
        outs["logits"] = (h[-1] @ self.out)[None].astype(np.float32)
        return [outs[n] for n in names]


def make_tiny_model(tmp_path, max_pos=64):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    corpus = ["def add(a, b):\n    return a + b\n", "function f(x) {\n  return x * 2;\n}\n",
              "for i in range(10):\n    print(i)\n"] * 5
    tok.train_from_iterator(corpus, trainers.BpeTrainer(vocab_size=300, special_tokens=SPECIALS,
                                                        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok.save(str(tmp_path / "tokenizer.json"))
    tid = tok.token_to_id
    manifest = {
        "format": "mixsga-onnx", "format_version": 1, "name": "ref-numpy",
        "architecture": {"type": "llama", "vocab_size": tok.get_vocab_size(), "hidden_size": 16,
                         "num_layers": 2, "num_attention_heads": 8, "num_kv_heads": 4, "head_dim": 4,
                         "max_position_embeddings": max_pos},
        "experts": [{"group_size": g, "kv_heads": he} for g, he in EXPERTS],
        "tokenizer": {"file": "tokenizer.json", "bos_id": tid("<s>"), "eos_id": tid("</s>"), "add_bos": True},
        "fim": {"prefix_id": tid("<fim_prefix>"), "middle_id": tid("<fim_middle>"), "suffix_id": tid("<fim_suffix>"),
                "pad_id": tid("<fim_pad>"), "file_sep_id": tid("<file_sep>"), "orderings": ["psm", "spm"]},
        "variants": {"cpu": {"file": "model.cpu.onnx", "kv_dtype": "float32", "weights": "float32"}},
        "files": {},
    }
    import json as _json
    (tmp_path / "manifest.json").write_text(_json.dumps(manifest))
    return RefSession(tok.get_vocab_size(), max_pos=max_pos)


PREFIX = "def add(a, b):\n    "
SUFFIX = "\n\nfor i in range(10):\n    print(add(i, i))\n"


def test_onnx_completer_cache_whole_vs_incremental(tmp_path):
    sess = make_tiny_model(tmp_path)
    whole = OnnxCompleter(tmp_path, session=sess)
    ids = whole.prompt_ids(PREFIX, SUFFIX, 8)
    f = whole.fim
    assert ids[:2] == [whole.bos_id, f["suffix_id"]] and ids[-1] == f["middle_id"] and f["prefix_id"] in ids
    ca, cb = whole.new_cache(), whole.new_cache()
    la = whole.forward(ids, ca, 0)
    for i, t in enumerate(ids):
        lb = whole.forward([t], cb, i)
    np.testing.assert_allclose(la, lb, rtol=1e-4, atol=1e-4)
    assert len(sess.routes_seen) > 1  # the test exercises more than one expert
    for l in range(2):
        assert sum(ca[l][e][0].shape[2] for e in range(3)) == len(ids)
        for e, (_g, he) in enumerate(EXPERTS):
            assert ca[l][e][0].shape[:2] == (1, he) and ca[l][e][0].shape == cb[l][e][0].shape
            np.testing.assert_allclose(ca[l][e][0], cb[l][e][0], atol=1e-5)
            np.testing.assert_allclose(ca[l][e][1], cb[l][e][1], atol=1e-5)
    out_whole = whole.complete(PREFIX, SUFFIX, 12, [])
    gen_whole = whole.last["generated_ids"]
    for chunk in (1, 3):
        inc = OnnxCompleter(tmp_path, session=sess, chunk_size=chunk)
        assert inc.complete(PREFIX, SUFFIX, 12, []) == out_whole
        assert inc.last["generated_ids"] == gen_whole


def test_onnx_completer_limits_and_stops(tmp_path):
    sess = make_tiny_model(tmp_path)
    c = OnnxCompleter(tmp_path, session=sess)
    for n in (0, 1, 5):
        c.complete(PREFIX, "", n, [])
        assert c.last["generated_tokens"] <= n
    full = c.complete(PREFIX, SUFFIX, 20, [])
    if c.last["stop_reason"] == "max-tokens" and len(full) > 3:
        stop = full[2:4]
        assert c.complete(PREFIX, SUFFIX, 20, [stop]) == truncate_at_stops(full, [stop])
        assert c.last["stop_reason"] == "stop"
    # A prompt longer than the context is cut, and generation stops at max_position_embeddings.
    c.complete("x = 1\n" * 200, "y = 2\n" * 200, 10, [])
    assert c.last["prompt_tokens"] + c.last["generated_tokens"] <= 64


def test_fim_segments_lose_dummy_prefix_only(tmp_path):
    make_tiny_model(tmp_path)
    c = OnnxCompleter(tmp_path, session=RefSession(300))
    for text in ("return a + b", "    print(i)\n", "\n\nx"):
        assert c.tok.decode(c.encode_segment(text), skip_special_tokens=False) == text
        assert c.decode(c.encode_segment(text)) == text


def test_left_to_right_and_fim_always_prompts(tmp_path):
    sess = make_tiny_model(tmp_path)
    c = OnnxCompleter(tmp_path, session=sess)
    assert c.prompt_ids(PREFIX, "", 8) == [c.bos_id] + c.encode_segment(PREFIX)
    f = OnnxCompleter(tmp_path, session=sess, fim_always=True)
    assert f.prompt_ids(PREFIX, "", 8) == [c.bos_id, c.fim["suffix_id"], c.fim["prefix_id"]] + \
        c.encode_segment(PREFIX) + [c.fim["middle_id"]]


# ------------------------------------------------------------------------------------------ real fixture model
# test/fixtures/fixture-tiny: tiny random-weight ONNX model written by `python -m mixsga fixture`.

needs_fixture = pytest.mark.skipif(not (FIXTURE / "manifest.json").is_file(), reason="no fixture-tiny model")


@needs_fixture
def test_fixture_vectors_replay_through_completer_cache():
    """The completer's cache bookkeeping reproduces the fixture's reference logits chunk after chunk."""
    import json
    vec = json.loads((FIXTURE / "vectors.json").read_text())
    c = OnnxCompleter(FIXTURE)
    for case in vec["cases"]:
        c.route_bias = np.asarray(case["route_bias"], np.float32)
        cache, pos = c.new_cache(), 0
        for chunk, exp in zip(case["chunks"], case["expected"]):
            assert chunk["position_ids"] == list(range(pos, pos + len(chunk["input_ids"])))
            logits = c.forward(chunk["input_ids"], cache, pos)
            pos += len(chunk["input_ids"])
            for tid, val in exp["logits_top"]:
                assert abs(float(logits[tid]) - val) <= 10 * vec["atol"], (case["name"], tid)
        assert sum(cache[0][e][0].shape[2] for e in range(len(c.experts))) == pos


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
    if len(full) > 4:
        stop = full[3:5]
        assert c.complete(prefix, suffix, 16, [stop]) == truncate_at_stops(full, [stop])
    c.complete("x = 1\n", "", 5, ["\n"])  # left to right
    assert c.last["generated_tokens"] <= 5


@needs_fixture
@needs_data
def test_fixture_eval_code_cli_end_to_end(tmp_path):
    import argparse
    from mixsga import eval_code
    parser = argparse.ArgumentParser()
    eval_code.register(parser.add_subparsers())
    args = parser.parse_args(["eval_code", "--model", str(FIXTURE), "--sets", "single,js", "--limit", "2",
                              "--max-new-tokens", "4", "--out", str(tmp_path / "r.json")])
    out = tmp_path / "r.json"
    assert args.func(args) == 0
    import json
    res = json.loads(out.read_text())
    assert res["sets"]["single"]["n"] == 2 and res["sets"]["js"]["n"] == 2
    assert all(r["generated_tokens"] <= 4 and r["status"] in ("passed", "failed", "timeout") for r in res["tasks"])
