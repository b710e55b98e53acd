"""Attention over the per-expert caches as stored (the CPU variant's "compact" attention, docs/model-format.md).

Each expert's past keys and values stay at its own resolution (H_e = H/g heads) and are read once per step by the
query heads of its group: query head h reads pooled head h // (nq/H_e), so the queries are reshaped to
[1, H_e, (nq/H_e)·S, D] per expert instead of repeating the cache's heads. The scores of every block (each
expert's past, the chunk, the tokens generated so far) are concatenated under one softmax, so the result is the
attention of today's expanded cache (the pooled heads repeated over their groups) up to float summation order, and
attention work and memory traffic follow the bytes held.

Layouts are chosen so the large operand of each MatMul is its first (MLAS packs the second): keys [1, H_e, T, D]
(scores^T = K·q^T), values transposed [1, H_e, D, T] (out^T = V^T·p^T). The past is brought to them once per run
(a Gather and a Transpose: two copies of the bytes held), the chunk and the generated tokens at full H heads (each
head of a group holds the same pooled value, as attention saw them).

RoPE: ORT's RotaryEmbedding on the packed q|K heads (same rotation on every head, so it commutes with pooling).
"""
import numpy as np

BIG = np.iinfo(np.int64).max


class Block:
    """One run of keys attended together: K [1, Hb, T, D], Vt [1, Hb, D, T]; start/end of its columns in the
    concatenated scores and the [1, Hb, Mb, T] shape of its slice of the probabilities (made by `plan`)."""

    def __init__(self, K, Vt, Hb):
        self.K, self.Vt, self.Hb = K, Vt, Hb
        self.start = self.end = self.p_shape = self.nonempty = None


