// The provider's editor-free parts (src/shared/): how long it waits before asking the engine (adaptive debounce),
// what it serves from memory while the user types along a suggestion (suggestion cache), and when it asks for
// several lines. Clocks are node:test's mock timers, so the tests do not depend on the machine's speed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AdaptiveDebounce, sleep } from '../../src/shared/debounce';
import { SuggestionCache } from '../../src/shared/suggestionCache';
import { wantsMultiline } from '../../src/shared/multiline';

test('debounce: explicit requests at once, shorter after a followed suggestion, longer in fast bursts', (t) => {
  t.mock.timers.enable({ apis: ['Date'], now: 1_000_000 });
  const d = new AdaptiveDebounce();
  assert.equal(d.delay(150, true, false), 0);
  t.mock.timers.tick(1_000);
  assert.equal(d.delay(150, false, false), 150, 'typing at an ordinary pace: the base delay');
  t.mock.timers.tick(1_000);
  assert.equal(d.delay(150, false, true), 50, 'typing along a suggestion: a third');
  for (let i = 0; i < 8; i++) {
    t.mock.timers.tick(30);
    d.delay(150, false, false);
  }
  t.mock.timers.tick(30);
  assert.equal(d.delay(150, false, false), 225, 'a burst of keystrokes 30 ms apart: one and a half');
  t.mock.timers.tick(4_000);
  for (let i = 0; i < 3; i++) {
    t.mock.timers.tick(1_000);
    d.delay(150, false, false);
  }
  assert.equal(d.delay(150, false, false), 150, 'the burst is forgotten once the pace slows');
});

test('sleep: true after the delay, false at once when aborted before or during it', async (t) => {
  t.mock.timers.enable({ apis: ['setTimeout'] });
  const ac = new AbortController();
  const done = sleep(100, ac.signal);
  t.mock.timers.tick(100);
  assert.equal(await done, true);
  const cut = sleep(100, ac.signal);
  t.mock.timers.tick(40);
  ac.abort();
  assert.equal(await cut, false);
  assert.equal(await sleep(100, ac.signal), false, 'an aborted signal never waits');
  assert.equal(await sleep(0, new AbortController().signal), true);
});

test('suggestion cache: typing along serves the rest; a divergent keystroke or an edit above the anchor does not', () => {
  let doc = 'function add(a, b) {\n  return ';
  const at = doc.length;
  const c = new SuggestionCache();
  c.put('a.ts', at, doc, 'a + b;');
  const slice = (s: number, e: number) => doc.slice(s, e);
  assert.equal(c.lookup('a.ts', at, slice), 'a + b;');
  doc += 'a +';
  assert.equal(c.lookup('a.ts', doc.length, slice), ' b;');
  assert.equal(c.lookup('b.ts', doc.length, slice), undefined, 'another document has no suggestion');
  assert.equal(c.lookup('a.ts', at - 1, slice), undefined, 'cursor before the anchor');
  const diverged = doc.slice(0, at) + 'a -';
  assert.equal(
    c.lookup('a.ts', diverged.length, (s, e) => diverged.slice(s, e)),
    undefined,
    'typed text differs from the suggestion',
  );
  const editedAbove = 'function sum(a, b) {\n  return a +';
  assert.equal(editedAbove.length, doc.length);
  assert.equal(
    c.lookup('a.ts', doc.length, (s, e) => editedAbove.slice(s, e)),
    undefined,
    'edit above the cursor',
  );
  doc += ' b;';
  assert.equal(c.lookup('a.ts', doc.length, slice), undefined, 'the whole suggestion typed: nothing left to serve');
  c.forget('a.ts');
  assert.equal(c.lookup('a.ts', at, slice), undefined);
});

test('suggestion cache: "recently followed" only for a suggestion typed to its end within the window', (t) => {
  t.mock.timers.enable({ apis: ['Date'], now: 5_000 });
  const c = new SuggestionCache();
  c.put('a.ts', 10, 'x'.repeat(10), 'abc');
  assert.equal(c.recentlyFollowed('a.ts', 12, 3_000), false, 'still inside the suggestion');
  assert.equal(c.recentlyFollowed('a.ts', 13, 3_000), true);
  t.mock.timers.tick(3_001);
  assert.equal(c.recentlyFollowed('a.ts', 13, 3_000), false, 'too long ago');
  c.clear();
  assert.equal(c.recentlyFollowed('a.ts', 13, 60_000), false);
});

test('suggestion cache keeps the 32 most recent documents', () => {
  const c = new SuggestionCache();
  for (let i = 0; i < 33; i++) c.put(`d${i}`, 0, '', 'text');
  const read = (_s: number, _e: number) => '';
  assert.equal(c.lookup('d0', 0, read), undefined, 'the oldest was dropped');
  assert.equal(c.lookup('d1', 0, read), 'text');
  assert.equal(c.lookup('d32', 0, read), 'text');
});

test('multi-line: "auto" after a block opener or on an empty line inside one, only with nothing but closers after', () => {
  assert.equal(wantsMultiline('auto', 'function f() {', '\n}'), true);
  assert.equal(wantsMultiline('auto', 'if (x) {\n  ', '\n}'), true, 'empty line after an opener');
  assert.equal(wantsMultiline('auto', 'def f(x):', ''), true);
  assert.equal(wantsMultiline('auto', 'const f = () =>', ');'), true, 'only closers after the cursor');
  assert.equal(wantsMultiline('auto', 'const x = 1', ';'), false);
  assert.equal(wantsMultiline('auto', 'call(', 'a, b);'), false, 'code after the cursor');
  assert.equal(wantsMultiline('always', 'const x = 1', ''), true);
  assert.equal(wantsMultiline('never', 'function f() {', ''), false);
});
