// Issue 16's model choice: with models/default alone it is always chosen; beside a bigger model (here a manifest
// derived from the shipped one with a bigger architecture and min_cpu_cores) CUDA takes the bigger one and the CPU
// only with enough cores; mixsga.model names one, an unknown name falls back to auto; mixsga.modelPath overrides.
// The gauge tooltip's and the memory panel's words about the model and the RSS cap.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  chooseModel,
  formatParams,
  minCpuCores,
  parameterCount,
  type ManifestSummary,
} from '../../src/shared/modelChoice';
import { listShippedModels, resolveActiveModel } from '../../src/shared/modelPath';
import { modelView, rssCapView } from '../../src/shared/panelView';
import type { MemoryReport } from '../../src/engine/api';

const repo = path.resolve(__dirname, '../../..');
const shippedManifest = fs.readFileSync(path.join(repo, 'models', 'default', 'manifest.json'), 'utf8');

/** An extension folder with models/default (the shipped manifest) and, optionally, a bigger models/v2. */
function extension(v2?: { minCpuCores?: number; cudaVariant?: boolean }): string {
  const ext = fs.mkdtempSync(path.join(os.tmpdir(), 'mixsga-choice-'));
  const write = (folder: string, m: unknown): void => {
    fs.mkdirSync(path.join(ext, 'models', folder), { recursive: true });
    fs.writeFileSync(path.join(ext, 'models', folder, 'manifest.json'), JSON.stringify(m, null, 2));
  };
  write('default', JSON.parse(shippedManifest));
  if (v2) {
    const m = JSON.parse(shippedManifest);
    m.name = 'mixsga-v2';
    Object.assign(m.architecture, { hidden_size: 768, intermediate_size: 2048, num_layers: 12, head_dim: 96 });
    if (v2.minCpuCores !== undefined) m.min_cpu_cores = v2.minCpuCores;
    if (v2.cudaVariant === false) delete m.variants.cuda;
    write('v2', m);
  }
  return ext;
}

test('parameters from the shipped manifest match the model card (22,914,432 without the routers)', () => {
  const m = JSON.parse(shippedManifest) as ManifestSummary;
  assert.equal(parameterCount(m.architecture), 22_914_432);
  assert.equal(formatParams(22_914_432), '22.9M');
  assert.equal(parameterCount({ ...m.architecture, tie_word_embeddings: false }), 22_914_432 + 32008 * 384);
  assert.equal(parameterCount({ hidden_size: 384 }), undefined, 'fields missing: no count');
  assert.equal(parameterCount(undefined), undefined);
});

test('only models/default: chosen on CUDA and on a CPU of any size', () => {
  const models = listShippedModels(extension());
  assert.deepEqual(
    models.map((m) => m.folder),
    ['default'],
  );
  for (const [device, cores] of [
    ['cuda', 2],
    ['cpu', 1],
    ['cpu', 2],
    ['cpu', 64],
  ] as const) {
    assert.deepEqual(chooseModel(models, device, cores), { folder: 'default', reason: 'the only shipped model' });
  }
  assert.equal(chooseModel([], 'cpu', 2), undefined);
});

test('beside a bigger model: CUDA takes it; the CPU only with the cores it asks for', () => {
  const models = listShippedModels(extension({ minCpuCores: 8 }));
  assert.deepEqual(
    models.map((m) => m.folder),
    ['default', 'v2'],
  );
  assert.ok(parameterCount(models[1].manifest.architecture)! > 3 * parameterCount(models[0].manifest.architecture)!);
  assert.equal(minCpuCores(models[1].manifest), 8);
  assert.deepEqual(chooseModel(models, 'cuda', 2), { folder: 'v2', reason: 'CUDA: the largest model' });
  assert.deepEqual(chooseModel(models, 'cpu', 2), {
    folder: 'default',
    reason: 'CPU, 2 cores: small model for typing speed (v2 asks for 8 cores)',
  });
  assert.equal(chooseModel(models, 'cpu', 7)?.folder, 'default');
  assert.deepEqual(chooseModel(models, 'cpu', 8), { folder: 'v2', reason: 'CPU, 8 cores: the largest model' });
  assert.equal(chooseModel(models, 'cpu', 32)?.folder, 'v2');
  // Directory order does not matter.
  assert.equal(chooseModel([...models].reverse(), 'cpu', 2)?.folder, 'default');
  assert.equal(chooseModel([...models].reverse(), 'cuda', 2)?.folder, 'v2');
});

