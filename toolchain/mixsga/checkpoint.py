"""Read and write checkpoints in Hugging Face format: `config.json` + `*.safetensors` (one file, or shards
listed in `model.safetensors.index.json`). Every expected tensor is checked by name and shape, and a broken
checkpoint fails with a message that names the tensor."""
import json
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from mixsga.config import ModelConfig
from mixsga.errors import UserError
from mixsga.model import MixSGAForCausalLM

INDEX = "model.safetensors.index.json"


def _weight_files(path: Path) -> list:
    if (path / INDEX).exists():
        try:
            index = json.loads((path / INDEX).read_text())
            files = sorted(set(index["weight_map"].values()))
        except (json.JSONDecodeError, KeyError) as e:
            raise UserError(f"{path / INDEX} is not a valid safetensors index: {e}") from None
        missing = [f for f in files if not (path / f).exists()]
        if missing:
            raise UserError(f"shard {missing[0]} listed in {INDEX} is missing from {path}")
        return [path / f for f in files]
    files = sorted(path.glob("*.safetensors"))
    if not files:
        if list(path.glob("*.bin")) or list(path.glob("*.pt")):
            raise UserError(f"{path} holds only PyTorch pickle weights (*.bin/*.pt); convert them to safetensors")
        raise UserError(f"no *.safetensors weights in {path}")
    return files


def read_state_dict(path) -> dict:
    state = {}
    for f in _weight_files(Path(path)):
        try:
            state.update(load_file(str(f)))
        except (SafetensorError, OSError) as e:
            raise UserError(f"cannot read {f.name}: {e}") from None
    return state


def load_checkpoint(path, dtype=torch.float32, device="cpu", strict=True) -> MixSGAForCausalLM:
    """A HF LlamaForCausalLM checkpoint or one of ours (same layout plus routers)."""
    path = Path(path)
    if not path.is_dir():
        raise UserError(f"checkpoint folder {path} does not exist")
    cfg = ModelConfig.load(path)
    state = read_state_dict(path)
    state.pop("lm_head.weight", None) if cfg.tie_word_embeddings else None
    with torch.device("meta"):
        model = MixSGAForCausalLM(cfg)
    expected = {k: v for k, v in model.state_dict().items() if not (cfg.tie_word_embeddings and k == "lm_head.weight")}
    for name, ref in expected.items():
        if name not in state:
            raise UserError(f"checkpoint {path} is missing tensor {name!r} (expected shape {list(ref.shape)})")
        if tuple(state[name].shape) != tuple(ref.shape):
            raise UserError(f"tensor {name!r} has shape {list(state[name].shape)}, expected {list(ref.shape)} "
                            "from config.json")
    extra = sorted(set(state) - set(expected) - {k for k in state if k.endswith("rotary_emb.inv_freq")})
    if extra and strict:
        raise UserError(f"checkpoint {path} has unexpected tensor {extra[0]!r} ({len(extra)} unexpected in all)")
    model = model.to_empty(device=device)
    model.load_state_dict({k: state[k].to(dtype) for k in expected}, strict=False, assign=False)
    if cfg.tie_word_embeddings:
        model.lm_head.weight = model.model.embed_tokens.weight
    return model.to(dtype)


def save_checkpoint(model: MixSGAForCausalLM, path, extra_files: dict = None):
    """config.json + model.safetensors (tied lm_head stored once, as HF does)."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    model.cfg.save(path)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    if model.cfg.tie_word_embeddings:
        state.pop("lm_head.weight", None)
    save_file(state, str(path / "model.safetensors"), metadata={"format": "pt"})
    for name, text in (extra_files or {}).items():
        (path / name).write_text(text)
