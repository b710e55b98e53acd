// A/B of two model folders' graphs on the CPU (issue 18: attention over the per-expert caches as stored vs the
// caches expanded to H heads): `node dist/bench.js --suite gpu --device cpu` on each folder, alternating A and B
// (ABBA order) for ROUNDS rounds, decode at --contexts with the budgets given and prefill at --prefill. Writes
// bench/results/<date>-cpu-graph-ab.json: every run's tokens/s per configuration, medians per folder, the ratio
// B/A per configuration, B's decode at each budget over its decode at 100 %, and the machine's load average
// before and after (figures taken on a loaded machine are noisy: compare ratios).
// Usage: node scripts/bench-graph-ab.mjs A_DIR B_DIR [ROUNDS] [--budgets 100,50,25] [--contexts 2048]
//        [--prefill 512,2048] [--threads 2] [--out FILE]
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { abArgs, median, resultPath, root } from './ab-args.mjs';

const { opt, positional } = abArgs(
  'node scripts/bench-graph-ab.mjs A_DIR B_DIR [ROUNDS] [--budgets ..] [--contexts ..] [--prefill ..]',
  3,
);
const budgets = opt('budgets', '100,50,25'),
  contexts = opt('contexts', '2048'),
  prefill = opt('prefill', '512,2048');
const threads = opt('threads', '2');
const out = opt('out', resultPath('cpu-graph-ab'));
const [a, b, rounds] = positional();
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'graph-ab-'));
const r3 = (x) => Math.round(x * 1000) / 1000;

const runs = [];
const loadBefore = os.loadavg();
try {
  for (let r = 0; r < rounds; r++) {
    for (const side of r % 2 ? ['B', 'A'] : ['A', 'B']) {
      const file = path.join(tmp, `${side}-${r}.json`);
      execFileSync(
        'node',
        [
          path.join(root, 'dist/bench.js'),
          '--suite',
          'gpu',
          '--device',
          'cpu',
          '--model',
          side === 'A' ? a : b,
          '--budgets',
          budgets,
          '--contexts',
          contexts,
          '--prefill',
          prefill,
          '--threads',
          threads,
          '--profile-runs',
          '0',
          '--no-probe',
          '--warmup',
          '2',
          '--iterations',
          '4',
          '--out',
          file,
        ],
        { stdio: ['ignore', 'ignore', 'inherit'] },
      );
      const res = JSON.parse(fs.readFileSync(file, 'utf8'));
      for (const x of res.results)
        runs.push({
          side,
          round: r,
          key: `${x.kind}:${x.budgetPct}:${x.tokens}`,
          tokensPerSec: x.tokensPerSec,
          loadavg1: os.loadavg()[0],
        });
      console.error(`[graph-ab] round ${r} ${side} done (load ${os.loadavg()[0].toFixed(1)})`);
    }
  }
} finally {
  fs.rmSync(tmp, { recursive: true, force: true });
}

const keys = [...new Set(runs.map((x) => x.key))];
const med = (side, key) => median(runs.filter((x) => x.side === side && x.key === key).map((x) => x.tokensPerSec));
const perConfig = Object.fromEntries(
  keys.map((k) => [k, { A: med('A', k), B: med('B', k), ratioBoverA: r3(med('B', k) / med('A', k)) }]),
);
const budgetScaling = {};
for (const side of ['A', 'B']) {
  budgetScaling[side] = Object.fromEntries(
    keys
      .filter((k) => k.startsWith('decode:'))
      .map((k) => {
        const [, , T] = k.split(':');
        return [k, r3(med(side, k) / med(side, `decode:100:${T}`))];
      }),
  );
}
const result = {
  what: 'node dist/bench.js --suite gpu --device cpu, A and B alternated (ABBA); tokens/s medians per configuration',
  date: new Date().toISOString(),
  machine: {
    cpus: os.cpus().length,
    model: os.cpus()[0]?.model,
    loadavgBefore: loadBefore,
    loadavgAfter: os.loadavg(),
  },
  note: 'a machine shared with other jobs: absolute figures are not comparable between runs, the interleaved ratios are the result',
  A: path.resolve(a),
  B: path.resolve(b),
  rounds,
  settings: { budgets, contexts, prefill, threads },
  perConfig,
  decodeOverDecodeAt100: budgetScaling,
  runs,
};
fs.mkdirSync(path.dirname(out), { recursive: true });
fs.writeFileSync(out, JSON.stringify(result, null, 1) + '\n');
console.log(JSON.stringify({ perConfig, decodeOverDecodeAt100: budgetScaling }, null, 1));
console.error(`[graph-ab] wrote ${out}`);
