"""The exported graph (model format version 2, docs/model-format.md "The ONNX graph"), built node by node with
`onnx.helper` from a mixSGA model's weights. One graph does prefill and greedy decoding:

  1. the chunk: S prompt tokens on top of the per-expert past caches, one pass through the layers;
  2. a Loop of up to `gen_steps` greedy decode steps that keeps the KV cache on the device, in buffers with room
     for every step (the host cannot keep tensors on the GPU between runs from onnxruntime-node, so the decode
     loop lives in the graph);
  3. the K/V of every token processed (chunk + generated) pooled to its routed expert and grouped by expert, so
     the host appends each expert's block with one copy.

Why built by hand instead of traced: each layer is a short chain of ONNX Runtime's fused kernels
(SkipSimplifiedLayerNormalization, GroupQueryAttention with RoPE inside, QuickGelu) - 18 nodes per layer instead
of ~100 traced ones, and a decode step on a GPU is bound by how many nodes the host launches (docs/benchmarks.md
measures ~5 us for the cheapest node; a CUDA Split costs several MatMuls, so there is none).

How mixSGA maps onto GroupQueryAttention: each token's packed q|K|V heads are multiplied by its routed expert's
pooling matrix (identity on q; on K and V row j of expert e averages the heads of j's group and copies the mean
to every head of the group: the paper's Eq. 8), so attention sees every token as the cache will hold it. The cache
itself is stored compact (H_e heads per token) and expanded back to H heads once per run before it enters
GroupQueryAttention. The decode loop emits only the picked tokens and router logits; routes and K/V are read after
it (from the logits and the loop's final caches).

Precision: the float16 variant keeps weights, activations and KV in fp16 (int4 weights allowed: MatMulNBits, fp16
scales); RMSNorm statistics (inside the ORT kernels), router logits/argmax and the output logits are fp32. CPU weights
may be int8 (DynamicQuantizeMatMul, symmetric per output column), int4 (MatMulNBits, blocks of 32 by default) or mixed
(int8, down projections int4); attention, norms and routers stay fp32.
"""
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from mixsga import onnx_attention as oa
from mixsga.errors import UserError

OPSET = 17
MS_OPSET = 1
INT4_BLOCK = 32  # MatMulNBits block size by default (--int4-block)
INT4_BLOCKS = (16, 32, 64, 128)  # sizes MatMulNBits kernels serve (powers of two >= 16)
# accuracy_level by default: 4 = the CPU kernel quantises activations to int8 per block (a CPU EP setting);
# 0 = unset, the kernel computes in the activations' type
INT4_ACCURACY = 4
# a chunk of at least this many tokens goes through GroupQueryAttention over expanded caches in the CPU variant
# (a prompt's chunk: one fused kernel per layer is faster there); shorter ones attend over the caches as stored
LONG_CHUNK = 32
FP = {"float32": TensorProto.FLOAT, "float16": TensorProto.FLOAT16}
NP = {"float32": np.float32, "float16": np.float16}


# ---------------------------------------------------------------------------------------------------- names

def input_names(cfg) -> list:
    names = ["input_ids", "position_ids", "route_bias", "gen_steps", "stop_mask", "first_mask"]
    return names + [f"past.{l}.{e}" for l in range(cfg.num_layers) for e in range(cfg.num_experts)]


def output_names(cfg) -> list:
    return ["logits", "tokens", "route", "scores"] + [f"kv.{e}" for e in range(cfg.num_experts)]


# ---------------------------------------------------------------------------------------------------- builder

class Builder:
    """Collects nodes of one graph; names every node and value uniquely from a prefix."""

    def __init__(self, prefix, consts):
        self.prefix, self.nodes, self.consts, self.n = prefix, [], consts, 0

    def op(self, op_type, inputs, n_out=1, domain="", name=None, omit=(), **attrs):
        """`omit`: indices of optional outputs left unnamed (ORT does not compute or allocate them)."""
        self.n += 1
        base = f"{self.prefix}{name or op_type}_{self.n}"
        outs = [f"{base}:{i}" for i in range(n_out)] if isinstance(n_out, int) else list(n_out)
        outs = ["" if i in omit else o for i, o in enumerate(outs)]
        self.nodes.append(helper.make_node(op_type, list(inputs), outs, name=base, domain=domain or None, **attrs))
        return outs[0] if len(outs) == 1 else outs

    def ms(self, op_type, inputs, n_out=1, **attrs):
        return self.op(op_type, inputs, n_out, domain="com.microsoft", **attrs)

    def c(self, value, dtype=np.int64):
        """A shared constant initializer (main graph; subgraphs see it through outer scope)."""
        return self.consts.const(np.asarray(value, dtype=dtype))


