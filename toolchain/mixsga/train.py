"""`train`: dense pretraining from scratch, or continued pretraining of a (mixSGA-converted) checkpoint.

    python -m mixsga train --init scratch --model-size default --data SHARDS --out runs/dense --time-budget-min 8
    python -m mixsga train --init runs/mix0 --data SHARDS --out runs/mix --ratios 3:1:6 --lr 3e-4
    torchrun --nproc_per_node=N -m mixsga train ...          # DDP, one process per GPU

A mixSGA checkpoint trains with progressive expert-choice routing at --ratios plus alpha * consistency loss
(paper Eq. 5). Ablations: --router-lm-grad (straight-through LM gradient into the router, a departure from the
paper), --random-router (a fixed random assignment with the target ratios, routers unused), --static-group G
(every token on the group-size-G expert: the trained static GQA baseline).

The LR schedule (linear warmup, cosine to 10%) runs on progress = max(step / max_steps, time / time_budget),
so a time-budgeted run anneals fully and stops cleanly, saving a resumable checkpoint (--resume).

A run longer than one GPU session (lab/v2) continues by a warm restart instead of carrying the optimizer state:
--init the last weights with --start-step N (step counter, LR-schedule and data position continue from N; a fresh
AdamW, its LR ramped back over --rewarm-steps); --stop-after-min ends a session's share without touching the
schedule.

Out dir: log.jsonl, ckpt/ (config.json + model.safetensors + trainer_state.pt).
"""
import json
import math
import os
import shutil
import time
from contextlib import nullcontext
from pathlib import Path

os.environ.setdefault("NCCL_NVLS_ENABLE", "0")  # NVLink multicast off (the lent GPUs do not support it)

import numpy as np
import torch
import torch.distributed as dist

from mixsga.checkpoint import load_checkpoint, save_checkpoint
from mixsga.config import ModelConfig, parse_ratios
from mixsga.data import Batches, Prefetcher, fixed_windows
from mixsga.errors import UserError
from mixsga import kv_policy
from mixsga.model import MixSGAForCausalLM, Routing
from mixsga.routing import capacities

# Sizes are picked in docs/training.md: ~23M parameters fit the 80 MB model budget (fp16 + int8 copies).
PRESETS = {
    "tiny": dict(hidden_size=64, intermediate_size=128, num_layers=2, num_attention_heads=4, num_kv_heads=4,
                 head_dim=16, max_position_embeddings=256, tie_word_embeddings=True),
    "small": dict(hidden_size=256, intermediate_size=512, num_layers=6, num_attention_heads=8, num_kv_heads=4,
                  head_dim=32, max_position_embeddings=2048, tie_word_embeddings=True),
    "default": dict(hidden_size=384, intermediate_size=768, num_layers=8, num_attention_heads=8, num_kv_heads=4,
                    head_dim=48, max_position_embeddings=2048, tie_word_embeddings=True),
}
DEFAULT_AUX_WEIGHT = 0.1  # alpha; why: docs/training.md ("consistency loss weight")


# ---------------------------------------------------------------------------------------------- setup

