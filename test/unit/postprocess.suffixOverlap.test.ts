// Golden tests: nothing that duplicates the text after the cursor.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pipeline, stream } from './postprocessKit';

test('no duplicate of the next line of the document', () => {
  const d = stream(pipeline({ prefix: 'a = 1\n', suffix: '\nreturn a\n', multiline: true }), 'b = 2\nreturn a\n');
  assert.deepEqual(d, { stop: 'suffix-overlap', text: 'b = 2' });
});

test('rest of the cursor line already present is trimmed', () => {
  assert.equal(stream(pipeline({ prefix: 'foo(', suffix: ');\nnext' }), 'a, b);\n').text, 'a, b');
  assert.equal(pipeline({ prefix: 'let x', suffix: ' = 5;' }).finish(': number = 5;'), ': number');
});

test('a completion that is only the next line is dropped', () => {
  assert.equal(pipeline({ prefix: 'x = 1\n', suffix: '\ny = 2\n' }).finish('y = 2'), '');
});
