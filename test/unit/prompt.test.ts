import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { buildPrompt, defaultLimits, prefixTail, suffixHead } from '../../src/engine/prompt';
import { assetsTokenizer } from './assetsTokenizer';

// The project's Llama-2 tokenizer with FIM tokens (toolchain/mixsga/assets).
const { tok, manifest } = assetsTokenizer();
const fim = manifest.fim!;
const limits = defaultLimits(2048, 64);

test('fragment encode/decode: no BOS, no spurious leading space, round trip', () => {
  const ids = tok.encodeFragment('foo bar');
  assert.ok(!ids.includes(1));
  assert.equal(tok.decodeFragment(ids), 'foo bar');
  assert.equal(tok.decodeFragment(tok.encodeFragment('  x = 1\n')), '  x = 1\n');
  assert.equal(tok.decodeFragment([...tok.encodeFragment('a'), ...tok.encodeFragment(' b')]), 'a b');
});

test('token healing backs off the last token; candidates start with its text', () => {
  const ids = tok.encodeFragment('console.lo');
  const h = tok.heal(ids, 'console.lo');
  assert.equal(h.ids.length, ids.length - 1);
  assert.equal(tok.decodeFragment(h.ids) + h.removed, 'console.lo');
  const cands = tok.healingCandidates(h.removed);
  const texts = tok.tokenTexts();
  assert.ok(cands.length > 1);
  for (const c of cands) assert.ok(texts[c].startsWith(h.removed));
  assert.ok(Array.from(cands).includes(ids[ids.length - 1]));
  assert.ok(Array.from(cands).some((c) => texts[c].startsWith('log')) || h.removed !== 'lo');
  assert.deepEqual(tok.heal(ids, 'x\n').removed, '', 'no healing after a newline');
});

test('SPM layout: [BOS] context <fim_suffix> suffix <fim_prefix> prefix <fim_middle>', () => {
  const p = buildPrompt(
    tok,
    {
      prefix: 'function add(a, b) {\n  return ',
      suffix: ';\n}\n',
      context: [{ path: 'util.ts', text: 'export const one = 1;\n' }],
    },
    limits,
  );
  assert.equal(p.ids[0], 1);
  assert.equal(p.ids[1], fim.file_sep_id);
  const s = p.ids.indexOf(fim.suffix_id),
    pre = p.ids.indexOf(fim.prefix_id);
  assert.ok(s > 1 && pre > s);
  assert.equal(p.ids[p.ids.length - 1], fim.middle_id);
  assert.equal(p.keep, p.ids.length - 1);
  assert.equal(tok.decodeFragment(p.ids.slice(s + 1, pre)), ';\n}\n');
  assert.equal(tok.decodeFragment(p.ids.slice(pre + 1, -1)) + p.healed, 'function add(a, b) {\n  return ');
});

test('bounds: long prefix/suffix/context stay within the prompt limits, prefix cut at a line boundary', () => {
  const line = (i: number) => `const value${i} = compute(${i}, "some text here");\n`;
  const big = Array.from({ length: 2000 }, (_, i) => line(i)).join('');
  const p = buildPrompt(
    tok,
    {
      prefix: big,
      suffix: big,
      context: [
        { path: 'a.ts', text: big },
        { path: 'b.ts', text: big },
      ],
    },
    limits,
  );
  assert.ok(p.ids.length <= limits.maxPromptTokens, `${p.ids.length}`);
  const s = p.ids.indexOf(fim.suffix_id),
    pre = p.ids.indexOf(fim.prefix_id);
  assert.ok(pre - s - 1 <= limits.maxSuffixTokens);
  assert.ok(s - 1 <= limits.maxContextTokens + 2);
  assert.ok(p.prefixUsed.startsWith('const value'), 'prefix starts at a line');
  assert.ok(p.ids.length > 1000, 'prefix uses the remaining room');
});

