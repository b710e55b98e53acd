"""A Llama-family decoder (RMSNorm, RoPE, SwiGLU, grouped-query attention) whose attention layers can hold
mixSGA experts: every token's K/V is kept at one of several resolutions (H, H/2, H/4 KV heads), each coarser
head the mean of adjacent finer heads, chosen per token by a small router. Expert 0 is the original model.

Module and parameter names follow Hugging Face's LlamaForCausalLM, so `state_dict()` keys are the keys of a
HF checkpoint (plus `...self_attn.router.{weight,bias}` for converted models).

Two entry points:
  forward()        whole sequences, for training and evaluation (expert-choice or fixed routing);
  forward_chunk()  one chunk on top of per-expert past caches, the exact semantics of the ONNX graph
                   (docs/model-format.md) and of the extension's runtime.
"""
from dataclasses import dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F

from mixsga.config import DEFAULT_GROUP_SIZES, ModelConfig
from mixsga.routing import argmax_route, consistency_loss, expert_choice


class RMSNorm(nn.Module):
    def __init__(self, dim, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x):
        # Normalise in fp32 like the reference implementation, then scale in the input dtype.
        xf = x.float()
        xf = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * xf.to(x.dtype)


def rope_cos_sin(position_ids, head_dim, theta, dtype):
    """cos/sin [B, 1, S, D] for absolute positions [B, S] (the HF 'default' rotary embedding)."""
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, device=position_ids.device).float() / head_dim))
    freqs = position_ids.float()[..., None] * inv_freq  # [B, S, D/2]
    emb = torch.cat([freqs, freqs], dim=-1)
    return emb.cos().to(dtype)[:, None], emb.sin().to(dtype)[:, None]


def apply_rope(x, cos, sin):
    half = x.shape[-1] // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return x * cos + rotated * sin


