"""`python -m mixsga pipeline --recipe R --run DIR`: a training recipe (JSON, toolchain/recipes/) run stage by stage.

Stages, in this order (docs/training.md, "Recipe: one dense trunk, branches at equal compute"):
  shards    corpus -> token shards (skipped when the shards folder has meta.json)
  dense     the dense trunk: from scratch, stopped at trunk.dense_steps of a trunk.total_steps cosine
  branches  convert to mixSGA, then each of branches.names from the trunk's checkpoint with the same schedule:
            mixsga, dense-cont (the full-KV reference at equal compute), gqa2, abl-lmgrad, abl-random
  extend    the long-context phase: extend.branches continued on extend.seq_len-token windows
  eval      eval_ppl of every checkpoint there is, concurrently
Every command it starts is appended to RUN/pipeline.jsonl (stage, argv, exit code, seconds) before and after it
runs; a failing command stops the pipeline with its exit code. scripts/train-default.sh only detaches this.
"""
import copy
import json
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

from mixsga.errors import UserError

STAGES = ["shards", "dense", "branches", "extend", "eval"]
BRANCHES = ["mixsga", "dense-cont", "gqa2", "abl-lmgrad", "abl-random"]
SECTIONS = {  # every key a recipe must have, by section ("" = top level)
    "": {"name", "about", "model", "seq_len", "batch_tokens", "micro_batch", "fim_line_rate", "time_scale", "data",
         "trunk", "branches", "extend", "eval"},
    "model": {"preset", "config"},
    "data": {"corpus", "site_packages", "shards", "shard_workers"},
    "trunk": {"total_steps", "dense_steps", "lr", "min_lr_ratio", "warmup_steps", "cap_sec_per_step"},
    "branches": {"names", "ratios", "final_lr", "warmup_steps", "gqa_steps", "abl_steps", "eval_windows",
                 "cap_sec_per_step"},
    "extend": {"branches", "seq_len", "steps", "lr", "min_lr_ratio", "warmup_steps", "micro_batch", "eval_windows",
               "seed", "cap_sec_per_step"},
    "eval": {"windows", "batch", "long_batch", "budgets"},
}


def load_recipe(path, overrides=()):
    """The recipe at `path` with `section.key=value` overrides (value as JSON, else a string), checked key by key."""
    try:
        recipe = json.loads(Path(path).read_text())
    except OSError as e:
        raise UserError(f"cannot read recipe {path}: {e.strerror}") from None
    except json.JSONDecodeError as e:
        raise UserError(f"recipe {path} is not valid JSON: {e}") from None
    recipe = copy.deepcopy(recipe)
    for o in overrides:
        key, eq, raw = o.partition("=")
        section, _, name = key.rpartition(".")
        if not eq or name not in SECTIONS.get(section, ()):
            raise UserError(f"--set {o}: expected SECTION.KEY=VALUE with a key the recipe has")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        (recipe[section] if section else recipe)[name] = value
    for section, keys in SECTIONS.items():
        got = recipe.get(section) if section else recipe
        if not isinstance(got, dict):
            raise UserError(f"recipe {path}: `{section}` must be an object")
        missing, unknown = keys - got.keys(), got.keys() - keys
        if missing or unknown:
            raise UserError(f"recipe {path}: section `{section or 'top'}`" + (f" lacks {sorted(missing)}" if missing
                            else "") + (f" has unknown {sorted(unknown)}" if unknown else ""))
    t = recipe["trunk"]
    if not 0 < t["dense_steps"] < t["total_steps"]:
        raise UserError(f"recipe {path}: trunk.dense_steps must be between 0 and total_steps ({t['total_steps']})")
    for b in recipe["branches"]["names"]:
        if b not in BRANCHES:
            raise UserError(f"recipe {path}: unknown branch {b!r} (known: {', '.join(BRANCHES)})")
    return recipe


def branch_lr(recipe):
    """The trunk's LR where it stops (train.lr_at, the trunk's own schedule): every branch starts there."""
    from mixsga.train import lr_at

    t = recipe["trunk"]
    args = SimpleNamespace(lr=t["lr"], min_lr_ratio=t["min_lr_ratio"], warmup_steps=t["warmup_steps"], start_step=0,
                           rewarm_steps=0)
    return lr_at(t["dense_steps"], t["dense_steps"] / t["total_steps"], args)


def minutes(recipe, section, steps):
    """The stage's time cap (a safety net: runs are step-budgeted): ~1.2x the GPU's measured seconds per step, so a
    slow machine anneals early instead of overrunning the GPU session; time_scale multiplies every cap."""
    return str(round(round(steps * recipe[section]["cap_sec_per_step"] / 60 + 1, 1) * recipe["time_scale"], 2))