test('a bigger model without min_cpu_cores is taken on the CPU too; one without a CUDA graph is not taken on CUDA', () => {
  assert.equal(chooseModel(listShippedModels(extension({})), 'cpu', 1)?.folder, 'v2');
  const noCuda = listShippedModels(extension({ minCpuCores: 4, cudaVariant: false }));
  assert.equal(chooseModel(noCuda, 'cuda', 2)?.folder, 'default');
  assert.equal(chooseModel(noCuda, 'cpu', 4)?.folder, 'v2');
});

test('every model asks for more cores than there are: the least demanding one', () => {
  const models = listShippedModels(extension({ minCpuCores: 8 }));
  models[0].manifest.min_cpu_cores = 4;
  assert.deepEqual(chooseModel(models, 'cpu', 2), {
    folder: 'default',
    reason: 'CPU, 2 cores: every model asks for more; the least demanding',
  });
});

test('mixsga.model names a shipped model; an unknown name is reported and auto chooses', () => {
  const models = listShippedModels(extension({ minCpuCores: 8 }));
  assert.deepEqual(chooseModel(models, 'cpu', 2, 'v2'), { folder: 'v2', reason: 'set by mixsga.model' });
  assert.deepEqual(chooseModel(models, 'cuda', 2, 'default'), { folder: 'default', reason: 'set by mixsga.model' });
  assert.equal(chooseModel(models, 'cuda', 2, 'auto')?.folder, 'v2');
  const typo = chooseModel(models, 'cuda', 2, 'v3');
  assert.equal(typo?.folder, 'v2');
  assert.equal(typo?.reason, 'CUDA: the largest model');
  assert.equal(
    typo?.problem,
    'mixsga.model "v3" is not a shipped model (shipped: default, v2; or "auto"); choosing automatically',
  );
  assert.equal(chooseModel(models, 'cpu', 2, 'v3')?.folder, 'default');
});

test('the host resolves: mixsga.modelPath overrides mixsga.model; no models/ gives the fixture', () => {
  const ext = extension({ minCpuCores: 8 });
  const a = resolveActiveModel(ext, { modelPath: '', model: 'auto' }, 'cpu', 2);
  assert.equal(a.dir, path.join(ext, 'models', 'default'));
  assert.equal(a.source, 'shipped');
  assert.equal(a.manifest?.name, 'mixsga-default');
  const b = resolveActiveModel(ext, { modelPath: '', model: 'auto' }, 'cuda', 2);
  assert.equal(b.dir, path.join(ext, 'models', 'v2'));
  const c = resolveActiveModel(ext, { modelPath: 'models/v2', model: 'default' }, 'cpu', 2, ext);
  assert.equal(c.dir, path.join(ext, 'models', 'v2'));
  assert.equal(c.source, 'setting');
  assert.equal(c.reason, 'set by mixsga.modelPath (mixsga.model is ignored while it is set)');
  assert.equal(c.manifest?.name, 'mixsga-v2');
  const d = resolveActiveModel(ext, { modelPath: '', model: 'nope' }, 'cpu', 2);
  assert.equal(d.folder, 'default');
  assert.match(d.problem ?? '', /^mixsga\.model "nope" is not a shipped model/);
  const bare = fs.mkdtempSync(path.join(os.tmpdir(), 'mixsga-bare-'));
  const f = resolveActiveModel(bare, { modelPath: '', model: 'auto' }, 'cuda', 8);
  assert.equal(f.source, 'fixture');
  // On a 1-core CPU, auto still gives models/default beside a bigger model.
  const one = resolveActiveModel(ext, { modelPath: '', model: 'auto' }, 'cpu', 1);
  assert.deepEqual(
    { dir: one.dir, source: one.source },
    { dir: path.join(ext, 'models', 'default'), source: 'shipped' },
  );
});