def pool_heads(x, g):
    """[B, H, T, D] -> [B, H/g, T, D]: mean of each group of g adjacent heads (an expert's stored K/V)."""
    if g == 1:
        return x
    B, H, T, D = x.shape
    return x.reshape(B, H // g, g, T, D).mean(dim=2)


def expand_heads(x, g):
    """[B, H/g, T, D] -> [B, H, T, D]: copy each pooled head to every head of its group (Eq. 8)."""
    if g == 1:
        return x
    B, Hg, T, D = x.shape
    return x[:, :, None].expand(B, Hg, g, T, D).reshape(B, Hg * g, T, D)


class MLP(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.gate_proj = nn.Linear(cfg.hidden_size, cfg.intermediate_size, bias=False)
        self.up_proj = nn.Linear(cfg.hidden_size, cfg.intermediate_size, bias=False)
        self.down_proj = nn.Linear(cfg.intermediate_size, cfg.hidden_size, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


@dataclass
class Routing:
    """How one forward pass assigns tokens to experts.

    mode: 'dense'         every token at full KV (expert 0 semantics, no router needed);
          'expert_choice' progressive expert-choice with `ratios` (training, prefill, paper default);
          'argmax'        per-token argmax of router logits + route_bias (decode; causal);
          'fixed'         `experts` given ([B, S] expert ids, same in every layer) - static GQA baselines,
                          random-router ablations, tests;
          'policy'        an age-aware KV policy (`policy`, kv_policy.Policy): sinks and the recent band read in
                          full, older tokens through their store; stores by expert-choice over the router's
                          scores at `ratios`, or `experts` when given, or store 0 for a model without router.
    """
    mode: str = "dense"
    ratios: tuple = None
    route_bias: torch.Tensor = None
    experts: torch.Tensor = None
    straight_through: bool = False  # also train the router from the LM loss (departure from the paper)
    policy: object = None  # kv_policy.Policy for mode 'policy'


@dataclass
class LayerRouting:
    experts: torch.Tensor  # [B, S]
    logits: torch.Tensor = None  # [B, S, E] router logits, when the layer has a router
    aux_loss: torch.Tensor = None


class Attention(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.nq, self.nkv, self.hd = cfg.num_attention_heads, cfg.num_kv_heads, cfg.head_dim
        self.q_proj = nn.Linear(cfg.hidden_size, self.nq * self.hd, bias=False)
        self.k_proj = nn.Linear(cfg.hidden_size, self.nkv * self.hd, bias=False)
        self.v_proj = nn.Linear(cfg.hidden_size, self.nkv * self.hd, bias=False)
        self.o_proj = nn.Linear(self.nq * self.hd, cfg.hidden_size, bias=False)
        self.group_sizes = cfg.expert_group_sizes or DEFAULT_GROUP_SIZES
        if cfg.is_mixsga or cfg.kv_policy:
            self.router = nn.Linear(cfg.hidden_size, cfg.router_outputs)
            init_router(self.router)

    def project(self, x, cos, sin):
        B, S, _ = x.shape
        q = self.q_proj(x).view(B, S, self.nq, self.hd).transpose(1, 2)
        k = self.k_proj(x).view(B, S, self.nkv, self.hd).transpose(1, 2)
        v = self.v_proj(x).view(B, S, self.nkv, self.hd).transpose(1, 2)
        return apply_rope(q, cos, sin), apply_rope(k, cos, sin), v

    def route(self, x, routing: Routing) -> LayerRouting:
        if routing.mode == "dense":
            return LayerRouting(experts=torch.zeros(x.shape[:2], dtype=torch.long, device=x.device))
        if routing.mode == "fixed" or (routing.mode == "policy" and routing.experts is not None):
            return LayerRouting(experts=routing.experts)
        if routing.mode == "policy" and (routing.ratios is None or not hasattr(self, "router")):
            return LayerRouting(experts=torch.zeros(x.shape[:2], dtype=torch.long, device=x.device))
        logits = self.router(x)
        if routing.mode == "argmax":
            return LayerRouting(experts=argmax_route(logits, routing.route_bias), logits=logits)
        experts = expert_choice(torch.sigmoid(logits), routing.ratios or self.cfg.ratios)
        return LayerRouting(experts=experts, logits=logits, aux_loss=consistency_loss(logits, experts))

    def mix_experts(self, x, lr: LayerRouting, straight_through: bool):
        """Each token's K or V ([B, H, S, D]) replaced by its expert's pooled-and-expanded version."""
        if lr.logits is None and bool((lr.experts == 0).all()):
            return x
        onehot = F.one_hot(lr.experts, len(self.group_sizes)).to(x.dtype)  # [B, S, E]
        if straight_through and lr.logits is not None:
            p = torch.softmax(lr.logits.float(), dim=-1).to(x.dtype)
            onehot = onehot + p - p.detach()  # forward: hard mask; backward: gradient into the router
        out = 0
        for e, g in enumerate(self.group_sizes):
            out = out + onehot[:, None, :, e, None] * expand_heads(pool_heads(x, g), g)
        return out

    def attend(self, q, k, v, attn_mask):
        rep = self.nq // self.nkv
        k, v = expand_heads(k, rep), expand_heads(v, rep)  # GQA: query head h reads KV head h // rep
        if attn_mask is None:
            o = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            o = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
        B, _, S, _ = o.shape
        return self.o_proj(o.transpose(1, 2).reshape(B, S, self.nq * self.hd))

    def forward_policy(self, x, cos, sin, routing: Routing):
        """Attention over [K; K per age tier; K as stored] under the policy's age masks (kv_policy): exact
        age-aware semantics."""
        q, k, v = self.project(x, cos, sin)
        lr = self.route(x, routing)
        soft = None
        if routing.straight_through and lr.logits is not None:
            soft = torch.softmax(lr.logits.float(), dim=-1)
        keys, values, kept = routing.policy.views(k, v, lr.experts, soft)
        mask = routing.policy.attention_mask(x.shape[1], kept, x.device)
        return self.attend(q, keys, values, mask), lr

    def forward(self, x, cos, sin, routing: Routing, attn_mask=None):
        if routing.mode == "policy":
            return self.forward_policy(x, cos, sin, routing)
        q, k, v = self.project(x, cos, sin)
        lr = self.route(x, routing)
        k = self.mix_experts(k, lr, routing.straight_through)
        v = self.mix_experts(v, lr, routing.straight_through)
        return self.attend(q, k, v, attn_mask), lr

    def forward_chunk(self, x, cos, sin, route_bias, past):
        """ONNX semantics: route causally, pool/expand the chunk's own K/V by expert, attend over every
        expert's past cache (expanded back to H heads) plus the chunk under a causal mask."""
        B, S, _ = x.shape
        q, k, v = self.project(x, cos, sin)
        logits = self.router(x)
        experts = argmax_route(logits, route_bias)
        lr = LayerRouting(experts=experts, logits=logits)
        k_mix, v_mix = self.mix_experts(k, lr, False), self.mix_experts(v, lr, False)
        keys = [expand_heads(pk, g) for (pk, _), g in zip(past, self.group_sizes)] + [k_mix]
        vals = [expand_heads(pv, g) for (_, pv), g in zip(past, self.group_sizes)] + [v_mix]
        T = sum(pk.shape[2] for pk, _ in past)
        causal = torch.ones(S, S, dtype=torch.bool, device=x.device).tril()
        mask = torch.cat([torch.ones(S, T, dtype=torch.bool, device=x.device), causal], dim=1)
        out = self.attend(q, torch.cat(keys, dim=2), torch.cat(vals, dim=2), mask)
        return out, k, v, experts, torch.sigmoid(logits)


def init_router(router: nn.Linear):
    """He (Kaiming) initialised weights, zero bias (paper section 2.5)."""
    nn.init.kaiming_normal_(router.weight, nonlinearity="relu")
    nn.init.zeros_(router.bias)


class DecoderLayer(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.input_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.self_attn = Attention(cfg)
        self.post_attention_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.mlp = MLP(cfg)

    def forward(self, h, cos, sin, routing, attn_mask=None):
        a, lr = self.self_attn(self.input_layernorm(h), cos, sin, routing, attn_mask)
        h = h + a
        return h + self.mlp(self.post_attention_layernorm(h)), lr


class LlamaBackbone(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.embed_tokens = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
        self.layers = nn.ModuleList(DecoderLayer(cfg) for _ in range(cfg.num_layers))
        self.norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)


@dataclass
class Output:
    logits: torch.Tensor = None
    loss: torch.Tensor = None  # language-model loss
    aux_loss: torch.Tensor = None  # mean consistency loss over layers (expert_choice routing only)
    experts: list = field(default_factory=list)  # per layer [B, S]
    router_logits: list = field(default_factory=list)  # per layer [B, S, E] or None


class MixSGAForCausalLM(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.model = LlamaBackbone(cfg)
        self.lm_head = nn.Linear(cfg.hidden_size, cfg.vocab_size, bias=False)
        if cfg.tie_word_embeddings:
            self.lm_head.weight = self.model.embed_tokens.weight

    def init_weights(self, std=0.02, seed=None):
        """Fresh weights for pretraining from scratch: normal(0, std) matrices, scaled residual outputs."""
        gen = torch.Generator().manual_seed(seed) if seed is not None else None
        for name, p in self.named_parameters():
            if name.endswith("router.weight"):
                continue
            if p.dim() == 1:
                nn.init.zeros_(p) if name.endswith("bias") else nn.init.ones_(p)
            else:
                s = std / (2 * self.cfg.num_layers) ** 0.5 if name.endswith(("o_proj.weight", "down_proj.weight")) else std
                with torch.no_grad():
                    p.copy_(torch.randn(p.shape, generator=gen) * s)
        return self

    def forward(self, input_ids, labels=None, routing: Routing = None, position_ids=None, attn_mask=None,
                return_logits=True):
        routing = routing or (Routing("expert_choice") if self.cfg.is_mixsga else Routing("dense"))
        if routing.mode == "expert_choice" and self.cfg.kv_policy:
            raise ValueError("a KV-policy model routes with Routing('policy', policy=..., ratios=...)")
        B, S = input_ids.shape
        if position_ids is None:
            position_ids = torch.arange(S, device=input_ids.device).expand(B, S)
        h = self.model.embed_tokens(input_ids)
        cos, sin = rope_cos_sin(position_ids, self.cfg.head_dim, self.cfg.rope_theta, h.dtype)
        out = Output()
        aux = []
        for layer in self.model.layers:
            h, lr = layer(h, cos, sin, routing, attn_mask)
            out.experts.append(lr.experts)
            out.router_logits.append(lr.logits)
            if lr.aux_loss is not None:
                aux.append(lr.aux_loss)
        logits = self.lm_head(self.model.norm(h))
        if labels is not None:
            out.loss = F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]).float(),
                                       labels[:, 1:].reshape(-1), ignore_index=-100)
        if aux:
            out.aux_loss = torch.stack(aux).mean()
        if return_logits:
            out.logits = logits
        return out

    def forward_chunk(self, input_ids, position_ids, route_bias, past):
        """One chunk over per-layer, per-expert past caches; the ONNX graph's semantics.

        past[l][e] = (key, value), each [1, H_e, T_le, D]. Returns the last position's logits [1, V] and, per
        layer, full-resolution new keys/values [1, H, S, D], routes [1, S] and router scores [1, S, E]."""
        h = self.model.embed_tokens(input_ids)
        cos, sin = rope_cos_sin(position_ids, self.cfg.head_dim, self.cfg.rope_theta, h.dtype)
        new_k, new_v, routes, scores = [], [], [], []
        for layer, layer_past in zip(self.model.layers, past):
            a, k, v, r, s = layer.self_attn.forward_chunk(layer.input_layernorm(h), cos, sin, route_bias, layer_past)
            h = h + a
            h = h + layer.mlp(layer.post_attention_layernorm(h))
            new_k.append(k), new_v.append(v), routes.append(r), scores.append(s)
        logits = self.lm_head(self.model.norm(h[:, -1:]))[:, 0]
        return logits, new_k, new_v, routes, scores

    def empty_past(self, dtype=torch.float32, device="cpu"):
        D = self.cfg.head_dim
        return [[(torch.zeros(1, h, 0, D, dtype=dtype, device=device),) * 2 for h in self.cfg.expert_kv_heads()]
                for _ in range(self.cfg.num_layers)]

    def num_params(self, exclude_embeddings=False):
        n = sum(p.numel() for p in self.parameters())
        return n - self.model.embed_tokens.weight.numel() if exclude_embeddings else n
