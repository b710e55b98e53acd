// The age cascade's tiered store (kvCascade.ts, kvTier.ts) and its budget policy (budget.ts step 2 with a cascade).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DocCache, KvShape, fullTokenBytes, docOverheadBytes } from '../../src/engine/kvStore';
import { kvPolicyProblem, parseCascade } from '../../src/engine/kvCascade';
import { KvBudget } from '../../src/engine/budget';
import { openView, closeView } from '../../src/engine/spotView';
import { FullKv, synthChunk, rng } from './synth';
import { f16ToF32, f32ToF16 } from '../../src/engine/fp16';

const rope = { theta: 1e4, headDim: 8 };
const base: KvShape = { layers: 2, heads: [4, 2, 1], headDim: 8, dtype: 'float32' };
const shape: KvShape = {
  ...base,
  cascade: parseCascade('band=32,order=age,stores=g1-int8|g1-int4c|g2-int4c', base.heads, rope),
};

/** A document of n tokens, all at expert 0 (what route_bias forces), and their full-precision K/V by position. */
function filled(n: number, seed = 3): { doc: DocCache; full: FullKv } {
  const doc = new DocCache(shape);
  const { ids, kv, full } = synthChunk(shape, n, rng(seed), () => 0);
  doc.append(ids, kv);
  return { doc, full };
}
const positions = (doc: DocCache, tier: number) => {
  const ps: number[] = [];
  doc.tiers!.tiers[0][tier].forEach((_r, _s, p) => ps.push(p));
  return ps.sort((a, b) => a - b);
};

test('tokens leave the band for int8; the feed holds every token, int8 read back within one step', () => {
  const { doc, full } = filled(100);
  const moved = doc.tiers!.age();
  assert.equal(moved, 2 * 64, '64 tokens per layer are older than sinks + band');
  assert.deepEqual(
    Array.from(doc.segs[0][0].pos.subarray(0, doc.segs[0][0].n)).sort((a, b) => a - b),
    [0, 1, 2, 3, ...Array.from({ length: 32 }, (_, i) => 68 + i)],
    'sinks and band stay full precision',
  );
  assert.deepEqual(
    positions(doc, 0),
    Array.from({ length: 64 }, (_, i) => 4 + i),
  );
  const feeds = doc.feeds();
  assert.deepEqual(
    feeds.map((f) => f.dims[1]),
    [100, 0, 0, 100, 0, 0],
  );
  const tier = doc.tiers!.tiers[1][0],
    row = new Float32Array(2 * 4 * 8);
  tier.forEach((r, s, p) => {
    tier.read(r, s, row, 0);
    const want = [...full[1][p].k.flat(), ...full[1][p].v.flat()];
    want.forEach((x, i) => assert.ok(Math.abs(row[i] - x) <= 2 / 255, `layer 1 pos ${p} elem ${i}: ${row[i]} vs ${x}`));
  });
  // aged tokens' bytes: int8 codes + fp16 scales + position, exactly
  assert.equal(tier.allocatedBytes(), 64 * (2 * 4 * 8 + 2 * 4 * 4 + 4));
});

test('under a binding budget the oldest groups go down first: all of int8 to int4c, then to g2; then windowing', () => {
  const full = fullTokenBytes(shape);
  const b = new KvBudget(shape, docOverheadBytes(shape) + 120 * full, { debug: true });
  const r = rng(5);
  const stages: { int8: number[]; int4c: number[]; g2: number[] }[] = [];
  for (let i = 0; i < 40; i++) {
    const { reserved } = b.admit('a', 16);
    const { ids, kv } = synthChunk(shape, 16, r, () => 0);
    b.commit('a', reserved, ids, kv);
    const d = b.peek('a')!;
    stages.push({ int8: positions(d, 0), int4c: positions(d, 1), g2: positions(d, 2) });
  }
  for (const st of stages) {
    // every int4c token is older than every int8 one, every g2 token older than every int4c one
    if (st.int8.length && st.int4c.length) assert.ok(Math.max(...st.int4c) < Math.min(...st.int8));
    if (st.int4c.length && st.g2.length) assert.ok(Math.max(...st.g2) < Math.min(...st.int4c));
  }
  const firstG2 = stages.findIndex((s) => s.g2.length > 0);
  assert.ok(firstG2 > 0 && stages.slice(0, firstG2).some((s) => s.int4c.length > 0), 'int4c before g2');
  const last = b.peek('a')!;
  assert.ok(last.heldTokens() < last.nIds, 'a long document is windowed in the end');
  assert.equal(b.routeBias(1)[0], 0);
  assert.ok(b.routeBias(1)[1] < -1000 && b.routeBias(1)[2] < -1000, 'new tokens are forced to expert 0');
});

