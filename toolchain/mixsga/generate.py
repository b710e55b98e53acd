"""Greedy code completion with a PyTorch checkpoint, decoding exactly like the extension's runtime:
FIM SPM prompt (mixsga.prompt, as the ONNX completer), prefill through `forward_chunk`, then one token at a time
over per-expert KV caches (mixsga.runtime: each token's K/V pooled to its argmax expert's resolution and appended
to that expert's cache).

    from mixsga.generate import TorchCompleter
    c = TorchCompleter("runs/mix/ckpt")           # device: cuda if available
    c.complete(prefix, suffix, max_new_tokens=64, stop=["\\n\\n"])
"""
from pathlib import Path

import tokenizers
import torch

from mixsga import runtime
from mixsga.checkpoint import load_checkpoint
from mixsga.convert import convert
from mixsga.manifest import fim_block, fim_for_vocab
from mixsga.prompt import Prompter

TOKENIZER = Path(__file__).parent / "assets" / "tokenizer.json"


class TorchCompleter:
    def __init__(self, path, device=None, ordering="spm", route_bias=None, tokenizer=TOKENIZER, model=None):
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        model = model if model is not None else load_checkpoint(path, device=self.device)
        E = model.cfg.num_experts
        if not model.cfg.is_mixsga:
            # forward_chunk needs routers: a converted copy with expert 0 forced is the dense model exactly
            model = convert(model)
            route_bias = [1e4, 0.0, 0.0]
            E = model.cfg.num_experts
        self.model = model.to(self.device).eval()
        self.cfg = self.model.cfg
        self.route_bias = torch.tensor(route_bias if route_bias is not None else [0.0] * E,
                                       dtype=torch.float32, device=self.device)
        self.tok = tokenizers.Tokenizer.from_file(str(tokenizer))
        self.bos, self.eos = self.cfg.bos_token_id, self.cfg.eos_token_id
        fim = fim_for_vocab(fim_block(tokenizer), self.cfg.vocab_size)
        self.prompter = Prompter(self.tok, fim, self.bos, self.eos, ordering=ordering)
        self.ordering = self.prompter.ordering
        self.stop_ids = set(self.prompter.stop_ids)
        self.last = {}

    def encode_segment(self, text):
        return self.prompter.encode_segment(text)

    def decode(self, ids):
        return self.prompter.decode(ids)

    def prompt_ids(self, prefix, suffix, max_new_tokens):
        return self.prompter.prompt_ids(prefix, suffix, max_new_tokens, self.cfg.max_position_embeddings)

    def step(self, ids, past, pos):
        """Feed a chunk, append its K/V to the per-expert caches in place (mixsga.runtime), return the last
        logits [V]."""
        return runtime.run(self.model, ids, range(pos, pos + len(ids)), self.route_bias, past).logits[0]

    def generate_ids(self, ids, max_new_tokens):
        dtype = next(self.model.parameters()).dtype
        past = [list(layer) for layer in self.model.empty_past(dtype=dtype, device=self.device)]
        logits = self.step(ids, past, 0)
        pos, out = len(ids), []
        while len(out) < max_new_tokens:
            nxt = int(logits.argmax())
            if nxt in self.stop_ids:
                break
            out.append(nxt)
            yield nxt
            if pos >= self.cfg.max_position_embeddings:
                break
            logits = self.step([nxt], past, pos)
            pos += 1

    def complete(self, prefix, suffix, max_new_tokens, stop=()):
        ids = self.prompt_ids(prefix, suffix, max_new_tokens)
        gen, text = [], ""
        for t in self.generate_ids(ids, max_new_tokens):
            gen.append(t)
            text = self.decode(gen)
            hits = [text.find(s) for s in stop or () if s and s in text]
            if hits:
                text = text[:min(hits)]
                break
        self.last = {"prompt_tokens": len(ids), "generated_ids": gen}
        return text
