import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DocCache, KvShape, entryBytes, ID_BYTES, docOverheadBytes, spareFor } from '../../src/engine/kvStore';
import { f16ToF32, f32ToF16 } from '../../src/engine/fp16';
import { FullKv, poolRef, synthChunk, rng } from './synth';

const shape: KvShape = { layers: 2, heads: [4, 2, 1], headDim: 8, dtype: 'float32' };

/** Stored heads [H_e][D] (K or V) of one slot, as floats. */
const stored = (doc: DocCache, l: number, e: number, slot: number, which: 'k' | 'v') => {
  const s = doc.segs[l][e],
    D = s.D,
    base = s.at(slot) + (which === 'v' ? s.heads * D : 0);
  const conv = doc.shape.dtype === 'float16' ? f16ToF32 : (x: number) => x;
  return Array.from({ length: s.heads }, (_, j) => Array.from(s.data.subarray(base + j * D, base + (j + 1) * D), conv));
};
const close = (a: number[][], b: number[][], tol = 1e-6) =>
  a.forEach((r, i) => r.forEach((x, d) => assert.ok(Math.abs(x - b[i][d]) <= tol, `${x} vs ${b[i][d]}`)));

/** What the document's typed arrays really allocate (their buffers' sizes), plus the stated fixed overhead. */
function recount(doc: DocCache): number {
  let b = docOverheadBytes(doc.shape) + doc.ids.buffer.byteLength;
  doc.segs.forEach((row) =>
    row.forEach((s) => {
      b += s.data.buffer.byteLength + s.pos.buffer.byteLength + s.scores.buffer.byteLength;
    }),
  );
  return b;
}
/** Bytes of the entries in use, from the arrays' used parts. */
function usedCount(doc: DocCache): number {
  let b = doc.tokenIds.byteLength;
  doc.segs.forEach((row) =>
    row.forEach((s) => {
      b += s.feed().byteLength + s.pos.subarray(0, s.n).byteLength + s.scores.subarray(0, s.n * s.E).byteLength;
    }),
  );
  return b;
}

test('append pools each token to its routed expert (vs naive reference) and counts bytes exactly', () => {
  const r = rng(1);
  const doc = new DocCache(shape);
  const chunks: { full: FullKv; route: Int32Array; S: number; start: number }[] = [];
  let start = 0;
  for (const S of [5, 1, 7, 3]) {
    const { ids, kv, full } = synthChunk(shape, S, r);
    doc.append(ids, kv);
    chunks.push({ full, route: kv.route, S, start });
    start += S;
    assert.equal(doc.bytes(), recount(doc));
  }
  for (let l = 0; l < shape.layers; l++) {
    for (const { full, route, S, start } of chunks)
      for (let t = 0; t < S; t++) {
        const e = route[l * S + t];
        const seg = doc.segs[l][e];
        const slot = Array.from(seg.pos.subarray(0, seg.n)).indexOf(start + t);
        assert.ok(slot >= 0);
        close(stored(doc, l, e, slot, 'k'), poolRef(full[l][t].k, shape.heads[e]));
        close(stored(doc, l, e, slot, 'v'), poolRef(full[l][t].v, shape.heads[e]));
      }
  }
  assert.equal(doc.nIds, 16);
  const perTok = doc.segs.flat().reduce((a, s, i) => a + s.n * entryBytes(shape, i % 3), 0);
  assert.equal(doc.usedBytes(), perTok + 16 * ID_BYTES);
  assert.equal(doc.usedBytes(), usedCount(doc));
  for (const s of doc.segs.flat()) assert.ok(s.cap - s.n <= spareFor(s.n), `spare ${s.cap - s.n} for ${s.n}`);
  assert.equal(doc.trimSpare() > 0, true);
  assert.equal(doc.bytes(), recount(doc));
  assert.equal(doc.bytes(), usedCount(doc) + docOverheadBytes(shape), 'trimmed: allocation = use + overhead');
});

test("demote e→e' equals pooling the original full-res K/V to e'", () => {
  const r = rng(2);
  const doc = new DocCache(shape);
  const { ids, kv, full } = synthChunk(shape, 12, r, () => 0); // all at expert 0
  doc.append(ids, kv);
  doc.trimSpare();
  const before = doc.bytes();
  const freed = doc.demote(1, 0, [0, 3, 5], 1);
  assert.equal(before - doc.bytes(), freed);
  const freed2 = doc.demote(1, 1, [0, 1], 2); // positions 0 and 3 go on to expert 2
  assert.equal(freed2, 2 * (entryBytes(shape, 1) - entryBytes(shape, 2)));
  for (const [e, seg] of doc.segs[1].entries())
    for (let i = 0; i < seg.n; i++) {
      const p = seg.pos[i];
      close(stored(doc, 1, e, i, 'k'), poolRef(full[1][p].k, shape.heads[e]));
      close(stored(doc, 1, e, i, 'v'), poolRef(full[1][p].v, shape.heads[e]));
    }
  assert.deepEqual(Array.from(doc.segs[1][2].pos.subarray(0, 2)), [0, 3]);
  assert.equal(doc.bytes(), recount(doc));
});

