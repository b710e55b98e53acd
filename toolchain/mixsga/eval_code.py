"""`eval_code`: pass@1 (greedy) on HumanEval, HumanEval-infilling and MultiPL-E HumanEval TS/JS by execution.

    python -m mixsga eval_code --model models/<name>            # ONNX model folder (manifest.json)
    python -m mixsga eval_code --model runs/<ckpt-dir>          # PyTorch checkpoint (mixsga.generate)
    python -m mixsga eval_code --canonical --sets single        # harness self-check: reference middles

A model is used through the `Completer` protocol: `complete(prefix, suffix, max_new_tokens, stop) -> str`, greedy,
returning the generated text cut at the first stop string (and at EOS / any FIM special token). `suffix == ""`
means left-to-right completion. `load_completer(path)` picks the implementation.
"""
from __future__ import annotations

import importlib
import json
import sys
import time
from pathlib import Path
from typing import Protocol, runtime_checkable

from mixsga import code_tasks
from mixsga import manifest as mf
from mixsga.code_tasks import CodeTask, truncate_at_stops
from mixsga.errors import UserError
from mixsga.prompt import Prompter

STUB_MARK = "MIXSGA_STUB"
JS_STUB = f"  throw new Error('{STUB_MARK}: no reference solution');\n}}\n"


@runtime_checkable
class Completer(Protocol):
    def complete(self, prefix: str, suffix: str, max_new_tokens: int, stop: list[str]) -> str:
        """Greedy completion of the text between prefix and suffix (suffix "" = left to right)."""
        ...


# ----------------------------------------------------------------------------------------------- ONNX completer

