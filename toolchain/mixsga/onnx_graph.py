"""The exported graph: `MixSGAForCausalLM.forward_chunk` rewritten with flat named inputs/outputs and ops that
trace to a lean, shape-generic ONNX graph (docs/model-format.md, "The ONNX graph").

Same maths as `model.py` (tests compare the two), with a few export-minded choices:
  - no boolean masks built from Python ints: the chunk's causal mask is `Trilu` on a tensor of the chunk's
    own scores, so S and every past length T_le stay symbolic (T_le = 0 works);
  - GQA and expert expansion without copies: queries are reshaped to [1, H_e, Q/H_e, S, D] and multiplied
    against the pooled cache [1, H_e, 1, T, D] (broadcast) - the same as repeating the cache's heads;
  - only the last position reaches the final norm and lm_head;
  - in the fp16 variant, RMSNorm statistics, router logits, attention softmax and the output logits are fp32.
"""
import torch
import torch.nn as nn

from mixsga.model import MixSGAForCausalLM, apply_rope


def input_names(cfg) -> list:
    names = ["input_ids", "position_ids", "route_bias"]
    for l in range(cfg.num_layers):
        for e in range(cfg.num_experts):
            names += [f"past_key.{l}.{e}", f"past_value.{l}.{e}"]
    return names


def output_names(cfg) -> list:
    names = ["logits"]
    for l in range(cfg.num_layers):
        names += [f"new_key.{l}", f"new_value.{l}", f"route.{l}", f"scores.{l}"]
    return names


def output_shapes(cfg) -> dict:
    """Declared output shapes (the exporter leaves some static dims symbolic)."""
    shapes = {"logits": [1, cfg.vocab_size]}
    for l in range(cfg.num_layers):
        shapes[f"new_key.{l}"] = shapes[f"new_value.{l}"] = [1, cfg.num_kv_heads, "S", cfg.head_dim]
        shapes[f"route.{l}"] = [1, "S"]
        shapes[f"scores.{l}"] = [1, "S", cfg.num_experts]
    return shapes


def set_output_shapes(graph, cfg):
    shapes = output_shapes(cfg)
    for out in graph.output:
        dims = out.type.tensor_type.shape.dim
        for d, want in zip(dims, shapes[out.name]):
            if isinstance(want, str):
                d.dim_param = want
            else:
                d.dim_value = want


def unique_node_names(graph):
    """The tracer repeats names like /router/MatMul in every layer; tools (quantizers) need unique ones."""
    seen = {}
    for i, node in enumerate(graph.node):
        base = node.name or f"{node.op_type}_{i}"
        n = seen.get(base, 0)
        seen[base] = n + 1
        node.name = base if n == 0 else f"{base}_{n}"


def dynamic_axes(cfg) -> dict:
    axes = {"input_ids": {1: "S"}, "position_ids": {1: "S"}}
    for l in range(cfg.num_layers):
        for e in range(cfg.num_experts):
            axes[f"past_key.{l}.{e}"] = {2: f"T_{l}_{e}"}
            axes[f"past_value.{l}.{e}"] = {2: f"T_{l}_{e}"}
        for kind in ("new_key", "new_value"):
            axes[f"{kind}.{l}"] = {2: "S"}
        axes[f"route.{l}"] = {1: "S"}
        axes[f"scores.{l}"] = {1: "S"}
    return axes


def cast(x, dtype):
    """x.to(dtype), but no graph node when it already has that dtype (the tracer would emit a no-op Cast)."""
    return x if x.dtype == dtype else x.to(dtype)


def rms_norm(norm, x):
    xf = cast(x, torch.float32)
    xf = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + norm.eps)
    return norm.weight * cast(xf, x.dtype)


