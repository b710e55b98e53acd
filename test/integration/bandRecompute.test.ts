// Cursor jumps under the age cascade (bandRecompute.ts) on the shipped model (models/default, real tokenizer, real
// ORT): a ~1.6k-token file at 35 % of its fp16 full cache, held whole but demoted: prefilling it ages every token; a
// completion near its end, then a jump to an early line. With the recompute, the band before the new cursor is
// back at full precision and its K/V are those a full-precision cache computes (up to the graph's per-chunk int8
// activations); without it, they are read as demoted. MIXSGA_DEBUG=1: allocated ≤ budget always.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { EngineCore } from '../../src/engine/core';
import type { CompletionRequest } from '../../src/engine/api';
import type { DocCache } from '../../src/engine/kvStore';
import { viewOf } from '../../src/engine/spotView';
import { f16ToF32 } from '../../src/engine/fp16';

process.env.MIXSGA_DEBUG = '1';
const ROOT = path.resolve(__dirname, '../../..');
const MODEL = path.join(ROOT, 'models/default');
const skip = fs.existsSync(path.join(MODEL, 'manifest.json')) ? false : `model not found at ${MODEL}`;
const CASCADE = 'band=32,order=age,stores=g1-int8|g1-int4c|g2-int4c';
const FULL = 'band=1000000,order=age,stores=g1-int8';
const never = { cancelled: false };

/** K/V of base position p in layer l as the graph reads it: [2][H][D], a pooled tier head repeated per head. */
function rowOf(doc: DocCache, l: number, p: number): { row: Float32Array; full: boolean } {
  const seg = doc.segs[l][0],
    { headDim: D } = doc.shape,
    H = doc.shape.heads[0];
  for (let i = 0; i < seg.n; i++)
    if (seg.pos[i] === p) {
      const raw = seg.data.subarray(seg.at(i), seg.at(i) + seg.row); // fp16 bits when the band is stored fp16
      return { row: Float32Array.from(raw, (x) => (raw instanceof Uint16Array ? f16ToF32(x) : x)), full: true };
    }
  for (const t of doc.tiers!.tiers[l]) {
    let out: Float32Array | undefined;
    t.forEach((r, s, q) => {
      if (q !== p) return;
      const pooled = new Float32Array(2 * t.heads * D);
      t.read(r, s, pooled, 0);
      out = new Float32Array(2 * H * D);
      for (let kv = 0; kv < 2; kv++)
        for (let h = 0; h < H; h++)
          out.set(
            pooled.subarray(
              (kv * t.heads + Math.floor((h * t.heads) / H)) * D,
              (kv * t.heads + Math.floor((h * t.heads) / H) + 1) * D,
            ),
            (kv * H + h) * D,
          );
    });
    if (out) return { row: out, full: false };
  }
  throw new Error(`position ${p} is not cached in layer ${l}`);
}

const maxDiff = (a: Float32Array, b: Float32Array) => a.reduce((m, x, i) => Math.max(m, Math.abs(x - b[i])), 0);

test(
  'a jump to an early line recomputes the demoted band before the cursor at full precision (and only with the recompute on)',
  { skip, timeout: 600_000 },
  async () => {
    const arch = JSON.parse(fs.readFileSync(path.join(MODEL, 'manifest.json'), 'utf8')).architecture;
    const budget = Math.round(0.35 * 1700 * arch.num_layers * 2 * arch.num_kv_heads * arch.head_dim * 2);
    const source = fs.readFileSync(path.join(ROOT, 'src/engine/kvStore.ts'), 'utf8');
    const text = source.slice(0, source.indexOf('\n', 5000) + 1); // ~1.6k tokens: the base holds all of it
    const start = (kvPolicy: string, bytes: number, fp16Band?: boolean) =>
      EngineCore.create({ modelDir: MODEL, device: 'cpu', kvBudgetBytes: bytes, layout: 'psm', kvPolicy, fp16Band });
    const engines = {
      on: await start(CASCADE, budget),
      off: await start(CASCADE, budget),
      ref: await start(FULL, 1 << 30, false), // the graph's fp32 throughout
    };
    engines.off.bandRecompute = false;
    try {
      const at = (frac: number) => text.indexOf('\n', Math.floor(text.length * frac)) - 4;
      const req = (cursor: number): CompletionRequest => ({
        docId: 'doc',
        languageId: 'typescript',
        prefix: text.slice(0, cursor),
        suffix: text.slice(cursor),
        context: [],
        maxTokens: 8,
        multiline: false,
        timeBudgetMs: 300_000,
      });
      const traces: Record<string, { bandRecomputed: number; budgetActions: string[] }> = {};
      for (const [name, e] of Object.entries(engines)) {
        await e.prefillDoc(0, 'doc', '', text, never);
        await e.complete(1, req(at(0.9)), never);
        const r = await e.complete(2, req(at(0.3)), never);
        const cut = r.trace.budgetActions.find((x) => x.startsWith('windowed'));
        assert.equal(
          cut,
          undefined,
          `${name}: the budget holds the document (no windowing), so the band is demoted, not dropped`,
        );
        assert.notEqual(r.trace.stopReason, 'error', `${name}: ${JSON.stringify(r.trace)}`);
        traces[name] = r.trace;
        assert.ok(e.memory().usedBytes <= e.budget.budgetBytes);
      }
      const docs = Object.fromEntries(Object.entries(engines).map(([k, e]) => [k, e.budget.peek('doc')!]));
      const v = viewOf(docs.on)!;
      assert.equal(v.from, v.head, 'an early line: no window, view positions are base positions');
      const band = Array.from({ length: 32 }, (_, i) => v.at - 32 + i);
      assert.ok(traces.on.bandRecomputed > 0, `recomputed at the jump: ${JSON.stringify(traces.on)}`);
      assert.ok(traces.on.budgetActions.includes(`band recomputed: ${traces.on.bandRecomputed} tokens`));
      assert.equal(traces.off.bandRecomputed, 0);
      assert.equal(traces.ref.bandRecomputed, 0, 'nothing is demoted at full precision');
      for (let l = 0; l < arch.num_layers; l++)
        for (const p of band) assert.ok(rowOf(docs.on, l, p).full, `layer ${l} position ${p} at full precision`);
      assert.ok(
        band.some((p) => !rowOf(docs.off, 0, p).full),
        'without the recompute the band before the cursor was demoted (the premise)',
      );
      const err = (name: string, l: number) =>
        Math.max(...band.map((p) => maxDiff(rowOf(docs[name], l, p).row, rowOf(docs.ref, l, p).row)));
      const L = arch.num_layers - 1;
      // Layer 0's K/V depend on the token, its position and (the CPU graph quantises activations per run:
      // DynamicQuantizeMatMul) the chunk it was computed in, nothing else: the recomputed band is within that
      // per-chunk noise of the full-precision cache's (~1 %), the demoted band an order of magnitude further.
      assert.ok(err('off', 0) > 10 * err('on', 0), `layer 0: demoted ${err('off', 0)} vs ${err('on', 0)}`);
      assert.ok(err('on', L) < err('off', L), `layer ${L}: recomputed ${err('on', L)} vs demoted ${err('off', L)}`);
    } finally {
      for (const e of Object.values(engines)) await e.release();
    }
  },
);
