"""Run untrusted candidate programs: one subprocess per program, scratch directory, timeout, resource limits.

- Python: the current interpreter in isolated mode (`python -I prog.py`).
- JavaScript: `node prog.cjs`.
- TypeScript: transpiled with TypeScript 5.x `transpileModule` (CommonJS, ES2022) by one long-lived helper node
  process (transpiling only parses, it never runs the candidate), then run like JavaScript. Syntax diagnostics
  from the transpiler count as a failure.

Limits per program: wall-clock timeout (default 20 s; the whole process group is killed), RLIMIT_CPU (timeout + 1 s),
RLIMIT_AS (2 GiB), RLIMIT_FSIZE (64 MiB), RLIMIT_CORE 0; a fresh temporary directory as cwd and $HOME; a minimal
environment. There is no network isolation beyond the machine having none.

A program passes when it exits with status 0. `run_many` runs programs in parallel, os.cpu_count() at a time.
"""
from __future__ import annotations

import atexit
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from mixsga.errors import UserError

DEFAULT_TIMEOUT = 20.0
DEFAULT_MEMORY = 2 << 30
STDERR_TAIL = 2000
PASSED, FAILED, TIMEOUT = "passed", "failed", "timeout"


@dataclass
class ExecResult:
    status: str               # "passed" | "failed" | "timeout"
    returncode: int | None
    stderr_tail: str
    seconds: float

    @property
    def passed(self) -> bool:
        return self.status == PASSED


# Limits are set by a tiny launcher that then exec()s the program: thread-safe, unlike preexec_fn (the pool
# starts programs from several threads).
_LAUNCHER = (
    "import os, resource, sys\n"
    "cpu, mem = int(sys.argv[1]), int(sys.argv[2])\n"
    "resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))\n"
    "if mem: resource.setrlimit(resource.RLIMIT_AS, (mem, mem))\n"
    "resource.setrlimit(resource.RLIMIT_FSIZE, (64 << 20, 64 << 20))\n"
    "resource.setrlimit(resource.RLIMIT_CORE, (0, 0))\n"
    "os.execvp(sys.argv[3], sys.argv[3:])\n"
)


def _limited(argv: list[str], timeout: float, memory: int) -> list[str]:
    return [sys.executable, "-I", "-S", "-c", _LAUNCHER, str(int(timeout) + 1), str(memory or 0), *argv]


def _tail(b: bytes) -> str:
    return b[-STDERR_TAIL:].decode("utf-8", "replace")


# ---------------------------------------------------------------------------------------------------- TypeScript

def find_typescript() -> Path:
    """node_modules/typescript of the repository (or $MIXSGA_TYPESCRIPT); must be 5.x."""
    env = os.environ.get("MIXSGA_TYPESCRIPT")
    cand = [Path(env)] if env else []
    cand.append(Path(__file__).resolve().parents[2] / "node_modules" / "typescript")
    for c in cand:
        pj = c / "package.json"
        if pj.is_file():
            version = json.loads(pj.read_text())["version"]
            if not version.startswith("5."):
                raise UserError(f"{c}: TypeScript {version}; need 5.x (npm install typescript@5.9.3)")
            return c
    raise UserError("TypeScript not found: run `npm install` in the repository root (devDependency "
                    "typescript@5.9.3) or set MIXSGA_TYPESCRIPT to its folder")


_TRANSPILER_JS = r"""
const ts = require(process.argv[1]);
const readline = require('node:readline');
const rl = readline.createInterface({ input: process.stdin, terminal: false });
rl.on('line', (line) => {
  const src = JSON.parse(line);
  let out;
  try {
    const r = ts.transpileModule(src, { reportDiagnostics: true, fileName: 'prog.ts', compilerOptions: {
      target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.CommonJS, removeComments: false } });
    const diags = (r.diagnostics || []).map(d => {
      const msg = ts.flattenDiagnosticMessageText(d.messageText, '\n');
      if (d.file && d.start !== undefined) {
        const p = d.file.getLineAndCharacterOfPosition(d.start);
        return `prog.ts(${p.line + 1},${p.character + 1}): TS${d.code}: ${msg}`;
      }
      return `TS${d.code}: ${msg}`;
    });
    out = { js: r.outputText, diagnostics: diags };
  } catch (e) {
    out = { js: null, diagnostics: [String(e && e.stack || e)] };
  }
  process.stdout.write(JSON.stringify(out) + '\n');
});
"""