test('truncate keeps exactly positions < n; window keeps sinks and the tail', () => {
  const r = rng(3);
  const doc = new DocCache(shape);
  for (let i = 0; i < 4; i++) {
    const { ids, kv } = synthChunk(shape, 10, r);
    doc.append(ids, kv);
  }
  doc.demote(0, 0, [0, 1], 2);
  doc.truncate(23);
  assert.equal(doc.nIds, 23);
  for (const row of doc.segs) {
    const all = row.flatMap((s) => Array.from(s.pos.subarray(0, s.n))).sort((a, b) => a - b);
    assert.deepEqual(
      all,
      Array.from({ length: 23 }, (_, i) => i),
    );
  }
  assert.equal(doc.bytes(), recount(doc));
  doc.window(4, 15);
  for (const row of doc.segs) {
    const all = row.flatMap((s) => Array.from(s.pos.subarray(0, s.n))).sort((a, b) => a - b);
    assert.deepEqual(all, [0, 1, 2, 3, ...Array.from({ length: 8 }, (_, i) => 15 + i)]);
  }
  assert.equal(doc.nIds, 23, 'ids of windowed tokens stay for prefix matching');
  assert.equal(doc.bytes(), recount(doc));
  assert.equal(doc.commonPrefix([...doc.tokenIds.subarray(0, 10), -1]), 10);
});

test('feeds are [1,T,2,H_e,D] token-major views of the cache, T may be 0', () => {
  const r = rng(4);
  const doc = new DocCache(shape);
  const { ids, kv, full } = synthChunk(shape, 6, r, (t) => (t % 2 ? 0 : 1));
  doc.append(ids, kv);
  const f = doc.feeds();
  assert.equal(f.length, 2 * 3);
  const f02 = f.find((x) => x.name === 'past.0.2')!;
  assert.deepEqual(f02.dims, [1, 0, 2, 1, 8]);
  assert.equal(f02.data.length, 0);
  const f00 = f.find((x) => x.name === 'past.0.0')!;
  assert.deepEqual(f00.dims, [1, 3, 2, 4, 8]);
  assert.equal(f00.data.buffer, doc.segs[0][0].data.buffer, 'a view, not a copy');
  // slot 1 (position 3): its key heads, then its value heads; head 2 of each == the full-res head 2 of token 3
  const row = 2 * 4 * 8;
  assert.deepEqual(Array.from(f00.data.subarray(row + 2 * 8, row + 3 * 8)), full[0][3].k[2]);
  assert.deepEqual(Array.from(f00.data.subarray(row + 4 * 8 + 2 * 8, row + 4 * 8 + 3 * 8)), full[0][3].v[2]);
  const f11 = f.find((x) => x.name === 'past.1.1')!;
  assert.deepEqual(f11.dims, [1, 3, 2, 2, 8]);
});

test('append rejects a run whose token count does not match the ids', () => {
  const doc = new DocCache(shape);
  const { ids, kv } = synthChunk(shape, 4, rng(6));
  assert.throws(() => doc.append(ids.slice(1), kv), /3 ids but the run processed 4/);
  assert.equal(doc.nIds, 0);
});

test('fp16 KV: pooling in float, stored as half bits', () => {
  const s16: KvShape = { ...shape, dtype: 'float16' };
  const r = rng(5);
  const doc = new DocCache(s16);
  const { ids, kv, full } = synthChunk(s16, 4, r, () => 0);
  doc.append(ids, kv);
  doc.demote(0, 0, [1], 2);
  const seg = doc.segs[0][2];
  close(stored(doc, 0, 2, 0, 'k'), poolRef(full[0][1].k, 1), 2e-3);
  close(stored(doc, 0, 2, 0, 'v'), poolRef(full[0][1].v, 1), 2e-3);
  assert.equal(seg.data instanceof Uint16Array, true);
  assert.equal(f16ToF32(f32ToF16(1.5)), 1.5);
  assert.equal(f16ToF32(f32ToF16(-0.0001)).toFixed(6), '-0.000100');
  assert.equal(doc.bytes(), recount(doc));
});

test('allocation follows use: append pays spare only from its allowance; truncate and window give memory back', () => {
  const r = rng(7);
  const doc = new DocCache(shape);
  const { ids, kv } = synthChunk(shape, 40, r);
  doc.append(ids, kv, 40 * (shape.layers * entryBytes(shape, 0) + ID_BYTES)); // the budget's worst-case reservation
  assert.ok(doc.bytes() - docOverheadBytes(shape) <= 40 * (shape.layers * entryBytes(shape, 0) + ID_BYTES));
  const tight = new DocCache(shape);
  tight.append(ids, kv, 0);
  assert.equal(tight.bytes(), usedCount(tight) + docOverheadBytes(shape), 'no allowance: exact sizes');
  assert.equal(tight.bytes(), recount(tight));
  for (let i = 0; i < 5; i++) {
    const c = synthChunk(shape, 40, r);
    doc.append(c.ids, c.kv);
  }
  const big = doc.bytes();
  doc.truncate(10);
  assert.equal(doc.bytes(), recount(doc));
  for (const s of doc.segs.flat()) assert.ok(s.cap <= s.n + spareFor(s.n), `cap ${s.cap} for ${s.n} after truncate`);
  assert.ok(doc.ids.length <= 10 + spareFor(10));
  assert.ok(doc.bytes() < big / 4, `${doc.bytes()} vs ${big}`);
  for (let i = 0; i < 5; i++) {
    const c = synthChunk(shape, 40, r);
    doc.append(c.ids, c.kv);
  }
  doc.window(4, doc.nIds - 8);
  for (const s of doc.segs.flat()) assert.equal(s.cap, s.n, 'windowing leaves exact sizes');
  assert.equal(doc.bytes(), recount(doc));
});
