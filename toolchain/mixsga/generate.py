"""Greedy code completion with a PyTorch checkpoint, decoding exactly like the extension's runtime:
FIM SPM prompt, prefill through `forward_chunk`, then one token at a time over per-expert KV caches
(each token's K/V pooled to its argmax expert's resolution and appended to that expert's cache).

    from mixsga.generate import TorchCompleter
    c = TorchCompleter("runs/mix/ckpt")           # device: cuda if available
    c.complete(prefix, suffix, max_new_tokens=64, stop=["\\n\\n"])
"""
from pathlib import Path

import torch
import tokenizers

from mixsga.checkpoint import load_checkpoint
from mixsga.convert import convert
from mixsga.fim import FILE_SEP, FIM_MIDDLE, FIM_PAD, FIM_PREFIX, FIM_SUFFIX
from mixsga.model import pool_heads

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
        self.ordering = ordering
        self.tok = tokenizers.Tokenizer.from_file(str(tokenizer))
        self.bos, self.eos = self.cfg.bos_token_id, self.cfg.eos_token_id
        self.stop_ids = {self.eos, FIM_PREFIX, FIM_MIDDLE, FIM_SUFFIX, FIM_PAD, FILE_SEP}
        # SentencePiece-style tokenizers add a dummy space in front of a text; encoding "\n" + text and dropping
        # the "\n" tokens gives the ids of text as it appears mid-file (what training saw). Same for decoding.
        self._nl = self.tok.encode("\n", add_special_tokens=False).ids
        self.last = {}

    def encode_segment(self, text):
        if not text:
            return []
        ids = self.tok.encode("\n" + text, add_special_tokens=False).ids
        return ids[len(self._nl):] if ids[:len(self._nl)] == self._nl else \
            self.tok.encode(text, add_special_tokens=False).ids

    def decode(self, ids):
        anchor = self._nl[-1:]
        return self.tok.decode(anchor + list(ids), skip_special_tokens=False)[1:] if anchor else \
            self.tok.decode(list(ids), skip_special_tokens=False)

    def prompt_ids(self, prefix, suffix, max_new_tokens):
        room = max(self.cfg.max_position_embeddings - max_new_tokens - 5, 16)
        if not suffix:  # left-to-right completion
            return [self.bos] + self.tok.encode(prefix, add_special_tokens=False).ids[-room:] if prefix else [self.bos]
        p, s = self.encode_segment(prefix), self.encode_segment(suffix)
        if len(p) + len(s) > room:  # keep the code nearest the cursor
            s = s[:max(room // 4, room - len(p))]
            p = p[-(room - len(s)):] if room > len(s) else []
        if self.ordering == "spm":
            return [self.bos, FIM_SUFFIX, *s, FIM_PREFIX, *p, FIM_MIDDLE]
        return [self.bos, FIM_PREFIX, *p, FIM_SUFFIX, *s, FIM_MIDDLE]

    @torch.no_grad()
    def step(self, ids, past, pos):
        """Feed a chunk, append its K/V to the per-expert caches in place, return the last logits [V]."""
        x = torch.tensor([ids], device=self.device)
        p = torch.arange(pos, pos + len(ids), device=self.device)[None]
        logits, nk, nv, routes, _ = self.model.forward_chunk(x, p, self.route_bias, past)
        for l in range(self.cfg.num_layers):
            for e, g in enumerate(self.cfg.expert_group_sizes):
                sel = (routes[l][0] == e).nonzero()[:, 0]
                if len(sel):
                    k, v = past[l][e]
                    past[l][e] = (torch.cat([k, pool_heads(nk[l][:, :, sel], g)], dim=2),
                                  torch.cat([v, pool_heads(nv[l][:, :, sel], g)], dim=2))
        return logits[0]

    def generate_ids(self, ids, max_new_tokens):
        past = [list(layer) for layer in self.model.empty_past(device=self.device)]
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
