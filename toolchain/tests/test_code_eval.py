"""Code-eval harness: task loading, stop handling, sandbox outcomes, canonical self-check (fast subset), completer
loading. The ONNX completer itself: test_onnx_completer.py."""
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
from mixsga.eval_code import (CanonicalCompleter, completer_stop, evaluate, format_table,
                              load_completer)

EVAL_DIR = code_tasks.default_eval_dir()
needs_data = pytest.mark.skipif(not (EVAL_DIR / "humaneval").is_dir(), reason=f"no eval data at {EVAL_DIR}")


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