class OnnxCompleter:
    """Greedy decoding with an ONNX model folder (docs/model-format.md, format version 2), onnxruntime.

    One `session.run` feeds a chunk of prompt tokens on top of the KV cache and then runs up to `gen_steps` greedy
    decode steps inside the graph (an ONNX Loop). KV cache: per layer l and expert e a token-major
    [1, T_le, 2, H_e, D] array (per token its key at index 0 and value at index 1 of axis 2, post-RoPE, pooled
    to the expert's H_e heads), fed as `past.{l}.{e}`. After every run the graph's `kv.{e}` ([n_e, 2, H_e, D],
    rows ordered by layer, then token) is split by layer - layer l owns the tokens t with route[l, t] == e, which
    `route` ([L, S + N]) counts - and appended to the caches; every layer holds the same number of tokens.
    Positions are absolute (0 .. T-1 over the whole prompt + generation).

    Generation: the prompt (in pieces of `chunk_size` tokens if set) runs with gen_steps = 0 for all chunks but
    the last; the last one runs with gen_steps = max_new_tokens - 1 and stop_mask = the stop ids (EOS and the FIM
    tokens), so the graph returns t_0 .. t_N. When t_N is not a stop token and max_new_tokens is not reached, the
    next run feeds [t_N] at the next position. gen_steps is clamped so that no position reaches
    max_position_embeddings, and to `max_gen_steps` per run if that is set. Stop strings are applied on the host
    over the decoded text token by token, so the result is what sequential greedy decoding gives (the graph may
    decode a few tokens past a stop string; they are dropped).

    Prompt: `mixsga.prompt.Prompter` (the FIM layout and segment encoding, shared with the PyTorch completer),
    with the special tokens' ids from the manifest's "fim" block.
    """

    FORMAT_VERSION = mf.FORMAT_VERSION

    def __init__(self, model_dir, variant: str = "cpu", threads: int = 0, chunk_size: int | None = None,
                 route_bias=None, ordering: str = "spm", fim_dummy_prefix: bool = False,
                 verify_files: bool = True, session=None, fim_always: bool = False,
                 max_gen_steps: int | None = None, prefix_at_start: bool = False):
        import numpy as np
        try:
            import onnxruntime as ort
            import tokenizers
        except ImportError as e:
            raise UserError(f"the ONNX completer needs onnxruntime and tokenizers: {e}") from None
        self.np = np
        self.dir = Path(model_dir)
        mpath = self.dir / mf.MANIFEST
        m = mf.verify(self.dir) if verify_files else mf.read(self.dir)
        self.manifest = m
        a = m["architecture"]
        self.L, self.H, self.D = int(a["num_layers"]), int(a["num_kv_heads"]), int(a["head_dim"])
        self.V = int(a["vocab_size"])
        self.max_pos = int(a.get("max_position_embeddings", 2048))
        self.experts = [(int(x["group_size"]), int(x["kv_heads"])) for x in m["experts"]]
        self.E = len(self.experts)
        for g, he in self.experts:
            if g * he != self.H:
                raise UserError(f"{mpath}: expert group_size {g} x kv_heads {he} != num_kv_heads {self.H}")
        if variant not in m.get("variants", {}):
            raise UserError(f"{mpath}: no variant {variant!r} (have {', '.join(m.get('variants', {}))})")
        var = m["variants"][variant]
        self.kv_dtype = {"float32": np.float32, "float16": np.float16}[var["kv_dtype"]]
        if max_gen_steps is not None and max_gen_steps < 0:
            raise UserError(f"max_gen_steps must be >= 0, got {max_gen_steps}")
        self.max_gen_steps = max_gen_steps
        so = ort.SessionOptions()
        if threads:
            so.intra_op_num_threads = threads
        providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if variant == "cuda" else \
            ["CPUExecutionProvider"]
        # `session`: anything with onnxruntime's get_inputs()/run() (tests wrap a real session to record feeds).
        self.sess = session or ort.InferenceSession(str(self.dir / var["file"]), so, providers=providers)
        have = {i.name for i in self.sess.get_inputs()}
        need = {"input_ids", "position_ids", "route_bias", "gen_steps", "stop_mask", "first_mask"} | {
            f"past.{l}.{e}" for l in range(self.L) for e in range(self.E)}
        if need - have:
            raise UserError(f"{var['file']}: graph lacks inputs {sorted(need - have)[:6]}")
        self.out_names = ["logits", "tokens", "route"] + [f"kv.{e}" for e in range(self.E)]
        if hasattr(self.sess, "get_outputs"):
            missing = set(self.out_names) - {o.name for o in self.sess.get_outputs()}
            if missing:
                raise UserError(f"{var['file']}: graph lacks outputs {sorted(missing)[:6]}")
        self.route_bias = np.zeros(self.E, np.float32) if route_bias is None else \
            np.asarray(route_bias, np.float32).reshape(self.E)
        self.first_mask = np.zeros(self.V, np.float32)  # no token healing

        t = m["tokenizer"]
        self.tok = tokenizers.Tokenizer.from_file(str(self.dir / t["file"]))
        self._newline_ids = None  # built on first use (stop_mask(newline=True))
        self.bos_id, self.eos_id = t.get("bos_id"), t.get("eos_id")
        self.fim = m.get("fim")
        # the task's prefix is the start of its file with prefix_at_start: encoded as training encoded a
        # document's start (with the normalizer's leading "▁"), not as a fragment
        self.prompter = Prompter(self.tok, self.fim, self.bos_id, self.eos_id, add_bos=bool(t.get("add_bos", True)),
                                 ordering=ordering, dummy_prefix=fim_dummy_prefix, prefix_at_start=prefix_at_start,
                                 fim_always=fim_always)
        self.ordering = self.prompter.ordering
        self.stop_ids = set(self.prompter.stop_ids)
        self.chunk_size = chunk_size
        self.last = {}

    # -- tokenization (mixsga.prompt)
    def encode_segment(self, text: str) -> list[int]:
        return self.prompter.encode_segment(text)

    def decode(self, ids: list[int]) -> str:
        return self.prompter.decode(ids)

    def prompt_ids(self, prefix: str, suffix: str, max_new_tokens: int) -> list[int]:
        return self.prompter.prompt_ids(prefix, suffix, max_new_tokens, self.max_pos)

    # -- model
    def new_cache(self):
        """cache[l][e]: [1, T_le, 2, H_e, D] (token-major, K at index 0 and V at 1 of axis 2), T_le = 0."""
        np = self.np
        return [[np.zeros((1, 0, 2, he, self.D), self.kv_dtype) for (_g, he) in self.experts]
                for _l in range(self.L)]

    def stop_mask(self, newline=False):
        """bool [V] for the graph's loop: the stop ids, plus every token holding a newline when `newline`."""
        mask = self.np.zeros(self.V, bool)
        ids = [i for i in self.stop_ids if i is not None and 0 <= i < self.V]
        mask[ids] = True
        if newline:
            if self._newline_ids is None:
                self._newline_ids = [i for i in range(min(self.V, self.tok.get_vocab_size()))
                                     if "\n" in (self.tok.id_to_token(i) or "").replace("<0x0A>", "\n")]
            mask[self._newline_ids] = True
        return mask

    def run_chunk(self, ids: list[int], cache, pos0: int, gen_steps: int = 0, stop_mask=None, first_mask=None):
        """One session.run: the chunk `ids` at positions pos0.. on top of `cache`, then up to `gen_steps` decode
        steps (stop_mask: bool [V], default the completer's stop ids; first_mask: f32 [V] added before picking
        t_0, default zeros). Appends every processed token's K/V (the chunk, then t_0 .. t_{N-1}) to `cache` in
        place. Returns (the chunk's last logits [V], [t_0 .. t_N])."""
        np = self.np
        S = len(ids)
        if S < 1:
            raise ValueError("run_chunk needs at least one token")
        if pos0 + S - 1 + gen_steps >= self.max_pos:  # the graph's RoPE tables have max_pos rows
            raise ValueError(f"positions up to {pos0 + S - 1 + gen_steps} exceed max_position_embeddings "
                             f"{self.max_pos}")
        feeds = {"input_ids": np.asarray([ids], np.int64),
                 "position_ids": np.arange(pos0, pos0 + S, dtype=np.int64)[None, :],
                 "route_bias": self.route_bias,
                 "gen_steps": np.asarray(gen_steps, np.int64),
                 "stop_mask": self.stop_mask() if stop_mask is None else stop_mask,
                 "first_mask": self.first_mask if first_mask is None else np.asarray(first_mask, np.float32)}
        for l in range(self.L):
            for e in range(self.E):
                feeds[f"past.{l}.{e}"] = cache[l][e]
        outs = dict(zip(self.out_names, self.sess.run(self.out_names, feeds)))
        tokens = [int(t) for t in np.asarray(outs["tokens"]).reshape(-1)]
        n_proc = S + len(tokens) - 1  # the chunk + t_0 .. t_{N-1}
        route = np.asarray(outs["route"])
        if not 1 <= len(tokens) <= gen_steps + 1 or route.shape != (self.L, n_proc):
            raise UserError(f"{self.dir}: graph returned {len(tokens)} tokens and route {route.shape} for a chunk "
                            f"of {S} with gen_steps {gen_steps}")
        for e, (_g, he) in enumerate(self.experts):
            if outs[f"kv.{e}"].shape[1:] != (2, he, self.D):
                raise UserError(f"{self.dir}: kv.{e} has shape {outs[f'kv.{e}'].shape}, expected rows of [2, {he}, {self.D}]")
        from mixsga.runtime import append_outputs  # here: the module imports torch, this completer needs only ORT

        try:
            append_outputs(cache, route, [outs[f"kv.{e}"] for e in range(self.E)])
        except ValueError as err:
            raise UserError(f"{self.dir}: {err}") from None
        held = {sum(cache[l][e].shape[1] for e in range(self.E)) for l in range(self.L)}
        if len(held) != 1:  # the graph's contract: one entry per token per layer
            raise UserError(f"{self.dir}: layers hold different numbers of tokens after a run: {sorted(held)}")
        return np.asarray(outs["logits"]).reshape(-1), tokens

    def forward(self, ids: list[int], cache, pos0: int):
        """Feed one chunk without decoding (gen_steps = 0); updates `cache` in place; returns the last logits [V]."""
        return self.run_chunk(ids, cache, pos0, 0)[0]

    def gen_steps_for(self, pos0: int, n_feed: int, remaining: int) -> int:
        """Decode steps for a run feeding n_feed tokens at pos0 that may add `remaining` tokens: t_0 comes free,
        each loop step feeds one more position (the last one must stay below max_position_embeddings)."""
        steps = min(remaining - 1, self.max_pos - (pos0 + n_feed))
        if self.max_gen_steps is not None:
            steps = min(steps, self.max_gen_steps)
        return max(steps, 0)

    def complete(self, prefix: str, suffix: str, max_new_tokens: int, stop: list[str]) -> str:
        ids = self.prompt_ids(prefix, suffix, max_new_tokens)
        gen: list[int] = []
        text, reason = "", "max-tokens"
        runs, t0 = 0, time.monotonic()
        t1 = t0
        if max_new_tokens > 0:
            cache, pos = self.new_cache(), 0
            # a stop string "\n" ends generation at any newline token: the graph's loop may stop there too
            # (the token is still returned and the host cuts the text as before)
            mask = self.stop_mask(newline="\n" in (stop or ()))
            step = self.chunk_size or len(ids)
            chunks = [ids[i:i + step] for i in range(0, len(ids), step)]
            for chunk in chunks[:-1]:
                self.run_chunk(chunk, cache, pos, 0, mask)
                pos += len(chunk)
                runs += 1
            feed, done = chunks[-1], False
            while not done:
                _, tokens = self.run_chunk(feed, cache, pos, self.gen_steps_for(pos, len(feed),
                                                                                 max_new_tokens - len(gen)), mask)
                if runs < len(chunks):
                    t1 = time.monotonic()
                runs += 1
                pos += len(feed) + len(tokens) - 1  # t_N is picked, not processed
                for nxt in tokens:
                    if nxt in self.stop_ids:
                        reason, done = ("eos" if nxt == self.eos_id else "fim-token"), True
                        break
                    gen.append(nxt)
                    text = self.decode(gen)
                    if stop and any(s and s in text for s in stop):
                        text, reason, done = truncate_at_stops(text, stop), "stop", True
                        break
                    if len(gen) >= max_new_tokens:
                        done = True
                        break
                else:  # every token kept: the loop ran its gen_steps; t_N still has to be fed
                    if pos >= self.max_pos:
                        reason, done = "context", True
                    feed = [gen[-1]]
        # prefill_s: the prompt's runs (the last one includes its in-graph decode steps); decode_s: the later runs
        self.last = {"prompt_tokens": len(ids), "generated_tokens": len(gen), "stop_reason": reason,
                     "generated_ids": gen, "runs": runs, "prefill_s": t1 - t0, "decode_s": time.monotonic() - t1}
        return text


