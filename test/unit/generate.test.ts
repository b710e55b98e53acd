// generate(): the host-side decode loop with the real tokenizer and the real post-processing pipeline (the model's batches given).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { StopMasks } from '../../src/engine/stopMasks';
import { PostProcessor } from '../../src/engine/postprocess';
import { generate } from '../../src/engine/generate';
import { assetsTokenizer } from './assetsTokenizer';

const { tok, manifest } = assetsTokenizer();
const masks = new StopMasks(tok);

/** generate() over fixed batches of ids, as the graph's decode loop would return them. */
function run(batches: number[][], o: { multiline?: boolean; prefix?: string; suffix?: string } = {}) {
  const rules = new PostProcessor({
    multiline: o.multiline ?? false,
    prefix: o.prefix ?? 'x = ',
    suffix: o.suffix ?? '',
    maxTokens: 64,
    stopIds: masks.stopIds,
  });
  let i = 1;
  return generate({
    first: batches[0],
    more: async () => batches[i++] ?? [],
    decode: (ids) => tok.decodeFragment(ids),
    rules,
    healed: '',
    maxTokens: 64,
    deadline: Date.now() + 60_000,
    cancel: { cancelled: false },
  });
}

test('a FIM, EOS, BOS or <unk> token ends the completion without its text showing up', async () => {
  const fim = manifest.fim!;
  const unk = tok.unk;
  assert.equal(unk, 0, "the Llama vocabulary's <unk> is id 0");
  for (const stop of [
    fim.middle_id,
    fim.prefix_id,
    fim.suffix_id,
    fim.pad_id,
    fim.file_sep_id,
    manifest.tokenizer.eos_id,
    manifest.tokenizer.bos_id,
    unk!,
  ]) {
    const g = await run([[...tok.encodeFragment('foo.bar'), stop, ...tok.encodeFragment(' more')]]);
    assert.equal(g.stop, 'eos', `stop id ${stop}`);
    assert.equal(g.text, 'foo.bar', `stop id ${stop}: ${JSON.stringify(g.text)}`);
  }
  // the stop id arriving at the start of a later batch (the graph stopped its loop there)
  const g = await run([tok.encodeFragment('a.b'), [fim.middle_id]]);
  assert.deepEqual([g.text, g.stop], ['a.b', 'eos']);
});

test('a looping completion keeps one copy of the loop', async () => {
  const loop = (s: string) => [tok.encodeFragment(s)];
  let g = await run(loop('xMaxMaxMaxMaxMaxMaxMax'), { prefix: 'interface S { stopMa', suffix: ' }' });
  assert.deepEqual([g.text, g.stop], ['xMax', 'repetition']);
  g = await run(loop(' this.config.config.config.config.config'), { prefix: 'const S =' });
  assert.deepEqual([g.text, g.stop], [' this.config', 'repetition']);
  g = await run(loop('t, getPreviousData, getPreviousData, getPreviousData, getPreviousData,'), {
    prefix: 'import { Budge',
  });
  assert.deepEqual([g.text, g.stop], ['t, getPreviousData', 'repetition']);
  // repeats that are ordinary code are kept whole
  for (const text of ['[0, 0, 0, 0]', "'#ffffff'", '"-------------------"', 'a.b.a.b.a.b']) {
    g = await run([[...tok.encodeFragment(text), manifest.tokenizer.eos_id]]);
    assert.deepEqual([g.text, g.stop], [text, 'eos'], text);
  }
});
