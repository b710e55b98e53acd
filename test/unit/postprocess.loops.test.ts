// Golden tests: loops are cut early, one copy stays; ordinary repeats are no loops.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pipeline, stream } from './postprocessKit';

test('a URL path loop is cut at the third copy', () => {
  const d = stream(pipeline({ prefix: "fetch('" }), "/api/v2/v2/v2/v2/v2/users')");
  assert.equal(d.stop, 'repetition');
  assert.equal(d.text, '/api/v2');
  assert.equal(stream(pipeline({ prefix: 'x = cfg' }), '.config.config.config.config').text, '.config');
  // seen in the e2e run: the first copy without its dot
  assert.deepEqual(stream(pipeline({ prefix: 'def f(config):\n  ' }), 'return config.config.config.config'), {
    stop: 'repetition',
    text: 'return config',
  });
  assert.equal(stream(pipeline({ prefix: 'import os\n' }), 'p = os.path.path').stop, null);
});

test('numbers, separators and hex colours are no loops', () => {
  for (const t of ['[0, 0, 0, 0, 0]', "'-----------'", "'#a1a1a1'", 'abc === def']) {
    assert.equal(stream(pipeline({ prefix: 'x = ' }), t).stop, null, t);
  }
});

test('the same line three times keeps one; a token cycle stops', () => {
  const d = stream(pipeline({ prefix: 'x = 1\n', multiline: true }), 'a++\na++\na++\nb');
  assert.deepEqual(d, { stop: 'repetition', text: 'a++' });
  assert.equal(
    pipeline({}).check(
      'x',
      Array.from({ length: 20 }, (_, i) => [7, 8][i % 2]),
    ).stop,
    'repetition',
  );
});
