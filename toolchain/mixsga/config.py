"""Model configuration, read from and written to a Hugging Face Llama `config.json` (plus a `mixsga` block)."""
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

from mixsga.errors import UserError

# Paper default: 3 experts with group sizes 1, 2, 4 (H, H/2, H/4 KV heads) at capacity 3:1:6 (= 50% KV).
DEFAULT_GROUP_SIZES = (1, 2, 4)
DEFAULT_RATIOS = (0.3, 0.1, 0.6)


@dataclass
class ModelConfig:
    vocab_size: int = 32008
    hidden_size: int = 384
    intermediate_size: int = 1024
    num_layers: int = 8
    num_attention_heads: int = 8
    num_kv_heads: int = 4
    head_dim: int = 48
    rope_theta: float = 10000.0
    rms_norm_eps: float = 1e-5
    max_position_embeddings: int = 2048
    tie_word_embeddings: bool = False
    # mixSGA: empty tuple = a dense (unconverted) model with no routers.
    expert_group_sizes: tuple = ()
    ratios: tuple = DEFAULT_RATIOS
    # Age-aware KV policy (kv_policy.policy spec, e.g. "band=32,stores=g1-int8|g1-int4|g2-int4"): a model
    # trained to read old tokens through routed stores; its routers score the stores. Empty = none.
    kv_policy: str = ""
    bos_token_id: int = 1
    eos_token_id: int = 2

    def __post_init__(self):
        self.expert_group_sizes = tuple(int(g) for g in self.expert_group_sizes)
        self.ratios = tuple(float(r) for r in self.ratios)
        if self.num_attention_heads % self.num_kv_heads:
            raise UserError(f"num_attention_heads ({self.num_attention_heads}) must be a multiple of "
                            f"num_key_value_heads ({self.num_kv_heads})")
        if self.head_dim % 2:
            raise UserError(f"head_dim must be even for RoPE, got {self.head_dim}")
        for g in self.expert_group_sizes:
            if g < 1 or self.num_kv_heads % g:
                raise UserError(f"expert group size {g} does not divide num_key_value_heads ({self.num_kv_heads})")
        if self.expert_group_sizes:
            if len(self.ratios) != len(self.expert_group_sizes):
                raise UserError(f"{len(self.ratios)} capacity ratios for {len(self.expert_group_sizes)} experts")
            if any(r < 0 for r in self.ratios) or not math.isclose(sum(self.ratios), 1.0, abs_tol=1e-6):
                raise UserError(f"capacity ratios must be >= 0 and sum to 1, got {self.ratios}")

    @property
    def is_mixsga(self) -> bool:
        return bool(self.expert_group_sizes)

    @property
    def num_experts(self) -> int:
        return len(self.expert_group_sizes)

    @property
    def router_outputs(self) -> int:
        """Scores per token of a layer's router: one per mixSGA expert, or per store of the KV policy."""
        if self.kv_policy:
            from mixsga.kv_policy import policy
            pol = policy(self.kv_policy)
            return 1 if pol.by_age else len(pol.stores)  # an age cascade routes nothing (its router is unused)
        return self.num_experts

    def expert_kv_heads(self) -> list:
        return [self.num_kv_heads // g for g in self.expert_group_sizes]

    def kv_fraction(self, ratios=None) -> float:
        """Average per-token KV size relative to the dense model: sum_e rho_e / g_e (paper section 4)."""
        ratios = self.ratios if ratios is None else ratios
        return sum(r / g for r, g in zip(ratios, self.expert_group_sizes))

    # ---- Hugging Face config.json -------------------------------------------------------------------

    @classmethod
    def from_hf_dict(cls, d: dict) -> "ModelConfig":
        arch = d.get("architectures") or ["LlamaForCausalLM"]
        if d.get("model_type", "llama") != "llama" or arch[0] != "LlamaForCausalLM":
            raise UserError(f"unsupported architecture {arch[0]!r} (model_type {d.get('model_type')!r}): "
                            "only LlamaForCausalLM checkpoints are supported")
        if d.get("rope_scaling") not in (None, {}) and (d["rope_scaling"] or {}).get("rope_type", "default") != "default":
            raise UserError(f"unsupported rope_scaling {d['rope_scaling']}")
        for key in ("attention_bias", "mlp_bias"):
            if d.get(key):
                raise UserError(f"unsupported config: {key}=true")
        if d.get("hidden_act", "silu") != "silu":
            raise UserError(f"unsupported hidden_act {d['hidden_act']!r} (Llama uses silu)")
        try:
            heads = d["num_attention_heads"]
            hidden = d["hidden_size"]
            rope_params = d.get("rope_parameters") or {}
            m = d.get("mixsga") or {}
            return cls(
                vocab_size=d["vocab_size"],
                hidden_size=hidden,
                intermediate_size=d["intermediate_size"],
                num_layers=d["num_hidden_layers"],
                num_attention_heads=heads,
                num_kv_heads=d.get("num_key_value_heads") or heads,
                head_dim=d.get("head_dim") or hidden // heads,
                rope_theta=float(d.get("rope_theta", rope_params.get("rope_theta", 10000.0))),
                rms_norm_eps=float(d.get("rms_norm_eps", 1e-6)),
                max_position_embeddings=d.get("max_position_embeddings", 2048),
                tie_word_embeddings=bool(d.get("tie_word_embeddings", False)),
                expert_group_sizes=tuple(m.get("group_sizes", ())),
                ratios=tuple(m.get("ratios", DEFAULT_RATIOS)),
                kv_policy=d.get("kv_policy", ""),
                bos_token_id=d.get("bos_token_id", 1) if d.get("bos_token_id") is not None else 1,
                eos_token_id=d.get("eos_token_id", 2) if isinstance(d.get("eos_token_id", 2), int) else 2,
            )
        except KeyError as e:
            raise UserError(f"config.json lacks required key {e.args[0]!r}") from None

    def to_hf_dict(self) -> dict:
        d = {
            "architectures": ["LlamaForCausalLM"],
            "model_type": "llama",
            "vocab_size": self.vocab_size,
            "hidden_size": self.hidden_size,
            "intermediate_size": self.intermediate_size,
            "num_hidden_layers": self.num_layers,
            "num_attention_heads": self.num_attention_heads,
            "num_key_value_heads": self.num_kv_heads,
            "head_dim": self.head_dim,
            "hidden_act": "silu",
            "rope_theta": self.rope_theta,
            "rms_norm_eps": self.rms_norm_eps,
            "max_position_embeddings": self.max_position_embeddings,
            "tie_word_embeddings": self.tie_word_embeddings,
            "attention_bias": False,
            "mlp_bias": False,
            "bos_token_id": self.bos_token_id,
            "eos_token_id": self.eos_token_id,
            "torch_dtype": "float32",
        }
        if self.is_mixsga:
            d["mixsga"] = {"group_sizes": list(self.expert_group_sizes), "ratios": list(self.ratios)}
        if self.kv_policy:
            d["kv_policy"] = self.kv_policy
        return d

    @classmethod
    def load(cls, path) -> "ModelConfig":
        path = Path(path)
        f = path / "config.json" if path.is_dir() else path
        if not f.exists():
            raise UserError(f"no config.json in {path}")
        try:
            return cls.from_hf_dict(json.loads(f.read_text()))
        except json.JSONDecodeError as e:
            raise UserError(f"{f} is not valid JSON: {e}") from None

    def save(self, path):
        Path(path).mkdir(parents=True, exist_ok=True)
        (Path(path) / "config.json").write_text(json.dumps(self.to_hf_dict(), indent=2) + "\n")

    def replace(self, **kw) -> "ModelConfig":
        d = asdict(self)
        d.update(kw)
        return ModelConfig(**d)


def parse_ratios(text: str) -> tuple:
    """'3:1:6' or '0.3,0.1,0.6' -> normalised tuple of floats."""
    parts = text.replace(",", ":").split(":")
    try:
        vals = [float(p) for p in parts]
    except ValueError:
        raise UserError(f"bad ratios {text!r}: expected numbers like 3:1:6") from None
    if any(v < 0 for v in vals) or sum(vals) <= 0:
        raise UserError(f"bad ratios {text!r}: must be non-negative and not all zero")
    s = sum(vals)
    return tuple(v / s for v in vals)


__all__ = ["ModelConfig", "parse_ratios", "DEFAULT_GROUP_SIZES", "DEFAULT_RATIOS"]
