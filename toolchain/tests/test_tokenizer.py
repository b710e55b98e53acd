"""tokenizer.json (built by scripts/build-tokenizer.mjs) against the Llama-2 reference ids, in Python `tokenizers`."""
import json
import shutil
import subprocess
from pathlib import Path

import pytest
from tokenizers import Tokenizer

ASSETS = Path(__file__).resolve().parents[1] / "mixsga" / "assets"
FIM = ["<fim_prefix>", "<fim_middle>", "<fim_suffix>", "<fim_pad>", "<file_sep>"]
SNIPPETS = [
    "def f(x):\n    if x:\n        return [i for i in range(x)]\n\treturn None  \n",
    "class A {\n  private x = 1;\n  get(): number {\n    return this.x; // ok\n  }\n}\n",
    "  leading spaces\n\n\n    deeper\t tabs\r\nwindows line\n",
    "const s = `ünïcode ✓ 中文 😀`;\n",
]


@pytest.fixture(scope="module")
def tok():
    return Tokenizer.from_file(str(ASSETS / "tokenizer.json"))


def test_hello_world_reference_ids(tok):
    assert tok.encode("Hello world!").ids == [1, 15043, 3186, 29991]


def test_fim_tokens_are_single_special_ids(tok):
    for i, t in enumerate(FIM):
        assert tok.encode(t, add_special_tokens=False).ids == [32000 + i]
        assert tok.token_to_id(t) == 32000 + i
    assert tok.get_vocab_size() == 32005


@pytest.mark.parametrize("text", SNIPPETS)
def test_round_trip(tok, text):
    ids = tok.encode(text).ids
    assert ids[0] == 1
    assert tok.decode(ids, skip_special_tokens=True) == text


def test_indentation_uses_whitespace_pieces(tok):
    # sentencepiece splits a 4-space indent as "▁▁▁" + "▁return"; merges sorted by id instead of rank do not.
    assert tok.encode("\n    return", add_special_tokens=False).ids == [29871, 13, 1678, 736]


def test_config_matches_model_format(tok):
    cfg = json.loads((ASSETS / "tokenizer_config.json").read_text())
    assert cfg["bos_token"] == "<s>" and cfg["eos_token"] == "</s>" and cfg["add_bos_token"] is True
    assert cfg["additional_special_tokens"] == FIM
    assert cfg["clean_up_tokenization_spaces"] is False


REPO = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(not (REPO / "node_modules" / "llama-tokenizer-js").is_dir() or not shutil.which("node"),
                    reason="needs node and the llama-tokenizer-js devDependency")
def test_ids_match_llama_tokenizer_js_on_real_code(tok):
    # A few slices of real source files from node_modules, encoded by the reference JS tokenizer.
    files = [REPO / "node_modules" / p for p in ("semver/classes/range.js", "commander/lib/command.js",
                                                 "llama-tokenizer-js/llama-tokenizer.js")]
    chunks = [f.read_text()[:3000] for f in files if f.is_file()] + SNIPPETS
    script = ("import t from 'llama-tokenizer-js'; let s=''; process.stdin.on('data', d => s += d);"
              "process.stdin.on('end', () => console.log(JSON.stringify(JSON.parse(s).map(x => t.encode(x)))));")
    out = subprocess.run(["node", "--input-type=module", "-e", script], input=json.dumps(chunks), cwd=REPO,
                         capture_output=True, text=True, check=True, timeout=60).stdout
    assert json.loads(out) == [tok.encode(c).ids for c in chunks]
