// Layout psm on the shipped model (models/default, real tokenizer, real ORT; docs/cache-layout.md): a request at a
// new cursor spot reuses the document's cache up to the cursor line and completes exactly as the same prompt does
// from scratch; RoPE-shifted (windowed) keys equal keys computed at the shifted positions.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { EngineCore } from '../../src/engine/core';
import { DocCache } from '../../src/engine/kvStore';
import { rotateKeys } from '../../src/engine/spotView';
import { buildSpotPrompt, spotLimits } from '../../src/engine/spotPrompt';
import type { CompletionRequest } from '../../src/engine/api';

process.env.MIXSGA_DEBUG = '1';
const ROOT = path.resolve(__dirname, '../../..');
const MODEL = path.join(ROOT, 'models/default');
const skip = fs.existsSync(path.join(MODEL, 'manifest.json')) ? false : `model not found at ${MODEL}`;
const MB = 1 << 20;

let core: EngineCore | undefined;
async function engine(): Promise<EngineCore> {
  core ??= await EngineCore.create({ modelDir: MODEL, device: 'cpu', kvBudgetBytes: 64 * MB, layout: 'psm' });
  return core;
}
test.after(async () => {
  await core?.release();
});

/** Cursor at the end of the line holding character ~frac of the text (optionally `back` characters before it). */
function cursor(text: string, frac: number, back = 0): { prefix: string; suffix: string } {
  let i = text.indexOf('\n', Math.floor(text.length * frac));
  if (i < 0) i = text.length;
  while (back > 0 && i > 0 && text[i - 1] !== '\n') {
    i--;
    back--;
  }
  return { prefix: text.slice(0, i), suffix: text.slice(i) };
}
const request = (docId: string, c: { prefix: string; suffix: string }): CompletionRequest => ({
  docId,
  languageId: 'typescript',
  ...c,
  context: [],
  maxTokens: 24,
  multiline: false,
  timeBudgetMs: 60_000,
});
const never = { cancelled: false };
const source = (p: string) => fs.readFileSync(path.join(ROOT, p), 'utf8');
/** The first lines of the engine's own sources, ≈ `tokens` tokens (the base holds up to ~2k). */
function clip(eng: EngineCore, tokens: number, ...files: string[]): string {
  const lines = files.map(source).join('').split('\n');
  let n = 0,
    text = '';
  for (const l of lines) {
    n += eng.tok.encodeFragment(l + '\n').length;
    if (n > tokens) break;
    text += l + '\n';
  }
  return text;
}
/** An engine with `docId` opened (prefilled, cursor at the top): the first ~1,500 tokens of one engine source. */
async function opened(docId: string, file: string): Promise<{ eng: EngineCore; text: string }> {
  const eng = await engine();
  const text = clip(eng, 1500, file);
  await eng.prefillDoc(1, docId, '', text, never);
  return { eng, text };
}

test(
  'a jump reuses the cached document up to the cursor line and completes as the prompt from scratch does',
  { skip },
  async () => {
    const { eng, text } = await opened('doc', 'src/engine/budget.ts');
    // mid-line spots: at a line end this model mostly ends the line at once (nothing to compare)
    const spots = [cursor(text, 0.7, 8), cursor(text, 0.3, 6), cursor(text, 0.55, 10), cursor(text, 0.1, 5)];
    let nonEmpty = 0;
    for (const [i, c] of spots.entries()) {
      const sp = buildSpotPrompt(eng.tok, { ...c, context: [] }, spotLimits(2048, 24));
      const cached = await eng.complete(10 + i, request('doc', c), never);
      // Everything before the cursor line came from the cache; only <fim_suffix> suffix <fim_middle> line ran.
      assert.equal(cached.trace.reusedTokens, sp.at, `spot ${i}: reused the base up to the cursor line`);
      assert.equal(cached.trace.prefillTokens, sp.ids.length - sp.at);
      eng.close('fresh');
      const fresh = await eng.complete(20 + i, request('fresh', c), never);
      assert.equal(fresh.trace.reusedTokens, 0);
      // The cached and the from-scratch runs compute the same prompt in different chunks, so their logits differ in
      // the last bits and a near-tie can flip a late pick: the texts must agree until one of them stops.
      const [a, b] = [cached.text, fresh.text].sort((x, y) => x.length - y.length);
      nonEmpty += a.length > 0 ? 1 : 0;
      assert.ok(
        b.startsWith(a),
        `spot ${i}: cached and from-scratch completions agree (${JSON.stringify(cached.text)} vs ${JSON.stringify(fresh.text)}; stops ${cached.trace.stopReason} / ${fresh.trace.stopReason})`,
      );
    }
    assert.ok(nonEmpty >= 1, `only ${nonEmpty} of ${spots.length} spots compared real text`);
    // The tokens after every cursor survived the jumps: the whole document is still cached in document order.
    const far = cursor(text, 0.95);
    const r = await eng.complete(30, request('doc', far), never);
    assert.equal(r.trace.reusedTokens, buildSpotPrompt(eng.tok, { ...far, context: [] }, spotLimits(2048, 24)).at);
  },
);

