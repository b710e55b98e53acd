// Golden tests: line structure, whitespace and the document's line breaks.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pipeline, stream } from './postprocessKit';

test('EOS id stops; single-line stops at a newline; max tokens', () => {
  assert.deepEqual(pipeline({}).check('abc', [5, 6, 2]), { stop: 'eos', text: 'abc' });
  assert.deepEqual(stream(pipeline({ prefix: 'x = ' }), 'foo(1)\nbar'), { stop: 'newline', text: 'foo(1)' });
  assert.equal(pipeline({ maxTokens: 3 }).check('abc', [10, 11, 12]).stop, 'max-tokens');
});

test('a blank-line pair ends a multi-line completion', () => {
  assert.deepEqual(stream(pipeline({ prefix: 'x = 1\n', multiline: true }), 'y = 2\n\n\nz'), {
    stop: 'newline',
    text: 'y = 2',
  });
});

test("CRLF documents: no stray \\r on one line, the document's line break between lines", () => {
  const crlf = { prefix: 'let a = 1;\r\nlet b = ', suffix: '\r\nlet c = 3;\r\n', eol: '\r\n' as const };
  assert.deepEqual(stream(pipeline(crlf), '2;\r\nlet d'), { stop: 'newline', text: '2;' });
  assert.equal(pipeline(crlf).finish('2;\r'), '2;');
  const multi = pipeline({
    ...crlf,
    prefix: 'function f() {\r\n  ',
    suffix: '\r\n}\r\n',
    multiline: true,
    languageId: 'typescript',
  });
  assert.equal(multi.finish('const a = 1;\r\n  return a;\n'), 'const a = 1;\r\n  return a;');
});

test('trailing whitespace and whitespace-only completions', () => {
  assert.equal(pipeline({ multiline: true }).finish('a = 1   \n  b\n\n'), 'a = 1\n  b');
  assert.equal(pipeline({}).finish('   '), '');
});
