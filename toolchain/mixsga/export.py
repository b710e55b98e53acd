"""`python -m mixsga export CKPT OUT`: a mixSGA checkpoint becomes a model folder (docs/model-format.md):
manifest.json, model.cpu.onnx (fp32; or int8/int4 weights with --cpu-weights), model.cuda.onnx (--cuda: fp16
weights, or int4 weights with --cuda-weights int4; fp16 activations and KV, fp32 logits), tokenizer.json +
tokenizer_config.json. The graphs are built by
`mixsga.onnx_graph` (prefill chunk + in-graph greedy decode loop).

A dense (unconverted) checkpoint is converted on the fly with the default experts (1, 2, 4) and freshly
initialised routers, and a warning says so: such routers are untrained, so route quality is arbitrary.
`python -m mixsga export --verify DIR` checks a folder's sha256s against its manifest.
"""
import shutil
import time
from pathlib import Path

import torch

from mixsga import manifest as mf
from mixsga.checkpoint import load_checkpoint
from mixsga.errors import UserError
from mixsga.onnx_graph import INT4_ACCURACY, INT4_BLOCK, INT4_BLOCKS, build

ASSETS = Path(__file__).parent / "assets"
PROTO_LIMIT = 1_800_000_000  # bytes of weights above which the graph is saved with external data (< 2 GB protobuf)


def export_onnx(model, path, dtype="float32", weights="float32", external_data=None, embedding="auto",
                attention="auto", int4_block=INT4_BLOCK, int4_accuracy=INT4_ACCURACY) -> list:
    """Builds the graph of one variant into `path`. Returns the files written (the graph, plus `<name>.data`
    with external data). external_data=None: only when the weights need it. attention, int4_*: onnx_graph.build's."""
    import onnx

    path = Path(path)
    try:
        proto = build(model.eval(), dtype, weights, embedding=embedding, attention=attention, int4_block=int4_block,
                      int4_accuracy=int4_accuracy)
    except ValueError as e:
        raise UserError(str(e)) from None
    n_bytes = sum(t.ByteSize() for t in proto.graph.initializer)
    if external_data is None:
        external_data = n_bytes > PROTO_LIMIT
    data = path.name + ".data"
    for f in (path, path.with_name(data)):
        f.unlink(missing_ok=True)
    if external_data:
        onnx.save_model(proto, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                        location=data, size_threshold=1024)
        return [path, path.with_name(data)]
    onnx.save_model(proto, str(path))
    return [path]


def copy_tokenizer(out: Path, wait_s=0):
    src = [ASSETS / f for f in mf.TOKENIZER_FILES]
    deadline = time.time() + wait_s
    while not all(f.exists() for f in src) and time.time() < deadline:
        time.sleep(5)
    for f in src:
        if not f.exists():
            raise UserError(f"tokenizer asset {f} is missing (built by scripts/build-tokenizer.mjs)")
        shutil.copyfile(f, out / f.name)


def load_mixsga(path, dtype=torch.float32, device="cpu"):
    """(model in the graph's mixSGA form, the KV policy the manifest declares or '')."""
    model = load_checkpoint(path, dtype=dtype, device=device)
    if model.cfg.kv_policy:
        return age_cascade_model(model)
    if not model.cfg.is_mixsga:
        from mixsga.convert import convert

        print(f"warning: {path} is a dense checkpoint; converting on the fly with experts (1, 2, 4) and "
              "untrained routers (use `python -m mixsga convert` + training for a real model)")
        model = convert(model)
    return model.eval(), ""


def age_cascade_model(model):
    """A model trained for an age cascade (kv_policy 'order=age') routes nothing: every new token is written at
    full heads (expert 0) and the engine demotes tokens by age (the manifest's `kv_policy`). The graph keeps the
    default experts, whose pooled heads serve a cascade's pooled tiers, with routers pinned to expert 0 (zero
    weights; a bias the engine's route_bias never overcomes)."""
    from mixsga import kv_policy
    from mixsga.convert import convert

    spec = model.cfg.kv_policy
    if not kv_policy.policy(spec).by_age:
        raise UserError(f"kv_policy {spec!r} routes tokens by a router: only an age cascade (order=age) exports")
    model = convert(kv_policy.strip_routers(model))
    with torch.no_grad():
        for layer in model.model.layers:
            layer.self_attn.router.weight.zero_()
            layer.self_attn.router.bias.copy_(torch.tensor([0.0] + [-PINNED_BIAS] * (model.cfg.num_experts - 1)))
    return model.eval(), spec


