// Prefix views of a document-order cache (src/engine/spotView.ts) and the psm prompt (src/engine/spotPrompt.ts),
// without ORT: synthetic runs of the right shapes and the project's real tokenizer.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DocCache, KvShape } from '../../src/engine/kvStore';
import { KvBudget } from '../../src/engine/budget';
import { closeView, dropHiddenTail, openView, rotateKeys, viewOf } from '../../src/engine/spotView';
import { buildSpotPrompt, spotBase, spotLimits } from '../../src/engine/spotPrompt';
import { assetsTokenizer } from './assetsTokenizer';
import { rng, synthChunk } from './synth';

const shape: KvShape = { layers: 2, heads: [4, 2, 1], headDim: 8, dtype: 'float32' };
const rope = { theta: 10000, headDim: 8 };

/** Every entry of a cache as "layer/expert/position" → its row (order inside a segment does not matter). */
function entries(doc: DocCache): Map<string, number[]> {
  const m = new Map<string, number[]>();
  doc.segs.forEach((row, l) =>
    row.forEach((s, e) => {
      for (let i = 0; i < s.n; i++)
        m.set(`${l}/${e}/${s.pos[i]}`, Array.from(s.data.subarray(s.at(i), s.at(i) + s.row)));
    }),
  );
  return m;
}
function filled(n: number, seed: number): DocCache {
  const doc = new DocCache(shape);
  const c = synthChunk(shape, n, rng(seed));
  doc.append(c.ids, c.kv);
  return doc;
}
const near = (a: number[], b: number[], tol: number) => a.every((x, i) => Math.abs(x - b[i]) <= tol);

test('a view hides the cursor line and after, keeps their bytes, and closing it restores the base exactly', () => {
  const doc = filled(40, 1);
  const before = entries(doc),
    ids = Array.from(doc.tokenIds),
    bytes = doc.bytes(),
    used = doc.usedBytes();
  openView(doc, { head: 2, from: 2, at: 25 }, rope);
  assert.equal(doc.nIds, 25);
  assert.equal(doc.heldTokens(0), 25);
  assert.ok([...entries(doc).keys()].every((k) => Number(k.split('/')[2]) < 25));
  // allocated bytes: the hidden tokens still count, and the view allocates no more than the document had
  assert.ok(
    doc.bytes() >= used && doc.bytes() <= bytes,
    `hidden tokens still count: ${used} <= ${doc.bytes()} <= ${bytes}`,
  );
  const req = synthChunk(shape, 5, rng(2)); // the request's own tokens on top of the view
  doc.append(req.ids, req.kv);
  assert.deepEqual(
    doc.feeds()[0].dims[1] + doc.feeds()[1].dims[1] + doc.feeds()[2].dims[1],
    30,
    'layer 0 feeds the view + 5',
  );
  closeView(doc, rope);
  assert.equal(viewOf(doc), undefined);
  assert.deepEqual(Array.from(doc.tokenIds), ids);
  assert.deepEqual(entries(doc), before);
  assert.ok(doc.bytes() >= used && doc.bytes() <= bytes);
});

test('a windowed view moves kept keys down by RoPE shift (values untouched); closing rotates them back', () => {
  const doc = filled(40, 3);
  const before = entries(doc);
  openView(doc, { head: 2, from: 12, at: 30 }, rope);
  assert.equal(doc.nIds, 20);
  assert.deepEqual(Array.from(doc.tokenIds.subarray(2, 20)), Array.from(viewOf(doc)!.baseIds.subarray(12, 30)));
  const now = entries(doc);
  for (const [k, row] of now) {
    const [l, e, p] = k.split('/').map(Number);
    const orig = before.get(`${l}/${e}/${p < 2 ? p : p + 10}`)!;
    const keys = shape.heads[e] * shape.headDim;
    assert.deepEqual(row.slice(keys), orig.slice(keys), 'values are not rotated');
    if (p < 2) {
      assert.deepEqual(row, orig);
      continue;
    }
    const ref = doc.segs[l][e]; // rotate the original by −10 with the same function: same numbers
    const probe = new DocCache(shape).segs[l][e];
    probe.reserve(1);
    probe.data.set(orig, 0);
    probe.n = 1;
    rotateKeys(probe, [0], -10, rope, false);
    assert.ok(near(row.slice(0, keys), Array.from(probe.data.subarray(0, keys)), 1e-6), `${k} in ${ref.n}`);
  }
  closeView(doc, rope);
  const after = entries(doc);
  assert.equal(after.size, before.size);
  for (const [k, row] of before) assert.ok(near(after.get(k)!, row, 1e-5), k);
});

