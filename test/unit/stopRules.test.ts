import { test } from 'node:test';
import assert from 'node:assert/strict';
import { StopRules, StopContext } from '../../src/engine/stopRules';

const ctx = (o: Partial<StopContext>): StopContext =>
  ({ multiline: true, prefix: '', suffix: '', maxTokens: 100, stopIds: new Set([2]), ...o });
/** Feeds text char by char as if each char were a token; returns the first stop. */
function runText(r: StopRules, text: string, ids?: number[]) {
  for (let i = 1; i <= text.length; i++) {
    const d = r.check(text.slice(0, i), ids ?? Array.from({ length: i }, (_, k) => 100 + k));
    if (d.stop) return d;
  }
  return { stop: null, text };
}

test('EOS id stops', () => {
  const r = new StopRules(ctx({}));
  assert.deepEqual(r.check('abc', [5, 6, 2]), { stop: 'eos', text: 'abc' });
});

test('single-line stops at newline', () => {
  const r = new StopRules(ctx({ multiline: false, prefix: 'x = ' }));
  assert.deepEqual(runText(r, 'foo(1)\nbar'), { stop: 'newline', text: 'foo(1)' });
});

test('single-line in a CRLF file: no stray carriage return before the newline', () => {
  const r = new StopRules(ctx({ multiline: false, prefix: 'x = 1;\r\ny = ' }));
  assert.deepEqual(runText(r, 'foo(1);\r\nbar'), { stop: 'newline', text: 'foo(1);' });
});

test('multi-line stops at a dedent below the cursor block', () => {
  const r = new StopRules(ctx({ prefix: 'def f():\n    x = 1\n    ' }));
  const d = runText(r, 'return x\n\ndef g():\n');
  assert.equal(d.stop, 'indent');
  assert.equal(d.text, 'return x');
});

test('unmatched closing bracket stops before it', () => {
  const r = new StopRules(ctx({ multiline: false, prefix: 'foo(', suffix: ')' }));
  assert.deepEqual(runText(r, 'a, (b))'), { stop: 'bracket', text: 'a, (b)' });
});

test('brackets inside strings do not count', () => {
  const r = new StopRules(ctx({ multiline: false, prefix: 'print(' }));
  assert.equal(runText(r, '")"').stop, null);
});

test('blank-line pair ends a multi-line completion', () => {
  const r = new StopRules(ctx({ prefix: 'x = 1\n' }));
  const d = runText(r, 'y = 2\n\n\nz');
  assert.equal(d.stop, 'newline');
  assert.equal(d.text, 'y = 2');
});

test('no duplicate of the next line of the document', () => {
  const r = new StopRules(ctx({ prefix: 'a = 1\n', suffix: '\nreturn a\n' }));
  const d = runText(r, 'b = 2\nreturn a\n');
  assert.equal(d.stop, 'suffix-overlap');
  assert.equal(d.text, 'b = 2');
});

test('rest of the cursor line already present is trimmed', () => {
  const r = new StopRules(ctx({ multiline: false, prefix: 'foo(', suffix: ');\nnext' }));
  const d = runText(r, 'a, b);\n');
  assert.equal(d.text, 'a, b');
});

test('repetition guard: token loop and repeated lines', () => {
  const r = new StopRules(ctx({ maxTokens: 1000 }));
  assert.equal(r.check('x', Array.from({ length: 20 }, (_, i) => [7, 8][i % 2])).stop, 'repetition');
  const d = runText(new StopRules(ctx({ maxTokens: 1000 })), 'a++\na++\na++\nb');
  assert.equal(d.stop, 'repetition');
  assert.equal(d.text, 'a++');
});

test('max tokens', () => {
  const r = new StopRules(ctx({ maxTokens: 3 }));
  assert.equal(r.check('abc', [10, 11, 12]).stop, 'max-tokens');
});
