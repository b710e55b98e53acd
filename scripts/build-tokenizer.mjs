// Builds toolchain/mixsga/assets/tokenizer.json (+ tokenizer_config.json) from llama-tokenizer-js, which embeds
// the Llama-2 32k SentencePiece BPE vocabulary and merges, then checks the result against that library and
// @huggingface/tokenizers (the runtime the extension uses). Recipe: shared/docs/data-sources.md §4.2.
import { readFileSync, writeFileSync, readdirSync, statSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import assert from 'node:assert/strict';
import llama from 'llama-tokenizer-js';
import { Tokenizer } from '@huggingface/tokenizers';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const assets = join(root, 'toolchain', 'mixsga', 'assets');

// Extra special tokens appended after the 32,000 Llama pieces; ids are part of docs/model-format.md.
const FIM_TOKENS = ['<fim_prefix>', '<fim_middle>', '<fim_suffix>', '<fim_pad>', '<file_sep>'];

function buildTokenizerJson() {
  const vocab = {};
  llama.vocabById.forEach((piece, id) => {
    vocab[piece] = id;
  });
  // Rank order of the merges is the merged piece's score order, which is what BPE needs (not id order).
  const merges = [...llama.merges.entries()].sort((a, b) => a[1] - b[1]).map(([pair]) => pair);
  const special = (id, content) => ({
    id,
    content,
    single_word: false,
    lstrip: false,
    rstrip: false,
    normalized: false,
    special: true,
  });
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [
      special(0, '<unk>'),
      special(1, '<s>'),
      special(2, '</s>'),
      ...FIM_TOKENS.map((t, i) => special(32000 + i, t)),
    ],
    normalizer: {
      type: 'Sequence',
      normalizers: [
        { type: 'Prepend', prepend: '▁' },
        { type: 'Replace', pattern: { String: ' ' }, content: '▁' },
      ],
    },
    pre_tokenizer: null,
    post_processor: {
      type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
      pair: [
        { SpecialToken: { id: '<s>', type_id: 0 } },
        { Sequence: { id: 'A', type_id: 0 } },
        { SpecialToken: { id: '<s>', type_id: 1 } },
        { Sequence: { id: 'B', type_id: 1 } },
      ],
      special_tokens: { '<s>': { id: '<s>', ids: [1], tokens: ['<s>'] } },
    },
    decoder: {
      type: 'Sequence',
      decoders: [
        { type: 'Replace', pattern: { String: '▁' }, content: ' ' },
        { type: 'ByteFallback' },
        { type: 'Fuse' },
        { type: 'Strip', content: ' ', start: 1, stop: 0 },
      ],
    },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: '<unk>',
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: true,
      byte_fallback: true,
      ignore_merges: false,
      vocab,
      merges,
    },
  };
}

const tokenizerConfig = {
  add_bos_token: true,
  add_eos_token: false,
  bos_token: '<s>',
  eos_token: '</s>',
  unk_token: '<unk>',
  pad_token: null,
  legacy: true,
  // The Llama default would glue ' !' and ' ,' back together: code must decode byte-exact.
  clean_up_tokenization_spaces: false,
  model_max_length: 2048,
  tokenizer_class: 'LlamaTokenizer',
  additional_special_tokens: FIM_TOKENS,
};

// A few real source files from node_modules: code with indentation, comments and non-ASCII text.
function sampleChunks(limit = 40) {
  const files = [];
  const walk = (dir, depth) => {
    if (files.length >= limit || depth > 4) return;
    for (const name of readdirSync(dir).sort()) {
      const p = join(dir, name);
      const st = statSync(p, { throwIfNoEntry: false });
      if (!st) continue;
      if (st.isDirectory() && name !== 'node_modules') walk(p, depth + 1);
      else if (
        /\.(ts|js|mjs|py)$/.test(name) &&
        !name.endsWith('.d.ts') &&
        !name.includes('.min.') &&
        st.size > 500 &&
        st.size < 200_000
      )
        files.push(p);
      if (files.length >= limit) return;
    }
  };
  for (const pkg of ['typescript/lib', 'commander', 'semver', 'debug', 'ajv/lib', 'llama-tokenizer-js']) {
    walk(join(root, 'node_modules', pkg), 0);
  }
  // Whole files are slow for llama-tokenizer-js; 4k-char slices are plenty to exercise merges and whitespace.
  return files.slice(0, limit).map((f) => readFileSync(f, 'utf8').slice(0, 4000));
}

function verify(json) {
  const hf = new Tokenizer(json, tokenizerConfig);
  assert.deepEqual(hf.encode('Hello world!').ids, [1, 15043, 3186, 29991]);
  FIM_TOKENS.forEach((t, i) => {
    assert.deepEqual(hf.encode(t, { add_special_tokens: false }).ids, [32000 + i], t);
  });
  const chunks = sampleChunks();
  chunks.push(
    'def f(x):\n    if x:\n        return 1\n\treturn  2  \n',
    '  leading spaces\n\n\n  end',
    'ünïcode ✓ 中文',
  );
  for (const text of chunks) {
    const ids = hf.encode(text).ids;
    assert.deepEqual(ids, llama.encode(text), `ids differ from llama-tokenizer-js on: ${text.slice(0, 60)}`);
    assert.equal(hf.decode(ids, { skip_special_tokens: true }), text, 'decode(encode(x)) != x');
  }
  return chunks.length;
}

const json = buildTokenizerJson();
const n = verify(json);
writeFileSync(join(assets, 'tokenizer.json'), JSON.stringify(json));
writeFileSync(join(assets, 'tokenizer_config.json'), JSON.stringify(tokenizerConfig, null, 2) + '\n');
console.log(
  `tokenizer.json: ${Object.keys(json.model.vocab).length} pieces + ${FIM_TOKENS.length} FIM tokens, ` +
    `${json.model.merges.length} merges; matched llama-tokenizer-js on ${n} chunks`,
);
