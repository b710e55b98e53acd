// What the VS Code layer keeps and decides without the editor (src/shared/): which model folder it loads and what
// is wrong with a folder before the engine tries it, and the request history behind Why No Suggestion? and the
// memory panel's latency histogram.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { modelFolderProblem, resolveActiveModel } from '../../src/shared/modelPath';
import { LATENCY_BUCKETS_MS, Stats, type ProviderTrace } from '../../src/shared/stats';
import { newTrace } from '../../src/engine/api';

test('model folder: the setting (relative to the workspace), else the shipped model, else the fixture', () => {
  const resolveModelDir = (ext: string, modelPath: string, ws?: string) => {
    const m = resolveActiveModel(ext, { modelPath, model: 'auto' }, 'cpu', 1, ws);
    return { dir: m.dir, source: m.source };
  };
  const ext = fs.mkdtempSync(path.join(os.tmpdir(), 'mixsga-ext-'));
  assert.deepEqual(resolveModelDir(ext, '/abs/model', '/ws'), { dir: '/abs/model', source: 'setting' });
  assert.deepEqual(resolveModelDir(ext, 'models/mine', '/ws'), { dir: '/ws/models/mine', source: 'setting' });
  assert.deepEqual(resolveModelDir(ext, 'models/mine'), { dir: path.join(ext, 'models/mine'), source: 'setting' });
  const fixture = path.join(ext, 'test', 'fixtures', 'fixture-tiny');
  assert.deepEqual(resolveModelDir(ext, ''), { dir: fixture, source: 'fixture' }, 'no shipped model yet');
  const shipped = path.join(ext, 'models', 'default');
  fs.mkdirSync(shipped, { recursive: true });
  fs.writeFileSync(path.join(shipped, 'manifest.json'), '{}');
  assert.deepEqual(resolveModelDir(ext, ''), { dir: shipped, source: 'shipped' });
});

test('model folder problems are named before the engine starts; a readable folder has none', () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'mixsga-model-'));
  assert.equal(modelFolderProblem(path.join(root, 'none')), `model folder not found: ${path.join(root, 'none')}`);
  const file = path.join(root, 'file');
  fs.writeFileSync(file, '');
  assert.equal(modelFolderProblem(file), `model path is not a folder: ${file}`);
  assert.equal(modelFolderProblem(root), `no manifest.json in the model folder ${root}`);
  fs.writeFileSync(path.join(root, 'manifest.json'), '{ not json');
  assert.match(modelFolderProblem(root) ?? '', /^manifest\.json in .* is not valid JSON \(/);
  fs.writeFileSync(path.join(root, 'manifest.json'), '{}');
  assert.equal(modelFolderProblem(root), undefined);
});

test('request stats: served and cached counts, engine latencies by bucket, cancelled ones left out', () => {
  const s = new Stats();
  const trace = (outcome: ProviderTrace['outcome'], totalMs?: number): ProviderTrace => ({
    at: 0,
    docId: 'a.ts',
    outcome,
    debounceMs: 0,
    waitMs: 0,
    engine: totalMs === undefined ? undefined : { ...newTrace(1, 'a.ts', 'eos'), totalMs },
    chars: 0,
  });
  s.record(trace('shown', 30));
  s.record(trace('cached'));
  s.record(trace('empty', 5_000));
  s.record(trace('cancelled', 10));
  s.record(trace('skipped'));
  assert.equal(s.requests, 5);
  assert.equal(s.served, 2);
  assert.equal(s.cacheHits, 1);
  assert.equal(s.last?.outcome, 'skipped');
  const at = (ms: number) => s.histogram[LATENCY_BUCKETS_MS.findIndex((b) => ms <= b)];
  assert.equal(at(30), 1, '30 ms in the 50 ms bucket');
  assert.equal(at(5_000), 1, 'slow requests in the last bucket');
  assert.equal(at(10), 0, 'the cancelled request is not a latency');
  assert.equal(
    s.histogram.reduce((a, b) => a + b, 0),
    2,
    'two engine latencies in all',
  );
});
