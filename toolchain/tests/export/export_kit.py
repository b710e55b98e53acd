"""What the export tests share (tests/export/): the small mixSGA model they export, its graph's inputs, the PyTorch
reference's comparisons, and the tolerances of each variant."""

import numpy as np
import pytest
import torch

ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")


from mixsga.config import ModelConfig  # noqa: E402
from mixsga.export import export_onnx  # noqa: E402
from mixsga.model import MixSGAForCausalLM  # noqa: E402

CFG = ModelConfig(vocab_size=211, hidden_size=64, intermediate_size=96, num_layers=3, num_attention_heads=8,
                  num_kv_heads=4, head_dim=16, expert_group_sizes=(1, 2, 4))
L, E, V, D = CFG.num_layers, CFG.num_experts, CFG.vocab_size, CFG.head_dim
BETA = [0.3, 0.6, 0.2]  # router bias β of every layer: nonzero, so a graph that drops or doubles it is caught
# (S, T per layer and expert, first position): a different T per expert, T = 0 for some caches, all empty; the
# per-layer totals are equal (the graph's contract: every layer holds the same number of past tokens)
SHAPES = [(5, [[3, 0, 7], [0, 4, 6], [2, 6, 2]], 20), (1, [[0, 0, 0]] * 3, 0),
          (1, [[9, 0, 2], [0, 0, 11], [5, 5, 1]], 11), (13, [[0, 0, 0]] * 3, 0), (4, [[0, 6, 0], [6, 0, 0], [0, 0, 6]], 9)]
BIASES = [[0.0, 0.0, 0.0], [0.5, -0.4, 0.2]]

# fp16 variant vs the fp32 reference. The fp16 router logits are off by up to ~4e-3 on this model, so the fp16
# cases are ones whose reference routing margin (top-1 minus top-2 of router logits + route_bias) is >= 0.02:
# there a flipped route is a bug, not rounding.
FP16_LOGIT_ATOL = 3e-2
FP16_KV_ATOL = 1e-2
FP16_MIN_MARGIN = 0.02
# int8/int4 weights vs the fp32 graph (this model: |logits| <~ 7). Smoke bounds: on random Gaussian weights
# (std 0.1) per-column int8 with dynamically quantised activations and block-32 int4 both perturb K by a few % of
# its range and routes flip downstream; trained weights must be judged on eval_ppl.
QUANT_LOGIT_ATOL = {"int8": 5.0, "int4": 5.0, "mixed": 5.0}
QUANT_TOP1_MIN = 0.5
# decode-step budget: nodes per layer in the Loop body (18 documented) plus the per-step overhead (position and
# sequence-length arithmetic, final norm, lm_head, argmax, stop check, router-logit output)
STEP_NODES_PER_LAYER = 18
STEP_NODES_OVERHEAD = 18
# the CPU variants' attention over the caches as stored: per block of keys (3 experts' past + the tokens since)
# a reshape of the queries, two MatMuls, transposes and reshapes of the scores and the output, a Slice of the
# probabilities, the empty-block guard; RoPE, the softmax and the grown loop state
STEP_NODES_PER_LAYER_COMPACT = 70



def make_model(cfg=CFG, seed=0):
    torch.manual_seed(seed)
    m = MixSGAForCausalLM(cfg).init_weights(std=0.1, seed=seed)
    with torch.no_grad():
        m.model.norm.weight.fill_(3.0)  # spread logits so top-1 comparisons are meaningful
        for layer in m.model.layers:
            layer.self_attn.router.bias.copy_(torch.tensor(BETA))
    return m.eval()


def session(path):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def export_session(model, path, *args, **kw):
    export_onnx(model, path, *args, **kw)
    return session(path)



# ---------------------------------------------------------------------------------------------------- helpers

def random_case(cfg, S, Ts, pos0, seed):
    """ids, positions (lists) and past caches in the model's layout (past[l][e] = (k, v) [1, H_e, T, D])."""
    assert len({sum(T) for T in Ts}) == 1, "every layer must hold the same number of past tokens"
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, cfg.vocab_size, (S,), generator=g).tolist()
    past = [[(torch.randn(1, h, t, cfg.head_dim, generator=g), torch.randn(1, h, t, cfg.head_dim, generator=g))
             for h, t in zip(cfg.expert_kv_heads(), T)] for T in Ts]
    return ids, list(range(pos0, pos0 + S)), past


def copy_past(past):
    return [list(layer) for layer in past]


def empty_cache(cfg=CFG, dtype=np.float32):
    return {f"past.{l}.{e}": np.zeros((1, 0, 2, h, cfg.head_dim), dtype)
            for l in range(cfg.num_layers) for e, h in enumerate(cfg.expert_kv_heads())}


def feeds(cache, ids, pos, bias=(0, 0, 0), gen_steps=0, stop=(), first_mask=None, cfg=CFG):
    stop_mask = np.zeros(cfg.vocab_size, bool)
    stop_mask[list(stop)] = True
    return {"input_ids": np.array([ids], np.int64), "position_ids": np.array([pos], np.int64),
            "route_bias": np.asarray(bias, np.float32), "gen_steps": np.array(gen_steps, np.int64),
            "stop_mask": stop_mask,
            "first_mask": np.zeros(cfg.vocab_size, np.float32) if first_mask is None else first_mask, **cache}


def run(sess, f):
    return dict(zip([o.name for o in sess.get_outputs()], sess.run(None, f)))


def append(cache, out, cfg=CFG):
    """The runtime's cache update: kv.{e}'s rows for layer l are the tokens t with route[l, t] = e, in token
    order; they go to the end of past.{l}.{e}."""
    new = dict(cache)
    for e in range(cfg.num_experts):
        rows = out[f"kv.{e}"]
        counts = [int((out["route"][l] == e).sum()) for l in range(cfg.num_layers)]
        assert rows.shape[0] == sum(counts), (e, rows.shape, counts)
        for l, part in enumerate(np.split(rows, np.cumsum(counts)[:-1])):
            key = f"past.{l}.{e}"
            new[key] = np.concatenate([cache[key], part[None].astype(cache[key].dtype)], axis=1)
    return new


def assert_matches_reference(out, ref, logit_atol=1e-4, atol=1e-5):
    """A graph run against `runtime.run` of the same inputs."""
    np.testing.assert_allclose(out["logits"], ref.logits.numpy(), atol=logit_atol, rtol=0)
    assert out["tokens"].tolist() == ref.tokens
    assert out["route"].dtype == np.int32 and np.array_equal(out["route"], np.array(ref.route))
    assert out["route"].shape[1] == out["scores"].shape[1]
    ref_scores = np.array([[s.numpy() for s in layer] for layer in ref.scores])
    np.testing.assert_allclose(out["scores"], ref_scores, atol=atol, rtol=0)
    for e in range(E):
        assert out[f"kv.{e}"].shape == tuple(ref.kv[e].shape), e
        np.testing.assert_allclose(out[f"kv.{e}"].astype(np.float32), ref.kv[e].numpy(), atol=atol, rtol=0)


def route_margin(ref, bias):
    """Smallest gap between the best and second-best expert over every routing decision of a reference run."""
    s = np.array([[x.numpy() for x in layer] for layer in ref.scores], np.float64)
    r = np.sort(np.log(s / (1 - s)) + np.asarray(bias), axis=-1)
    return float((r[..., -1] - r[..., -2]).min())


def all_nodes(graph):
    """Nodes of a graph and of its subgraphs (the Loop body)."""
    for n in graph.node:
        yield n
        for a in n.attribute:
            if a.type == onnx.AttributeProto.GRAPH:
                yield from all_nodes(a.g)
