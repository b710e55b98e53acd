"""Training batches from token shards on disk.

Shards are flat uint16 files (`train_*.bin`, `val_*.bin`, plus `meta.json`) holding documents framed
[BOS] ids [EOS] back to back. They are opened with np.memmap, so nothing is loaded into RAM up front.

A training row: read a random window of `seq_len` tokens, cut it at BOS into document pieces, apply FIM to each
piece (mixsga.fim), concatenate and cut back to `seq_len` (FIM adds up to 4 tokens per piece, so the row is
always full unless the whole shard is shorter than a row; such padding gets label -100).

Every row's randomness is a function of (seed, step, rank, row), so a resumed run sees exactly the batches an
uninterrupted run would have seen. Under DDP each rank reads only its own 1/world_size slice of every shard,
so ranks never train on the same window in the same run.
"""
import threading
import queue
from pathlib import Path

import numpy as np
import torch

from mixsga.errors import UserError
from mixsga.fim import BOS, EOS, apply_fim


def shard_files(data_dir, split):
    files = sorted(Path(data_dir).glob(f"{split}_*.bin"))
    if not files:
        raise UserError(f"no {split}_*.bin token shards in {data_dir}")
    return files


def open_shards(data_dir, split):
    return [np.memmap(f, dtype=np.uint16, mode="r") for f in shard_files(data_dir, split)]


def fim_row(window, rng, seq_len, fim_rate, spm_rate, line_rate=0.0):
    """Window of raw tokens -> (input ids, labels) of length seq_len, FIM applied per document piece."""
    w = np.asarray(window, dtype=np.int64)
    starts = np.flatnonzero(w == BOS)
    cuts = np.unique(np.concatenate([[0], starts, [len(w)]]))
    out = []
    for a, b in zip(cuts[:-1], cuts[1:]):
        out.extend(apply_fim(w[a:b], rng, fim_rate, spm_rate, line_rate) if fim_rate > 0 else w[a:b].tolist())
        if len(out) >= seq_len:
            break
    ids = np.full(seq_len, EOS, dtype=np.int64)
    labels = np.full(seq_len, -100, dtype=np.int64)
    n = min(len(out), seq_len)
    ids[:n] = out[:n]
    labels[:n] = out[:n]
    return ids, labels


class Batches:
    """Random FIM-packed training rows from one rank's slice of the train shards."""

    def __init__(self, data_dir, seq_len, rows, seed=0, rank=0, world_size=1, fim_rate=0.5, spm_rate=0.5,
                 split="train", line_rate=0.0):
        self.shards = open_shards(data_dir, split)
        self.seq_len, self.rows, self.seed = seq_len, rows, seed
        self.rank, self.world = rank, world_size
        self.fim_rate, self.spm_rate, self.line_rate = fim_rate, spm_rate, line_rate
        # This rank's [lo, hi) token range in each shard; shards too small to split are shared.
        self.ranges = []
        for m in self.shards:
            n = len(m)
            lo, hi = n * rank // world_size, n * (rank + 1) // world_size
            if hi - lo < seq_len + 1:
                lo, hi = 0, n
            self.ranges.append((lo, hi))
        sizes = np.array([hi - lo for lo, hi in self.ranges], dtype=np.float64)
        if sizes.sum() == 0:
            raise UserError(f"{split} shards in {data_dir} are empty")
        self.p = sizes / sizes.sum()

    def row(self, rng):
        f = int(rng.choice(len(self.shards), p=self.p)) if len(self.shards) > 1 else 0
        lo, hi = self.ranges[f]
        start = int(rng.integers(lo, max(lo + 1, hi - self.seq_len + 1)))
        return fim_row(self.shards[f][start:start + self.seq_len], rng, self.seq_len, self.fim_rate, self.spm_rate,
                       self.line_rate)

    def get(self, step, micro):
        """Rows for optimizer step `step`, micro-batch `micro`: int64 tensors [rows, seq_len]."""
        rng = np.random.default_rng([self.seed, step, micro, self.rank])
        ids, labels = zip(*(self.row(rng) for _ in range(self.rows)))
        return torch.from_numpy(np.stack(ids)), torch.from_numpy(np.stack(labels))


class Prefetcher:
    """Builds the next micro-batches on a background thread while the GPU works (numpy releases the GIL in
    the copies; the model step on CUDA is asynchronous)."""

    def __init__(self, batches: Batches, start_step, accum, depth=8):
        self.q = queue.Queue(maxsize=depth)
        self.stop = False

        def work():
            step = start_step
            while not self.stop:
                for micro in range(accum):
                    self.q.put((step, micro, *batches.get(step, micro)))
                step += 1

        self.t = threading.Thread(target=work, daemon=True)
        self.t.start()

    def next(self):
        return self.q.get()

    def close(self):
        self.stop = True
        while not self.q.empty():
            self.q.get_nowait()


def fixed_windows(data_dir, n_windows, seq_len, split="val"):
    """A fixed, evenly spaced set of raw (no FIM) windows from the held-out shards: [n, seq_len] int64.
    The same windows every time, so losses are comparable across runs and methods."""
    shards = open_shards(data_dir, split)
    sizes = np.array([len(m) for m in shards])
    total = int(sizes.sum())
    if total < seq_len:
        raise UserError(f"{split} shards in {data_dir} hold {total} tokens, fewer than one {seq_len}-token window")
    bounds = np.concatenate([[0], np.cumsum(sizes)])
    rows = []
    for i in range(n_windows):
        g = (total - seq_len) * i // max(1, n_windows - 1) if n_windows > 1 else 0
        f = int(np.searchsorted(bounds, g, side="right") - 1)
        off = min(int(g - bounds[f]), max(0, len(shards[f]) - seq_len))
        w = np.asarray(shards[f][off:off + seq_len], dtype=np.int64)
        if len(w) < seq_len:  # window straddles a shard end: take it from the start of the largest shard
            big = int(sizes.argmax())
            w = np.asarray(shards[big][:seq_len], dtype=np.int64)
        rows.append(w)
    return torch.from_numpy(np.stack(rows))