class TsTranspiler:
    """One helper node process; `transpile(src) -> (js, diagnostics)`; thread-safe (calls are serialised)."""

    def __init__(self):
        self._ts = find_typescript()
        self._lock = threading.Lock()
        self._proc = None

    def _start(self):
        self._proc = subprocess.Popen(["node", "-e", _TRANSPILER_JS, str(self._ts)], stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, text=True, encoding="utf-8", bufsize=1)

    def transpile(self, src: str) -> tuple[str | None, list[str]]:
        with self._lock:
            if self._proc is None or self._proc.poll() is not None:
                self._start()
            self._proc.stdin.write(json.dumps(src) + "\n")
            self._proc.stdin.flush()
            line = self._proc.stdout.readline()
            if not line:
                self._proc = None
                raise RuntimeError("TypeScript transpiler process died")
            r = json.loads(line)
            return r["js"], r["diagnostics"]

    def close(self):
        with self._lock:
            if self._proc is not None and self._proc.poll() is None:
                self._proc.stdin.close()
                try:
                    self._proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    self._proc.kill()
            self._proc = None


_transpiler: TsTranspiler | None = None
_transpiler_lock = threading.Lock()


def get_transpiler() -> TsTranspiler:
    global _transpiler
    with _transpiler_lock:
        if _transpiler is None:
            _transpiler = TsTranspiler()
            atexit.register(_transpiler.close)
        return _transpiler


# ---------------------------------------------------------------------------------------------------- running

def run_program(lang: str, source: str, timeout: float = DEFAULT_TIMEOUT,
                memory: int = DEFAULT_MEMORY) -> ExecResult:
    """Run one program; returns passed (exit 0) / failed / timeout with the stderr tail."""
    t0 = time.monotonic()
    if lang == "typescript":
        js, diags = get_transpiler().transpile(source)
        if diags or js is None:
            return ExecResult(FAILED, None, _tail(("TypeScript: " + "\n".join(diags)).encode()),
                              time.monotonic() - t0)
        source, lang = js, "javascript"
    if lang == "python":
        fname, argv = "prog.py", [sys.executable, "-I", "prog.py"]
    elif lang == "javascript":
        fname, argv = "prog.cjs", ["node", "prog.cjs"]
    else:
        raise ValueError(f"unknown language {lang!r}")

    scratch = tempfile.mkdtemp(prefix="mixsga-sbx-")
    try:
        Path(scratch, fname).write_text(source, encoding="utf-8")
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": scratch, "TMPDIR": scratch,
               "LANG": "C.UTF-8", "PYTHONHASHSEED": "0", "PYTHONDONTWRITEBYTECODE": "1"}
        proc = subprocess.Popen(_limited(argv, timeout, memory), cwd=scratch, env=env,
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                start_new_session=True)
        try:
            _, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            _, err = proc.communicate()
            return ExecResult(TIMEOUT, None, _tail(err or b""), time.monotonic() - t0)
        _kill_group(proc)  # stray children of a finished program
        rc = proc.returncode
        # SIGXCPU / SIGKILL from RLIMIT_CPU means the program spun until its CPU limit: a timeout.
        status = PASSED if rc == 0 else TIMEOUT if rc in (-signal.SIGXCPU, -signal.SIGKILL) else FAILED
        return ExecResult(status, rc, _tail(err or b""), time.monotonic() - t0)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _kill_group(proc: subprocess.Popen):
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # the session we created for this program only
    except (ProcessLookupError, PermissionError):
        pass


class Sandbox:
    """A pool that runs programs `workers` at a time (default os.cpu_count()). Use as a context manager."""

    def __init__(self, timeout: float = DEFAULT_TIMEOUT, workers: int | None = None,
                 memory: int = DEFAULT_MEMORY):
        self.timeout, self.memory = timeout, memory
        self._pool = ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1,
                                        thread_name_prefix="sandbox")

    def submit(self, lang: str, source: str) -> Future:
        return self._pool.submit(run_program, lang, source, self.timeout, self.memory)

    def close(self):
        self._pool.shutdown(wait=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def run_many(jobs, timeout: float = DEFAULT_TIMEOUT, workers: int | None = None) -> list[ExecResult]:
    """jobs: iterable of (lang, source); results in the same order."""
    with Sandbox(timeout=timeout, workers=workers) as sb:
        futs = [sb.submit(lang, src) for lang, src in jobs]
        return [f.result() for f in futs]