test('past the band tokens stay full precision until the budget binds, then leave least recently used first', () => {
  const full = fullTokenBytes(shape);
  const b = new KvBudget(shape, 3 * docOverheadBytes(shape) + 300 * full, { debug: true });
  const r = rng(7);
  const feed = (id: string, n: number) => {
    const { reserved, actions } = b.admit(id, n);
    const { ids, kv } = synthChunk(shape, n, r, () => 0);
    b.commit(id, reserved, ids, kv);
    return actions;
  };
  feed('a', 100);
  feed('b', 100);
  for (const id of ['a', 'b']) assert.equal(b.peek(id)!.tiers!.count(), 0, `${id}: room to spare, nothing quantised`);
  const actions = feed('b', 120); // 320 full tokens do not fit 300: the least recently used document ages first
  assert.ok(b.peek('a')!.tiers!.count() > 0, 'a (least recently used) moved to the first tier');
  assert.ok(
    actions.some((x) => x.startsWith("moved a's tokens past the band")),
    actions.join('; '),
  );
  assert.ok(b.used() <= 3 * docOverheadBytes(shape) + 300 * full, 'within the budget');
});

test('a planned demotion moves each group once: same tiers and bytes as tier-by-tier, read back closer to full precision', () => {
  const full = fullTokenBytes(shape);
  const run = (stepwise: boolean) => {
    const b = new KvBudget(shape, docOverheadBytes(shape) + 1000 * full, { debug: true });
    b.stepwiseDemotion = stepwise;
    const r = rng(11),
      layer0: FullKv[number] = [];
    for (let i = 0; i < 12; i++) {
      const { reserved } = b.admit('a', 16);
      const { ids, kv, full: f } = synthChunk(shape, 16, r, () => 0);
      layer0.push(...f[0]);
      b.commit('a', reserved, ids, kv);
    }
    // one shrink that pushes the old int8 groups through int4c to g2 at once
    const actions = b.setBudget(docOverheadBytes(shape) + 50 * full);
    return { b, d: b.peek('a')!, actions, layer0 };
  };
  const planned = run(false),
    stepwise = run(true);
  assert.ok(positions(planned.d, 2).length > 0, 'the budget pushed groups through to g2');
  for (const t of [0, 1, 2]) assert.deepEqual(positions(planned.d, t), positions(stepwise.d, t), `tier ${t}`);
  assert.equal(planned.b.used(), stepwise.b.used(), 'same bytes held');
  assert.deepEqual(planned.actions, stepwise.actions, 'same actions, same bytes freed');
  // g2 tokens: one quantisation from int8 (planned) vs int8 → int4c → g2 (stepwise); compare with the pooled reference
  const ref = planned.layer0;
  const err = (d: DocCache) => {
    const t = d.tiers!.tiers[0][2],
      out = new Float32Array(2 * 2 * 8);
    let sum = 0;
    t.forEach((r, s, p) => {
      t.read(r, s, out, 0);
      for (const [kv, heads] of [ref[p].k, ref[p].v].entries())
        for (let h = 0; h < 2; h++)
          for (let x = 0; x < 8; x++) {
            const want = (heads[2 * h][x] + heads[2 * h + 1][x]) / 2;
            sum += Math.abs(out[(kv * 2 + h) * 8 + x] - want);
          }
    });
    return sum;
  };
  assert.ok(err(planned.d) < err(stepwise.d), `planned ${err(planned.d)} vs stepwise ${err(stepwise.d)}`);
});

test('a view moves the band before its cursor; hidden tokens are not fed and come back on close', () => {
  const { doc } = filled(200, 7);
  doc.tiers!.age();
  openView(doc, { head: 4, from: 4, at: 120 }, rope);
  doc.tiers!.age(); // what enforce() does after a view opens: the read point is now 120
  const fullPos = Array.from(doc.segs[0][0].pos.subarray(0, doc.segs[0][0].n)).sort((a, b) => a - b);
  assert.deepEqual(
    fullPos,
    [0, 1, 2, 3],
    'band tokens before the new cursor were already int8: they stay (no recompute)',
  );
  assert.equal(doc.feeds()[0].dims[1], 120, 'only positions before the cursor are fed');
  closeView(doc, rope);
  assert.equal(doc.feeds()[0].dims[1], 200);
  assert.equal(doc.heldTokens(), 200);
});

test('a windowed view feeds tier keys rotated by its shift, exactly as its full-precision rows', () => {
  const a = filled(150, 9).doc;
  a.tiers!.age();
  const spec = { head: 4, from: 40, at: 150 };
  openView(a, spec, rope);
  const plain = new DocCache(base);
  const { ids, kv } = synthChunk(base, 150, rng(9), () => 0);
  plain.append(ids, kv);
  openView(plain, spec, rope);
  const fa = a.feeds()[0],
    fp = plain.feeds()[0];
  assert.equal(fa.dims[1], fp.dims[1]);
  // same multiset of rows up to int8 error: match each full row of `plain` by its nearest row of `a`
  const row = 2 * 4 * 8,
    n = fa.dims[1];
  for (let i = 0; i < n; i++) {
    let best = Infinity;
    for (let j = 0; j < n; j++) {
      let m = 0;
      for (let x = 0; x < row; x++)
        m = Math.max(m, Math.abs((fa.data[j * row + x] as number) - (fp.data[i * row + x] as number)));
      best = Math.min(best, m);
    }
    assert.ok(best <= 2 / 255 + 1e-6, `row ${i}: nearest ${best}`);
  }
});

