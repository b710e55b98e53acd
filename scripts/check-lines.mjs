// `npm run lint` step: no source file of the product or of its tests (TypeScript, JavaScript, Python) is longer than 500 lines
// (DEVELOPERS.md: one concern per file). Checks the files git tracks, so generated and ignored output does not count.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

const MAX_LINES = 500;
const ROOTS = ['src', 'toolchain', 'scripts', 'media', 'test'];
const SOURCE = /\.(ts|js|mjs|cjs|py)$/;

const files = execFileSync('git', ['ls-files', '-z', '--', ...ROOTS], { encoding: 'utf8' })
  .split('\0')
  .filter((f) => SOURCE.test(f));
const long = files
  .map((f) => ({ f, n: readFileSync(f, 'utf8').split('\n').length - 1 }))
  .filter((x) => x.n > MAX_LINES);
for (const { f, n } of long) console.error(`${f}: ${n} lines (at most ${MAX_LINES}; split it by concern)`);
if (long.length) process.exit(1);
if (!files.length) {
  console.error(`check-lines: no source files found under ${ROOTS.join(', ')} (not in a git checkout?)`);
  process.exit(1);
}
