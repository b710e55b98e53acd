"""Golden prompt cases shared by the Python and TypeScript prompts: test/fixtures/prompt-cases.json holds, for a
few prefix/suffix pairs, the token ids `mixsga.prompt.Prompter` gives with the project's tokenizer (fragment
encoding of each segment, and the SPM layout with FIM also for an empty suffix, as the engine prompts).
test_prompt.py checks the Python side against the file, test/unit/prompt.test.ts the engine's `encodeFragment`,
`decodeFragment` and `buildPrompt` (layout "spm").

    python -m mixsga.prompt_cases            # rewrite test/fixtures/prompt-cases.json
"""
from __future__ import annotations

import json
from pathlib import Path

import tokenizers

from mixsga.manifest import fim_block
from mixsga.prompt import Prompter

TOKENIZER = Path(__file__).parent / "assets" / "tokenizer.json"
OUT = Path(__file__).resolve().parents[2] / "test" / "fixtures" / "prompt-cases.json"
MAX_NEW_TOKENS, MAX_POSITIONS = 64, 2048
CASES = [
    ("python-body", "def add(a, b):\n    ", "\n\nprint(add(1, 2))\n"),
    ("python-after-newline", "import os\n\ndef main():\n", "    return 0\n"),
    ("ts-mid-line", "function clamp(x: number, lo = 0, hi = 1): number {\n  return Math.min(hi, Math.max(lo, ",
     "));\n}\n"),
    ("leading-spaces-and-tabs", "  \tx = 1\n\t", "\ty = 2\n"),
    ("unicode", "greeting = \"héllo wörld ✓\"\nname = \"", "\"\n"),
    ("empty-suffix", "for (const x of xs) {\n", ""),
    ("blank-lines", "\n\n\nclass A:\n", "\n\n\n"),
    ("word-start", "console.lo", "(value);\n"),
]


def prompter() -> Prompter:
    tok = tokenizers.Tokenizer.from_file(str(TOKENIZER))
    return Prompter(tok, fim_block(TOKENIZER), bos_id=1, eos_id=2, ordering="spm", fim_always=True)


def golden() -> dict:
    p = prompter()
    return {"tokenizer": "toolchain/mixsga/assets/tokenizer.json", "max_new_tokens": MAX_NEW_TOKENS,
            "max_positions": MAX_POSITIONS, "generated_by": "python -m mixsga.prompt_cases",
            "cases": [{"name": name, "prefix": prefix, "suffix": suffix,
                       "prefix_ids": p.encode_segment(prefix), "suffix_ids": p.encode_segment(suffix),
                       "spm": p.prompt_ids(prefix, suffix, MAX_NEW_TOKENS, MAX_POSITIONS)}
                      for name, prefix, suffix in CASES]}


def text() -> str:
    return json.dumps(golden(), indent=1, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    OUT.write_text(text())
    print(f"wrote {OUT}")
