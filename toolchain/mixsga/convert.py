"""mixSGA conversion: a dense Llama checkpoint becomes a model with E weight-shared KV experts per layer.

No K/V parameters are added: expert e (group size g) is the mean of g adjacent KV heads of the original
projection, computed on the fly. The only new parameters are one router per layer (linear hidden -> E,
He-initialised weights, zero bias). With every token on expert 0 the converted model is the original model.
"""
import torch

from mixsga.checkpoint import load_checkpoint, save_checkpoint
from mixsga.config import DEFAULT_GROUP_SIZES, DEFAULT_RATIOS, parse_ratios
from mixsga.errors import UserError
from mixsga.model import MixSGAForCausalLM


def convert(dense: MixSGAForCausalLM, group_sizes=DEFAULT_GROUP_SIZES, ratios=DEFAULT_RATIOS, seed=0):
    if dense.cfg.is_mixsga:
        raise UserError("model is already mixSGA-converted")
    cfg = dense.cfg.replace(expert_group_sizes=tuple(group_sizes), ratios=tuple(ratios))
    torch.manual_seed(seed)  # router init is the only randomness
    model = MixSGAForCausalLM(cfg).to(next(dense.parameters()).dtype)
    missing, unexpected = model.load_state_dict(dense.state_dict(), strict=False)
    assert not unexpected and all(k.endswith(("router.weight", "router.bias")) for k in missing), (missing, unexpected)
    return model


def run(args):
    ratios = parse_ratios(args.ratios)
    group_sizes = tuple(int(g) for g in args.group_sizes.split(","))
    dense = load_checkpoint(args.input)
    model = convert(dense, group_sizes, ratios, seed=args.seed)
    save_checkpoint(model, args.output)
    kv = [dense.cfg.num_kv_heads // g for g in group_sizes]
    print(f"converted {args.input} -> {args.output}: {model.cfg.num_layers} layers, experts with KV heads {kv}, "
          f"ratios {':'.join(f'{r:g}' for r in ratios)} = {model.cfg.kv_fraction():.0%} KV, "
          f"+{sum(p.numel() for n, p in model.named_parameters() if 'router' in n):,} router parameters")


def register(sub):
    p = sub.add_parser("convert", help="convert a dense HF Llama checkpoint to mixSGA (adds routers)")
    p.add_argument("input", help="folder with config.json + *.safetensors")
    p.add_argument("output", help="output checkpoint folder")
    p.add_argument("--group-sizes", default=",".join(map(str, DEFAULT_GROUP_SIZES)), help="default 1,2,4")
    p.add_argument("--ratios", default="3:1:6", help="capacity ratios for training, default 3:1:6 (50%% KV)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=run)
