// Issue 19's age cascade on the shipped model (models/default, real tokenizer, real ORT): a ~4k-token file at a
// quarter of the fp16 full cache. The test selects the cascade (EngineOptions.kvPolicy) as a model exported for
// it declares in its manifest. MIXSGA_DEBUG=1: the budget asserts allocated ≤ budget after every operation.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { EngineCore } from '../../src/engine/core';
import type { CompletionRequest } from '../../src/engine/api';

process.env.MIXSGA_DEBUG = '1';
const ROOT = path.resolve(__dirname, '../../..');
const MODEL = path.join(ROOT, 'models/default');
const skip = fs.existsSync(path.join(MODEL, 'manifest.json')) ? false : `model not found at ${MODEL}`;
const CASCADE = 'band=32,order=age,stores=g1-int8|g1-int4c|g2-int4c';
const never = { cancelled: false };

test(
  'a 4k-token file at 25 % of the fp16 cache under the cascade: completions come back, allocated bytes ≤ budget, old tokens sit in int4 tiers',
  { skip, timeout: 300_000 },
  async () => {
    const probe = JSON.parse(fs.readFileSync(path.join(MODEL, 'manifest.json'), 'utf8')).architecture;
    // fp16 bytes of a full cache holding the base (~2040 positions, docs/cache-layout.md)
    const fp16Full = 2040 * probe.num_layers * 2 * probe.num_kv_heads * probe.head_dim * 2;
    const budget = Math.round(0.25 * fp16Full);
    const eng = await EngineCore.create({
      modelDir: MODEL,
      device: 'cpu',
      kvBudgetBytes: budget,
      layout: 'psm',
      kvPolicy: CASCADE,
    });
    try {
      const text = ['src/engine/budget.ts', 'src/engine/kvStore.ts', 'src/engine/spotView.ts', 'src/engine/core.ts']
        .map((p) => fs.readFileSync(path.join(ROOT, p), 'utf8'))
        .join('\n');
      assert.ok(eng.tok.encodeFragment(text).length > 4000, 'a file of more than 4k tokens');
      const lineEnd = (frac: number) => {
        const i = text.indexOf('\n', Math.floor(text.length * frac));
        return i < 0 ? text.length : i;
      };
      let answered = 0;
      for (const [i, frac] of [0.15, 0.5, 0.35].entries()) {
        const at = lineEnd(frac) - 6;
        const req: CompletionRequest = {
          docId: 'big',
          languageId: 'typescript',
          prefix: text.slice(0, at),
          suffix: text.slice(at),
          context: [],
          maxTokens: 24,
          multiline: false,
          timeBudgetMs: 120_000,
        };
        const r = await eng.complete(i + 1, req, never);
        assert.notEqual(r.trace.stopReason, 'error', `spot ${i}: ${JSON.stringify(r.trace)}`);
        if (r.text.length) answered++;
        const m = eng.memory();
        assert.ok(m.usedBytes <= budget, `spot ${i}: ${m.usedBytes} B > ${budget} B`);
        assert.ok(m.cascade, 'the report shows the cascade');
        const tier = Object.fromEntries(m.cascade!.tiers.map((t) => [t.name, t]));
        assert.ok(
          tier['g1-int4c'].tokens + tier['g2-int4c'].tokens > 0,
          `spot ${i}: the budget binds, old tokens went to int4: ${JSON.stringify(m.cascade)}`,
        );
        assert.ok(
          tier.full.tokens < 500,
          `spot ${i}: only sinks, band and the request's tokens at full precision (${tier.full.tokens})`,
        );
      }
      assert.ok(answered >= 1, 'at least one spot gets a suggestion');
    } finally {
      await eng.release();
    }
  },
);
