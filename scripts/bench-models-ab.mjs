// Completion latency of two model folders side by side on the CPU (issue 16: v1 and v2 on the 2-core machine):
// `node dist/bench.js --suite spots --device cpu --layouts psm` on each folder, alternating A and B (ABBA order) for
// ROUNDS rounds, each round with its own seed (the same seed for A and B). Writes
// bench/results/<date>-cpu-models-ab.json: every run's typing / new-spot latency (p50, p95) and tokens written, the
// medians over runs per folder, the ratios B/A, and the load average before and after (compare ratios when the
// machine was loaded). The extension's model choice rule (src/shared/modelChoice.ts) is judged from these figures.
// Usage: node scripts/bench-models-ab.mjs A_DIR B_DIR [ROUNDS] [--spots 8] [--keystrokes 4] [--doc-tokens 2000]
//        [--threads 2] [--out FILE]
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { abArgs, median, resultPath, root } from './ab-args.mjs';

const { opt, positional } = abArgs(
  'node scripts/bench-models-ab.mjs A_DIR B_DIR [ROUNDS] [--spots 8] [--keystrokes 4] [--out FILE]',
  2,
);
const spots = opt('spots', '8'),
  keystrokes = opt('keystrokes', '4'),
  docTokens = opt('doc-tokens', '2000'),
  threads = opt('threads', '2');
const out = opt('out', resultPath('cpu-models-ab'));
const [a, b, rounds] = positional();
const bench = path.join(root, 'dist/bench.js');
if (!fs.existsSync(bench)) throw new Error('dist/bench.js is missing: run `npm run build` first');

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'models-ab-'));
const runs = { A: [], B: [] };
const load = [os.loadavg()];
for (let r = 0; r < rounds; r++) {
  for (const side of r % 2 === 0 ? ['A', 'B'] : ['B', 'A']) {
    const file = path.join(tmp, `${side}-${r}.json`);
    const args = [
      bench,
      '--suite',
      'spots',
      '--device',
      'cpu',
      '--layouts',
      'psm',
      '--model',
      side === 'A' ? a : b,
      '--spots',
      spots,
      '--keystrokes',
      keystrokes,
      '--doc-tokens',
      docTokens,
      '--seed',
      String(r + 1),
      '--threads',
      threads,
      '--out',
      file,
    ];
    execFileSync(process.execPath, args, { stdio: ['ignore', 'ignore', 'inherit'] });
    const res = JSON.parse(fs.readFileSync(file, 'utf8'));
    const psm = res.layouts?.psm;
    if (!psm) throw new Error(`${file}: no psm results`);
    const pick = (k) => ({
      p50: psm[k].latencyMs.p50,
      p95: psm[k].latencyMs.p95,
      generatedP50: psm[k].generatedTokens.p50,
      withText: psm[k].withText,
    });
    runs[side].push({
      round: r,
      seed: r + 1,
      model: res.model,
      typing: pick('typing'),
      newSpot: pick('newSpot'),
      openPrefillMs: psm.openPrefillMs,
    });
    console.error(
      `round ${r + 1}/${rounds} ${side}: typing p50 ${pick('typing').p50} ms, new spot p50 ${pick('newSpot').p50} ms`,
    );
  }
  load.push(os.loadavg());
}
fs.rmSync(tmp, { recursive: true, force: true });

const r2 = (x) => Math.round(x * 100) / 100;
const medians = (side) =>
  Object.fromEntries(
    ['typing', 'newSpot'].map((k) => [
      k,
      Object.fromEntries(['p50', 'p95', 'generatedP50'].map((q) => [q, r2(median(runs[side].map((x) => x[k][q])))])),
    ]),
  );
const med = { A: medians('A'), B: medians('B') };
const ratios = Object.fromEntries(
  ['typing', 'newSpot'].flatMap((k) => ['p50', 'p95'].map((q) => [`${k}_${q}`, r2(med.B[k][q] / med.A[k][q])])),
);
const result = {
  what: 'spots suite (psm), A and B alternating ABBA, same seeds; latency in ms',
  date: new Date().toISOString(),
  machine: { cpus: os.cpus().length, cpu: os.cpus()[0]?.model, loadavg: load.map((l) => l.map(r2)) },
  settings: { rounds, spots, keystrokes, docTokens, threads },
  A: { dir: a, model: runs.A[0].model, medians: med.A, runs: runs.A },
  B: { dir: b, model: runs.B[0].model, medians: med.B, runs: runs.B },
  ratiosBOverA: ratios,
};
fs.mkdirSync(path.dirname(out), { recursive: true });
fs.writeFileSync(out, JSON.stringify(result, null, 1) + '\n');
console.log(JSON.stringify({ out, medians: med, ratiosBOverA: ratios }, null, 1));