class Pipeline:
    def __init__(self, recipe, run):
        self.r, self.run = recipe, Path(run)
        self.shards = Path(recipe["data"]["shards"] or self.run / "shards")
        self.log = self.run / "pipeline.jsonl"

    def record(self, **row):
        with self.log.open("a") as f:
            f.write(json.dumps({"time": round(time.time(), 1), **row}) + "\n")

    def call(self, stage, argv, out=None):
        """Run one command (to completion, or started when `out` names its log file: see join)."""
        argv = [str(a) for a in argv]
        self.record(stage=stage, argv=argv, event="start")
        if out is not None:
            return subprocess.Popen(argv, stdout=out.open("w"), stderr=subprocess.STDOUT), argv
        t0 = time.time()
        rc = subprocess.run(argv).returncode
        self.record(stage=stage, argv=argv, event="end", rc=rc, seconds=round(time.time() - t0, 1))
        if rc:
            raise SystemExit(rc)
        return None

    def mixsga(self, *args):
        return [sys.executable, "-m", "mixsga", *args]

    def train(self, seq_len=None, micro_batch=None):
        r = self.r
        return self.mixsga("train", "--data", self.shards, "--seq-len", seq_len or r["seq_len"], "--batch-tokens",
                           r["batch_tokens"], "--micro-batch", micro_batch or r["micro_batch"], "--fim-line-rate",
                           r["fim_line_rate"])

    def stage_shards(self):
        if (self.shards / "meta.json").exists():
            self.record(stage="shards", event="skipped", reason=f"shards exist in {self.shards}")
            return
        d = self.r["data"]
        extra = (["--site-packages", d["site_packages"]] if d["site_packages"] else []) + (
            ["--workers", d["shard_workers"]] if d["shard_workers"] else [])
        self.call("shards", self.mixsga("shards", "--corpus", d["corpus"], *extra, "--out", self.shards))

    def stage_dense(self):
        t, m = self.r["trunk"], self.r["model"]
        config = ["--config-json", json.dumps(m["config"])] if m["config"] else []
        self.call("dense", self.train() + [
            "--init", "scratch", "--model-size", m["preset"], *config, "--out", self.run / "dense", "--resume",
            "--lr", t["lr"], "--min-lr-ratio", t["min_lr_ratio"], "--warmup-steps", t["warmup_steps"], "--max-steps", t["total_steps"], "--stop-at-step",
            t["dense_steps"], "--time-budget-min", minutes(self.r, "trunk", t["dense_steps"]), "--eval-every", 0,
            "--save-every", 0])

    def stage_branches(self):
        b, t = self.r["branches"], self.r["trunk"]
        names, mix0 = b["names"], self.run / "mix0"
        lr = branch_lr(self.r)
        steps = t["total_steps"] - t["dense_steps"]
        # each branch anneals to final_lr over the rest of the trunk's steps: the trunk's schedule continued
        schedule = ["--lr", f"{lr:.3e}", "--min-lr-ratio", f"{b['final_lr'] / float(f'{lr:.3e}'):.4f}",
                    "--warmup-steps", b["warmup_steps"], "--max-steps", steps]
        cap = ["--time-budget-min", minutes(self.r, "branches", steps)]
        evals = ["--eval-every", 100000, "--eval-windows", b["eval_windows"], "--save-every", 0]
        self.call("branches", self.mixsga("convert", self.run / "dense" / "ckpt", mix0, "--ratios", b["ratios"]))
        mix = self.train() + ["--init", mix0, "--ratios", b["ratios"], *schedule, *evals]
        short = {"gqa2", "abl-lmgrad", "abl-random"} & set(names)
        # mixsga is also saved at the short branches' step counts: they are compared at equal steps
        snaps = ["--snapshot-steps", f"{b['abl_steps']},{b['gqa_steps']}"] if short else []
        runs = {
            "mixsga": [*mix, "--out", self.run / "mixsga", "--eval-at-start", *snaps, *cap],
            "dense-cont": [*self.train(), "--init", self.run / "dense" / "ckpt", *schedule, "--out",
                           self.run / "dense-cont", *evals, *cap],
            "gqa2": [*mix, "--out", self.run / "gqa2", "--static-group", 2, "--stop-at-step", b["gqa_steps"],
                     "--snapshot-steps", b["abl_steps"], *cap],
            "abl-lmgrad": [*mix, "--out", self.run / "abl-lmgrad", "--router-lm-grad", "--stop-at-step",
                           b["abl_steps"], *cap],
            "abl-random": [*mix, "--out", self.run / "abl-random", "--random-router", "--stop-at-step",
                           b["abl_steps"], *cap],
        }
        for name in BRANCHES:  # in this order whatever the recipe lists
            if name in names:
                self.call("branches", runs[name])

    def stage_extend(self):
        # Every branch gets the same phase (fresh AdamW, a short warmup to the branches' floor LR, a cosine down),
        # so they stay at equal compute.
        e = self.r["extend"]
        for b in e["branches"]:
            ckpt = self.run / b / "ckpt"
            if not (ckpt / "config.json").exists():
                self.record(stage="extend", event="skipped", reason=f"no {ckpt}")
                continue
            self.call("extend", self.train(e["seq_len"], e["micro_batch"]) + [
                "--init", ckpt, "--out", self.run / f"{b}-{e['seq_len']}", "--lr", e["lr"], "--min-lr-ratio",
                e["min_lr_ratio"], "--warmup-steps", e["warmup_steps"], "--max-steps", e["steps"], "--eval-every",
                100000, "--eval-windows", e["eval_windows"], "--save-every", 0, "--seed", e["seed"],
                "--time-budget-min", minutes(self.r, "extend", e["steps"])])

    def eval_jobs(self):
        """(checkpoint, methods, window length, result name) for every checkpoint the earlier stages left."""
        r, run = self.r, self.run
        long_seq, b = r["extend"]["seq_len"], r["branches"]
        jobs = [("dense-cont", None, r["seq_len"], "dense-cont"), ("dense", "full", r["seq_len"], "dense")]
        # long context: each extended branch and the branch it started from on long windows (the extended ones on
        # short windows too: the phase should cost nothing at short range)
        for name in r["extend"]["branches"]:
            how = "full,window,h2o" if name.startswith("dense") else "full,mixsga,mixsga-argmax"
            for m in (name, f"{name}-{long_seq}"):
                jobs.append((m, how, long_seq, f"{m}-at{long_seq}"))
                if m != name:
                    jobs.append((m, how, r["seq_len"], m))
        for m in ["mixsga", f"mixsga/ckpt-step{b['gqa_steps']}", f"mixsga/ckpt-step{b['abl_steps']}", "gqa2",
                  f"gqa2/ckpt-step{b['abl_steps']}", "abl-lmgrad", "abl-random"]:
            jobs.append((m, "full,mixsga,mixsga-argmax,gqa", r["seq_len"], m.replace("/", "-")))
        found = []
        for m, how, seq, name in jobs:
            d = run / m
            d = d / "ckpt" if (d / "ckpt").is_dir() else d
            if (d / "config.json").exists() and name not in [f[3] for f in found]:
                found.append((d, how, seq, name))
        return found

    def stage_eval(self):
        e, out = self.r["eval"], self.run / "eval"
        out.mkdir(parents=True, exist_ok=True)
        started = []
        for ckpt, how, seq, name in self.eval_jobs():
            batch = e["batch"] if seq == self.r["seq_len"] else e["long_batch"]
            argv = self.mixsga("eval_ppl", "--data", self.shards, "--windows", e["windows"], "--seq-len", seq,
                               "--batch", batch, "--model", ckpt, *(["--methods", how] if how else []),
                               *(["--budgets", e["budgets"]] if e["budgets"] else []), "--out", out / f"{name}.json")
            started.append(self.call("eval", argv, out=out / f"{name}.txt"))
        failed = 0
        for proc, argv in started:
            rc = proc.wait()
            self.record(stage="eval", argv=argv, event="end", rc=rc)
            failed = failed or rc
        for txt in sorted(out.glob("*.txt")):
            print(f"== {txt}\n" + "".join(txt.read_text().splitlines(keepends=True)[-12:]), end="")
        if failed:
            raise SystemExit(failed)

    def status(self):
        for f in sorted(self.run.glob("*.log")) + sorted(self.run.glob("*/log.jsonl")) + [self.log]:
            if f.exists():
                print(f"== {f}\n" + "".join(f.read_text().splitlines(keepends=True)[-2:]), end="")


