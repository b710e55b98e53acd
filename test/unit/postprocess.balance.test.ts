// Golden tests: brackets, quotes, docstrings against what the editor auto-closed after the cursor.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pipeline, stream } from './postprocessKit';

const keys = { prefix: '  const all = Object.keys(', suffix: ')\n  return all;', languageId: 'typescript' };

test("Object.keys( + auto-closed ) + ghost feeds.values( keeps the completion's own bracket", () => {
  // the model's text as it arrives, cut by the time limit right after the opener
  assert.equal(pipeline(keys).finish('feeds.values('), 'feeds.values()');
  // the model closing its call and then the editor's `)`: the second `)` is the editor's, not ours
  assert.deepEqual(stream(pipeline(keys), 'feeds.values())\n'), { stop: 'bracket', text: 'feeds.values()' });
  // the model closing only its own call: nothing is dropped
  assert.equal(pipeline(keys).finish('feeds.values()'), 'feeds.values()');
  for (const ghost of ['feeds.values(', 'feeds.values()', 'feeds.values())']) {
    assert.equal(keys.prefix + stream(pipeline(keys), ghost).text + ')', '  const all = Object.keys(feeds.values())');
  }
});

test("a closing bracket with nothing after the cursor to close it is the completion's to write", () => {
  assert.deepEqual(stream(pipeline({ prefix: 'print(' }), 'total)\n'), { stop: 'newline', text: 'total)' });
});

test('unmatched closer stops before it when the suffix closes the bracket', () => {
  assert.deepEqual(stream(pipeline({ prefix: 'foo(', suffix: ')' }), 'a, (b))'), { stop: 'bracket', text: 'a, (b)' });
});

test('brackets inside strings do not count', () => {
  assert.equal(stream(pipeline({ prefix: 'print(', languageId: 'python' }), '")"').text, '")"');
});

test('an auto-closed quote is not written twice', () => {
  const p = { prefix: 'print("', suffix: '")', languageId: 'python' };
  assert.deepEqual(stream(pipeline(p), 'hello")'), { stop: 'bracket', text: 'hello' });
});

test('a time-limit cut inside a multi-line docstring closes the docstring', () => {
  const prefix = 'def mean(xs):\n    ';
  const suffix = '\n\ndef main():\n    print(mean([1, 2]))\n';
  const out = pipeline({ prefix, suffix, multiline: true, languageId: 'python' }).finish(
    '"""Average of xs.\n\n    Args:\n        xs: the num',
  );
  assert.equal(out, '"""Average of xs.\n\n    Args:\n        xs: the num\n    """');
  // and on one line it is closed on that line
  assert.equal(pipeline({ prefix, suffix, languageId: 'python' }).finish('"""Average of'), '"""Average of"""');
});

test('inside a docstring the completion does not close it again (the file\'s own """ follows)', () => {
  const p = {
    prefix: 'def f():\n    """Compute ',
    suffix: '\n    """\n    return 1\n',
    languageId: 'python',
    multiline: true,
  };
  assert.deepEqual(stream(pipeline(p), 'the answer."""\n'), { stop: 'bracket', text: 'the answer.' });
});

test('a mismatched closer ends the completion, and what it opened is closed', () => {
  assert.deepEqual(stream(pipeline({ prefix: 'x = ', languageId: 'typescript' }), 'f(a, [b)'), {
    stop: 'bracket',
    text: 'f(a, [b])',
  });
});

test('template literals: ${...} nests code inside the string', () => {
  const p = pipeline({ prefix: 'const s = ', languageId: 'typescript' });
  assert.equal(p.finish('`id ${user.id} of ${'), '`id ${user.id} of ${}`');
});

test('a line comment is not left in front of the rest of the line', () => {
  assert.equal(
    pipeline({ prefix: 'foo(', suffix: ');', languageId: 'typescript' }).finish('a, b // the sizes'),
    'a, b',
  );
  // with nothing after the cursor the comment stays
  assert.equal(pipeline({ prefix: 'x = 1', languageId: 'typescript' }).finish(' // one'), ' // one');
});

test("an unclosed block in a multi-line completion is closed at its opener's indentation", () => {
  const p = pipeline({
    prefix: 'function f(xs: number[]) {\n  ',
    suffix: '\n}\n',
    multiline: true,
    languageId: 'typescript',
  });
  assert.equal(p.finish('for (const x of xs) {\n    total += x;'), 'for (const x of xs) {\n    total += x;\n  }');
});
