// A/B of the *Run Speed Benchmark* command's figures (issue 14 item 7): the command's measurement code before
// (git revision BASE, default 6f019ba, where it was src/vscode/benchmark.ts: 134-token prompt, decode = summed totals minus a median twin) and now
// (~2k-token source file, paired twins, median per-token time), run interleaved on the shipped model through the
// engine worker, REPS times each. Writes bench/results/<date>-speed-command-ab.json: each run's figures and the
// spread (max/min) of the decode rate per variant. Usage: node scripts/bench-speed-command.mjs [REPS] [BASE]
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const reps = Number(process.argv[2] ?? 4);
const base = process.argv[3] ?? '6f019ba';
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'speed-ab-'));
fs.writeFileSync(
  path.join(tmp, 'before.ts'),
  execFileSync('git', ['show', `${base}:src/vscode/benchmark.ts`], { cwd: root }),
);
fs.writeFileSync(
  path.join(tmp, 'driver.ts'),
  `
import { EngineClient } from ${JSON.stringify(path.join(root, 'src/engine/client'))};
import * as before from './before';
import * as now from ${JSON.stringify(path.join(root, 'src/shared/benchmark'))};
import sample from 'benchmark-sample';
export async function main(reps: number) {
  const eng = await EngineClient.start({ modelDir: ${JSON.stringify(path.join(root, 'models/default'))}, device: 'cpu',
    kvBudgetBytes: 64 * 2 ** 20, workerPath: ${JSON.stringify(path.join(root, 'dist/worker.js'))} });
  const signal = new AbortController().signal;
  const runs: any[] = [];
  for (let i = 0; i < reps; i++) {
    for (const variant of i % 2 ? ['now', 'before'] : ['before', 'now']) {
      const t0 = Date.now();
      const r: any = variant === 'now' ? await now.runBenchmark(eng as any, sample, 8, () => {}, signal)
        : await (before as any).runBenchmark(eng, 8, () => {}, signal);
      runs.push({ variant, rep: i, wallMs: Date.now() - t0, decodeTokPerS: r.decodeMs > 0 ? (r.decodeTokens / r.decodeMs) * 1000 : null, ...r });
      console.log(variant, JSON.stringify(runs[runs.length - 1]));
    }
  }
  await eng.dispose();
  return runs;
}`,
);
await esbuild.build({
  entryPoints: [path.join(tmp, 'driver.ts')],
  outfile: path.join(tmp, 'driver.js'),
  bundle: true,
  platform: 'node',
  format: 'cjs',
  external: ['onnxruntime-node'],
  nodePaths: [path.join(root, 'node_modules')],
  logLevel: 'warning',
  plugins: [
    {
      name: 'sample',
      setup(b) {
        b.onResolve({ filter: /^benchmark-sample$/ }, () => ({
          path: path.join(root, 'src/engine/budget.ts'),
          namespace: 'sample',
        }));
        b.onLoad({ filter: /.*/, namespace: 'sample' }, (a) => ({
          contents: fs.readFileSync(a.path, 'utf8'),
          loader: 'text',
        }));
      },
    },
  ],
});
execFileSync(process.execPath, [path.join(root, 'esbuild.engine.mjs')], { cwd: root, stdio: 'inherit' });
const { createRequire } = await import('node:module');
const load = os.loadavg();
const runs = await createRequire(import.meta.url)(path.join(tmp, 'driver.js')).main(reps);
const spread = (v) => {
  const xs = runs.filter((r) => r.variant === v && r.decodeTokPerS).map((r) => r.decodeTokPerS);
  return { decodeTokPerS: xs, maxOverMin: xs.length ? Math.max(...xs) / Math.min(...xs) : null };
};
const date = new Date().toISOString().slice(0, 10);
const out = {
  date: new Date().toISOString(),
  machine: `${os.cpus().length} x ${os.cpus()[0]?.model}`,
  loadavgBefore: load,
  loadavgAfter: os.loadavg(),
  base,
  reps,
  before: spread('before'),
  now: spread('now'),
  runs,
};
const file = path.join(root, 'bench/results', `${date}-speed-command-ab.json`);
fs.writeFileSync(file, JSON.stringify(out, null, 1));
console.log(
  `wrote ${file}: decode max/min before ${out.before.maxOverMin?.toFixed(2)}, now ${out.now.maxOverMin?.toFixed(2)}`,
);