def parse_stages(text):
    stages = STAGES if text == "all" else text.split(",")
    bad = [s for s in stages if s not in STAGES]
    if bad:
        raise UserError(f"unknown stage {', '.join(bad)} (stages: all or a comma list of {','.join(STAGES)})")
    return [s for s in STAGES if s in stages]  # always in pipeline order


def run(args):
    stages = parse_stages(args.stages)
    p = Pipeline(load_recipe(args.recipe, args.set), args.run)
    if args.status:
        return p.status()
    if args.check:
        print(f"recipe {p.r['name']}: {','.join(stages)} into {p.run}")
        return 0
    p.run.mkdir(parents=True, exist_ok=True)
    p.record(event="recipe", recipe=p.r, stages=stages)
    for s in stages:
        getattr(p, f"stage_{s}")()
    print(f"pipeline {p.r['name']}: {','.join(stages)} done in {p.run}")


def register(sub):
    p = sub.add_parser("pipeline", help="train a recipe (toolchain/recipes/*.json): shards, trunk, branches, "
                                        "long-context phase, eval")
    p.add_argument("--recipe", required=True, help="recipe JSON, e.g. toolchain/recipes/default-v1.json")
    p.add_argument("--run", default="runs/default", help="run folder (checkpoints, logs, eval results)")
    p.add_argument("--stages", default="all", help=f"all, or a comma list of {','.join(STAGES)} (run in that order)")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override one recipe value (JSON), e.g. --set trunk.total_steps=610")
    p.add_argument("--status", action="store_true", help="print the last lines of every log of RUN and exit")
    p.add_argument("--check", action="store_true", help="check the recipe, overrides and stages, start nothing")
    p.set_defaults(func=run)
