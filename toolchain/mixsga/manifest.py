"""`manifest.json` of a model folder (docs/model-format.md): build it from a config, write it with the sha256 of
every other file in the folder, verify a folder against it."""
import hashlib
import json
from pathlib import Path

from mixsga.config import ModelConfig
from mixsga.errors import UserError

FORMAT = "mixsga-onnx"
FORMAT_VERSION = 2  # 2: prefill + in-graph decode loop, token-major per-expert caches
MANIFEST = "manifest.json"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")
FIM_TOKENS = {"prefix": "<fim_prefix>", "middle": "<fim_middle>", "suffix": "<fim_suffix>", "pad": "<fim_pad>",
              "file_sep": "<file_sep>"}


def sha256_file(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def fim_block(tokenizer_json: Path):
    """FIM token names and ids read from tokenizer.json's added tokens; None when the tokenizer has none."""
    added = {t["content"]: t["id"] for t in json.loads(Path(tokenizer_json).read_text()).get("added_tokens", [])}
    if not all(tok in added for tok in FIM_TOKENS.values()):
        return None
    block = dict(FIM_TOKENS)
    block.update({f"{k}_id": added[tok] for k, tok in FIM_TOKENS.items()})
    block["orderings"] = ["psm", "spm"]
    return block


def fim_for_vocab(block, vocab_size):
    """No FIM for a model whose embedding has no rows for the FIM ids (e.g. a stock 32000-row Llama)."""
    if block is None or max(block[f"{k}_id"] for k in FIM_TOKENS) >= vocab_size:
        return None
    return block


def build(name: str, cfg: ModelConfig, variants: dict, tokenizer_dir: Path) -> dict:
    """The manifest without "files" (filled in by write())."""
    tok_cfg = json.loads((tokenizer_dir / "tokenizer_config.json").read_text())
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "name": name,
        "architecture": {
            "type": "llama",
            "vocab_size": cfg.vocab_size,
            "hidden_size": cfg.hidden_size,
            "intermediate_size": cfg.intermediate_size,
            "num_layers": cfg.num_layers,
            "num_attention_heads": cfg.num_attention_heads,
            "num_kv_heads": cfg.num_kv_heads,
            "head_dim": cfg.head_dim,
            "rope_theta": cfg.rope_theta,
            "rms_norm_eps": cfg.rms_norm_eps,
            "max_position_embeddings": cfg.max_position_embeddings,
            "tie_word_embeddings": cfg.tie_word_embeddings,
        },
        "experts": [{"group_size": g, "kv_heads": h} for g, h in zip(cfg.expert_group_sizes, cfg.expert_kv_heads())],
        "default_ratios": list(cfg.ratios),
        "tokenizer": {"file": "tokenizer.json", "config": "tokenizer_config.json",
                      "bos_id": cfg.bos_token_id, "eos_id": cfg.eos_token_id,
                      "add_bos": bool(tok_cfg.get("add_bos_token", True))},
        "fim": fim_for_vocab(fim_block(tokenizer_dir / "tokenizer.json"), cfg.vocab_size),
        "variants": variants,
    }


def write(folder, manifest: dict) -> dict:
    """Adds "files" (sha256 of every file in the folder but manifest.json, sorted by name) and writes it."""
    folder = Path(folder)
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.name != MANIFEST)
    manifest = dict(manifest)
    manifest["files"] = {p.relative_to(folder).as_posix(): sha256_file(p) for p in files}
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def read(folder) -> dict:
    """The folder's manifest, its format checked; raises UserError naming the problem."""
    path = Path(folder) / MANIFEST
    if not path.exists():
        raise UserError(f"no {MANIFEST} in {folder}")
    try:
        m = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise UserError(f"{path} is not valid JSON: {e}") from None
    if not isinstance(m, dict) or m.get("format") != FORMAT or m.get("format_version") != FORMAT_VERSION:
        got = m if isinstance(m, dict) else {}
        raise UserError(f"{path}: unknown format {got.get('format')!r} version {got.get('format_version')!r} "
                        f"(this toolchain reads {FORMAT} version {FORMAT_VERSION}; re-export the model with "
                        "`python -m mixsga export`)")
    return m


def verify(folder) -> dict:
    """Checks format, that every variant and tokenizer file is listed, and every listed file's sha256.
    Raises UserError naming the first problem; returns the manifest."""
    folder = Path(folder)
    m = read(folder)
    path = folder / MANIFEST
    files = m.get("files") or {}
    needed = [m["tokenizer"]["file"], m["tokenizer"]["config"]] + [v["file"] for v in m["variants"].values()]
    for f in needed:
        if f not in files:
            raise UserError(f"{path}: \"files\" has no sha256 for {f}")
    for f, want in files.items():
        p = folder / f
        if not p.exists():
            raise UserError(f"{f}: listed in {MANIFEST} but missing from {folder}")
        got = sha256_file(p)
        if got != want:
            raise UserError(f"{f}: sha256 mismatch (manifest {want}, file {got})")
    return m