test('the gauge and panel name the model: manifest name, parameters, device, reason', () => {
  const ext = extension({ minCpuCores: 8 });
  const a = resolveActiveModel(ext, { modelPath: '', model: 'auto' }, 'cpu', 2);
  assert.deepEqual(modelView(a, { modelName: 'mixsga-default', device: 'cpu' }), {
    label: 'mixsga-default (22.9M parameters) on CPU',
    reason: 'CPU, 2 cores: small model for typing speed (v2 asks for 8 cores)',
  });
  const b = resolveActiveModel(ext, { modelPath: '', model: 'auto' }, 'cuda', 2);
  assert.match(modelView(b, undefined, 'cuda')!.label, /^mixsga-v2 \(\d+\.\dM parameters\) on CUDA$/);
  // A manifest without the sizes still names the model (from the engine's report).
  assert.equal(modelView({ dir: '/m', reason: 'x' }, { modelName: 'mine', device: 'cpu' })?.label, 'mine on CPU');
  assert.equal(modelView(undefined, undefined), undefined);
});

const report = (rssCap: MemoryReport['rssCap'], rssMB?: number): MemoryReport => ({
  usedBytes: 0,
  budgetBytes: 64 * 2 ** 20,
  device: 'cpu',
  modelName: 'mixsga-default',
  docs: [],
  expertShares: [],
  perLayerShares: [],
  fullBytesPerToken: 12_420,
  ...(rssMB !== undefined ? { process: { rssMB, heapUsedMB: 5, externalMB: 1, arrayBuffersMB: 1 } } : {}),
  ...(rssCap ? { rssCap } : {}),
});

test('the panel shows the RSS cap: RSS, the cap and its parts, restarts and the last one', () => {
  assert.equal(rssCapView(undefined), undefined);
  assert.equal(rssCapView(report(undefined, 300)), undefined, 'cap off: no section');
  const fresh = rssCapView(report({ capMB: 338.5, idleMs: 10_000, headroomMB: 64, restarts: { count: 0 } }, 301.2));
  assert.equal(fresh?.rssBytes, 301.2 * 2 ** 20);
  assert.equal(fresh?.capBytes, 338.5 * 2 ** 20);
  assert.deepEqual(fresh?.lines, [
    'Resident memory (RSS) 301.2 MB of a 338.5 MB cap (fresh process 210.5 MB + KV budget 64.0 MB + 64.0 MB ' +
      'headroom). Above it, the engine process is restarted once it has been idle for 10 s, and the document ' +
      'completed last is prefilled again.',
    'No restarts for the cap so far.',
  ]);
  const warm = rssCapView(
    report({ capMB: 374, workingSetMB: 63.2, idleMs: 10_000, headroomMB: 64, restarts: { count: 0 } }, 330),
  );
  assert.match(
    warm!.lines[0],
    /of a 374\.0 MB cap \(fresh process 246\.0 MB, of which 63\.2 MB is ONNX Runtime's working memory for the largest run \+ KV budget 64\.0 MB \+ 64\.0 MB headroom\)/,
  );
  const at = '2026-12-06T23:41:05.000Z';
  const restarted = rssCapView(
    report(
      {
        capMB: 338.5,
        idleMs: 10_000,
        headroomMB: 64,
        restarts: { count: 2, last: { at, rssMB: 352.4, capMB: 338.5, restartMs: 850 } },
      },
      250,
    ),
    Date.parse(at) + 12 * 60_000,
  );
  assert.equal(
    restarted?.lines[1],
    'Restarts for the cap so far: 2. Last at 2026-12-06 23:41:05 UTC (12 min ago): RSS 352.4 MB was over the ' +
      '338.5 MB cap; the fresh process was ready in 850 ms.',
  );
  const noCap = rssCapView(report({ idleMs: 10_000, headroomMB: 64, restarts: { count: 0 } }));
  assert.equal(noCap?.rssBytes, undefined);
  assert.equal(noCap?.capBytes, undefined);
  assert.match(noCap!.lines[0], /^Resident memory \(RSS\) not known yet; no cap yet/);
});
