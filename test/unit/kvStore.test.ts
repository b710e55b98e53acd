import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DocCache, KvShape, ChunkKv, entryBytes, ID_BYTES } from '../../src/engine/kvStore';
import { f16ToF32, f32ToF16 } from '../../src/engine/fp16';
import { synthChunk, rng } from './synth';

const shape: KvShape = { layers: 2, heads: [4, 2, 1], headDim: 8, dtype: 'float32' };

/** Naive reference: pool full-res head vectors [H][D] of one token to `heads` heads. */
function poolRef(full: number[][], heads: number): number[][] {
  const g = full.length / heads;
  return Array.from({ length: heads }, (_, j) => full[0].map((_, d) => {
    let s = 0;
    for (let h = j * g; h < (j + 1) * g; h++) s += full[h][d];
    return s / g;
  }));
}
const fullOf = (kv: ChunkKv, l: number, t: number, S: number, H: number, D: number, which: 'keys' | 'values') =>
  Array.from({ length: H }, (_, h) => Array.from(kv[which][l].subarray((h * S + t) * D, (h * S + t + 1) * D)));
const stored = (doc: DocCache, l: number, e: number, slot: number, which: 'k' | 'v') => {
  const s = doc.segs[l][e];
  return Array.from({ length: s.heads }, (_, j) => Array.from(s[which].subarray(s.at(j, slot), s.at(j, slot) + s.D)).map(Number));
};
const close = (a: number[][], b: number[][], tol = 1e-6) =>
  a.forEach((r, i) => r.forEach((x, d) => assert.ok(Math.abs(x - b[i][d]) <= tol, `${x} vs ${b[i][d]}`)));

function recount(doc: DocCache): number {
  let b = doc.tokenIds.byteLength;
  doc.segs.forEach((row) => row.forEach((s) => {
    const { k, v } = s.packedPair();
    b += k.byteLength + v.byteLength + s.pos.subarray(0, s.n).byteLength + s.scores.subarray(0, s.n * s.E).byteLength;
  }));
  return b;
}

test('append pools each token to its routed expert (vs naive reference) and counts bytes exactly', () => {
  const r = rng(1);
  const doc = new DocCache(shape);
  const chunks: { kv: ChunkKv; S: number; start: number }[] = [];
  let start = 0;
  for (const S of [5, 1, 7, 3]) {
    const { ids, kv } = synthChunk(shape, S, r);
    doc.append(ids, kv);
    chunks.push({ kv, S, start });
    start += S;
    assert.equal(doc.bytes(), recount(doc));
  }
  for (let l = 0; l < shape.layers; l++) {
    for (const { kv, S, start } of chunks) for (let t = 0; t < S; t++) {
      const e = kv.routes[l][t];
      const seg = doc.segs[l][e];
      const slot = Array.from(seg.pos.subarray(0, seg.n)).indexOf(start + t);
      assert.ok(slot >= 0);
      close(stored(doc, l, e, slot, 'k'), poolRef(fullOf(kv, l, t, S, 4, 8, 'keys'), shape.heads[e]));
      close(stored(doc, l, e, slot, 'v'), poolRef(fullOf(kv, l, t, S, 4, 8, 'values'), shape.heads[e]));
    }
  }
  assert.equal(doc.nIds, 16);
  const perTok = doc.segs.flat().reduce((a, s, i) => a + s.n * entryBytes(shape, i % 3), 0);
  assert.equal(doc.bytes(), perTok + 16 * ID_BYTES);
});

test('demote e→e\' equals pooling the original full-res K/V to e\'', () => {
  const r = rng(2);
  const doc = new DocCache(shape);
  const { ids, kv } = synthChunk(shape, 12, r, () => 0); // all at expert 0
  doc.append(ids, kv);
  const before = doc.bytes();
  const freed = doc.demote(1, 0, [0, 3, 5], 1);
  assert.equal(before - doc.bytes(), freed);
  const freed2 = doc.demote(1, 1, [0, 1], 2); // positions 0 and 3 go on to expert 2
  assert.equal(freed2, 2 * (entryBytes(shape, 1) - entryBytes(shape, 2)));
  for (const [e, seg] of doc.segs[1].entries()) for (let i = 0; i < seg.n; i++) {
    const p = seg.pos[i];
    close(stored(doc, 1, e, i, 'k'), poolRef(fullOf(kv, 1, p, 12, 4, 8, 'keys'), shape.heads[e]));
    close(stored(doc, 1, e, i, 'v'), poolRef(fullOf(kv, 1, p, 12, 4, 8, 'values'), shape.heads[e]));
  }
  assert.deepEqual(Array.from(doc.segs[1][2].pos.subarray(0, 2)), [0, 3]);
  assert.equal(doc.bytes(), recount(doc));
});

test('truncate keeps exactly positions < n; window keeps sinks and the tail', () => {
  const r = rng(3);
  const doc = new DocCache(shape);
  for (let i = 0; i < 4; i++) { const { ids, kv } = synthChunk(shape, 10, r); doc.append(ids, kv); }
  doc.demote(0, 0, [0, 1], 2);
  doc.truncate(23);
  assert.equal(doc.nIds, 23);
  for (const row of doc.segs) {
    const all = row.flatMap((s) => Array.from(s.pos.subarray(0, s.n))).sort((a, b) => a - b);
    assert.deepEqual(all, Array.from({ length: 23 }, (_, i) => i));
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

test('feeds are [1,H_e,T,D] in head-major order, T may be 0', () => {
  const r = rng(4);
  const doc = new DocCache(shape);
  const { ids, kv } = synthChunk(shape, 6, r, (t) => (t % 2 ? 0 : 1));
  doc.append(ids, kv);
  const f = doc.feeds();
  assert.equal(f.length, 2 * 2 * 3);
  const k02 = f.find((x) => x.name === 'past_key.0.2')!;
  assert.deepEqual(k02.dims, [1, 1, 0, 8]);
  const k00 = f.find((x) => x.name === 'past_key.0.0')!;
  assert.deepEqual(k00.dims, [1, 4, 3, 8]);
  // head 2, token slot 1 (position 3) == full-res head 2 of token 3
  assert.deepEqual(Array.from(k00.data.subarray((2 * 3 + 1) * 8, (2 * 3 + 2) * 8)),
    Array.from(kv.keys[0].subarray((2 * 6 + 3) * 8, (2 * 6 + 4) * 8)));
});

test('fp16 KV: pooling in float, stored as half bits', () => {
  const s16: KvShape = { ...shape, dtype: 'float16' };
  const r = rng(5);
  const doc = new DocCache(s16);
  const { ids, kv } = synthChunk(s16, 4, r, () => 2);
  doc.append(ids, kv);
  const seg = doc.segs[0][2];
  const want = poolRef(fullOf(kv, 0, 1, 4, 4, 8, 'keys').map((row) => row.map(f16ToF32)), 1);
  close(stored(doc, 0, 2, 1, 'k').map((row) => row.map(f16ToF32)), want, 2e-3);
  assert.equal(seg.k instanceof Uint16Array, true);
  assert.equal(f16ToF32(f32ToF16(1.5)), 1.5);
  assert.equal(f16ToF32(f32ToF16(-0.0001)).toFixed(6), '-0.000100');
  assert.equal(doc.bytes(), recount(doc));
});
