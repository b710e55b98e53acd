"""The evaluators' prompt, one implementation for the ONNX and the PyTorch completer: text segments to token ids
and back, and the FIM layout, with the special tokens' ids from a manifest's "fim" block.

Prompt: BOS (if add_bos), then
  FIM, SPM order (default):  <fim_suffix> suffix <fim_prefix> prefix <fim_middle>
  FIM, PSM order:            <fim_prefix> prefix <fim_suffix> suffix <fim_middle>
  left to right:             prefix            (when suffix == "" or there is no FIM block; `fim_always=True` uses
                                                FIM with an empty suffix instead, as the extension's engine does)
Text segments are encoded WITHOUT the SentencePiece dummy-prefix space ("▁" the Llama normalizer prepends to every
encoded string), like the engine's `encodeFragment` (src/engine/tokenizer.ts); `dummy_prefix=True` keeps it, and
`prefix_at_start=True` encodes the prefix as training encoded a document's start (with the "▁").
If the prompt does not fit max_position_embeddings together with max_new_tokens, the prefix loses tokens at its
start and (FIM) the suffix at its end (the suffix keeps at most a quarter of the room).
The extension's engine prompts PSM with the cursor line's text opening the middle and a shorter suffix, so that
its cache can stay in document order (docs/cache-layout.md); the evaluators keep whole prompts in either order,
which the published figures were measured with. test/fixtures/prompt-cases.json ties both (test_prompt.py).
"""
from __future__ import annotations

from mixsga.errors import UserError

FIM_STOP_KEYS = ("prefix_id", "middle_id", "suffix_id", "pad_id", "file_sep_id")


class Prompter:
    def __init__(self, tok, fim: dict | None, bos_id: int | None, eos_id: int | None, add_bos: bool = True,
                 ordering: str = "spm", dummy_prefix: bool = False, prefix_at_start: bool = False,
                 fim_always: bool = False):
        """tok: a `tokenizers.Tokenizer`; fim: a manifest's "fim" block (ids and orderings) or None."""
        if ordering not in ("spm", "psm"):
            raise UserError(f"unknown FIM ordering {ordering!r}")
        if fim and ordering not in fim.get("orderings", ["psm", "spm"]):
            ordering = fim["orderings"][0]
        self.tok, self.fim, self.ordering = tok, fim, ordering
        self.bos_id, self.eos_id, self.add_bos = bos_id, eos_id, add_bos
        self.dummy_prefix, self.prefix_at_start, self.fim_always = dummy_prefix, prefix_at_start, fim_always
        # ids that end generation: EOS and every FIM special token
        self.stop_ids = {eos_id} if eos_id is not None else set()
        if fim:
            self.stop_ids |= {fim[k] for k in FIM_STOP_KEYS if fim.get(k) is not None}
        # Newline anchor: encode("\n" + s) minus encode("\n") = s without the dummy prefix; decoding
        # [anchor] + ids keeps a generated token's leading space (the decoder strips one at text start).
        self._nl_ids = tok.encode("\n", add_special_tokens=False).ids
        self._anchor = self._nl_ids[-1:] if self._nl_ids and \
            tok.decode(self._nl_ids[-1:], skip_special_tokens=False) == "\n" else []

    def encode_segment(self, text: str) -> list[int]:
        if not text:
            return []
        if self.dummy_prefix:
            return self.tok.encode(text, add_special_tokens=False).ids
        ids = self.tok.encode("\n" + text, add_special_tokens=False).ids
        n = len(self._nl_ids)
        if n and ids[:n] == self._nl_ids:
            return ids[n:]
        return self.tok.encode(text, add_special_tokens=False).ids

    def decode(self, ids: list[int]) -> str:
        if self._anchor:
            return self.tok.decode(self._anchor + list(ids), skip_special_tokens=False)[1:]
        return self.tok.decode(list(ids), skip_special_tokens=False)

    def prompt_ids(self, prefix: str, suffix: str, max_new_tokens: int, max_positions: int) -> list[int]:
        room = max(max_positions - max_new_tokens - 5, 16)
        head = [self.bos_id] if self.add_bos and self.bos_id is not None else []
        pre = (self.tok.encode(prefix, add_special_tokens=False).ids if self.prefix_at_start and prefix
               else self.encode_segment(prefix))
        if not self.fim or (not suffix and not self.fim_always):
            return head + pre[-room:]
        p, s = pre, self.encode_segment(suffix)
        if len(p) + len(s) > room:  # keep the code nearest the cursor
            s = s[:max(room // 4, room - len(p))]
            p = p[-(room - len(s)):] if room > len(s) else []
        f = self.fim
        if self.ordering == "spm":
            return head + [f["suffix_id"]] + s + [f["prefix_id"]] + p + [f["middle_id"]]
        return head + [f["prefix_id"]] + p + [f["suffix_id"]] + s + [f["middle_id"]]