def plan(b, blocks, nq, S, open_last=False):
    """Column ranges of `blocks` in the concatenated scores and the shapes of their probability slices, from
    their key counts (built outside the loop: loop-invariant). S: queries per run, an int (decode step) or an
    int64 [1] tensor (the chunk). open_last: the last block runs to the end (its key count is not read)."""
    off = b.c([0])
    for i, blk in enumerate(blocks):
        Mb = b.c([nq // blk.Hb * S]) if isinstance(S, int) else b.op("Mul", [S, b.c([nq // blk.Hb])])
        last_open = open_last and i == len(blocks) - 1
        Tb = b.c([-1]) if last_open else b.op("Slice", [b.op("Shape", [blk.K]), b.c([2]), b.c([3])])
        blk.start, blk.end = off, b.c([BIG]) if last_open else b.op("Add", [off, Tb])
        blk.p_shape = b.op("Concat", [b.c([1, blk.Hb]), Mb, Tb], axis=0)
        if not last_open:
            blk.nonempty = b.op("Greater", [Tb, b.c([0])])
        off = blk.end
    return blocks


def past_blocks(b, l, heads):
    """Expert e's past of layer l as a Block, from the graph input past.{l}.{e} [1, T, 2, H_e, D]."""
    out = []
    for e, he in enumerate(heads):
        x = f"past.{l}.{e}"
        k = b.op("Gather", [x, b.c(0)], axis=2)  # [1, T, H_e, D]
        v = b.op("Gather", [x, b.c(1)], axis=2)
        out.append(Block(b.op("Transpose", [k], perm=[0, 2, 1, 3]), b.op("Transpose", [v], perm=[0, 2, 3, 1]), he))
    return out


def split_rope(b, qkv, pos, W):
    """Pooled packed q|K|V [1, S, P·D] -> RoPE'd q [1, S, nq·D], RoPE'd k and v [1, S, H·D] (token-major)."""
    nq, H, D = W.nq, W.H, W.D
    qk = b.op("Slice", [qkv, b.c([0]), b.c([(nq + H) * D]), b.c([2])])
    qk = b.ms("RotaryEmbedding", [qk, pos, W.cos, W.sin], interleaved=0, num_heads=nq + H)
    q = b.op("Slice", [qk, b.c([0]), b.c([nq * D]), b.c([2])])
    k = b.op("Slice", [qk, b.c([nq * D]), b.c([BIG]), b.c([2])])
    v = b.op("Slice", [qkv, b.c([(nq + H) * D]), b.c([BIG]), b.c([2])])
    return q, k, v


def attend(b, q4, blocks, nq, D, scores_shape, out_shape, last_mask=None, many_queries=False):
    """q4 [1, nq, S, D] over the planned blocks -> [1, nq, S, D]. scores_shape: [1, nq, S, -1]; last_mask: added
    to the last block's scores (the chunk's causal mask). many_queries (the chunk): the queries are each MatMul's
    first operand (a GEMM that amortises packing the keys and values); a decode step's few queries go second, so
    the keys and values are read in place, not packed (and the tiny scores are transposed instead)."""
    scale = float(D) ** -0.5
    scores = []
    for i, blk in enumerate(blocks):
        qb = b.op("Reshape", [q4, b.c([1, blk.Hb, -1, D])])  # query heads of a group next to each other
        if many_queries:
            s = b.ms("FusedMatMul", [qb, blk.K], transB=1, alpha=scale)  # [1, Hb, Mb, T]
        else:
            s = b.op("Transpose", [b.ms("FusedMatMul", [blk.K, qb], transB=1, alpha=scale)], perm=[0, 1, 3, 2])
        s = b.op("Reshape", [s, scores_shape])  # [1, nq, S, T]
        if last_mask is not None and i == len(blocks) - 1:
            s = b.op("Add", [s, last_mask])
        scores.append(s)
    p = b.op("Softmax", [b.op("Concat", scores, axis=3)], axis=3)
    outs = []
    for blk in blocks:
        pb = b.op("Reshape", [b.op("Slice", [p, blk.start, blk.end, b.c([3])]), blk.p_shape])  # [1, Hb, Mb, T]
        if many_queries:
            o = b.ms("FusedMatMul", [pb, blk.Vt], transB=1)  # [1, Hb, Mb, D]
        else:
            o = b.ms("FusedMatMul", [blk.Vt, pb], transB=1)  # [1, Hb, D, Mb]
        if blk.nonempty is not None:  # an empty block's product (inner size 0) is left unwritten by ORT 1.30
            o = b.op("Where", [blk.nonempty, o, b.c(0.0, np.float32)])
        if not many_queries:
            o = b.op("Transpose", [o], perm=[0, 1, 3, 2])
        outs.append(b.op("Reshape", [o, out_shape]))
    return b.op("Sum", outs) if len(outs) > 1 else outs[0]


def causal_mask(b, S):
    """[S, S] fp32: 0 on and below the diagonal, -inf above (S: int64 scalar)."""
    r = b.op("Range", [b.c(0), S, b.c(1)])
    above = b.op("Greater", [b.op("Unsqueeze", [r, b.c([0])]), b.op("Unsqueeze", [r, b.c([1])])])
    return b.op("Where", [above, b.c(-np.inf, np.float32), b.c(0.0, np.float32)])


class ChunkAttention:
    """The chunk: S queries over every expert's past and the chunk itself (causal). Keeps each layer's
    chunk as a Block (the decode loop's initial state)."""

    def __init__(self, b, W, past, S):
        """past: per layer, every expert's past_blocks (planned here for S queries)."""
        self.W, self.S1 = W, b.op("Reshape", [S, b.c([1])])
        nq, D = W.nq, W.D
        self.past = [plan(b, [Block(x.K, x.Vt, x.Hb) for x in blocks], nq, self.S1) for blocks in past]
        self.chunk_p_shape = b.op("Concat", [b.c([1, W.H]), b.op("Mul", [self.S1, b.c([nq // W.H])]), b.c([-1])], axis=0)
        self.mask = causal_mask(b, S)
        self.q_shape = b.op("Concat", [b.c([1]), self.S1, b.c([nq, D])], axis=0)
        self.scores_shape = b.op("Concat", [b.c([1, nq]), self.S1, b.c([-1])], axis=0)
        self.out_shape = b.op("Concat", [b.c([1, nq]), self.S1, b.c([D])], axis=0)
        self.kv_shape = b.op("Concat", [b.c([1]), self.S1, b.c([W.H, D])], axis=0)
        self.blocks = []

    def __call__(self, b, l, qkv, pos):
        W = self.W
        q, k, v = split_rope(b, qkv, pos, W)
        k, v = b.op("Reshape", [k, self.kv_shape]), b.op("Reshape", [v, self.kv_shape])  # [1, S, H, D]
        chunk = Block(b.op("Transpose", [k], perm=[0, 2, 1, 3]), b.op("Transpose", [v], perm=[0, 2, 3, 1]), W.H)
        self.blocks.append(chunk)
        chunk.start, chunk.end, chunk.p_shape = self.past[l][-1].end, b.c([BIG]), self.chunk_p_shape
        blocks = self.past[l] + [chunk]
        q4 = b.op("Transpose", [b.op("Reshape", [q, self.q_shape])], perm=[0, 2, 1, 3])  # [1, nq, S, D]
        o = attend(b, q4, blocks, W.nq, W.D, self.scores_shape, self.out_shape, self.mask, many_queries=True)
        return b.op("Reshape", [b.op("Transpose", [o], perm=[0, 2, 1, 3]), b.c([1, -1, W.nq * W.D])])


class StepAttention:
    """A decode step: one query over every expert's past and the tokens since (the loop's state per layer: the
    chunk and the tokens generated so far, K [1, H, S+i, D] and Vt [1, H, D, S+i], grown by this step's token;
    it starts as the chunk's block, so the loop's final state holds the K/V of every token the run processed)."""

    def __init__(self, b, W, past):
        """past: per layer, every expert's past_blocks."""
        self.W = W
        nq = W.nq
        # every expert's past: fixed during the loop, its column ranges computed once per run
        self.fixed = [plan(b, [Block(x.K, x.Vt, x.Hb) for x in blocks], nq, 1) for blocks in past]
        self.new_p_shape = b.c([1, W.H, nq // W.H, -1])
        self.state_in, self.state_out = [], []

    def __call__(self, b, l, qkv, pos):
        W = self.W
        nq, H, D = W.nq, W.H, W.D
        q, k, v = split_rope(b, qkv, pos, W)
        kin, vin = f"step/key.{l}", f"step/value_t.{l}"
        self.state_in.append((kin, vin))
        K = b.op("Concat", [kin, b.op("Reshape", [k, b.c([1, H, 1, D])])], axis=2)
        Vt = b.op("Concat", [vin, b.op("Reshape", [v, b.c([1, H, D, 1])])], axis=3)
        self.state_out.append((K, Vt))
        new = Block(K, Vt, H)  # the chunk and the generated tokens, this one included: after the past's columns
        new.start, new.end, new.p_shape = self.fixed[l][-1].end, b.c([BIG]), self.new_p_shape
        q4 = b.op("Reshape", [q, b.c([1, nq, 1, D])])  # one query: [1, S, nq, D] and [1, nq, S, D] coincide
        o = attend(b, q4, self.fixed[l] + [new], nq, D, b.c([1, nq, 1, -1]), b.c([1, nq, 1, D]))
        return b.op("Reshape", [o, b.c([1, 1, nq * D])])


def chunk_from_presents(b, presents, T):
    """The chunk's K [1, H, S, D] and Vt [1, H, D, S] of each layer from GroupQueryAttention's presents
    [1, H, T+S, D] (T: int64 [1] past tokens)."""
    out = []
    for pk, pv in presents:
        out.append(b.op("Slice", [pk, T, b.c([BIG]), b.c([2])]))
        out.append(b.op("Transpose", [b.op("Slice", [pv, T, b.c([BIG]), b.c([2])])], perm=[0, 1, 3, 2]))
    return out


def kv_all(b, final):
    """[L, N, 2, H, D]: the K/V of every processed token (the chunk, then the generated ones), token-major, from
    the loop's final state [(K [1, H, N, D], Vt [1, H, D, N]) per layer]."""
    k = b.op("Transpose", [b.op("Concat", [k for k, _ in final], axis=0)], perm=[0, 2, 1, 3])  # [L, N, H, D]
    v = b.op("Transpose", [b.op("Concat", [v for _, v in final], axis=0)], perm=[0, 3, 1, 2])
    return b.op("Concat", [b.op("Unsqueeze", [k, b.c([2])]), b.op("Unsqueeze", [v, b.c([2])])], axis=2)