# ----------------------------------------------------------------------------------------------- other completers

class CanonicalCompleter:
    """Returns the reference middle / body of the task with this (prefix, suffix); for tasks without a reference
    (MultiPL-E) a stub body that throws, so the run checks that the harness reaches the candidate code."""

    def __init__(self, tasks):
        self.table = {(t.prefix, t.suffix): t.canonical for t in tasks}

    def complete(self, prefix: str, suffix: str, max_new_tokens: int, stop: list[str]) -> str:
        ref = self.table.get((prefix, suffix))
        return JS_STUB if ref is None else ref


def load_completer(path, **onnx_kwargs) -> Completer:
    """A folder with manifest.json -> OnnxCompleter; any other directory -> mixsga.generate.TorchCompleter
    (a PyTorch checkpoint), if that module exists."""
    p = Path(path)
    if (p / "manifest.json").is_file():
        return OnnxCompleter(p, **onnx_kwargs)
    if not p.is_dir():
        raise UserError(f"--model {path}: not a directory (expected an ONNX model folder or a checkpoint dir)")
    try:
        generate = importlib.import_module("mixsga.generate")
    except ModuleNotFoundError as e:
        if e.name == "mixsga.generate":
            raise UserError(f"--model {path}: no manifest.json (not an ONNX model folder) and the PyTorch "
                            f"completer (mixsga.generate) is not available in this build") from None
        raise
    if not hasattr(generate, "TorchCompleter"):
        raise UserError("mixsga.generate has no TorchCompleter")
    return generate.TorchCompleter(p)


