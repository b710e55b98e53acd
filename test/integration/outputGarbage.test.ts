// The engine process collects dropped run outputs (logits, KV) after a call once they exceed MIXSGA_GC_GARBAGE_MB
// (docs/soak.md): V8 alone leaves tens of MB of them in memory. Real ORT, the fixture model (its logits are 125 KB
// a run, like the shipped model's).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LEAN_MALLOC_ENV } from '../../src/engine/client';
import { skip, startOnFixture } from './fixtureEngine';
const MB = 2 ** 20;

/** Largest excess of the engine's array buffers over the KV bytes its caches allocate, read after each of 40 calls. */
async function maxGarbageMB(limitMB: string): Promise<{ idle: number; max: number }> {
  const eng = await startOnFixture(64 * MB, { childEnv: { ...LEAN_MALLOC_ENV, MIXSGA_GC_GARBAGE_MB: limitMB } });
  try {
    assert.equal(eng.state.kind, 'ready');
    const garbage = async () => {
      const m = await eng.memory();
      return m.process!.arrayBuffersMB - m.usedBytes / MB;
    };
    const idle = await garbage();
    let max = -Infinity;
    for (let i = 0; i < 40; i++) {
      const r = await eng.complete({
        docId: `doc${i % 4}`,
        languageId: 'typescript',
        prefix: `let v${i} = compute(${i});\n`.repeat(20 + i),
        suffix: '\n',
        context: [],
        maxTokens: 8,
        multiline: true,
        timeBudgetMs: 60_000,
      });
      assert.notEqual(r.trace.stopReason, 'error', JSON.stringify(r.trace));
      max = Math.max(max, await garbage());
    }
    return { idle, max };
  } finally {
    await eng.dispose();
  }
}

test('dropped run outputs stay under the limit after every call, and pile up without it', { skip }, async () => {
  const on = await maxGarbageMB('1');
  const off = await maxGarbageMB('0');
  // Idle already holds ~1.4 MB of buffers that are no cache (masks); on top of it the 1 MB limit and 1 MB of slack
  // (live between calls: measured up to 0.8 MB here, not identified). Without collection it grows with every call.
  assert.ok(
    on.max <= on.idle + 2,
    `with a 1 MB limit: up to ${on.max.toFixed(1)} MB beyond the caches (idle ${on.idle.toFixed(1)})`,
  );
  assert.ok(
    off.max > on.max + 4,
    `without collection only ${off.max.toFixed(1)} MB piled up (with it ${on.max.toFixed(1)}): the test shows nothing`,
  );
});