def setup_distributed():
    """(rank, world_size, local_rank, device) from torchrun's environment; a plain run is rank 0 of 1."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available():
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return rank, world, device


def build_model(args, rank):
    if args.init == "scratch":
        cfg = dict(PRESETS[args.model_size])
        if args.config_json:
            try:
                cfg.update(json.loads(args.config_json))
            except json.JSONDecodeError as e:
                raise UserError(f"--config-json is not valid JSON: {e}") from None
        try:
            cfg = ModelConfig(**cfg)
        except TypeError as e:
            raise UserError(f"--config-json: {e}") from None
        return MixSGAForCausalLM(cfg).init_weights(seed=args.seed)
    model = load_checkpoint(args.init)
    if args.strip_routers:
        kv_policy.strip_routers(model)
    if args.kv_policy:
        kv_policy.attach(model, args.kv_policy)
    if args.ratios:
        if not model.cfg.is_mixsga:
            raise UserError(f"--ratios given but {args.init} is a dense checkpoint; run `convert` first")
        model.cfg = model.cfg.replace(ratios=parse_ratios(args.ratios))
        for layer in model.model.layers:
            layer.self_attn.cfg = model.cfg
    return model


def make_routing(args, cfg, B, S, step, micro, device):
    """The routing for one micro-batch."""
    if cfg.kv_policy:
        # budget-conditioned: micro-batches cycle through the budgets, so one router serves all of them
        budgets = [float(b) for b in args.policy_budgets.split(",")]
        b = budgets[(step * 1009 + micro) % len(budgets)]
        pol, ratios = kv_policy.for_budget(kv_policy.policy(cfg.kv_policy), b, S, cfg.num_kv_heads, cfg.head_dim)
        return Routing("policy", policy=pol, ratios=ratios, straight_through=args.router_lm_grad)
    if not cfg.is_mixsga:
        if args.static_group:
            raise UserError("--static-group needs a converted (mixSGA) checkpoint")
        return Routing("dense")
    if args.static_group:
        e = cfg.expert_group_sizes.index(args.static_group)
        return Routing("fixed", experts=torch.full((B, S), e, dtype=torch.long, device=device))
    if args.random_router:
        # exact target counts per sequence, positions shuffled: the paper's "random router (fixed 3:1:6)"
        g = torch.Generator().manual_seed(hash((args.seed, step, micro)) % 2**31)
        base = torch.cat([torch.full((k,), e) for e, k in enumerate(capacities(S, cfg.ratios))])
        ex = torch.stack([base[torch.randperm(S, generator=g)] for _ in range(B)])
        return Routing("fixed", experts=ex.to(device))
    return Routing("expert_choice", ratios=cfg.ratios, straight_through=args.router_lm_grad)


def param_groups(model, wd):
    """Weight decay on matrices (linear weights, embeddings) only; never on norms or biases."""
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.dim() >= 2 else no_decay).append(p)
    return [{"params": decay, "weight_decay": wd}, {"params": no_decay, "weight_decay": 0.0}]


def lr_at(step, progress, args):
    if step < args.warmup_steps:
        return args.lr * (step + 1) / args.warmup_steps
    lr = args.lr * (args.min_lr_ratio + (1 - args.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))
    since_restart = step - args.start_step
    if args.rewarm_steps and 0 <= since_restart < args.rewarm_steps:  # a fresh AdamW after a warm restart
        lr *= (since_restart + 1) / args.rewarm_steps
    return lr


# ---------------------------------------------------------------------------------------------- evaluation

@torch.no_grad()
def evaluate(model, windows, rank, world, device, autocast, batch=8):
    """Held-out loss on fixed windows (split across ranks). mixSGA models: expert-choice loss (training /
    prefill semantics), decode-style argmax loss, and argmax route shares per layer."""
    model.eval()
    mine = windows[rank::world]
    modes = ["expert_choice", "argmax"] if model.cfg.is_mixsga else ["dense"]
    if model.cfg.kv_policy:  # the policy at the middle of its training budgets (25 % -> 35 %, ...)
        modes = ["dense", "policy"]
    sums = torch.zeros(len(modes) + 1, device=device)
    E = max(1, model.cfg.num_experts)
    counts = torch.zeros(model.cfg.num_layers, E, device=device)
    for i in range(0, len(mine), batch):
        ids = mine[i:i + batch].to(device)
        for j, mode in enumerate(modes):
            routing = Routing(mode)
            if mode == "policy":
                pol, ratios = kv_policy.for_budget(kv_policy.policy(model.cfg.kv_policy), 0.35, ids.shape[1],
                                                   model.cfg.num_kv_heads, model.cfg.head_dim)
                routing = Routing("policy", policy=pol, ratios=ratios)
            with autocast:
                out = model(ids, labels=ids, routing=routing, return_logits=False)
            sums[j] += out.loss.float() * len(ids)
            if mode == "argmax":
                for l, ex in enumerate(out.experts):
                    counts[l] += torch.bincount(ex.reshape(-1), minlength=E)
        sums[-1] += len(ids)
    if world > 1:
        dist.all_reduce(sums)
        dist.all_reduce(counts)
    model.train()
    n = sums[-1].clamp(min=1)
    res = {f"val_{m}": (sums[j] / n).item() for j, m in enumerate(modes)}
    res["val_loss"] = res[f"val_{modes[0]}"]
    if model.cfg.is_mixsga:
        shares = counts / counts.sum(-1, keepdim=True).clamp(min=1)
        res["argmax_shares"] = [[round(x, 4) for x in row] for row in shares.tolist()]
        res["argmax_kv_fraction"] = float(np.mean([model.cfg.kv_fraction(r) for r in shares.tolist()]))
    return res


# ---------------------------------------------------------------------------------------------- checkpoints

def save_state(out, model, opt, step, elapsed, args):
    """ckpt/ = HF-format weights + trainer_state.pt, written to a temp folder and renamed (never half-written)."""
    tmp, final = Path(out) / "ckpt.tmp", Path(out) / "ckpt"
    shutil.rmtree(tmp, ignore_errors=True)
    save_checkpoint(model, tmp)
    torch.save({"step": step, "elapsed": elapsed, "optimizer": opt.state_dict(), "args": vars(args),
                "torch_rng": torch.get_rng_state()}, tmp / "trainer_state.pt")
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)


# ---------------------------------------------------------------------------------------------- training

def run(args):
    rank, world, device = setup_distributed()
    master = rank == 0
    out = Path(args.out)
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    torch.manual_seed(args.seed + rank)

    if args.start_step and args.init == "scratch":
        raise UserError("--start-step continues a run: give --init the weights it stopped with")
    resume_dir = out / "ckpt"
    state = None
    if args.resume and (resume_dir / "trainer_state.pt").exists():
        args.init_original, args.init = args.init, str(resume_dir)
        state = torch.load(resume_dir / "trainer_state.pt", map_location="cpu", weights_only=False)
    model = build_model(args, rank)
    cfg = model.cfg
    if args.seq_len > cfg.max_position_embeddings:
        raise UserError(f"--seq-len {args.seq_len} exceeds the model's max_position_embeddings "
                        f"{cfg.max_position_embeddings}")
    if (cfg.is_mixsga or cfg.kv_policy) and (args.random_router or args.static_group or
                                             (args.aux_weight == 0 and not args.router_lm_grad)):
        for layer in model.model.layers:  # routers get no gradient in these modes: freeze them (and DDP is happy)
            layer.self_attn.router.requires_grad_(False)
    model.to(device)
    raw = model

    rows_per_step = max(1, args.batch_tokens // args.seq_len)
    micro = min(args.micro_batch, max(1, rows_per_step // world))
    accum = max(1, math.ceil(rows_per_step / (micro * world)))
    tokens_per_step = accum * micro * world * args.seq_len

    opt = torch.optim.AdamW(param_groups(model, args.weight_decay), lr=args.lr, betas=(0.9, 0.95),
                            fused=device.type == "cuda")
    step, elapsed0 = args.start_step, 0.0
    if state:
        opt.load_state_dict(state["optimizer"])
        step, elapsed0 = state["step"], state["elapsed"]
    if args.compile:
        model = torch.compile(model)
    if world > 1:
        model = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else nullcontext()

    batches = Batches(args.data, args.seq_len, micro, seed=args.seed, rank=rank, world_size=world,
                      fim_rate=args.fim_rate, spm_rate=args.spm_rate, line_rate=args.fim_line_rate)
    val = fixed_windows(args.data, args.eval_windows, args.seq_len) if args.eval_every else None
    log = None
    if master:
        out.mkdir(parents=True, exist_ok=True)
        log = open(out / "log.jsonl", "a")
        print(f"[train] {raw.num_params():,} params ({raw.num_params(True):,} non-embedding), mixsga={cfg.is_mixsga} "
              f"ratios={cfg.ratios if cfg.is_mixsga else '-'}; {world} x {micro} rows x {accum} accum x {args.seq_len} "
              f"= {tokens_per_step:,} tokens/step; start step {step}", flush=True)

    def emit(rec):
        if master:
            log.write(json.dumps(rec) + "\n")
            log.flush()

    budget_s = args.time_budget_min * 60 if args.time_budget_min else None
    stop_s = args.stop_after_min * 60 if args.stop_after_min else None
    # a time budget anneals what is left of the schedule after a warm restart (p0 = 0 for a fresh run)
    p0 = min(1.0, args.start_step / args.max_steps) if args.max_steps else 0.0
    t_start = time.time() - elapsed0
    prefetch = Prefetcher(batches, step, accum)
    if not (args.max_steps or budget_s):
        raise UserError("give --max-steps or --time-budget-min")
    stop_at = args.stop_at_step or args.max_steps or float("inf")
    snapshots = {int(x) for x in args.snapshot_steps.split(",") if x.strip()} if args.snapshot_steps else set()
    t_log, tok_log = time.time(), 0
    E = max(1, cfg.router_outputs)
    while True:
        elapsed = time.time() - t_start
        progress = step / args.max_steps if args.max_steps else 0.0
        if budget_s:
            progress = max(progress, p0 + (1 - p0) * elapsed / budget_s)
        if world > 1 and (budget_s or stop_s):  # every rank must agree on the LR and on when to stop
            t = torch.tensor([progress, elapsed], device=device)
            dist.all_reduce(t, op=dist.ReduceOp.MAX)
            progress, elapsed = t.tolist()
        done = step >= stop_at or (budget_s and progress >= 1.0) or (stop_s and elapsed >= stop_s)

        if val is not None and (done or (step % args.eval_every == 0 and (step > 0 or args.eval_at_start))):
            rec = {"step": step, "tokens": step * tokens_per_step, **evaluate(raw, val, rank, world, device, autocast)}
            emit(rec)
            if master:
                print(f"[eval] {json.dumps(rec)}", flush=True)
        if done:
            break

        lr = lr_at(step, progress, args)
        for g in opt.param_groups:
            g["lr"] = lr
        loss_sum = torch.zeros((), device=device)
        aux_sum = torch.zeros((), device=device)
        route_counts = torch.zeros(cfg.num_layers, E, device=device)
        log_now = (step + 1) % args.log_every == 0 or step == 0
        for m in range(accum):
            s, mi, ids, labels = prefetch.next()
            assert s == step and mi == m, (s, mi, step, m)
            ids, labels = ids.to(device, non_blocking=True), labels.to(device, non_blocking=True)
            routing = make_routing(args, cfg, *ids.shape, step, m, device)
            sync = m == accum - 1 or world == 1
            with (nullcontext() if sync else model.no_sync()), autocast:
                o = model(ids, labels=labels, routing=routing, return_logits=False)
                loss = o.loss
                if o.aux_loss is not None and args.aux_weight:
                    loss = loss + args.aux_weight * o.aux_loss
            (loss / accum).backward()
            loss_sum += o.loss.detach()
            if o.aux_loss is not None:
                aux_sum += o.aux_loss.detach()
            if o.router_logits and o.router_logits[0] is not None and log_now:
                for l, lg in enumerate(o.router_logits):  # decode-time (argmax) choice on training tokens
                    route_counts[l] += torch.bincount(lg.detach().argmax(-1).reshape(-1), minlength=E)
        gnorm = torch.nn.utils.clip_grad_norm_(model.parameters(), args.grad_clip)
        opt.step()
        opt.zero_grad(set_to_none=True)
        step += 1
        tok_log += tokens_per_step

        if log_now:
            stats = torch.cat([loss_sum[None], aux_sum[None], route_counts.reshape(-1)]) / accum
            if world > 1:
                dist.all_reduce(stats)
                stats /= world
            now = time.time()
            rec = {"step": step, "loss": round(stats[0].item(), 5), "lr": lr, "grad_norm": round(gnorm.item(), 4),
                   "tokens": step * tokens_per_step,
                   "tok_per_s_per_gpu": round(tok_log / world / max(now - t_log, 1e-9)),
                   "elapsed_s": round(now - t_start, 1)}
            if (cfg.is_mixsga or cfg.kv_policy) and not (args.random_router or args.static_group):
                rec["aux"] = round(stats[1].item(), 5)
                rc = stats[2:].reshape(cfg.num_layers, E)
                if rc.sum() > 0:
                    rec["argmax_shares"] = [[round(x, 4) for x in (r / r.sum()).tolist()] for r in rc]
            emit(rec)
            if master and (step % (args.log_every * 10) == 0 or step == 1):
                print(f"[train] {json.dumps(rec)}", flush=True)
            t_log, tok_log = now, 0
        if args.save_every and step % args.save_every == 0 and master:
            save_state(out, raw, opt, step, time.time() - t_start, args)
        if step in snapshots and master:  # weights only, for comparisons at equal steps (ablations)
            save_checkpoint(raw, out / f"ckpt-step{step}")

    prefetch.close()
    if master:
        save_state(out, raw, opt, step, time.time() - t_start, args)
        print(f"[train] done at step {step} ({step * tokens_per_step:,} tokens, {time.time() - t_start:.0f}s); "
              f"checkpoint {out / 'ckpt'}", flush=True)
        log.close()
    if world > 1:
        dist.barrier()
        dist.destroy_process_group()
    return 0


def register(sub):
    p = sub.add_parser("train", help="dense pretraining or mixSGA continued pretraining (torchrun-ready)")
    p.add_argument("--init", required=True, help="'scratch' or a checkpoint folder (dense or mixSGA-converted)")
    p.add_argument("--model-size", choices=sorted(PRESETS), default="default", help="preset for --init scratch")
    p.add_argument("--config-json", help="overrides of the preset, e.g. '{\"num_layers\": 6}'")
    p.add_argument("--data", required=True, help="folder with train_*.bin / val_*.bin token shards")
    p.add_argument("--out", required=True)
    p.add_argument("--resume", action="store_true", help="continue from OUT/ckpt if it exists")
    p.add_argument("--seq-len", type=int, default=1024)
    p.add_argument("--batch-tokens", type=int, default=262144, help="tokens per optimizer step, all GPUs")
    p.add_argument("--micro-batch", type=int, default=32, help="rows per forward pass per GPU")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--min-lr-ratio", type=float, default=0.1)
    p.add_argument("--warmup-steps", type=int, default=100)
    p.add_argument("--weight-decay", type=float, default=0.1)
    p.add_argument("--grad-clip", type=float, default=1.0)
    p.add_argument("--max-steps", type=int, default=0, help="0 = no step limit (use --time-budget-min)")
    p.add_argument("--stop-at-step", type=int, default=0, help="stop (and save) here without changing the "
                   "schedule; for tests and for splitting a run")
    p.add_argument("--time-budget-min", type=float, default=0, help="wall-clock budget of the training loop")
    p.add_argument("--stop-after-min", type=float, default=0, help="stop (and save) after this many minutes "
                   "without changing the schedule: one session's share of a longer run")
    p.add_argument("--start-step", type=int, default=0, help="warm restart: continue the step counter, LR "
                   "schedule and data order from this step with the --init weights and a fresh optimizer")
    p.add_argument("--rewarm-steps", type=int, default=0, help="after --start-step, ramp the LR back to the "
                   "schedule over this many steps")
    p.add_argument("--eval-every", type=int, default=250)
    p.add_argument("--eval-at-start", action="store_true")
    p.add_argument("--eval-windows", type=int, default=32)
    p.add_argument("--save-every", type=int, default=500)
    p.add_argument("--snapshot-steps", help="comma list of steps at which to also save the weights to OUT/ckpt-stepN")
    p.add_argument("--log-every", type=int, default=10)
    p.add_argument("--fim-rate", type=float, default=0.5)
    p.add_argument("--spm-rate", type=float, default=0.5, help="share of FIM documents in SPM order")
    p.add_argument("--fim-line-rate", type=float, default=0.0,
                   help="share of FIM documents cut at line starts (middle = 1-3 whole lines; default: token cuts only)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--compile", action="store_true", help="torch.compile the model (opt-in)")
    g = p.add_argument_group("mixSGA")
    g.add_argument("--ratios", help="capacity ratios, e.g. 3:1:6 (default: the checkpoint's)")
    g.add_argument("--aux-weight", type=float, default=DEFAULT_AUX_WEIGHT, help="alpha, consistency loss weight")
    g.add_argument("--kv-policy", help="train an age-aware KV policy (kv_policy spec, e.g. "
                   "'band=32,stores=g1-int8|g1-int4|g2-int4'); fresh routers score its stores")
    g.add_argument("--policy-budgets", default="0.25,0.35,0.5", help="KV budgets the policy trains at, cycled "
                   "over micro-batches (fractions of the fp16 full cache)")
    g.add_argument("--strip-routers", action="store_true", help="drop a mixSGA checkpoint's routers and train "
                   "dense (the full-KV reference branch)")
    g.add_argument("--router-lm-grad", action="store_true", help="straight-through LM gradient into the router")
    g.add_argument("--random-router", action="store_true", help="ablation: random per-token experts at the ratios")
    g.add_argument("--static-group", type=int, default=0, help="baseline: every token on the expert with this "
                   "group size (2 = GQA at 50%% KV)")
    p.set_defaults(func=run)


if __name__ == "__main__":  # torchrun toolchain/mixsga/train.py ... also works
    import sys
    from mixsga.__main__ import main
    sys.exit(main(["train", *sys.argv[1:]]))