# ----------------------------------------------------------------------------------------------- evaluation

def completer_stop(task: CodeTask) -> list[str]:
    """Stop strings handed to the completer: the task's, plus a newline for single-line infilling."""
    return list(task.stop) + (["\n"] if task.single_line else [])


def evaluate(completer: Completer, tasks: list[CodeTask], *, timeout: float = 20.0, workers: int | None = None,
             max_new_tokens: int | None = None, progress=None, canonical: bool = False) -> dict:
    """Generate for every task (sequentially) while running finished programs in the sandbox pool."""
    from mixsga.sandbox import Sandbox

    records, futures = [], []
    t_start = time.monotonic()
    with Sandbox(timeout=timeout, workers=workers) as sb:
        for i, t in enumerate(tasks):
            g0 = time.monotonic()
            raw = completer.complete(t.prefix, t.suffix, max_new_tokens or t.max_new_tokens, completer_stop(t))
            gen_s = time.monotonic() - g0
            comp = t.postprocess(raw)
            rec = {"set": t.set_name, "task_id": t.task_id, "lang": t.lang, "completion": comp,
                   "raw_completion": raw, "gen_s": round(gen_s, 4)}
            extra = getattr(completer, "last", None)
            if extra:
                rec.update({k: extra[k] for k in ("prompt_tokens", "generated_tokens", "stop_reason") if k in extra})
            records.append(rec)
            futures.append(sb.submit(t.lang, t.program(comp)))
            if progress:
                progress(i + 1, len(tasks))
        for rec, f in zip(records, futures):
            r = f.result()
            rec.update({"status": r.status, "returncode": r.returncode, "exec_s": round(r.seconds, 3),
                        "stderr_tail": r.stderr_tail[-600:] if r.status != "passed" else ""})
            if STUB_MARK in rec["completion"] and STUB_MARK in r.stderr_tail:
                rec["stub_reached"] = True
    return {"tasks": records, "sets": summarize(records, tasks), "wall_s": round(time.monotonic() - t_start, 2)}


