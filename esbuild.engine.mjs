// Engine bundles: dist/worker.js (the engine process) and dist/cli.js; with --tests also the test
// files into out/test/. onnxruntime-node stays external (native binding, loaded from node_modules at run time).
// The extension bundle (esbuild.mjs) must build `engineEntries` too, so dist/worker.js sits next to
// dist/extension.js: EngineClient finds the worker as path.join(__dirname, 'worker.js').
import * as esbuild from 'esbuild';
import { readdirSync, existsSync } from 'node:fs';
import { pathToFileURL, fileURLToPath } from 'node:url';
import path from 'node:path';

const root = path.dirname(fileURLToPath(import.meta.url));

export const engineCommon = {
  absWorkingDir: root, bundle: true, platform: 'node', format: 'cjs', target: 'node20', sourcemap: true,
  external: ['onnxruntime-node'], logLevel: 'warning',
};
export const engineEntries = [
  { entryPoints: { worker: 'src/engine/worker.ts' }, outdir: 'dist' },
  { entryPoints: { cli: 'src/cli.ts' }, outdir: 'dist' },
  { entryPoints: { bench: 'src/bench/bench.ts' }, outdir: 'dist' }, // npm run bench (scripts/bench.mjs, docs/benchmarks.md)
  { entryPoints: { soak: 'src/bench/soak.ts' }, outdir: 'dist' }, // npm run soak (docs/soak.md)
  { entryPoints: { 'ipc-cost': 'src/bench/ipcCost.ts' }, outdir: 'dist' }, // child process vs worker thread (docs/soak.md)
  { entryPoints: { 'mem-ab': 'src/bench/memAB.ts' }, outdir: 'dist' }, // engine memory settings A/B (docs/soak.md)
  { entryPoints: { 'restart-cost': 'src/bench/restartCost.ts' }, outdir: 'dist' }, // the RSS cap's restart (docs/soak.md)
  { entryPoints: { 'mem-breakdown': 'src/bench/memBreakdown.ts' }, outdir: 'dist' }, // where RSS beyond fresh + KV goes (docs/soak.md)
];

export async function buildEngine({ tests = false, production = false } = {}) {
  await Promise.all(engineEntries.filter((e) => Object.values(e.entryPoints).every((f) => existsSync(path.join(root, f)))).map((e) => esbuild.build({ ...engineCommon, ...e, ...(production ? { minify: true, sourcemap: false } : {}) })));
  if (tests) {
    const pick = (dir) => readdirSync(path.join(root, dir)).filter((f) => f.endsWith('.test.ts')).map((f) => `${dir}/${f}`);
    const entryPoints = [...pick('test/unit'), ...pick('test/integration')];
    // Tests live in out/test/{unit,integration}; the worker is copied next to them for the client's __dirname lookup.
    await esbuild.build({ ...engineCommon, entryPoints, outdir: 'out/test', outbase: 'test' });
    if (existsSync(path.join(root, 'src/engine/worker.ts'))) await esbuild.build({ ...engineCommon, entryPoints: { worker: 'src/engine/worker.ts' }, outdir: 'out/test/integration' });
  }
}

/** Hook used by esbuild.mjs (the extension bundle). */
export const build = (opts = {}) => buildEngine(opts);
export default build;

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  await buildEngine({ tests: process.argv.includes('--tests') });
}