test('a model without a 2-head expert gets the g2 tier as expert 0 rows, each pooled head repeated (expand_heads)', () => {
  const one: KvShape = { layers: 1, heads: [4], headDim: 8, dtype: 'float32' };
  const sh: KvShape = { ...one, cascade: parseCascade('band=32,order=age,stores=g2-int8', one.heads, rope) };
  const doc = new DocCache(sh);
  const { ids, kv } = synthChunk(sh, 60, rng(4), () => 0);
  doc.append(ids, kv);
  doc.tiers!.age();
  const [f] = doc.feeds();
  assert.deepEqual(f.dims, [1, 60, 2, 4, 8]);
  const row = 2 * 4 * 8;
  for (let t = 36; t < 60; t++)
    for (const kvOff of [0, 32])
      for (const h of [0, 2])
        for (let d = 0; d < 8; d++) {
          const o = t * row + kvOff + h * 8 + d;
          assert.equal(f.data[o], f.data[o + 8], `token row ${t}: heads ${h} and ${h + 1} hold their pooled mean`);
        }
});

test('kv_policy specs are checked by name', () => {
  assert.throws(() => parseCascade('band=32,order=route,stores=g1-int8', [4, 2, 1], rope), /only order=age/);
  assert.throws(
    () => parseCascade('band=32,order=age,stores=g3-int8', [4, 2, 1], rope),
    /do not split into groups of 3/,
  );
  assert.throws(() => parseCascade('band=8,order=age,stores=g1-int4c', [4, 2, 1], rope), /band ≥ 32/);
  assert.throws(() => parseCascade('band=32,order=age,stores=g1-fp8', [4, 2, 1], rope), /not g<heads/);
  assert.throws(() => parseCascade('band=32,order=age,bogus=1,stores=g1-int8', [4, 2, 1], rope), /unknown key/);
});

test('a mixsga.kvPolicy value is checked before it reaches an engine: "", router, or a spec, with the reason', () => {
  for (const ok of [
    '',
    'router',
    'band=32,order=age,stores=g1-int8|g1-int4c|g2-int4c',
    'band=0,order=age,stores=g2-int8',
  ])
    assert.equal(kvPolicyProblem(ok), undefined, ok);
  assert.match(kvPolicyProblem('routr')!, /"routr" is not key=value/);
  assert.match(kvPolicyProblem('band=32,order=route,stores=g1-int8')!, /only order=age/);
  assert.match(kvPolicyProblem('band=16,order=age,stores=g1-int4c')!, /band ≥ 32/);
  assert.match(kvPolicyProblem('band=32,order=age,stores=g0-int8')!, /not g<heads per group ≥ 1>/);
  assert.match(kvPolicyProblem('band=-1,order=age,stores=g1-int8')!, /band must be a whole number/);
  // what depends on the model is checked when the engine starts, by name
  assert.throws(() => parseCascade('band=32,order=age,stores=g3-int8', [4, 2, 1], rope), /groups of 3/);
});

test('fp16 band storage for an fp32 graph: half the bytes of the full rows, fed as fp32 equal to their fp16 rounding', () => {
  const f16Shape: KvShape = { ...shape, dtype: 'float16', feedDtype: 'float32' };
  const a = new DocCache(f16Shape),
    b = new DocCache(shape);
  const { ids, kv } = synthChunk(shape, 100, rng(13), () => 0); // fp32 graph outputs, as ORT hands them back
  a.append(ids, kv);
  b.append(ids, kv);
  a.tiers!.age();
  b.tiers!.age();
  assert.equal(
    a.segs[0][0].allocatedBytes() - 36 * (4 + 4 * 3),
    (b.segs[0][0].allocatedBytes() - 36 * (4 + 4 * 3)) / 2,
  );
  const fa = a.feeds()[0],
    fb = b.feeds()[0];
  assert.ok(fa.data instanceof Float32Array, 'the graph gets fp32');
  assert.deepEqual(fa.dims, fb.dims);
  const rows = 36 * 2 * 4 * 8; // sinks + band, full rows lead the feed
  for (let j = 0; j < rows; j++) assert.equal(fa.data[j], f16ToF32(f32ToF16(fb.data[j] as number)), `element ${j}`);
  // tier rows were quantised from the fp16-stored values: one int8 step and the fp16 rounding apart at most
  for (let j = rows; j < fa.data.length; j++)
    assert.ok(Math.abs((fa.data[j] as number) - (fb.data[j] as number)) <= 2 / 255 + 2 ** -10, `tier element ${j}`);
});