class ChunkGraph(nn.Module):
    """Wraps a mixSGA model; forward(input_ids, position_ids, route_bias, *past) -> flat outputs."""

    def __init__(self, model: MixSGAForCausalLM):
        super().__init__()
        cfg = model.cfg
        assert cfg.is_mixsga, "export needs a mixSGA-converted model"
        self.m = model
        self.cfg = cfg
        self.dtype = model.lm_head.weight.dtype
        D = cfg.head_dim
        inv_freq = 1.0 / (cfg.rope_theta ** (torch.arange(0, D, 2).double() / D))
        self.register_buffer("inv_freq", inv_freq.float(), persistent=False)

    def forward(self, input_ids, position_ids, route_bias, *past):
        cfg, dt = self.cfg, self.dtype
        E, L = cfg.num_experts, cfg.num_layers
        nq, H, D = cfg.num_attention_heads, cfg.num_kv_heads, cfg.head_dim
        groups = cfg.expert_group_sizes
        h = self.m.model.embed_tokens(input_ids)  # [1, S, hidden]
        S = input_ids.shape[1]  # traced once; reused by the reshapes that need it
        freqs = position_ids.float()[..., None] * self.inv_freq  # [1, S, D/2] fp32
        emb = torch.cat([freqs, freqs], dim=-1)[:, None]  # [1, 1, S, D]
        cos, sin = cast(emb.cos(), dt), cast(emb.sin(), dt)
        scale = D ** -0.5
        outs = []
        for l, layer in enumerate(self.m.model.layers):
            att = layer.self_attn
            x = rms_norm(layer.input_layernorm, h)
            q = apply_rope(att.q_proj(x).view(1, -1, nq, D).transpose(1, 2), cos, sin)  # [1, nq, S, D]
            k = apply_rope(att.k_proj(x).view(1, -1, H, D).transpose(1, 2), cos, sin)  # [1, H, S, D]
            v = att.v_proj(x).view(1, -1, H, D).transpose(1, 2)
            r = cast(att.router(x), torch.float32)  # [1, S, E] fp32
            route = torch.argmax(r + route_bias, dim=-1)  # [1, S]
            onehot = (route[..., None] == torch.arange(E, device=route.device)).to(dt)  # [1, S, E]
            k_mix, v_mix = 0, 0
            for e, g in enumerate(groups):
                w = onehot[:, None, :, e, None]  # [1, 1, S, 1]
                k_mix = k_mix + w * _pool_expand(k, g)
                v_mix = v_mix + w * _pool_expand(v, g)
            # scores against each expert's past cache, then the chunk itself under a causal mask
            score_parts, value_parts = [], []
            for e, g in enumerate(groups):
                pk, pv = past[2 * (l * E + e)], past[2 * (l * E + e) + 1]  # [1, H/g, T, D]
                He = H // g
                qe = q.reshape(1, He, nq // He, -1, D)
                s = torch.matmul(qe, pk[:, :, None].transpose(-1, -2))  # [1, He, nq/He, S, T]
                score_parts.append(s.reshape(1, nq, S, -1))
                value_parts.append(pv)
            rep = nq // H
            qc = q.reshape(1, H, rep, -1, D)
            sc = torch.matmul(qc, k_mix[:, :, None].transpose(-1, -2)).reshape(1, nq, S, -1)
            future = torch.ones_like(sc, dtype=torch.bool).triu(1)
            sc = cast(sc, torch.float32).masked_fill(future, float("-inf"))
            scores_all = torch.cat([cast(s, torch.float32) for s in score_parts] + [sc], dim=-1) * scale
            p = cast(torch.softmax(scores_all, dim=-1), dt)  # [1, nq, S, T_total + S]
            o, start = 0, 0
            for e, g in enumerate(groups):
                He, T = H // g, value_parts[e].shape[2]
                pe = p[..., start:start + T].reshape(1, He, nq // He, S, -1)  # -1 = T
                start = start + T
                o = o + torch.matmul(pe, value_parts[e][:, :, None]).reshape(1, nq, -1, D)
            pc = p[..., start:].reshape(1, H, rep, S, -1)
            o = o + torch.matmul(pc, v_mix[:, :, None]).reshape(1, nq, -1, D)
            a = att.o_proj(o.transpose(1, 2).reshape(1, -1, nq * D))
            h = h + a
            h = h + layer.mlp(rms_norm(layer.post_attention_layernorm, h))
            outs += [k, v, route, torch.sigmoid(r)]
        last = rms_norm(self.m.model.norm, h[:, -1])  # [1, hidden]
        if self.cfg.tie_word_embeddings:
            # W [V, hidden] @ last^T: uses the embedding matrix as stored, no transposed copy in the file
            logits = torch.matmul(self.m.model.embed_tokens.weight, last.transpose(0, 1)).transpose(0, 1)
        else:
            logits = self.m.lm_head(last)
        return (cast(logits, torch.float32), *outs)


def _pool_expand(x, g):
    """[1, H, S, D] -> each group of g adjacent heads replaced by its mean (pool then expand back)."""
    if g == 1:
        return x
    _, H, _, D = x.shape  # static
    return x.reshape(1, H // g, g, -1, D).mean(dim=2, keepdim=True).expand(-1, -1, g, -1, -1).reshape(1, H, -1, D)
