#!/usr/bin/env bash
# CPU dry run of the whole round sequence, no device (lab/v2/README.md): a toy corpus in `corpus`'s output format
# (this repo's own sources), recipe-v2.json's phases and flags on a tiny model, and three rounds, each on a fresh
# "GPU machine" folder: prepare -> stage every carry folder -> train (detached) -> wait -> fetch every call -> land.
# Pieces and calls are made small so every round has several of each. Checks at the end: the phases ran in order
# with warm restarts at the round boundaries, every piece verified, and the run log has three rounds.
#   bash lab/v2/dry-run.sh [DIR]        (default /tmp/v2-dry; ~3-6 minutes on the 2-core dev box)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
D=${1:-/tmp/v2-dry}
rm -rf "$D" && mkdir -p "$D"
export PYTHONPATH=$ROOT/toolchain V2_HERE=$D/here V2_PIECE_BYTES=40000 V2_CALL_BYTES=200000
export SITE_PACKAGES=none WORKERS=2 RECIPE=$D/recipe.json OMP_NUM_THREADS=1
R="python3 $ROOT/lab/v2/rounds.py --recipe $D/recipe.json"

python3 - "$ROOT" "$D" <<'PY'
import json, lzma, sys
from pathlib import Path
root, d = Path(sys.argv[1]), Path(sys.argv[2])
# toy corpus: the toolchain's Python and the engine's TypeScript, one "package" per folder, one held out
files = sorted((root / "toolchain").rglob("*.py")) + sorted((root / "src").rglob("*.ts"))
c = d / "corpus"; c.mkdir()
recs = {"train": [], "val": []}
for f in files:
    pkg = f.stem
    rec = {"package": pkg, "licence": "MIT", "path": str(f.relative_to(root)), "lang": "python" if f.suffix == ".py"
           else "typescript", "text": f.read_text(), "source": "toy"}
    recs["val" if f.parent.name == "tests" else "train"].append(rec)
for split, rs in recs.items():
    with lzma.open(c / f"{split}.jsonl.xz", "wt") as o:
        o.writelines(json.dumps(r) + "\n" for r in rs)
(c / "decontam.json").write_text(json.dumps({"signatures": [], "doc_lines": []}))
(c / "stats.json").write_text("{}")
# recipe-v2.json's phases and flags on a tiny model and a few steps each
r = json.loads((root / "lab/v2/recipe-v2.json").read_text())
r.update(model={"preset": "tiny", "config": {"max_position_embeddings": 256}}, batch_tokens=512, compile=False,
         rewarm_steps=2, eval_every=4, log_every=1, eval_windows=2, data={"corpus_slices": 2, "site_packages": False})
for s in r["schedules"].values():
    s["warmup_steps"] = 2
for ph, steps, seq in zip(r["phases"], (12, 6, 4), (128, 128, 256)):
    ph.update(tokens=steps * 512, seq_len=seq, micro_batch=2)
(d / "recipe.json").write_text(json.dumps(r, indent=1))
PY

$R slice --corpus "$D/corpus"
for round in 1 2 3; do
  ckpt=""; [ "$round" -gt 1 ] && ckpt="--ckpt $D/here/ckpt/r$((round - 1))"
  $R prepare --round "$round" $ckpt --call-mib 0.19 | tee "$D/prepare-r$round.txt"
  export V2=$D/gpu-r$round   # a fresh machine every round
  folders=("$D"/here/carry/c*)
  for f in "${folders[@]}"; do bash "$ROOT/lab/v2/gpu.sh" stage "$f"; done
  finish=""; [ "$round" = 3 ] && finish=--finish   # the last round anneals within its time (same steps here)
  bash "$ROOT/lab/v2/gpu.sh" train --minutes 30 --round-steps 10 $finish
  bash "$ROOT/lab/v2/gpu.sh" wait 600 | tail -n 3
  calls=$(python3 -c "import json; print(len(json.load(open('$V2/fetch/PLAN.json'))))")
  fetched=()
  for i in $(seq 0 $((calls - 1))); do
    OUT=$D/out-r$round-c$i bash "$ROOT/lab/v2/gpu.sh" fetch "$i" 60 > /dev/null
    fetched+=("$D/out-r$round-c$i")
    n=$(ls "$D/out-r$round-c$i" | wc -l); [ "$n" -le 8 ] || { echo "call $i brings back $n files (> 8)"; exit 1; }
  done
  $R land "${fetched[@]}" --runlog "$D/RUNLOG.md"
done
cat "$D/RUNLOG.md"
python3 - "$D" <<'PY'
import json, sys
from pathlib import Path
d = Path(sys.argv[1])
rounds = json.loads((d / "runlog.json").read_text())
segs = [(s["phase"], s["start_step"], s["end_step"]) for r in rounds for s in r["segments"]]
print("segments:", segs)
assert [r["round"] for r in rounds] == [1, 2, 3]
assert segs == [("dense", 0, 10), ("dense", 10, 12), ("policy", 12, 18), ("2048", 0, 2), ("2048", 2, 4)], segs
assert rounds[-1]["to"]["done"] and rounds[-1]["tokens_total"] == 22 * 512
for r in (2, 3):  # warm restarts: round r starts from round r-1's weights at its step
    cmd = next(l for l in (d / f"gpu-r{r}" / "round.log").read_text().splitlines() if l.startswith("[round] /"))
    assert "--start-step" in cmd and "--rewarm-steps" in cmd and "--init" in cmd, cmd
    assert ("--time-budget-min" if r == 3 else "--stop-after-min") in cmd, cmd
cfg = json.loads((d / "here" / "ckpt" / "r3" / "config.json").read_text())
assert cfg.get("kv_policy", "").startswith("band=32,order=age"), cfg
print("DRY RUN OK")
PY
