"""Execution-graded code-completion tasks: HumanEval, HumanEval-infilling, MultiPL-E HumanEval TS/JS.

Only the data files come from the origin projects (see shared/eval/PROVENANCE.md); the task model, prompt
splitting, stop handling and program assembly below are our own.

Every task is a `CodeTask`: the model is asked for the text between `prefix` and `suffix` (`suffix == ""` means
left-to-right completion), the raw completion is cleaned with `task.postprocess()` (stop sequences; single-line
infilling keeps one line), and `task.program(completion)` assembles the complete test program that the sandbox
runs (`mixsga.sandbox`). A program passes when it exits with status 0.
"""
from __future__ import annotations

import gzip
import json
import os
import random
from dataclasses import dataclass, field
from pathlib import Path

from mixsga.errors import UserError

# Stop sequences for Python left-to-right completion of a function body (HumanEval): anything that starts a
# new top-level statement ends the function.
PYTHON_L2R_STOPS = ["\ndef ", "\nclass ", "\nif __name__", "\nprint(", "\n#"]

# Set name -> (relative file, kind, default max_new_tokens)
SETS = {
    "humaneval": ("humaneval/HumanEval.jsonl.gz", "python-l2r", 384),
    "single": ("humaneval-infilling/HumanEval-SingleLineInfilling.jsonl.gz", "python-fim-line", 48),
    "multi": ("humaneval-infilling/HumanEval-MultiLineInfilling.jsonl.gz", "python-fim", 256),
    "light": ("humaneval-infilling/HumanEval-RandomSpanInfillingLight.jsonl.gz", "python-fim", 256),
    "random": ("humaneval-infilling/HumanEval-RandomSpanInfilling.jsonl.gz", "python-fim", 256),
    "ts": ("multipl-e/humaneval-ts.jsonl", "multipl-e", 384),
    "js": ("multipl-e/humaneval-js.jsonl", "multipl-e", 384),
}
EXPECTED_COUNTS = {"humaneval": 164, "single": 1033, "multi": 5815, "light": 164, "random": 1640,
                   "ts": 159, "js": 161}
DEFAULT_SETS = ["single", "multi", "light", "humaneval", "ts", "js"]


def truncate_at_stops(text: str, stops) -> str:
    """Cut `text` at the earliest occurrence of any stop sequence (the stop itself is dropped)."""
    cut = len(text)
    for s in stops or ():
        if not s:
            continue
        i = text.find(s)
        if 0 <= i < cut:
            cut = i
    return text[:cut]


def first_line(text: str) -> str:
    """Single-line infilling: keep the completion up to its first newline and end it with exactly one newline.

    The prefix of a single-line task ends at a line start and its suffix starts at the next line, so the middle
    is one whole line including its newline (the canonical middles all end in "\\n"). A completion without a
    newline (the model emitted EOS at the end of the line) gets one appended.
    """
    i = text.find("\n")
    return (text if i < 0 else text[:i]) + "\n"


@dataclass
class CodeTask:
    task_id: str
    set_name: str
    lang: str                 # "python" | "typescript" | "javascript"
    prefix: str
    suffix: str               # "" = left-to-right completion
    test: str                 # test code appended after the completed source
    entry_point: str | None   # Python: the function passed to check(); MultiPL-E: None (tests call it)
    stop: list[str] = field(default_factory=list)
    canonical: str | None = None   # reference middle/body; None for MultiPL-E
    single_line: bool = False
    max_new_tokens: int = 256

    @property
    def is_fim(self) -> bool:
        return self.suffix != ""

    def postprocess(self, completion: str) -> str:
        """Raw model output -> the text that is graded (stop sequences; one line for single-line infilling)."""
        text = truncate_at_stops(completion, self.stop)
        if self.single_line:
            text = first_line(text)
        return text

    def source(self, completion: str) -> str:
        """The completed source file (prefix + completion + suffix), without tests."""
        return self.prefix + completion + self.suffix

    def program(self, completion: str) -> str:
        """The whole test program for a (post-processed) completion."""
        src = self.source(completion)
        if self.lang == "python":
            return f"{src}\n\n{self.test}\n\ncheck({self.entry_point})\n"
        # MultiPL-E: prompt + completion, then the tests (which call test() themselves).
        return f"{src}\n{self.test}\n"


