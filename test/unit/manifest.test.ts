import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createHash } from 'node:crypto';
import { loadManifest, ManifestError } from '../../src/engine/manifest';
import { tinyManifest } from './synth';

function folder(mutate?: (m: any, dir: string) => void): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mixsga-m-'));
  const files: Record<string, string> = {};
  for (const f of ['model.cpu.onnx', 'tokenizer.json', 'tokenizer_config.json']) {
    fs.writeFileSync(path.join(dir, f), `content of ${f}`);
    files[f] = createHash('sha256').update(`content of ${f}`).digest('hex');
  }
  const m = tinyManifest(files);
  mutate?.(m, dir);
  fs.writeFileSync(path.join(dir, 'manifest.json'), JSON.stringify(m));
  return dir;
}

test('valid folder loads', () => {
  assert.equal(loadManifest(folder()).manifest.name, 't');
});
test('missing folder / no manifest / corrupt JSON', () => {
  assert.throws(
    () => loadManifest('/nonexistent/model'),
    (e: Error) => e instanceof ManifestError && /not found/.test(e.message),
  );
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'mixsga-m-'));
  assert.throws(() => loadManifest(d), /no manifest.json/);
  fs.writeFileSync(path.join(d, 'manifest.json'), '{ nope');
  assert.throws(() => loadManifest(d), /not valid JSON/);
});
test('unknown format_version', () => {
  assert.throws(
    () =>
      loadManifest(
        folder((m) => {
          m.format_version = 1;
        }),
      ),
    /unknown format_version 1.*re-export/,
  );
});
test('sha256 mismatch names the file', () => {
  const d = folder();
  fs.appendFileSync(path.join(d, 'tokenizer.json'), 'x');
  assert.throws(() => loadManifest(d), /tokenizer\.json: sha256 mismatch/);
});
test('listed file missing names the file', () => {
  const d = folder();
  fs.rmSync(path.join(d, 'model.cpu.onnx'));
  assert.throws(() => loadManifest(d), /model\.cpu\.onnx: listed in manifest.json but missing/);
});
test('bad experts', () => {
  assert.throws(
    () =>
      loadManifest(
        folder((m) => {
          m.experts[1].kv_heads = 3;
        }),
      ),
    /experts\[1\]/,
  );
});
