// Property: accepting a completion never leaves more unclosed brackets, strings, docstrings or block comments in
// the document than it had before the accept. Real files x random cursor positions x adversarial candidate texts
// (brackets, quotes, triple quotes, comment starts, newlines), streamed through the pipeline token by token as
// generate() does, then finished. The real model's completions are checked the same way in
// test/integration/acceptModel.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { PostProcessor } from '../../src/engine/postprocess';
import { langRules, unclosed } from '../../src/engine/postprocess/lexer';
import { realFiles } from './acceptFiles';

const files = realFiles();
const TOKENS = [
  '(',
  ')',
  '[',
  ']',
  '{',
  '}',
  '"',
  "'",
  '`',
  '"""',
  "'''",
  '${',
  '/*',
  '*/',
  '//',
  '#',
  '\\',
  '\n',
  '\n    ',
  '  ',
  'x',
  'foo',
  '.bar',
  ' = ',
  ', ',
  ':',
  ';',
  'return ',
  'def ',
  'if (',
  ') {',
  '});',
  '\t',
];

/** The completion the editor would show for `candidate` streamed at `cursor` of `text`. */
function shown(text: string, cursor: number, languageId: string, multiline: boolean, tokens: string[]): string {
  const p = new PostProcessor({
    multiline,
    prefix: text.slice(0, cursor),
    suffix: text.slice(cursor),
    maxTokens: 256,
    stopIds: new Set([-1]),
    languageId,
  });
  let sofar = '';
  for (const [i, t] of tokens.entries()) {
    sofar += t;
    const d = p.check(
      sofar,
      Array.from({ length: i + 1 }, (_, k) => k),
    );
    if (d.stop) return d.text;
  }
  return p.finish(sofar); // ended by the time limit or cancellation
}

test(`accepting never leaves more open than before: ${files.length} real files x random spots x adversarial texts`, () => {
  assert.ok(files.length >= 20, `only ${files.length} files found`);
  fc.assert(
    fc.property(
      fc.integer({ min: 0, max: files.length - 1 }),
      fc.double({ min: 0, max: 1, noNaN: true }),
      fc.boolean(),
      fc.array(fc.constantFrom(...TOKENS), { minLength: 1, maxLength: 40 }),
      (fi, where, multiline, tokens) => {
        const f = files[fi];
        const cursor = Math.floor(where * f.text.length);
        const rules = langRules(f.languageId);
        const completion = shown(f.text, cursor, f.languageId, multiline, tokens);
        const before = unclosed(f.text, rules);
        const after = unclosed(f.text.slice(0, cursor) + completion + f.text.slice(cursor), rules);
        if (after > before) {
          throw new Error(
            `${f.path}@${cursor} (${multiline ? 'multi' : 'single'}-line): ${before} -> ${after} open; ` +
              `candidate ${JSON.stringify(tokens.join(''))} shown as ${JSON.stringify(completion)}; ` +
              `around ${JSON.stringify(f.text.slice(Math.max(0, cursor - 40), cursor))}|${JSON.stringify(f.text.slice(cursor, cursor + 40))}`,
          );
        }
      },
    ),
    { numRuns: 3000, includeErrorInReport: true, seed: Number(process.env.PROPERTY_SEED ?? 14) },
  );
});
