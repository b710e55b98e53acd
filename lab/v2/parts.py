"""What travels between the dev box and the GPU machine in a v2 round, and how it is checked.

A *whole* (corpus.tar, ckpt.tar) is cut into pieces `<whole>.partNNN` of at most PIECE bytes (a file coming back
from the GPU machine may be at most 16 MiB). Pieces are packed into call-sized folders; every folder has a
SHA256SUMS with its pieces' sums and every whole's sum, and a MANIFEST.json saying how many pieces each whole has,
so the folders can arrive in any order and a whole is joined only once all its pieces are there and verified.

Checkpoints travel as bf16 byte planes: the high bytes (sign + exponent) of trained weights compress to ~33 %
with xz, the low bytes not at all (measured on a trained 23M checkpoint, lab/v2/README.md), so only the high plane
is compressed: 1.33 bytes per parameter in all, 0.67 of bf16.
"""
import hashlib
import json
import lzma
import os
import re
import shutil
import tarfile
from pathlib import Path

import numpy as np

MiB = 1 << 20
PIECE = int(os.environ.get("V2_PIECE_BYTES", 15 * MiB))  # smaller in the dry run, to get several pieces


def sha256(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(MiB):
            h.update(chunk)
    return h.hexdigest()


def read_sums(path) -> dict:
    """SHA256SUMS -> {name: sha256}."""
    sums = {}
    for line in Path(path).read_text().splitlines():
        if line.strip():
            digest, name = line.split(maxsplit=1)
            sums[name.strip()] = digest
    return sums


def write_sums(path, sums: dict):
    Path(path).write_text("".join(f"{d}  {n}\n" for n, d in sorted(sums.items())))


def cut(whole: Path, dst: Path, piece=PIECE) -> list:
    """whole -> dst/<name>.part000, ... ; returns [(piece path, sha256)]."""
    dst.mkdir(parents=True, exist_ok=True)
    out = []
    with open(whole, "rb") as src:
        i = 0
        while chunk := src.read(piece):
            p = dst / f"{whole.name}.part{i:03d}"
            p.write_bytes(chunk)
            out.append((p, hashlib.sha256(chunk).hexdigest()))
            i += 1
    return out


def pack_folders(wholes: list, dst: Path, capacity: int, first_extra: int = 0, piece=PIECE,
                 small: dict | None = None):
    """Cut every whole into pieces and pack them, in order, into dst/c0, c1, ... of at most `capacity` bytes each
    (c0 holds `first_extra` bytes less: what else travels with it). `small` files ({name: text}) go into every
    folder. Returns the folders."""
    if dst.exists():
        shutil.rmtree(dst)
    staging = dst / ".pieces"
    pieces, manifest, whole_sums = [], {}, {}
    for w in wholes:
        cs = cut(Path(w), staging, piece)
        pieces += cs
        manifest[Path(w).name] = len(cs)
        whole_sums[Path(w).name] = sha256(w)
    def room(i):
        return capacity - (first_extra if i == 0 else 0)
    folders, sums, used = [], [], 0
    for p, digest in pieces:
        size = p.stat().st_size
        if not folders or used + size > room(len(folders) - 1):
            folders.append(dst / f"c{len(folders)}")
            folders[-1].mkdir(parents=True)
            sums.append({})
            used = 0
            if size > room(len(folders) - 1):
                raise ValueError(f"a {size}-byte piece does not fit a {room(len(folders) - 1)}-byte call")
        shutil.move(p, folders[-1] / p.name)
        sums[-1][p.name] = digest
        used += size
    shutil.rmtree(staging)
    for f, s in zip(folders, sums):
        write_sums(f / "SHA256SUMS", {**s, **whole_sums})
        (f / "MANIFEST.json").write_text(json.dumps({"pieces": manifest}, indent=1) + "\n")
        for name, text in (small or {}).items():
            (f / name).write_text(text)
    return folders


def collect(src: Path, stage: Path) -> list:
    """Copy one folder's pieces into `stage` after checking each against its sum; merge SHA256SUMS and MANIFEST.
    Returns the names of the wholes that are now complete."""
    sums = read_sums(src / "SHA256SUMS")
    stage.mkdir(parents=True, exist_ok=True)
    for p in sorted(src.glob("*.part[0-9][0-9][0-9]")):
        if sha256(p) != sums.get(p.name):
            raise SystemExit(f"{p}: sha256 does not match SHA256SUMS (a broken transfer: carry it again)")
        shutil.copyfile(p, stage / p.name)
    for f in src.iterdir():  # small files (state.json, ...) ride along
        if f.is_file() and not re.search(r"\.part\d{3}$", f.name) and f.name not in ("SHA256SUMS", "MANIFEST.json"):
            shutil.copyfile(f, stage / f.name)
    sums = {**(read_sums(stage / "SHA256SUMS") if (stage / "SHA256SUMS").exists() else {}), **sums}
    write_sums(stage / "SHA256SUMS", sums)
    man = {}
    for m in (stage / "MANIFEST.json", src / "MANIFEST.json"):
        man.update(json.loads(m.read_text())["pieces"] if m.exists() else {})
    # `corpus --xfer` folders have no MANIFEST: such a whole is complete once its consecutive pieces hash to its sum
    for w in [w for w in sums if not re.search(r"\.part\d{3}$", w) and w not in man]:
        n = next(i for i in range(1000) if not (stage / f"{w}.part{i:03d}").exists())
        h = hashlib.sha256()
        for i in range(n):
            with open(stage / f"{w}.part{i:03d}", "rb") as f:
                while chunk := f.read(MiB):
                    h.update(chunk)
        if n and h.hexdigest() == sums[w]:
            man[w] = n
    (stage / "MANIFEST.json").write_text(json.dumps({"pieces": man}, indent=1) + "\n")
    return [w for w, n in man.items() if all((stage / f"{w}.part{i:03d}").exists() for i in range(n))]


def join(stage: Path, whole: str, dst: Path) -> Path:
    """Join a complete whole from `stage` into dst/<whole> and verify its sha256."""
    n = json.loads((stage / "MANIFEST.json").read_text())["pieces"][whole]
    sums = read_sums(stage / "SHA256SUMS")
    dst.mkdir(parents=True, exist_ok=True)
    out = dst / whole
    with open(out, "wb") as o:
        for i in range(n):
            p = stage / f"{whole}.part{i:03d}"
            if not p.exists():
                raise SystemExit(f"{whole}: piece {p.name} is missing from {stage} ({n} pieces expected)")
            with open(p, "rb") as f:
                shutil.copyfileobj(f, o)
    if sha256(out) != sums[whole]:
        raise SystemExit(f"{out}: sha256 of the joined pieces does not match SHA256SUMS")
    return out


# ---------------------------------------------------------------------------------------------- checkpoint codec

def _xz(data: bytes, block=16 * MiB) -> bytes:
    """xz in independent 16 MiB streams on every core (lzma releases the GIL); lzma.decompress reads the
    concatenation back as one."""
    from concurrent.futures import ThreadPoolExecutor
    blocks = [data[i:i + block] for i in range(0, len(data), block)]
    with ThreadPoolExecutor(os.cpu_count() or 1) as pool:
        return b"".join(pool.map(lambda b: lzma.compress(b, preset=6), blocks))


def encode_checkpoint(ckpt: Path, dst: Path, extra: dict | None = None) -> Path:
    """A checkpoint folder (config.json + model.safetensors, any float dtype) -> dst/ckpt.tar holding config.json,
    layout.json, weights.hi.xz, weights.lo and the `extra` small files."""
    import torch
    from safetensors.torch import load_file
    state = load_file(str(ckpt / "model.safetensors"))
    layout, hi, lo = [], [], []
    for name in sorted(state):
        t = state[name].to(torch.bfloat16).contiguous()
        b = t.view(torch.uint8).numpy().reshape(-1, 2)  # little-endian: byte 1 is sign + exponent
        lo.append(b[:, 0].tobytes())
        hi.append(b[:, 1].tobytes())
        layout.append({"name": name, "shape": list(t.shape)})
    work = dst / "ckpt.work"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    (work / "weights.hi.xz").write_bytes(_xz(b"".join(hi)))
    (work / "weights.lo").write_bytes(b"".join(lo))
    (work / "layout.json").write_text(json.dumps(layout))
    shutil.copyfile(ckpt / "config.json", work / "config.json")
    for name, text in (extra or {}).items():
        (work / name).write_text(text)
    out = dst / "ckpt.tar"
    with tarfile.open(out, "w") as tar:
        for f in sorted(work.iterdir()):
            tar.add(f, arcname=f.name)
    shutil.rmtree(work)
    return out


def decode_checkpoint(tar_path: Path, dst: Path) -> Path:
    """ckpt.tar -> dst/ (config.json, model.safetensors in bf16, and the small files that travelled with it)."""
    import torch
    from safetensors.torch import save_file
    dst.mkdir(parents=True, exist_ok=True)
    with tarfile.open(tar_path) as tar:
        tar.extractall(dst, filter="data")
    layout = json.loads((dst / "layout.json").read_text())
    hi = np.frombuffer(lzma.decompress((dst / "weights.hi.xz").read_bytes()), dtype=np.uint8)
    lo = np.frombuffer((dst / "weights.lo").read_bytes(), dtype=np.uint8)
    if len(hi) != len(lo):
        raise SystemExit(f"{tar_path}: weight planes differ in length ({len(hi)} vs {len(lo)})")
    state, at = {}, 0
    for t in layout:
        n = int(np.prod(t["shape"])) if t["shape"] else 1
        b = np.stack([lo[at:at + n], hi[at:at + n]], axis=1).copy()
        state[t["name"]] = torch.from_numpy(b).view(torch.bfloat16).reshape(t["shape"])
        at += n
    save_file(state, str(dst / "model.safetensors"), metadata={"format": "pt"})
    for f in ("weights.hi.xz", "weights.lo", "layout.json"):
        (dst / f).unlink()
    return dst