def default_eval_dir() -> Path:
    """$MIXSGA_EVAL_DIR, else ../shared/eval next to the repository root (toolchain/mixsga/ is two levels in)."""
    env = os.environ.get("MIXSGA_EVAL_DIR")
    if env:
        return Path(env)
    repo_root = Path(__file__).resolve().parents[2]
    return repo_root.parent / "shared" / "eval"


def _read_jsonl(path: Path) -> list[dict]:
    if not path.is_file():
        raise UserError(f"evaluation file not found: {path} (set MIXSGA_EVAL_DIR or --eval-dir)")
    opener = gzip.open if path.suffix == ".gz" else open
    rows = []
    with opener(path, "rt", encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise UserError(f"{path}:{n}: not JSON: {e}") from None
    return rows


# MultiPL-E JS `HumanEval_51_remove_vowels`: the test holds a raw newline inside a double-quoted string literal
# ("abcdef<newline>ghijklm" and "bcdf<newline>ghjklm"), which does not parse in JavaScript (SyntaxError), so every
# completion would fail. We REPAIR the literal here (escape the newline as \n, exactly as the TS copy of the same
# test does) and score the JS set on all 161 tasks.
_JS_LITERAL_REPAIRS = {
    "HumanEval_51_remove_vowels": [
        ('"abcdef\nghijklm"', '"abcdef\\nghijklm"'),
        ('"bcdf\nghjklm"', '"bcdf\\nghjklm"'),
    ],
}


def _repair_js_test(name: str, test: str) -> str:
    for bad, good in _JS_LITERAL_REPAIRS.get(name, ()):
        if bad in test:
            test = test.replace(bad, good)
    return test


def load_set(name: str, eval_dir: str | os.PathLike | None = None, *, subset: int | None = None,
             seed: int = 1234) -> list[CodeTask]:
    """Load one evaluation set by name (see SETS). `subset`: a fixed random sample of that many tasks (seeded,
    returned in file order) — meant for the 5815-task multi-line set."""
    if name not in SETS:
        raise UserError(f"unknown evaluation set {name!r}; known: {', '.join(SETS)}")
    rel, kind, max_new = SETS[name]
    base = Path(eval_dir) if eval_dir is not None else default_eval_dir()
    rows = _read_jsonl(base / rel)
    tasks = []
    for r in rows:
        if kind.startswith("python"):
            suffix = r.get("suffix", "") if kind != "python-l2r" else ""
            tasks.append(CodeTask(
                task_id=r["task_id"], set_name=name, lang="python",
                prefix=r["prompt"], suffix=suffix,
                test=r["test"], entry_point=r["entry_point"],
                # FIM middles end at EOS / a FIM token (the completer stops there). Left-to-right text (HumanEval,
                # and infilling tasks whose suffix is empty: the span ends the function) ends at a new top-level
                # statement.
                stop=[] if suffix else list(PYTHON_L2R_STOPS),
                canonical=r["canonical_solution"], single_line=(kind == "python-fim-line"),
                max_new_tokens=max_new))
        else:
            lang = {"ts": "typescript", "js": "javascript"}[name]
            test = r["tests"]
            if name == "js":
                test = _repair_js_test(r["name"], test)
            tasks.append(CodeTask(
                task_id=r["name"], set_name=name, lang=lang, prefix=r["prompt"], suffix="",
                test=test, entry_point=None, stop=list(r["stop_tokens"]), canonical=None,
                max_new_tokens=max_new))
    ids = [t.task_id for t in tasks]
    if len(set(ids)) != len(ids):
        raise UserError(f"{base / rel}: duplicate task ids")
    if subset is not None and subset < len(tasks):
        keep = set(random.Random(seed).sample(range(len(tasks)), subset))
        tasks = [t for i, t in enumerate(tasks) if i in keep]
    return tasks


def parse_sets(spec: str) -> list[str]:
    names = [s.strip() for s in spec.split(",") if s.strip()]
    if not names:
        raise UserError("--sets is empty")
    for n in names:
        if n not in SETS:
            raise UserError(f"unknown evaluation set {n!r}; known: {', '.join(SETS)}")
    return names
