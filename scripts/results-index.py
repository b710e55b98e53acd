#!/usr/bin/env python3
"""Writes the index of each results tree (docs/results/README.md, bench/results/README.md) from the files
themselves and git history: every run (a top-level file or folder), its date, machine, the command that produced
it, the docs that cite it, the commit that added it, and every file.

    python3 scripts/results-index.py            # rewrite the indexes
    python3 scripts/results-index.py --check    # CI: fail when an index is not what the files say

Only what cannot be read from the files is written here by hand: what the tags in run names mean (TAGS).
"""
from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TREES = {
    "docs/results": "Raw results of the GPU sessions (training, eval_ppl, GPU benchmarks), code evals and the dev "
                    "box's soak and memory runs; the docs quote them.",
    "bench/results": "JSON written by `node dist/bench.js` (`npm run bench`; docs/benchmarks.md) and A/B runs.",
}
# What a tag in a run's name means (a name has its date, the machine, then the tag).
TAGS = {
    "r2": "ONNX graph revision 2 (bench runs) / the second GPU round of 2026-12-01 (docs/results)",
    "r3": "graph revision 3, which fixed CUDA decoding (bench runs) / the training run whose mixSGA branch ships "
          "(docs/results, the model card's `--shipped`)",
    "r3x": "that branch after its 2048-token long-context phase: the shipped weights (the card's `--extension`)",
    "r4": "the H200 session that found and fixed the CUDA decode loop (benchmarks.md's \"r3\" round)",
    "lc": "the smaller equal-compute run with the long-context phase on both branches (the card's `--long-study`)",
    "ab": "an interleaved A/B of two builds on one machine",
}
DOCS = ["README.md", "docs/*.md", "lab/**/*.md"]
DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, check=True, capture_output=True, text=True).stdout


def read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None


def args_text(argv: list) -> str:
    """Command-line arguments as recorded, without --out (the file itself) and with absolute paths cut to their
    last part (they name folders on the machine that ran it)."""
    out, skip = [], False
    for a in map(str, argv):
        if skip or a == "--out":
            skip = a == "--out"
            continue
        out.append(f"…/{Path(a).name}" if a.startswith("/") else a)
    return " ".join(out)


def flag(v) -> str:
    return ",".join(map(str, v)) if isinstance(v, list) else str(v)


def command_of(d) -> str | None:
    """The command line a result JSON records (bench, soak, eval_code, eval_ppl), or None."""
    if not isinstance(d, dict):
        return None
    if isinstance(d.get("argv"), list):
        argv = d["argv"] if "--suite" in d["argv"] or not d.get("suite") else ["--suite", d["suite"], *d["argv"]]
        return f"node dist/bench.js {args_text(argv)}".strip()
    if isinstance(d.get("tool"), str):
        flags = d.get("flags") if isinstance(d.get("flags"), dict) else {}
        return f"node dist/{d['tool']}.js {args_text([x for k, v in flags.items() if v is not False for x in (f'--{k}', flag(v))])}".strip()
    if isinstance(d.get("sets"), dict) and isinstance(d.get("config"), dict):
        return f"python -m mixsga eval_code --sets {','.join(d['config'].get('sets') or d['sets'])}"
    if isinstance(d.get("rows"), list) and "windows" in d:
        return f"python -m mixsga eval_ppl ({d['windows']} windows × {d.get('seq_len', '?')} tokens)"
    return None


def machine_of(d) -> str | None:
    m = d.get("machine") if isinstance(d, dict) else None
    if not isinstance(m, dict):
        return None
    if isinstance(m.get("gpu"), dict) and m["gpu"].get("name"):
        return f"{m['gpu']['name']}, {m.get('cores', '?')}-core host"
    if m.get("cpuModel"):
        return f"{m['cpuModel'].strip()}, {m.get('cores', '?')} cores"
    return None