test('append-only: typing at the cursor extends the cached prompt (old prompt minus <fim_middle>)', () => {
  const base = Array.from({ length: 400 }, (_, i) => `let v${i} = ${i} * 2;\n`).join('');
  const suffix = '\nexport default v0;\n';
  const typed =
    'function sum(xs: number[]) {\n  let total = 0;\n  for (const x of xs) total += x;\n  return total;\n}\n'.repeat(3);
  let prev = buildPrompt(tok, { prefix: base, suffix, context: [] }, limits);
  let reusedAll = 0,
    steps = 0,
    maxRecompute = 0,
    bigJumps = 0;
  for (let i = 1; i <= typed.length; i++) {
    const cur = buildPrompt(tok, { prefix: base + typed.slice(0, i), suffix, context: [] }, limits);
    let lcp = 0;
    while (lcp < prev.keep && prev.ids[lcp] === cur.ids[lcp]) lcp++;
    if (lcp === prev.keep) reusedAll++;
    if (cur.ids.length - lcp > 8) bigJumps++;
    else maxRecompute = Math.max(maxRecompute, cur.ids.length - lcp);
    steps++;
    prev = cur;
  }
  // Exact extension almost always; BPE may re-merge the last token or two, and the prefix window moves rarely.
  assert.ok(reusedAll / steps > 0.9, `${reusedAll}/${steps}`);
  assert.ok(maxRecompute <= 8, `max recompute ${maxRecompute}`);
  // The prefix window (prompt bound) moves once per 512 typed characters at most.
  assert.ok(bigJumps <= Math.ceil(typed.length / 512) + 1, `big recomputes ${bigJumps}`);
});

test('a 10,000-character minified cursor line: cut inside it, the earlier lines stay in the prompt', () => {
  const earlier = Array.from({ length: 40 }, (_, i) => `const value${i} = compute(${i}, options);\n`).join('');
  const minified = Array.from({ length: 800 }, (_, i) => `a${i}=f(b${i},${i});`)
    .join('')
    .slice(0, 10_000);
  assert.equal(minified.length, 10_000);
  const prefix = earlier + minified;
  const p = buildPrompt(tok, { prefix, suffix: '\n', context: [] }, limits);
  assert.ok(p.ids.length <= limits.maxPromptTokens, `${p.ids.length} tokens`);
  assert.ok(p.prefixUsed.includes('const value39 = compute(39, options);\n'), 'the line before the long one is kept');
  const whole = p.prefixUsed.split('\n').filter((l) => /^const value\d+ = compute\(\d+, options\);$/.test(l));
  assert.ok(whole.length >= 5, `${whole.length} whole earlier lines`);
  assert.ok(
    prefix.endsWith(p.prefixUsed.slice(p.prefixUsed.lastIndexOf('\n') + 1)),
    'the cursor line is cut inside, its end kept',
  );
  const tail = p.prefixUsed.slice(p.prefixUsed.lastIndexOf('\n') + 1);
  assert.ok(tail.length > 1000 && tail.length < minified.length, `cursor-line tail of ${tail.length} chars`);
  assert.ok(p.ids.length > 800, `a real prompt, not a few tokens (${p.ids.length})`);
  // Typing along keeps the cut where it is: the new prompt extends the cached one (up to the healed token).
  const q = buildPrompt(tok, { prefix: prefix + 'c1=g(', suffix: '\n', context: [] }, limits);
  const stable = p.keep - 2;
  assert.deepEqual(q.ids.slice(0, stable), p.ids.slice(0, stable));
});

test('prefixTail and suffixHead refuse a NaN or non-positive limit at once (no loop)', () => {
  for (const n of [NaN, 0, -5]) {
    assert.deepEqual(prefixTail(tok, 'const a = 1;\n', n), { text: '', ids: [] });
    assert.deepEqual(suffixHead(tok, 'const a = 1;\n', n), { text: '', ids: [] });
  }
});

test('golden cases shared with the Python prompt (mixsga.prompt, test/fixtures/prompt-cases.json)', () => {
  const golden = JSON.parse(
    fs.readFileSync(path.resolve(__dirname, '../../../test/fixtures/prompt-cases.json'), 'utf8'),
  );
  assert.ok(golden.cases.length >= 6);
  for (const c of golden.cases) {
    assert.deepEqual(tok.encodeFragment(c.prefix), c.prefix_ids, `${c.name}: prefix`);
    assert.deepEqual(tok.encodeFragment(c.suffix), c.suffix_ids, `${c.name}: suffix`);
    assert.equal(tok.decodeFragment(c.prefix_ids), c.prefix, `${c.name}: decode`);
    // the engine's SPM layout equals Python's, except that token healing holds back the prefix's last token
    const p = buildPrompt(
      tok,
      { prefix: c.prefix, suffix: c.suffix, context: [] },
      defaultLimits(golden.max_positions, golden.max_new_tokens),
    );
    const held = p.healed ? [c.prefix_ids[c.prefix_ids.length - 1]] : [];
    assert.deepEqual([...p.ids.slice(0, -1), ...held, p.ids[p.ids.length - 1]], c.spm, `${c.name}: layout`);
    assert.equal(p.healed, p.healed ? tok.decodeFragment(held) : '', `${c.name}: healed text`);
  }
});