test(
  'typing at the spot appends (Enter included): a keystroke recomputes a few tokens; a later spot is recomputed from the edit',
  { skip },
  async () => {
    const { eng, text } = await opened('typing', 'src/engine/kvStore.ts');
    let c = cursor(text, 0.5);
    await eng.complete(40, request('typing', c), never);
    for (const ch of ' // t;\n  x') {
      c = { prefix: c.prefix + ch, suffix: c.suffix };
      const r = await eng.complete(41, request('typing', c), never);
      assert.ok(
        r.trace.prefillTokens <= 3,
        `keystroke ${JSON.stringify(ch)} recomputed ${r.trace.prefillTokens} tokens`,
      );
    }
    // An edit at 50% invalidates the cached tokens after it: a spot at 80% recomputes from the edited line only.
    const later = cursor(c.prefix + c.suffix, 0.8);
    const r = await eng.complete(42, request('typing', later), never);
    const sp = buildSpotPrompt(eng.tok, { ...later, context: [] }, spotLimits(2048, 24));
    const edited =
      eng.tok.encodeFragment(cursor(text, 0.5).prefix.slice(0, cursor(text, 0.5).prefix.lastIndexOf('\n') + 1)).length +
      2;
    assert.ok(r.trace.reusedTokens >= edited && r.trace.reusedTokens < sp.at, `reused ${r.trace.reusedTokens}`);
  },
);

test(
  'a long file: the window moves kept keys down by RoPE shift, exact against keys computed at those positions',
  { skip },
  async () => {
    const eng = await engine();
    const ids = [eng.tok.bos, ...eng.tok.encodeFragment(source('src/engine/core.ts')).slice(0, 60)];
    // stored in the graph's fp32 (not the cascade's fp16 band, core.ts FP16_BAND): the rotation is checked exactly
    const shape = { ...eng.shape, dtype: 'float32' as const, feedDtype: undefined };
    const run = async (startPos: number) => {
      const doc = new DocCache(shape);
      const out = await eng.runner.run(
        {
          ids,
          startPos,
          routeBias: new Float32Array(eng.shape.heads.length),
          genSteps: 0,
          stopMask: new Uint8Array(eng.manifest.architecture.vocab_size),
        },
        doc,
      );
      doc.append(out.processed, out.kv);
      return doc;
    };
    const at0 = await run(0),
      at700 = await run(700);
    // Layer 0 sees equal inputs at both offsets: there the shift must be exact. Deeper layers' inputs already differ
    // a little with the offset (fp32 attention at large angles, int8 activations): values, which no shift touches,
    // show how much; shifted keys must not differ more than that (docs/cache-layout.md, "tolerance").
    at700.segs.forEach((row, l) => {
      let dk = 0,
        dv = 0,
        mk = 0,
        mv = 0;
      row.forEach((s, e) => {
        const ref = at0.segs[l][e];
        assert.equal(s.n, ref.n, `layer ${l} expert ${e}: routes do not depend on the offset`);
        rotateKeys(
          s,
          Array.from({ length: s.n }, (_, i) => i),
          -700,
          { theta: 10000, headDim: s.D },
          false,
        );
        const keys = s.heads * s.D;
        for (let k = 0; k < s.n * s.row; k++) {
          const d = Math.abs(s.data[k] - ref.data[k]);
          if (k % s.row < keys) {
            dk = Math.max(dk, d);
            mk = Math.max(mk, Math.abs(ref.data[k]));
          } else {
            dv = Math.max(dv, d);
            mv = Math.max(mv, Math.abs(ref.data[k]));
          }
        }
      });
      if (l === 0) assert.ok(dk < 1e-5 && dv === 0, `layer 0: shifted keys off by ${dk}, values by ${dv}`);
      else
        assert.ok(
          dk / mk <= 2 * (dv / mv) + 1e-5,
          `layer ${l}: shifted keys off by ${dk} of ${mk}, values (unshifted) by ${dv} of ${mv}`,
        );
    });
    // A cursor late in a ~2.3k-token file: the request's view hides a window and still completes.
    const long = clip(eng, 2000, 'src/engine/core.ts', 'src/engine/budget.ts');
    await eng.prefillDoc(2, 'long', '', long, never);
    const c = cursor(long, 0.97);
    const r = await eng.complete(50, request('long', c), never);
    assert.ok(
      r.trace.budgetActions.some((a) => a.startsWith('view: positions')),
      JSON.stringify(r.trace.budgetActions),
    );
    assert.ok(r.trace.reusedTokens > 1000, `reused ${r.trace.reusedTokens}`);
    assert.notEqual(r.trace.stopReason, 'error', r.trace.noSuggestionReason);
  },
);

test(
  'prefill() on open/after edits caches the document and the spot at the cursor: the next keystroke only appends',
  { skip },
  async () => {
    const eng = await engine();
    const text = clip(eng, 1500, 'src/engine/client.ts');
    const c = cursor(text, 0.6);
    const context = [{ path: 'src/other.ts', text: 'export const other = (x: number) => x + 1;\n' }]; // other open files
    await eng.prefillDoc(60, 'opened', c.prefix, c.suffix, never, context);
    const r = await eng.complete(
      61,
      { ...request('opened', { prefix: c.prefix + ' ', suffix: c.suffix }), context },
      never,
    );
    assert.ok(r.trace.prefillTokens <= 3, `first keystroke recomputed ${r.trace.prefillTokens} tokens`);
    // ... and a jump elsewhere still finds the whole document cached.
    const far = cursor(text, 0.9);
    const j = await eng.complete(62, { ...request('opened', far), context }, never);
    assert.equal(j.trace.reusedTokens, buildSpotPrompt(eng.tok, { ...far, context }, spotLimits(2048, 24)).at);
  },
);