def describe(tree: str, name: str, files: list[str], cites: dict) -> dict:
    """Date, machine, commands, title and citations of one run (a top-level file or folder of TREE)."""
    paths = [ROOT / tree / f for f in files]
    commands, machines, dates, title = Counter(), Counter(), Counter(), None
    for p in paths:
        if p.suffix == ".json":
            d = read_json(p)
            if (c := command_of(d)) is not None:
                commands[c] += 1
            if (m := machine_of(d)) is not None:
                machines[m] += 1
            if isinstance(d, dict) and isinstance(d.get("machine"), dict) and DATE.match(str(d["machine"].get("date", ""))):
                dates[str(d["machine"]["date"])[:10]] += 1
        elif p.name == "log.jsonl" and "train" in p.parts:
            commands["scripts/train-default.sh (training logs, eval_ppl)"] += 1
        elif p.name == "nvidia-smi.txt":
            machines.update(set(re.findall(r"NVIDIA [A-Z]\d+\w*", p.read_text(errors="replace"))))
        elif p.name == "README.md" and p.parent == ROOT / tree / name and title is None:
            title = p.read_text().split("\n", 1)[0].lstrip("# ").strip()
    added = git("log", "--diff-filter=A", "--reverse", "--format=%h %as", "--", f"{tree}/{name}").split("\n")[0]
    date = DATE.search(name)
    if not machines and re.search(r"(^|-)h200", name):
        machines["NVIDIA H200 (from the name)"] += 1
    return {"date": date.group(0) if date else (dates.most_common(1)[0][0] if dates else added[8:] or "?"),
            "machines": [m for m, _ in machines.most_common(2)], "commands": commands.most_common(),
            "title": title, "added": added.split(" ")[0] if added else "uncommitted",
            "cited": sorted(doc for doc, text in cites.items() if cited(tree, name, text))}


def cited(tree: str, name: str, text: str) -> bool:
    """TEXT names the run: by its path, or by its name alone when that holds a date (names like 'evals' do not)."""
    return f"{tree}/{name}" in text or bool(DATE.search(name) and re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", text))


def cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render(tree: str, runs: dict[str, list[str]], cites: dict) -> str:
    out = [f"# Index of {tree}", "",
           (f"{TREES[tree]} Generated by `python3 scripts/results-index.py` from the files and git history (CI "
            "checks it is current): do not edit by hand."), "",
           "Tags in run names: " + "; ".join(f"**{t}** {what}" for t, what in TAGS.items()) + ".", "",
           "| run | date | machine | what produced it | files | cited in | added in |",
           "|---|---|---|---|---|---|---|"]
    details = []
    for name, files in runs.items():
        r = describe(tree, name, files, cites)
        is_dir = files != [name]
        what = [f"README: {r['title']}"] if r["title"] else []
        what += [f"`{c}`" + (f" ×{n}" if n > 1 else "") for c, n in r["commands"][:3]]
        if len(r["commands"]) > 3:
            what.append(f"and {len(r['commands']) - 3} other commands")
        link = f"[{name}{'/' if is_dir else ''}]({name}{'/' if is_dir else ''})"
        out.append(f"| {link} | {r['date']} | {cell('; '.join(r['machines']) or '—')} | "
                   f"{cell('; '.join(what) or '—')} | {len(files)} | {', '.join(r['cited']) or '—'} | {r['added']} |")
        if is_dir:
            details += [f"<details><summary>{name}/ ({len(files)} files)</summary>", ""]
            details += [f"- `{f[len(name) + 1:]}`" for f in files] + ["", "</details>", ""]
    return "\n".join(out + ["", "## Files of each run folder", ""] + details).rstrip("\n") + "\n"


def build() -> dict[Path, str]:
    cites = {}
    for pattern in DOCS:
        for p in sorted(ROOT.glob(pattern)):
            if "results" not in p.parts:
                cites[p.relative_to(ROOT).as_posix()] = p.read_text(errors="replace")
    out = {}
    for tree in TREES:
        runs: dict[str, list[str]] = {}
        for f in sorted(git("ls-files", "-z", "--", tree).split("\0")):
            rel = f[len(tree) + 1:]
            if not f or rel == "README.md":
                continue
            top = rel.split("/", 1)[0]
            runs.setdefault(top, []).append(rel if "/" in rel else top)
        out[ROOT / tree / "README.md"] = render(tree, runs, cites)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="exit 1 when an index differs from what it would be")
    args = ap.parse_args(argv)
    if args.check and git("rev-parse", "--is-shallow-repository").strip() == "true":
        print("results-index: shallow clone, commits unknown; not checked")
        return 0
    stale = []
    for path, text in build().items():
        if args.check:
            if not path.is_file() or path.read_text() != text:
                stale.append(path.relative_to(ROOT).as_posix())
        else:
            path.write_text(text)
            print(f"wrote {path.relative_to(ROOT)}")
    if stale:
        print(f"results-index: {', '.join(stale)} out of date: run python3 scripts/results-index.py and commit",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
