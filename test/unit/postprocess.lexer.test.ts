// Golden tests for the scanner the balance filter and the accept property stand on.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { emptyState, langRules, scan, unclosed } from '../../src/engine/postprocess/lexer';

const kinds = (text: string, lang: string) => {
  const s = emptyState();
  scan(text, s, langRules(lang));
  return s.stack.map((f) => f.kind).join(' ');
};

test('open frames by language', () => {
  assert.equal(kinds('f(a, [b', 'typescript'), '( [');
  assert.equal(kinds('x = """doc\n  (', 'python'), '"""');
  assert.equal(kinds("x = 'it''s'", 'python'), '');
  assert.equal(kinds('s = `a ${b(', 'typescript'), '` ${ (');
  assert.equal(kinds('/* (', 'go'), '/*');
  assert.equal(kinds("fn f<'a>(x: &'a str) {", 'rust'), '{');
  assert.equal(kinds("It's (fine", 'markdown'), '(');
  assert.equal(kinds('# (not code\nx = [', 'python'), '[');
  assert.equal(kinds('"a\\"b(', 'typescript'), '"');
});

test('unclosed counts open frames and breakage', () => {
  assert.equal(unclosed('f(a))', langRules('typescript')), 1);
  assert.equal(unclosed('x = "abc\ny = 1', langRules('python')), 1);
  assert.equal(unclosed('def f():\n    """doc"""\n    return (1)\n', langRules('python')), 0);
});
