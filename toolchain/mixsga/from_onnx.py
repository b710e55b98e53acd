"""`python -m mixsga from_onnx MODEL_DIR OUT`: a Hugging Face-format checkpoint from a shipped model folder.

Training checkpoints are not kept between GPU sessions (only the exported model ships), so continued-training
studies start from the weights in the model's fp16/fp32 ONNX file. This inverts `onnx_graph.ModelWeights` for
unquantised variants: packed q|K|V is split back into q_proj/k_proj/v_proj, every linear is transposed back to
[out, in], the routers' biases come from the [L, E] constant the graph adds after its router MatMul.
"""
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import numpy_helper

from mixsga.checkpoint import save_checkpoint
from mixsga.config import ModelConfig
from mixsga.errors import UserError
from mixsga.manifest import verify
from mixsga.model import MixSGAForCausalLM


def config_from_manifest(m: dict) -> ModelConfig:
    a = m["architecture"]
    return ModelConfig(
        vocab_size=a["vocab_size"], hidden_size=a["hidden_size"], intermediate_size=a["intermediate_size"],
        num_layers=a["num_layers"], num_attention_heads=a["num_attention_heads"], num_kv_heads=a["num_kv_heads"],
        head_dim=a["head_dim"], rope_theta=a["rope_theta"], rms_norm_eps=a["rms_norm_eps"],
        max_position_embeddings=a["max_position_embeddings"], tie_word_embeddings=a["tie_word_embeddings"],
        expert_group_sizes=tuple(e["group_size"] for e in m["experts"]), ratios=tuple(m["default_ratios"]))


def _router_bias(graph, num_layers, num_experts):
    """The [L, E] float constant holding every layer's router bias (the only initializer of that shape)."""
    found = [i for i in graph.initializer if list(i.dims) == [num_layers, num_experts] and i.data_type == 1]
    if len(found) != 1:
        raise UserError(f"expected one [{num_layers}, {num_experts}] router-bias constant, found {len(found)}")
    return numpy_helper.to_array(found[0])


def state_dict_from_onnx(path: Path, cfg: ModelConfig) -> dict:
    graph = onnx.load(str(path)).graph
    inits = {i.name: i for i in graph.initializer}

    def get(name):
        if name not in inits:
            raise UserError(f"{path.name} has no initializer {name!r}: only unquantised (float16/float32) "
                            "variants can be read back")
        return torch.from_numpy(numpy_helper.to_array(inits[name]).astype(np.float32))

    nq, H = cfg.num_attention_heads * cfg.head_dim, cfg.num_kv_heads * cfg.head_dim
    sd = {"model.embed_tokens.weight": get("embed"), "model.norm.weight": get("norm")}
    bias = _router_bias(graph, cfg.num_layers, cfg.num_experts) if cfg.is_mixsga else None
    for l in range(cfg.num_layers):
        p, a = f"model.layers.{l}.", f"model.layers.{l}.self_attn."
        qkv = get(p + "qkv").T  # [nq + 2H, hidden]
        sd[a + "q_proj.weight"], sd[a + "k_proj.weight"], sd[a + "v_proj.weight"] = qkv.split([nq, H, H])
        sd[a + "o_proj.weight"] = get(p + "o").T
        sd[p + "mlp.gate_proj.weight"] = get(p + "gate").T
        sd[p + "mlp.up_proj.weight"] = get(p + "up").T
        sd[p + "mlp.down_proj.weight"] = get(p + "down").T
        sd[p + "input_layernorm.weight"] = get(p + "ln_in")
        sd[p + "post_attention_layernorm.weight"] = get(p + "ln_post")
        if cfg.is_mixsga:
            sd[a + "router.weight"] = get(p + "router").T
            sd[a + "router.bias"] = torch.from_numpy(bias[l].astype(np.float32))
    return {k: v.contiguous() for k, v in sd.items()}


def model_from_onnx(model_dir, variant="cuda") -> MixSGAForCausalLM:
    model_dir = Path(model_dir)
    manifest = verify(model_dir)  # every file against its sha256
    v = manifest["variants"].get(variant)
    if v is None:
        raise UserError(f"{model_dir} has no {variant!r} variant")
    if v.get("weights", "float32") not in ("float16", "float32"):
        raise UserError(f"the {variant} variant stores {v['weights']} weights; read the float16/float32 variant")
    cfg = config_from_manifest(manifest)
    model = MixSGAForCausalLM(cfg)
    sd = state_dict_from_onnx(model_dir / v["file"], cfg)
    if cfg.tie_word_embeddings:
        sd["lm_head.weight"] = sd["model.embed_tokens.weight"]
    model.load_state_dict(sd, strict=True)
    return model


def run(args):
    model = model_from_onnx(args.model_dir, args.variant)
    save_checkpoint(model, args.out)
    print(f"[from_onnx] {args.model_dir} ({args.variant}) -> {args.out}: {model.num_params():,} parameters")
    return 0


def register(sub):
    p = sub.add_parser("from_onnx", help="checkpoint from a model folder's unquantised ONNX file")
    p.add_argument("model_dir")
    p.add_argument("out")
    p.add_argument("--variant", default="cuda", help="variant with float16/float32 weights (default cuda)")
    p.set_defaults(func=run)
