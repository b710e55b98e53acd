"""TorchCompleter: incremental per-expert-cache decoding equals greedy argmax over full forwards."""
import torch

from mixsga.config import ModelConfig
from mixsga.generate import TorchCompleter
from mixsga.model import MixSGAForCausalLM, Routing

CFG = dict(vocab_size=32008, hidden_size=32, intermediate_size=48, num_layers=2, num_attention_heads=4,
           num_kv_heads=4, head_dim=8, max_position_embeddings=256, expert_group_sizes=(1, 2, 4))


def tiny_completer():
    torch.manual_seed(0)
    model = MixSGAForCausalLM(ModelConfig(**CFG)).init_weights(std=0.2, seed=0).double()
    torch.nn.init.normal_(model.model.layers[0].self_attn.router.bias, std=1.0)  # several experts in use
    return TorchCompleter(None, device="cpu", model=model), model


def test_incremental_equals_full_forward_argmax():
    c, model = tiny_completer()
    c.stop_ids = set()  # compare raw token streams
    ids = c.prompt_ids("def add(a, b):\n    return", "\n\nprint(add(1, 2))\n", 12)
    got = list(c.generate_ids(ids, 12))
    seq = list(ids)
    with torch.no_grad():
        for _ in range(12):
            logits = model(torch.tensor([seq]), routing=Routing("argmax")).logits[0, -1]
            seq.append(int(logits.argmax()))
    assert got == seq[len(ids):]
    # the per-expert caches really were mixed (not everything on expert 0)
    routes = model(torch.tensor([seq]), routing=Routing("argmax")).experts
    assert len(torch.unique(torch.cat([r.reshape(-1) for r in routes]))) > 1


def test_spm_prompt_and_stop_sequences():
    c, _ = tiny_completer()
    ids = c.prompt_ids("x = 1\n", "y = 2\n", 8)
    assert ids[:2] == [1, 32002] and ids[-1] == 32001 and 32000 in ids
    c.stop_ids = set()
    full = c.complete("x = 1\n", "y = 2\n", 10, stop=[])
    assert full
    stop = full[len(full) // 2: len(full) // 2 + 1]
    cut = c.complete("x = 1\n", "y = 2\n", 10, stop=[stop])
    assert cut == full[:full.find(stop)]