PINNED_BIAS = 30.0  # router logit margin of expert 0 in an age-cascade export


def variant_entry(file, kv_dtype, weights, int4_block, int4_accuracy) -> dict:
    """A manifest variant; one holding MatMulNBits weights records their block size and accuracy level."""
    v = {"file": file, "kv_dtype": kv_dtype, "weights": weights}
    if weights in ("int4", "mixed"):
        v.update(int4_block=int4_block, int4_accuracy_level=int4_accuracy)
    return v


def check_min_cpu_cores(n):
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
        raise UserError(f"--min-cpu-cores must be a positive integer (got {n!r})")
    return n


def export_folder(ckpt, out, name=None, cuda=False, cpu_weights="float32", device="cpu", wait_tokenizer_s=0,
                  cpu=True, cpu_embedding="auto", cpu_attention="auto", cuda_weights="float16",
                  int4_block=INT4_BLOCK, int4_accuracy=INT4_ACCURACY, min_cpu_cores=None):
    """min_cpu_cores: the manifest's optional field (docs/model-format.md); None leaves it out."""
    check_min_cpu_cores(min_cpu_cores)
    if cuda_weights not in ("float16", "int4"):
        raise UserError(f"--cuda-weights must be float16 or int4 (got {cuda_weights!r})")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    timings = {}
    t = time.time()
    model, kv_policy_spec = load_mixsga(ckpt, device=device)
    timings["load_s"] = time.time() - t
    variants = {}
    for f in out.glob("model.*.onnx*"):  # stale variants from an earlier export
        f.unlink()
    if cpu:
        t = time.time()
        export_onnx(model, out / "model.cpu.onnx", "float32", cpu_weights, embedding=cpu_embedding,
                    attention=cpu_attention, int4_block=int4_block, int4_accuracy=int4_accuracy)
        timings["export_cpu_s"] = time.time() - t
        variants["cpu"] = variant_entry("model.cpu.onnx", "float32", cpu_weights, int4_block, int4_accuracy)
    if cuda:
        t = time.time()
        export_onnx(model, out / "model.cuda.onnx", "float16", cuda_weights, int4_block=int4_block,
                    int4_accuracy=int4_accuracy)
        timings["export_cuda_s"] = time.time() - t
        variants["cuda"] = variant_entry("model.cuda.onnx", "float16", cuda_weights, int4_block, int4_accuracy)
    copy_tokenizer(out, wait_tokenizer_s)
    manifest = mf.build(name or out.name, model.cfg, variants, out)
    if kv_policy_spec:
        manifest["kv_policy"] = kv_policy_spec
    if min_cpu_cores is not None:
        manifest["min_cpu_cores"] = min_cpu_cores
    m = mf.write(out, manifest)
    return m, timings


