// Golden tests: indentation relative to the cursor line.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pipeline, stream } from './postprocessKit';

test('after `def ...:` + Enter (editor indented the line) the completion adds no indentation of its own', () => {
  const prefix = 'def area(r):\n    ';
  // single-line (multiline "never"): the model repeats the indentation the editor already typed
  assert.equal(
    stream(pipeline({ prefix, languageId: 'python' }), '    return 3.14 * r * r\n').text,
    'return 3.14 * r * r',
  );
  assert.equal(stream(pipeline({ prefix, languageId: 'python' }), 'return r\n').text, 'return r');
  // a 2-space file: the expected step comes from the file
  const two = 'class A:\n  def f(self):\n    pass\n  def g(self):\n  ';
  assert.equal(pipeline({ prefix: two, languageId: 'python' }).finish('  return 1'), '  return 1');
  assert.equal(pipeline({ prefix: two + '  ', languageId: 'python' }).finish('  return 1'), 'return 1');
});

test("a blank cursor line that is not indented yet keeps the model's indentation", () => {
  assert.equal(pipeline({ prefix: 'def f():\n' }).finish('    return 1'), '    return 1');
});

test('multi-line stops at a dedent below the cursor block', () => {
  const d = stream(
    pipeline({ prefix: 'def f():\n    x = 1\n    ', multiline: true, languageId: 'python' }),
    'return x\n\ndef g():\n',
  );
  assert.deepEqual(d, { stop: 'indent', text: 'return x' });
});