test('RoPE shift: rotating by d then −d is the identity; a norm-preserving rotation per pair', () => {
  const doc = filled(8, 4),
    s = doc.segs[0][0];
  const orig = Array.from(s.data.subarray(0, s.n * s.row));
  const slots = Array.from({ length: s.n }, (_, i) => i);
  rotateKeys(s, slots, 1234, rope, false);
  const norm = (a: ArrayLike<number>, o: number) => Math.hypot(a[o], a[o + 4]);
  assert.ok(Math.abs(norm(s.data, 0) - norm(orig, 0)) < 1e-5);
  rotateKeys(s, slots, -1234, rope, false);
  assert.ok(near(Array.from(s.data.subarray(0, s.n * s.row)), orig, 1e-5));
});

test("the budget may drop a view's hidden tail; the base then ends at the cursor line", () => {
  const doc = filled(40, 5);
  openView(doc, { head: 2, from: 2, at: 16 }, rope);
  const bytes = doc.bytes();
  const freed = dropHiddenTail(doc);
  assert.ok(freed > 0);
  assert.equal(doc.bytes(), bytes - freed);
  closeView(doc, rope);
  assert.equal(doc.nIds, 16);
  assert.equal(doc.heldTokens(1), 16);
});

// psm prompts with the project's tokenizer (toolchain/mixsga/assets).
const { tok, manifest } = assetsTokenizer();
const fim = manifest.fim!;
const lines = Array.from({ length: 80 }, (_, i) => `  const value${i} = compute(${i}, "label ${i}") + offset;`);
const text = lines.join('\n') + '\n';

test('psm prompt: the text before the cursor line is a prefix of the document base; the line opens the middle', () => {
  const base = spotBase(tok, text, [], spotLimits(2048, 64));
  for (const [line, col] of [
    [0, 5],
    [20, 0],
    [50, 12],
    [79, 30],
  ]) {
    const at = lines.slice(0, line).join('\n').length + (line ? 1 : 0) + col;
    const p = buildSpotPrompt(
      tok,
      { prefix: text.slice(0, at), suffix: text.slice(at), context: [] },
      spotLimits(2048, 64),
    );
    assert.deepEqual(p.base, base.slice(0, p.at), `line ${line}: base prefix`);
    const mid = p.ids.indexOf(fim.middle_id),
      suf = p.ids.indexOf(fim.suffix_id);
    assert.equal(p.ids[p.head - 1], fim.prefix_id);
    assert.ok(suf === p.head + p.at - p.from && mid > suf);
    assert.equal(tok.decodeFragment(p.ids.slice(mid + 1)) + p.healed, lines[line].slice(0, col));
    assert.ok(lines[line].slice(col).startsWith(p.suffixUsed.split('\n')[0]));
  }
});

test('psm prompt: typing on a line only appends (same view); late lines of a long file get a stable window', () => {
  const lim = spotLimits(2048, 64);
  const long =
    Array.from({ length: 100 }, (_, i) => lines[i % lines.length].replace('value', `v${i}_`)).join('\n') + '\n';
  assert.ok(spotBase(tok, long, [], lim).length > 1900, 'the long text fills the positions');
  for (const [doc, at] of [
    [text, text.length - 300],
    [long, long.length - 20],
  ] as const) {
    let prev = buildSpotPrompt(tok, { prefix: doc.slice(0, at), suffix: doc.slice(at), context: [] }, lim);
    let typed = '';
    for (const ch of ' + x1') {
      typed += ch;
      const cur = buildSpotPrompt(tok, { prefix: doc.slice(0, at) + typed, suffix: doc.slice(at), context: [] }, lim);
      assert.equal(cur.from, prev.from);
      assert.equal(cur.at, prev.at);
      let k = 0;
      while (k < prev.ids.length && prev.ids[k] === cur.ids[k]) k++;
      assert.ok(k >= prev.ids.length - 2, `typing recomputes ${cur.ids.length - k} tokens`);
      assert.ok(cur.ids.length + lim.maxNew < lim.maxPositions, 'positions stay in range');
      prev = cur;
    }
    if (doc === long) assert.ok(prev.from > prev.head, 'a late line in a long file is windowed');
  }
});

test("budget: admit() frees a view's hidden tail before windowing the document it serves", () => {
  const budget = new KvBudget(shape, 1 << 20, { debug: true });
  const doc = budget.touch('a');
  const c = synthChunk(shape, 60, rng(6), () => 2); // all at the coarsest expert: nothing to demote
  doc.append(c.ids, c.kv);
  openView(doc, { head: 2, from: 2, at: 20 }, rope);
  const visible = doc.bytes() - viewOf(doc)!.bytes();
  budget.setBudget(doc.bytes()); // full: the next token needs room
  const { actions } = budget.admit('a', 1);
  assert.ok(
    actions.some((a) => a.startsWith('dropped a')),
    actions.join('; '),
  );
  assert.ok(!actions.some((a) => a.startsWith('windowed')), 'the visible tokens were not windowed');
  // every visible token is still there; allocation fits the budget with the new token's room
  assert.ok(doc.heldTokens(0) === 20 && doc.bytes() <= budget.budgetBytes && visible > 0);
});