class Constants:
    def __init__(self):
        self.inits, self.by_key = [], {}

    def add(self, name, array):
        a = np.asarray(array)
        self.inits.append(numpy_helper.from_array(a if a.ndim == 0 else np.ascontiguousarray(a), name))
        return name

    def const(self, arr):
        key = (arr.dtype.str, arr.shape, arr.tobytes())
        if key not in self.by_key:
            self.by_key[key] = self.add(f"const/{len(self.by_key)}", arr)
        return self.by_key[key]


# ---------------------------------------------------------------------------------------------------- weights

def _np(t):
    return t.detach().float().cpu().numpy()


def pooling_matrices(H, groups):
    """[E, H, H]: M_e[i, h] = 1/g when heads i and h share a group of g adjacent heads, else 0. M_e @ heads
    replaces every head by the mean of its group (pool to H/g heads, then repeat each back over its group)."""
    m = np.zeros((len(groups), H, H), np.float64)
    for e, g in enumerate(groups):
        for i in range(H):
            m[e, i, (i // g) * g:(i // g + 1) * g] = 1.0 / g
    return m


def quantize_int8(w_t):
    """[K, N] -> int8 [K, N] and one symmetric scale per output column (round half to even)."""
    amax = np.abs(w_t).max(axis=0)
    scale = np.where(amax > 0, amax / 127.0, 1.0).astype(np.float32)
    return np.clip(np.rint(w_t / scale), -127, 127).astype(np.int8), scale


class Weights:
    """Initializers of the graph in the variant's dtype and weight format; `matmul` emits x @ W."""

    def __init__(self, consts, dtype, weights, int4_block=INT4_BLOCK, int4_accuracy=INT4_ACCURACY):
        self.consts, self.dtype, self.weights = consts, dtype, weights
        self.int4_block, self.int4_accuracy = int4_block, int4_accuracy

    def tensor(self, name, array, dtype=None):
        return self.consts.add(name, np.asarray(array, dtype=NP[dtype or self.dtype]))

    def linear(self, name, w_t):
        """Registers the [K, N] matrix of x @ W; returns a handle for matmul()."""
        K, N = w_t.shape
        if self.weights == "int8":
            q, s = quantize_int8(w_t)
            return ("int8", self.consts.add(name + ".int8", q), self.consts.add(name + ".scale", s))
        if self.weights == "int4":
            from onnxruntime.capi._pybind_state import quantize_matmul_4bits

            # scales in the activations' type (MatMulNBits' T1): the fp16 variant quantises its fp16 weights
            bs, f = self.int4_block, NP[self.dtype]
            blocks = (K + bs - 1) // bs
            packed = np.zeros((N, blocks, bs // 2), dtype=np.uint8)
            scales = np.zeros((N, blocks), dtype=f)
            zp = np.zeros((N, (blocks + 1) // 2), dtype=np.uint8)
            quantize_matmul_4bits(packed, np.ascontiguousarray(w_t, dtype=f), scales, zp, bs, N, K, True)
            return ("int4", self.consts.add(name + ".int4", packed), self.consts.add(name + ".scale", scales.reshape(-1)),
                    K, N)
        return ("dense", self.tensor(name, w_t))

    def matmul(self, b, x, handle):
        if handle[0] == "int8":
            return b.ms("DynamicQuantizeMatMul", [x, handle[1], handle[2]])
        if handle[0] == "int4":
            return b.ms("MatMulNBits", [x, handle[1], handle[2]], K=handle[3], N=handle[4], bits=4,
                        block_size=self.int4_block, accuracy_level=self.int4_accuracy)
        return b.op("MatMul", [x, handle[1]])


class ModelWeights:
    """Everything the layers read, registered once in the main graph."""

    def __init__(self, model, consts, dtype, weights, embedding="auto", int4=(INT4_BLOCK, INT4_ACCURACY)):
        cfg = model.cfg
        self.cfg, self.dtype = cfg, dtype
        # "mixed": int8 everywhere but the MLP's down projection, int4. The down projection's input (the SwiGLU
        # product) carries outliers that int8's single dynamic scale per activation tensor loses on a well-trained
        # model (docs/model-format.md); int4 MatMulNBits quantises activations per block instead.
        w = Weights(consts, dtype, "int8" if weights == "mixed" else weights, *int4)
        w_down = Weights(consts, dtype, "int4", *int4) if weights == "mixed" else w
        H, D, nq = cfg.num_kv_heads, cfg.head_dim, cfg.num_attention_heads
        sd = {k: _np(v) for k, v in model.state_dict().items()}
        emb = sd["model.embed_tokens.weight"]  # [V, hidden]
        tied = cfg.tie_word_embeddings
        if embedding == "int8" and not (tied and weights != "float32" and dtype == "float32"):
            raise ValueError("an int8 embedding needs tied embeddings and int8/int4 weights in the float32 variant")
        # quantised CPU weights + tied embedding: the [V, hidden] matrix (the largest one) is stored once, as int8.
        # The float16 variant keeps its fp16 matrix (Gather + Gemm on the GPU; 49 MB at vocab 32008 x 768).
        self.embed_int8 = weights != "float32" and tied and embedding != "float32" and dtype == "float32"
        if self.embed_int8:
            # the tied matrix stored once as int8 [hidden, V], one scale per vocab row (lookup and lm_head)
            q, s = quantize_int8(emb.T)
            self.emb_q, self.emb_scale = consts.add("embed.int8_t", q), consts.add("embed.scale", s)
            self.lm_head = ("int8", self.emb_q, self.emb_scale)
        else:
            self.emb = w.tensor("embed", emb)
            self.lm_head = ("gemm", self.emb if tied else w.tensor("lm_head", sd["lm_head.weight"]))
        self.final_norm = w.tensor("norm", sd["model.norm.weight"])
        # No Split nodes: on the CUDA EP a Split costs several times a MatMul launch (it stages its output
        # pointers on the device each call), so q/K/V, the router, gate and up are separate MatMuls.
        self.layers = []
        for l in range(cfg.num_layers):
            p = f"model.layers.{l}."
            a = p + "self_attn."
            qkv = np.concatenate([sd[a + "q_proj.weight"], sd[a + "k_proj.weight"], sd[a + "v_proj.weight"]], axis=0).T
            self.layers.append({
                "ln_in": w.tensor(p + "ln_in", sd[p + "input_layernorm.weight"]),
                "ln_post": w.tensor(p + "ln_post", sd[p + "post_attention_layernorm.weight"]),
                "qkv": w.linear(p + "qkv", qkv),
                "o": w.linear(p + "o", sd[a + "o_proj.weight"].T),
                "gate": w.linear(p + "gate", sd[p + "mlp.gate_proj.weight"].T),
                "up": w.linear(p + "up", sd[p + "mlp.up_proj.weight"].T),
                "down": w_down.linear(p + "down", sd[p + "mlp.down_proj.weight"].T),
                # routers: fp32 in the CPU variant (never quantised: a flipped route changes a token's KV size)
                "router": Weights(consts, dtype if dtype == "float16" else "float32", "float32").linear(
                    p + "router", sd[a + "router.weight"].T),
                "router_b": sd[a + "router.bias"].astype(np.float32),  # β, fp32 (added after the Cast)
            })
        self.w = w
        # [E, P, P] over the P = nq + 2H heads of the packed q|K|V: identity on q, Eq. 8's pooling on K and on V
        pool_kv = pooling_matrices(H, cfg.expert_group_sizes)
        P = nq + 2 * H
        pool = np.zeros((cfg.num_experts, P, P))
        pool[:, :nq, :nq] = np.eye(nq)
        pool[:, nq:nq + H, nq:nq + H] = pool_kv
        pool[:, nq + H:, nq + H:] = pool_kv
        self.pool = w.tensor("qkv_pooling", pool)
        inv = 1.0 / (cfg.rope_theta ** (np.arange(0, D, 2, dtype=np.float64) / D))
        ang = np.arange(cfg.max_position_embeddings, dtype=np.float64)[:, None] * inv[None]
        self.cos, self.sin = w.tensor("rope.cos", np.cos(ang)), w.tensor("rope.sin", np.sin(ang))
        self.nq, self.H, self.D = nq, H, D


# ---------------------------------------------------------------------------------------------------- layers

def embed(b, W, ids):
    """ids [1, S] -> hidden [1, S, hidden] in the variant's dtype."""
    if not W.embed_int8:
        return b.op("Gather", [W.emb, ids])
    rows = b.op("Gather", [W.emb_q, ids], axis=1)  # [hidden, 1, S]
    rows = b.op("Cast", [b.op("Transpose", [rows], perm=[1, 2, 0])], to=TensorProto.FLOAT)
    scale = b.op("Unsqueeze", [b.op("Gather", [W.emb_scale, ids]), b.c([-1])])
    return b.op("Mul", [rows, scale])


def lm_head(b, W, x):
    """x [1, hidden] -> fp32 logits [1, V]."""
    kind, *rest = W.lm_head
    if kind == "int8":
        return b.ms("DynamicQuantizeMatMul", [x, rest[0], rest[1]])
    y = b.op("Gemm", [x, rest[0]], transB=1)
    return b.op("Cast", [y], to=TensorProto.FLOAT) if W.dtype == "float16" else y


def skip_norm(b, resid, h, weight, eps):
    """(RMSNorm(resid + h), resid + h); the unused mean/inv-std outputs are left out (no allocation)."""
    out, _, _, total = b.ms("SkipSimplifiedLayerNormalization", [resid, h, weight], n_out=4, omit=(1, 2), epsilon=eps)
    return out, total


class GroupQueryAttention:
    """Attention by ORT's fused GroupQueryAttention over a cache expanded to H heads (the fp16/CUDA variant, where
    a decode step is bound by the nodes launched). past[l] = (key, value) [1, H, T, D]; keeps the presents (K/V
    of every token after the chunk's, post-RoPE and routed: [1, H, T+S, D])."""

    def __init__(self, W, past, seqlens, total):
        self.W, self.past, self.seqlens, self.total, self.presents = W, past, seqlens, total, []

    def __call__(self, b, l, qkv, pos):
        W = self.W
        att, pk, pv = b.ms("GroupQueryAttention", [qkv, "", "", self.past[l][0], self.past[l][1], self.seqlens,
                                                   self.total, W.cos, W.sin, pos], n_out=3, num_heads=W.nq,
                           kv_num_heads=W.H, scale=float(W.D) ** -0.5, do_rotary=1, rotary_interleaved=0)
        self.presents.append((pk, pv))
        return att


def gqa_chunk(b, W, past, T, S):
    """GroupQueryAttention for a chunk of S tokens over T past tokens (int64 scalars); .base = T + S."""
    base = b.op("Add", [T, S])  # tokens attended after the chunk
    total = b.op("Cast", [base], to=TensorProto.INT32)
    att = GroupQueryAttention(W, past, b.op("Reshape", [b.op("Sub", [total, b.c(1, np.int32)]), b.c([1])]), total)
    att.base = base
    return att


def decoder(b, W, ids, pos, route_bias, attention):
    """All layers over one chunk. route_bias[l] = β_l + the run's route_bias (fp32 [E]); attention(b, l, qkv, pos)
    attends the routed packed q|K|V of layer l. Returns (last logits [1, V] fp32, router logits x·φ_l without β
    [1, S, L*E] fp32)."""
    cfg = W.cfg
    H, D, nq = W.H, W.D, W.nq
    P = nq + 2 * H
    eps = float(cfg.rms_norm_eps)
    h = embed(b, W, ids)
    logits_parts = []
    resid = None  # output of the previous sub-block, added to h by the next SkipSimplifiedLayerNormalization
    for l, lw in enumerate(W.layers):
        if resid is None:
            x = b.op("SimplifiedLayerNormalization", [h, lw["ln_in"]], axis=-1, epsilon=eps, stash_type=1)
        else:
            x, h = skip_norm(b, resid, h, lw["ln_in"], eps)
        qkv, r = W.w.matmul(b, x, lw["qkv"]), W.w.matmul(b, x, lw["router"])
        if W.dtype == "float16":
            r = b.op("Cast", [r], to=TensorProto.FLOAT)
        route = b.op("ArgMax", [b.op("Add", [r, route_bias[l]])], axis=-1, keepdims=0)  # [1, S]
        logits_parts.append(r)
        # every head of the token at its routed expert's resolution: [P, P] pooling matrix per token (q passes)
        heads = b.op("Reshape", [qkv, b.c([1, -1, P, D])])
        qkv = b.op("Reshape", [b.op("MatMul", [b.op("Gather", [W.pool, route]), heads]), b.c([1, -1, P * D])])
        att = attention(b, l, qkv, pos)  # RoPE at position_ids (windowed caches are not contiguous)
        a = W.w.matmul(b, att, lw["o"])
        x, h = skip_norm(b, a, h, lw["ln_post"], eps)
        gate, up = W.w.matmul(b, x, lw["gate"]), W.w.matmul(b, x, lw["up"])
        act = b.op("Mul", [b.ms("QuickGelu", [gate], alpha=1.0), up])  # silu(gate) * up
        resid = W.w.matmul(b, act, lw["down"])
    last = b.ms("SkipSimplifiedLayerNormalization", [resid, h, W.final_norm], n_out=1, epsilon=eps)
    last = b.op("Gather", [last, b.c(-1)], axis=1)  # [1, hidden]: only the last position is scored
    logits = lm_head(b, W, last)
    return logits, b.op("Concat", logits_parts, axis=-1)


# ---------------------------------------------------------------------------------------------------- graph

def expanded_past(b, cfg, W):
    """Past caches for GroupQueryAttention: per layer, every expert expanded back to H heads (each pooled head
    repeated over its group), all experts concatenated along the token axis, split into key and value
    [1, H, T, D]; and T (every layer holds the same number of past tokens: one entry per token per layer)."""
    past = []
    for l in range(cfg.num_layers):
        parts = []
        for e, g in enumerate(cfg.expert_group_sizes):
            x = f"past.{l}.{e}"
            if g > 1:
                x = b.op("Expand", [b.op("Unsqueeze", [x, b.c([4])]), b.c([1, 1, 1, 1, g, 1])])
                x = b.op("Reshape", [x, b.c([1, -1, 2, W.H, W.D])])
            parts.append(x)
        cat = b.op("Concat", parts, axis=1) if len(parts) > 1 else parts[0]
        kvh = b.op("Transpose", [cat], perm=[2, 0, 3, 1, 4])  # [2, 1, H, T, D]
        past.append((b.op("Gather", [kvh, b.c(0)], axis=0), b.op("Gather", [kvh, b.c(1)], axis=0)))
    return past, b.op("Gather", [b.op("Shape", [past[0][0]]), b.c(2)], axis=0)


def build(model, dtype="float32", weights="float32", embedding="auto", attention="auto", int4_block=INT4_BLOCK,
          int4_accuracy=INT4_ACCURACY) -> onnx.ModelProto:
    """The whole model file for one variant: dtype float32|float16 (activations, KV), weights float32|int8|int4|
    mixed (CPU; mixed = int8 with int4 down projections), int4 (float16 too) or the dtype itself; embedding
    auto|int8|float32 (tied embedding stored as int8 with quantised CPU weights); attention auto|compact|expand:
    over the per-expert caches as stored (onnx_attention.py; auto for float32, the CPU variant) or expanded to H
    heads into one fused GroupQueryAttention per layer (auto for float16, the CUDA variant: fewer nodes per decode
    step); int4_block, int4_accuracy: MatMulNBits' block_size and accuracy_level."""
    cfg = model.cfg
    assert cfg.is_mixsga, "export needs a mixSGA-converted model"
    if cfg.head_dim % 16:
        raise UserError(f"head_dim {cfg.head_dim} is not a multiple of 16: ONNX Runtime's GroupQueryAttention "
                        "applies RoPE in its fused kernel only for such head sizes (Llama-family models use 64 or 128)")
    if dtype == "float16" and weights not in ("float16", "float32", "int4"):
        raise ValueError(f"the float16 variant has float16 or int4 weights (got {weights})")
    if int4_block not in INT4_BLOCKS:
        raise ValueError(f"int4 block size must be one of {INT4_BLOCKS} (got {int4_block})")
    if int4_accuracy not in range(5):
        raise ValueError(f"int4 accuracy level must be 0..4 (got {int4_accuracy})")
    weights = "float32" if weights in ("float16", "float32") else weights
    if attention == "auto":
        attention = "compact" if dtype == "float32" else "expand"
    if attention not in ("compact", "expand"):
        raise ValueError(f"attention must be auto, compact or expand (got {attention})")
    consts = Constants()
    W = ModelWeights(model, consts, dtype, weights, embedding, (int4_block, int4_accuracy))
    L, E, H, D = cfg.num_layers, cfg.num_experts, W.H, W.D
    groups = cfg.expert_group_sizes
    kvt = FP[dtype]
    b = Builder("", consts)

    inputs = [helper.make_tensor_value_info("input_ids", TensorProto.INT64, [1, "S"]),
              helper.make_tensor_value_info("position_ids", TensorProto.INT64, [1, "S"]),
              helper.make_tensor_value_info("route_bias", TensorProto.FLOAT, [E]),
              helper.make_tensor_value_info("gen_steps", TensorProto.INT64, []),
              helper.make_tensor_value_info("stop_mask", TensorProto.BOOL, [cfg.vocab_size]),
              helper.make_tensor_value_info("first_mask", TensorProto.FLOAT, [cfg.vocab_size])]
    for l in range(L):
        for e, he in enumerate(cfg.expert_kv_heads()):
            inputs.append(helper.make_tensor_value_info(f"past.{l}.{e}", kvt, [1, f"T_{l}_{e}", 2, he, D]))

    # router bias per layer: β_l for the scores, β_l + route_bias for the argmax (fp32, once per run)
    beta = b.c(np.stack([lw["router_b"] for lw in W.layers]), np.float32)  # [L, E]
    bias = b.op("Add", [beta, "route_bias"])
    bias_l = [b.op("Gather", [bias, b.c(l)], axis=0) for l in range(L)]  # [E] each
    S = b.op("Gather", [b.op("Shape", ["input_ids"]), b.c(1)], axis=0)
    vi = helper.make_tensor_value_info
    bb = Builder("step/", consts)  # the decode loop's body: one token per iteration
    it, cond_in, tok = "step/iter", "step/cond_in", "step/token"
    pos_next = b.op("Add", [b.op("Gather", ["position_ids", b.c([-1])], axis=1), b.c(1)])  # [1, 1]
    pos = bb.op("Add", [pos_next, it])
    if attention == "compact":
        past = [oa.past_blocks(b, l, cfg.expert_kv_heads()) for l in range(L)]  # once per run, as stored
        # The chunk: a long one (a prompt's) through GroupQueryAttention over the caches expanded to H heads (one
        # fused kernel a layer, the fastest prefill), a short one (typing, the decode loop's first token) over
        # the caches as stored; both give the loop its initial state (the chunk's K and Vt per layer).
        branches = {}
        for name in ("short", "long"):
            bx = Builder(f"{name}/", consts)
            if name == "short":
                att = oa.ChunkAttention(bx, W, past, S)
                lg0, rl0 = decoder(bx, W, "input_ids", "position_ids", bias_l, att)
                chunk_kv = [x for blk in att.blocks for x in (blk.K, blk.Vt)]
            else:
                xpast, T = expanded_past(bx, cfg, W)
                att = gqa_chunk(bx, W, xpast, T, S)
                lg0, rl0 = decoder(bx, W, "input_ids", "position_ids", bias_l, att)
                chunk_kv = oa.chunk_from_presents(bx, att.presents, bx.op("Reshape", [T, bx.c([1])]))
            outs = [bx.op("Identity", [x]) for x in [lg0, rl0] + chunk_kv]
            types = [TensorProto.FLOAT] * 2 + [kvt] * (2 * L)
            branches[name] = helper.make_graph(bx.nodes, f"chunk_{name}", [], [vi(o, t, None) for o, t in zip(outs, types)])
        long_chunk = b.op("Greater", [S, b.c(LONG_CHUNK - 1)])
        res = b.op("If", [long_chunk], n_out=2 + 2 * L, then_branch=branches["long"], else_branch=branches["short"])
        logits, rl_chunk, init = res[0], res[1], res[2:]
        step_att = oa.StepAttention(b, W, past)
        lg, rl_i = decoder(bb, W, tok, pos, bias_l, step_att)
        state_in, state_out = step_att.state_in, step_att.state_out
        # init: the chunk's K [1, H, S, D] and Vt [1, H, D, S], grown by one token per step
        state_shapes = [[1, H, None, D], [1, H, D, None]]
    else:
        past, T = expanded_past(b, cfg, W)
        chunk_att = gqa_chunk(b, W, past, T, S)
        base = chunk_att.base
        logits, rl_chunk = decoder(b, W, "input_ids", "position_ids", bias_l, chunk_att)
        state_in = [(f"step/past_key.{l}", f"step/past_value.{l}") for l in range(L)]
        total_i = bb.op("Cast", [bb.op("Add", [bb.op("Add", [base, it]), bb.c(1)])], to=TensorProto.INT32)
        seqlens_i = bb.op("Reshape", [bb.op("Sub", [total_i, bb.c(1, np.int32)]), bb.c([1])])
        step_att = GroupQueryAttention(W, state_in, seqlens_i, total_i)
        lg, rl_i = decoder(bb, W, tok, pos, bias_l, step_att)
        state_out = step_att.presents
        # The loop's caches are buffers with room for every step: [1, H, T+S+gen_steps, D], the tail filled step
        # by step at the index seqlens_k names. Why not grow them by one token per step: ONNX Runtime 1.29's CUDA
        # GroupQueryAttention sizes a decode step's present like its past buffer (it expects a max-length
        # buffer), so a growing cache lost every step's new key and value on the GPU (the CPU kernel grew it).
        # Both kernels read only the first seqlens_k+1 positions, so the unfilled tail is never attended.
        room = b.op("Concat", [b.c([0, 0, 0, 0, 0, 0]), b.op("Reshape", ["gen_steps", b.c([1])]), b.c([0])], axis=0)
        init = [b.op("Pad", [x, room]) for p in chunk_att.presents for x in p]
        state_shapes = [[1, H, None, D], [1, H, None, D]]

    first = b.op("ArgMax", [b.op("Add", [logits, "first_mask"])], axis=-1, keepdims=0)  # [1]
    cond0 = b.op("Reshape", [b.op("Not", [b.op("Gather", ["stop_mask", first])]), b.c([], np.int64)])
    # ---- the decode loop body emits only what cannot be had afterwards: the picked token and the router
    # logits; routes and K/V are read after the loop
    nxt = bb.op("ArgMax", [lg], axis=-1, keepdims=0)  # [1]
    cond_out = bb.op("Reshape", [bb.op("Not", [bb.op("Gather", ["stop_mask", nxt])]), bb.c([], np.int64)])
    nxt2 = bb.op("Reshape", [nxt, bb.c([1, 1])])
    body_in = [vi(it, TensorProto.INT64, []), vi(cond_in, TensorProto.BOOL, []), vi(tok, TensorProto.INT64, [1, 1])]
    for k, v in state_in:
        body_in += [vi(k, kvt, state_shapes[0]), vi(v, kvt, state_shapes[1])]
    body_out = [vi(cond_out, TensorProto.BOOL, []), vi(nxt2, TensorProto.INT64, [1, 1])]
    for k, v in state_out:
        body_out += [vi(k, kvt, state_shapes[0]), vi(v, kvt, state_shapes[1])]
    body_out += [vi(nxt, TensorProto.INT64, [1]), vi(rl_i, TensorProto.FLOAT, [1, 1, L * E])]
    body = helper.make_graph(bb.nodes, "decode_step", body_in, body_out)

    first2 = b.op("Reshape", [first, b.c([1, 1])])
    loop_in = ["gen_steps", cond0, first2] + init
    n_state = 1 + 2 * L
    outs = b.op("Loop", loop_in, n_out=n_state + 2, body=body)
    final = outs[1:n_state]  # the caches after the last step: key, value of layer 0, 1, ...
    gen_tok, gen_rl = outs[n_state:]

    # ---- every processed token (chunk, then generated), grouped by expert for the host
    tokens = b.op("Concat", [first, b.op("Reshape", [gen_tok, b.c([-1])])], axis=0, name="tokens")
    rl_all = b.op("Concat", [b.op("Reshape", [rl_chunk, b.c([-1, L, E])]), b.op("Reshape", [gen_rl, b.c([-1, L, E])])],
                  axis=0)  # [N, L, E]
    # the same fp32 sums the layers took their argmax of, so the same routes
    route_all = b.op("Transpose", [b.op("ArgMax", [b.op("Add", [rl_all, bias])], axis=-1, keepdims=0)], perm=[1, 0])
    b.nodes.append(helper.make_node("Cast", [route_all], ["route"], name="route", to=TensorProto.INT32))  # [L, N]
    b.nodes.append(helper.make_node("Sigmoid", [b.op("Transpose", [b.op("Add", [rl_all, beta])], perm=[1, 0, 2])],
                                    ["scores"], name="scores"))
    b.nodes.append(helper.make_node("Identity", [logits], ["logits"], name="logits"))
    b.nodes.append(helper.make_node("Identity", [tokens], ["tokens"], name="tokens_out"))
    if attention == "compact":
        kv = oa.kv_all(b, list(zip(final[0::2], final[1::2])))
    else:
        # K/V of the processed tokens = positions T .. T+N-1 of the final caches (as attention saw them: routed,
        # post-RoPE); N = the chunk plus the steps the loop ran (the buffers' tail past it was never written)
        N = b.op("Gather", [b.op("Shape", [rl_all]), b.c(0)], axis=0)
        kv = b.op("Slice", [b.op("Concat", final, axis=0), b.op("Reshape", [T, b.c([1])]),
                            b.op("Reshape", [b.op("Add", [T, N]), b.c([1])]), b.c([2])])
        kv = b.op("Transpose", [b.op("Reshape", [kv, b.c([L, 2, H, -1, D])])], perm=[0, 3, 1, 2, 4])
    # kv [L, N, 2, H, D]
    for e, g in enumerate(groups):
        idx = b.op("Transpose", [b.op("NonZero", [b.op("Equal", [route_all, b.c(e)])])], perm=[1, 0])  # [n_e, 2]
        x = b.op("GatherND", [kv, idx])  # [n_e, 2, H, D], ordered by layer, then token
        if g > 1:  # the pooled heads sit at 0, g, 2g, ... of the expanded K/V
            x = b.op("Slice", [x, b.c([0]), b.c([H]), b.c([2]), b.c([g])])
        b.nodes.append(helper.make_node("Identity", [x], [f"kv.{e}"], name=f"kv.{e}"))

    outputs = [vi("logits", TensorProto.FLOAT, [1, cfg.vocab_size]), vi("tokens", TensorProto.INT64, ["N1"]),
               vi("route", TensorProto.INT32, [L, "N"]), vi("scores", TensorProto.FLOAT, [L, "N", E])]
    outputs += [vi(f"kv.{e}", kvt, [f"n_{e}", 2, he, D]) for e, he in enumerate(cfg.expert_kv_heads())]
    graph = helper.make_graph(b.nodes, "mixsga", inputs, outputs, initializer=consts.inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET), helper.make_opsetid("com.microsoft", MS_OPSET)],
                          producer_name="mixsga", producer_version="3")
    m.ir_version = 8
    return m


def graph_stats(m) -> dict:
    """Node counts of the main graph and of the decode-step body (what one generated token launches)."""
    body = next(a.g for n in m.graph.node if n.op_type == "Loop" for a in n.attribute if a.name == "body")
    return {"nodes": len(m.graph.node), "step_nodes": len(body.node)}