def summarize(records, tasks) -> dict:
    has_ref = {}
    for t in tasks:
        has_ref[t.set_name] = t.canonical is not None
    out = {}
    for rec in records:
        s = out.setdefault(rec["set"], {"n": 0, "passed": 0, "failed": 0, "timeout": 0})
        s["n"] += 1
        s[rec["status"]] += 1
        if not has_ref[rec["set"]] and rec.get("stub_reached"):
            s["stub_reached"] = s.get("stub_reached", 0) + 1
    for s in out.values():
        s["pass@1"] = s["passed"] / s["n"] if s["n"] else 0.0
    return out


def format_table(sets: dict) -> str:
    lines = [f"{'set':<11} {'n':>5} {'passed':>7} {'failed':>7} {'timeout':>7} {'pass@1':>8}"]
    for name, s in sets.items():
        line = f"{name:<11} {s['n']:>5} {s['passed']:>7} {s['failed']:>7} {s['timeout']:>7} {s['pass@1']:>8.2%}"
        if "stub_reached" in s:
            line += f"   (stub reached {s['stub_reached']}/{s['n']})"
        lines.append(line)
    return "\n".join(lines)


def run(args) -> int:
    if bool(args.model) == bool(args.canonical):
        raise UserError("give exactly one of --model PATH or --canonical")
    names = code_tasks.parse_sets(args.sets)
    eval_dir = args.eval_dir or code_tasks.default_eval_dir()
    tasks = []
    for name in names:
        ts = code_tasks.load_set(name, eval_dir, subset=args.multi_subset if name == "multi" else None,
                                 seed=args.seed)
        if args.limit is not None:
            ts = ts[:args.limit]
        tasks.extend(ts)
    if args.canonical:
        completer = CanonicalCompleter(tasks)
        model_desc = "canonical"
    else:
        rb = [float(x) for x in args.route_bias.split(",")] if args.route_bias else None
        # the ONNX options are used only when the folder is an ONNX model (load_completer decides)
        completer = load_completer(args.model, variant=args.variant, threads=args.threads, route_bias=rb,
                                   fim_always=args.fim_always, prefix_at_start=args.prefix_at_start)
        model_desc = str(args.model)
    runner = "canonical" if args.canonical else (
        f"onnx:{args.variant}" if isinstance(completer, OnnxCompleter) else "pytorch")

    def progress(i, n):
        if i % 50 == 0 or i == n:
            print(f"  generated {i}/{n}", file=sys.stderr, flush=True)

    res = evaluate(completer, tasks, timeout=args.timeout, workers=args.workers,
                   max_new_tokens=args.max_new_tokens, progress=progress, canonical=args.canonical)
    res = {"model": model_desc, "config": {
        "sets": names, "limit": args.limit, "multi_subset": args.multi_subset, "seed": args.seed,
        "timeout_s": args.timeout, "max_new_tokens": args.max_new_tokens, "eval_dir": str(eval_dir),
        "route_bias": args.route_bias, "fim_always": args.fim_always, "decoding": "greedy",
        "runner": runner, "js_note":
            "JS HumanEval_51_remove_vowels: raw newline in a test string literal repaired (escaped); 161 tasks"},
        **res}
    print(format_table(res["sets"]))
    print(f"wall time {res['wall_s']:.1f} s")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(res, indent=1))
        print(f"wrote {args.out}")
    return 0


