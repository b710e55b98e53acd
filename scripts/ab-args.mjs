// What the A/B benchmark scripts share (bench-graph-ab.mjs, bench-models-ab.mjs): `--name value` options taken out
// of argv, the two folders and the round count left over, the default output path, and the median.
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** Parses argv: opt(name, default) takes `--name value` out; then positional() gives [A_DIR, B_DIR, rounds]. */
export function abArgs(usage, defaultRounds) {
  const argv = process.argv.slice(2);
  const opt = (name, dflt) => {
    const i = argv.indexOf(`--${name}`);
    return i >= 0 ? argv.splice(i, 2)[1] : dflt;
  };
  const positional = () => {
    const [a, b, roundsArg] = argv;
    if (!a || !b) {
      console.error(`usage: ${usage}`);
      process.exit(2);
    }
    const rounds = Number(roundsArg ?? defaultRounds);
    if (!Number.isInteger(rounds) || rounds < 1) throw new Error(`ROUNDS must be a positive integer, got ${roundsArg}`);
    return [a, b, rounds];
  };
  return { opt, positional };
}

/** bench/results/<today>-<suffix>.json */
export const resultPath = (suffix) =>
  path.join(root, 'bench/results', `${new Date().toISOString().slice(0, 10)}-${suffix}.json`);

export function median(xs) {
  const s = [...xs].sort((x, y) => x - y);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}
