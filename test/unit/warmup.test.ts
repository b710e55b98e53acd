// The engine's warm-up run (src/engine/warmup.ts) and the RSS cap's base (src/engine/rssCap.ts): the warm-up is the
// largest run the engine can make, and the cap counts the memory it leaves (ORT's working set) in the fresh
// process, so a process holding a full budget is not over its cap for that memory alone.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import fc from 'fast-check';
import { worstCaseFeeds, worstCaseRun } from '../../src/engine/warmup';
import { RssCap } from '../../src/engine/rssCap';
import type { Manifest } from '../../src/engine/manifest';

const MANIFEST = path.resolve(__dirname, '../../../models/default/manifest.json');

test('worstCaseRun ends at the last position and never leaves the graph', () => {
  assert.deepEqual(worstCaseRun(2048, 256, 16), { pastTokens: 2047 - 16 - 256, chunk: 256, genSteps: 16 });
  fc.assert(
    fc.property(fc.integer({ min: 2, max: 8192 }), fc.integer({ min: 1, max: 4096 }), fc.nat(256), (max, c, s) => {
      const w = worstCaseRun(max, c, s);
      assert.ok(w.pastTokens >= 0 && w.chunk >= 1 && w.genSteps >= 0, JSON.stringify(w));
      assert.equal(w.pastTokens + w.chunk + w.genSteps, max - 1, JSON.stringify({ max, c, s, w }));
      assert.ok(w.chunk <= c && w.genSteps <= s);
    }),
  );
});

test(
  'worstCaseFeeds: every layer × expert input, the full context on the expert with most KV heads',
  {
    skip: fs.existsSync(MANIFEST) ? false : `no model manifest at ${MANIFEST}`,
  },
  () => {
    const m = JSON.parse(fs.readFileSync(MANIFEST, 'utf8')) as Manifest;
    const a = m.architecture;
    const w = worstCaseRun(a.max_position_embeddings, 256, 16);
    for (const kvType of ['float32', 'float16'] as const) {
      const { req, past } = worstCaseFeeds(m, w, kvType);
      assert.equal(past.length, a.num_layers * m.experts.length);
      for (let l = 0; l < a.num_layers; l++) {
        m.experts.forEach((e, i) => {
          const f = past[l * m.experts.length + i];
          assert.equal(f.name, `past.${l}.${i}`);
          assert.deepEqual(f.dims, [1, i === 0 ? w.pastTokens : 0, 2, e.kv_heads, a.head_dim]);
          assert.equal(
            f.data.length,
            f.dims.reduce((x, y) => x * y, 1),
          );
          assert.ok(kvType === 'float16' ? f.data instanceof Uint16Array : f.data instanceof Float32Array);
        });
      }
      assert.equal(req.ids.length, w.chunk);
      assert.ok(Array.from(req.ids).every((id) => id >= 0 && id < a.vocab_size));
      assert.equal(req.startPos, w.pastTokens);
      assert.equal(req.genSteps, w.genSteps);
      assert.deepEqual(Array.from(req.routeBias), [0, ...m.experts.slice(1).map(() => -1e4)]);
      assert.equal(req.stopMask.length, a.vocab_size);
      assert.ok(
        req.stopMask.every((x) => x === 0),
        'no token stops the decode steps early',
      );
    }
  },
);

test('RssCap: the warm fresh RSS is the base; restarted only above base + budget + headroom', async () => {
  const MB = 2 ** 20;
  let rss = 0;
  let restarts = 0;
  const cap = new RssCap(
    {
      idle: () => true,
      rssMB: async () => rss,
      budgetBytes: () => 64 * MB,
      restart: async () => {
        restarts++;
      },
    },
    { idleMs: 5, headroomMB: 64 },
  );
  const settle = () => new Promise((r) => setTimeout(r, 40));
  try {
    cap.freshProcess(246, 183); // RSS after the warm-up, and before it
    assert.equal(cap.capMB(), 246 + 64 + 64);
    assert.equal(cap.report().workingSetMB, 63);
    rss = 246 + 64 + 64; // at the cap: left alone
    cap.activity();
    await settle();
    assert.equal(restarts, 0);
    rss += 1;
    cap.activity();
    await settle();
    assert.equal(restarts, 1);
    assert.equal(cap.report().restarts.count, 1);
    cap.freshProcess(200); // no cold figure: no working set claimed
    assert.equal(cap.report().workingSetMB, undefined);
    assert.equal(cap.capMB(), 200 + 64 + 64);
  } finally {
    cap.dispose();
  }
});
