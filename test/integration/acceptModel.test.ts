// Property with the real model: at random spots of real files, the completion the shipped model (models/default,
// through the engine's worker as the editor uses it) gives never leaves more unclosed brackets, strings,
// docstrings or block comments after the accept than the document had before. Random time budgets make some
// requests end by the time limit, mid-text. The adversarial side is test/unit/acceptProperty.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import fc from 'fast-check';
import { EngineClient } from '../../src/engine/client';
import { langRules, unclosed } from '../../src/engine/postprocess/lexer';
import { realFiles } from '../unit/acceptFiles';

const MODEL = path.resolve(__dirname, '../../../models/default');
const WORKER = path.join(__dirname, 'worker.js');
const skip = fs.existsSync(path.join(MODEL, 'manifest.json')) ? false : `no model at ${MODEL}`;

/**
 * Where a user asks for a completion: at the end of a random line, or right after its first `(`, `.` or `= `
 * (`where` picks the line; `alt` the kind of spot).
 */
function spot(text: string, where: number, alt: boolean): number {
  const starts = [0];
  for (let i = 0; i < text.length; i++) if (text[i] === '\n') starts.push(i + 1);
  const li = Math.min(starts.length - 1, Math.floor(where * starts.length));
  const lineEnd = text.indexOf('\n', starts[li]) < 0 ? text.length : text.indexOf('\n', starts[li]);
  const m = alt ? /(\(|\.|= )/.exec(text.slice(starts[li], lineEnd)) : null;
  return m ? starts[li] + m.index + m[0].length : lineEnd;
}

test(
  "accepting the real model's completion at random spots of real files never leaves more open",
  { skip, timeout: 240_000 },
  async () => {
    const files = realFiles(12_000);
    const eng = await EngineClient.start({
      modelDir: MODEL,
      device: 'cpu',
      kvBudgetBytes: 64 << 20,
      workerPath: WORKER,
    });
    const seen: string[] = [],
      stops: string[] = [];
    try {
      assert.equal(eng.state.kind, 'ready', JSON.stringify(eng.state));
      await fc.assert(
        fc.asyncProperty(
          fc.integer({ min: 0, max: files.length - 1 }),
          fc.double({ min: 0, max: 1, noNaN: true }),
          fc.boolean(),
          fc.integer({ min: 300, max: 2_000 }),
          fc.boolean(),
          async (fi, where, multiline, timeBudgetMs, alt) => {
            const f = files[fi];
            const cursor = spot(f.text, where, alt);
            const prefix = f.text.slice(0, cursor),
              suffix = f.text.slice(cursor);
            const r = await eng.complete({
              docId: f.path,
              languageId: f.languageId,
              prefix,
              suffix,
              context: [],
              maxTokens: 32,
              multiline,
              timeBudgetMs,
            });
            if (r.text) seen.push(r.text);
            stops.push(`${r.trace.stopReason}:${r.trace.totalMs}ms:${JSON.stringify(r.text.slice(0, 30))}`);
            const rules = langRules(f.languageId);
            const before = unclosed(f.text, rules),
              after = unclosed(prefix + r.text + suffix, rules);
            assert.ok(
              after <= before,
              `${f.path}@${cursor}: ${before} -> ${after} open, completion ${JSON.stringify(r.text)} ` +
                `(${r.trace.stopReason}); around ${JSON.stringify(prefix.slice(-40))}|${JSON.stringify(suffix.slice(0, 40))}`,
            );
          },
        ),
        { numRuns: 24, seed: 14, includeErrorInReport: true },
      );
      console.log(`${seen.length} of 24 requests produced text: ${stops.join(', ')}`);
      // the property is about real completions: most spots must have produced text
      assert.ok(seen.length >= 8, `only ${seen.length} of 24 requests produced text: ${stops.join(', ')}`);
    } finally {
      await eng.dispose();
    }
  },
);