def run(args):
    if args.verify:
        m = mf.verify(args.verify)
        print(f"{args.verify}: OK ({len(m['files'])} files match manifest.json)")
        return 0
    if not args.checkpoint or not args.output:
        raise UserError("usage: python -m mixsga export CHECKPOINT OUTPUT [--cuda] | --verify DIR")
    device = args.device
    if device == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda but torch sees no CUDA device")
    if args.skip_cpu and not args.cuda:
        raise UserError("--skip-cpu needs --cuda (a model folder needs at least one variant)")
    if args.cuda_weights != "float16" and not args.cuda:
        raise UserError("--cuda-weights needs --cuda")
    m, timings = export_folder(args.checkpoint, args.output, args.name, args.cuda, args.cpu_weights, device,
                               args.wait_tokenizer, cpu=not args.skip_cpu, cpu_embedding=args.cpu_embedding,
                               cpu_attention=args.cpu_attention, cuda_weights=args.cuda_weights,
                               int4_block=args.int4_block, int4_accuracy=args.int4_accuracy,
                               min_cpu_cores=args.min_cpu_cores)
    sizes = {f: (Path(args.output) / f).stat().st_size for f in m["files"]}
    print(f"exported {args.checkpoint} -> {args.output}: " +
          ", ".join(f"{f} {s / 1e6:.1f} MB" for f, s in sizes.items()) +
          " | " + ", ".join(f"{k} {v:.1f}" for k, v in timings.items()))
    if args.timings_json:
        import json

        Path(args.timings_json).write_text(json.dumps({"timings_s": timings, "sizes_bytes": sizes}, indent=1))


def _positive_int(text):
    import argparse

    try:
        return check_min_cpu_cores(int(text))
    except (ValueError, UserError):
        raise argparse.ArgumentTypeError(f"must be a positive integer (got {text!r})") from None


def register(sub):
    p = sub.add_parser("export", help="checkpoint -> ONNX model folder with manifest")
    p.add_argument("checkpoint", nargs="?", help="mixSGA checkpoint folder (a dense one is converted on the fly)")
    p.add_argument("output", nargs="?", help="model folder to write")
    p.add_argument("--name", help="manifest name (default: output folder name)")
    p.add_argument("--cuda", action="store_true", help="also write model.cuda.onnx (fp16 activations and KV)")
    p.add_argument("--cuda-weights", choices=["float16", "int4"], default="float16",
                   help="weights of model.cuda.onnx: float16 (default) or int4 (MatMulNBits with fp16 activations; "
                        "embedding/lm_head, routers and norms stay fp16)")
    p.add_argument("--cpu-weights", choices=["float32", "int8", "int4", "mixed"], default="float32",
                   help="weights of model.cpu.onnx: float32 (default), int8 (DynamicQuantizeMatMul), int4 "
                        "(MatMulNBits), mixed (int8, the MLP down projections int4)")
    p.add_argument("--cpu-embedding", choices=["auto", "int8", "float32"], default="auto",
                   help="with --cpu-weights int8|int4|mixed and tied embeddings: store the embedding/lm_head matrix once "
                        "as int8 with one scale per vocab row (auto = int8 when tied; float32 = keep it fp32)")
    p.add_argument("--cpu-attention", choices=["auto", "compact", "expand"], default="auto",
                   help="attention of model.cpu.onnx: compact (auto: over the per-expert caches as stored, work follows "
                        "the bytes held) or expand (every cache expanded to H heads, one GroupQueryAttention per layer: "
                        "the CUDA variant's, kept for comparisons)")
    p.add_argument("--int4-block", type=int, choices=INT4_BLOCKS, default=INT4_BLOCK,
                   help=f"MatMulNBits block size of int4 weights (CPU int4/mixed, CUDA int4; default {INT4_BLOCK})")
    p.add_argument("--int4-accuracy", type=int, choices=range(5), default=INT4_ACCURACY, metavar="0..4",
                   help="MatMulNBits accuracy_level: 4 = int8 activations inside the CPU kernel (default), 0 = unset "
                        "(compute in the activations' type); a CPU EP setting")
    p.add_argument("--min-cpu-cores", type=_positive_int, metavar="N",
                   help="write the manifest's min_cpu_cores (fewest CPU cores the model is fast enough on)")
    p.add_argument("--skip-cpu", action="store_true", help="with --cuda: write only model.cuda.onnx")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="device the checkpoint is loaded on (export itself runs on the CPU)")
    p.add_argument("--wait-tokenizer", type=float, default=0, metavar="S",
                   help="wait up to S seconds for the tokenizer assets to appear")
    p.add_argument("--timings-json", metavar="FILE", help="also write step timings and file sizes as JSON")
    p.add_argument("--verify", metavar="DIR", help="check DIR's files against its manifest.json and exit")
    p.set_defaults(func=run)