def register(subparsers):
    p = subparsers.add_parser("eval_code", help="HumanEval / infilling / MultiPL-E pass@1 by execution",
                              description=__doc__.splitlines()[0])
    p.add_argument("--model", help="ONNX model folder (with manifest.json) or PyTorch checkpoint directory")
    p.add_argument("--canonical", action="store_true",
                   help="use the reference solutions (harness self-check; MultiPL-E: a throwing stub)")
    p.add_argument("--sets", default=",".join(code_tasks.DEFAULT_SETS),
                   help=f"comma list of {', '.join(code_tasks.SETS)} (default: %(default)s)")
    p.add_argument("--limit", type=int, default=None, help="first N tasks of each set")
    p.add_argument("--multi-subset", type=int, default=None,
                   help="evaluate a fixed seeded random subset of N multi-line infilling tasks")
    p.add_argument("--seed", type=int, default=1234, help="seed of --multi-subset (default %(default)s)")
    p.add_argument("--out", help="write results JSON (per-task outcomes) here")
    p.add_argument("--eval-dir", default=None,
                   help="evaluation data folder (default: $MIXSGA_EVAL_DIR or <repo>/../shared/eval)")
    p.add_argument("--timeout", type=float, default=20.0, help="seconds per test program (default %(default)s)")
    p.add_argument("--workers", type=int, default=None, help="parallel test programs (default: CPU count)")
    p.add_argument("--max-new-tokens", type=int, default=None, help="override the per-set generation limit")
    p.add_argument("--variant", default="cpu", help="ONNX variant from the manifest (default %(default)s)")
    p.add_argument("--threads", type=int, default=0, help="ORT intra-op threads (0 = default)")
    p.add_argument("--route-bias", default=None, help="comma list, one per expert (ONNX models)")
    p.add_argument("--prefix-at-start", action="store_true",
                   help="encode each task's prefix as the start of a file (leading \"▁\", as training saw it); "
                        "default: as a fragment, like the engine")
    p.add_argument("--fim-always", action="store_true",
                   help="FIM prompt even when the suffix is empty (as the extension does); default: left to right")
    p.set_defaults(func=run)
