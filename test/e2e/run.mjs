// E2E in a real VS Code (code-server 4.139.1): builds and packages the VSIX, installs it into fresh dirs, runs
// the in-host suite (test/vscode-suite) and the UI test (ui.mjs), prints "N passed, M failed", exits non-zero on
// failure. Tools come from scripts/e2e-setup.sh ($E2E_DIR, default ~/.cache/mixsga-e2e).
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { installVsix, prepareDirs } from './codeServer.mjs';
import { runInHostSuite } from './suite.mjs';
import { runUi } from './ui.mjs';
import { runJumpCheck } from './jump.mjs';
import { createWorkspace, WORKSPACE_SETTINGS } from './workspace.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const E2E_DIR = process.env.E2E_DIR || path.join(os.homedir(), '.cache', 'mixsga-e2e');
const WORK = process.env.E2E_WORK || path.join(os.tmpdir(), 'mixsga-e2e-run');
const SHOTS = path.join(root, 'test-results');
const T0 = Date.now();
const timings = {};
const mark = (k) => {
  timings[k] = Date.now() - T0;
  console.log(`[e2e ${String(timings[k]).padStart(7)} ms] ${k}`);
};

const tools = JSON.parse(fs.readFileSync(path.join(E2E_DIR, 'env.json'), 'utf8'));
const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'));
fs.rmSync(WORK, { recursive: true, force: true });
fs.mkdirSync(WORK, { recursive: true });
fs.mkdirSync(SHOTS, { recursive: true });
for (const f of fs.readdirSync(SHOTS)) if (/\.(png|json)$/.test(f)) fs.rmSync(path.join(SHOTS, f)); // no stale screenshots

// 1. Package what users get.
const vsix = path.join(WORK, `${pkg.name}-${pkg.version}.vsix`);
execFileSync(process.execPath, ['esbuild.mjs', '--production'], { cwd: root, stdio: 'inherit' });
execFileSync(
  path.join(root, 'node_modules/.bin/vsce'),
  ['package', '--readme-path', 'media/marketplace-readme.md', '--out', vsix],
  { cwd: root, stdio: ['ignore', 'inherit', 'inherit'] },
);
const listing = spawnSync('unzip', ['-l', vsix], { encoding: 'utf8' }).stdout || '';
const fileCount = listing.split('\n').filter((l) => /^\s*\d+\s+\S+\s+\S+\s+extension\//.test(l)).length;
mark(`VSIX packaged: ${(fs.statSync(vsix).size / 1e6).toFixed(1)} MB, ${fileCount} files`);

// 2. Install it into a fresh extensions dir shared by both runs.
const extensions = path.join(WORK, 'extensions');
installVsix(tools, prepareDirs(path.join(WORK, 'install'), extensions), vsix);
const extensionDir = path.join(extensions, `${pkg.publisher}.${pkg.name}-${pkg.version}`);
if (!fs.existsSync(path.join(extensionDir, 'dist', 'extension.js')))
  throw new Error(`not installed at ${extensionDir}`);
mark('VSIX installed');

// Tokens of typed text, with the shipped model's own tokenizer (the one the engine counts with).
const { Tokenizer } = await import('@huggingface/tokenizers');
const modelDir = ['models/default', 'test/fixtures/fixture-tiny']
  .map((d) => path.join(extensionDir, d))
  .find((d) => fs.existsSync(path.join(d, 'manifest.json')));

// MIXSGA_E2E_MODEL: test against another model folder through mixsga.modelPath (e.g. before one ships).
const modelOverride = process.env.MIXSGA_E2E_MODEL
  ? { 'mixsga.modelPath': path.resolve(process.env.MIXSGA_E2E_MODEL) }
  : {};
const tokenizerDir = modelOverride['mixsga.modelPath'] ?? modelDir;
const tokenizer = tokenizerDir
  ? new Tokenizer(
      JSON.parse(fs.readFileSync(path.join(tokenizerDir, 'tokenizer.json'), 'utf8')),
      JSON.parse(fs.readFileSync(path.join(tokenizerDir, 'tokenizer_config.json'), 'utf8')),
    )
  : undefined;
const tokenCount = (text) => (tokenizer ? tokenizer.encode(text).ids.length : Math.floor(text.length / 4));
if (!tokenizer) console.log('no tokenizer found: token counts are estimates (chars / 4)');

// KV bytes of one token at full KV (every layer at expert 0), as the engine's budget counts them
// (src/engine/kvStore.ts fullTokenBytes), for the variant the e2e machine runs: cpu when the model has it.
function fullTokenBytes(dir) {
  const m = JSON.parse(fs.readFileSync(path.join(dir, 'manifest.json'), 'utf8'));
  const a = m.architecture;
  const kv = (m.variants.cpu ?? m.variants.cuda).kv_dtype === 'float16' ? 2 : 4;
  return a.num_layers * (2 * a.num_kv_heads * a.head_dim * kv + 4 + 4 * m.experts.length) + 4;
}
const kvTokenBytes = tokenizerDir ? fullTokenBytes(tokenizerDir) : 548; // 548: fixture-tiny

const all = [];
// E2E_ONLY=host,ui,jump runs only those parts (default: all).
const only = process.env.E2E_ONLY ? process.env.E2E_ONLY.split(',') : undefined;
const want = (part) => !only || only.includes(part);
// 3. In-host suite (its own workspace: no mixsga.kvBudgetMB there, so the suite's global writes take effect).
if (want('host')) {
  const dirs = { ...prepareDirs(path.join(WORK, 'suite'), extensions), shots: SHOTS };
  const ws = path.join(dirs.work, 'workspace');
  const { 'mixsga.kvBudgetMB': _omit, ...settings } = WORKSPACE_SETTINGS;
  createWorkspace(ws, { ...settings, ...modelOverride });
  const r = await runInHostSuite({
    tools,
    dirs,
    workspace: ws,
    extensionDir,
    suiteFile: path.join(root, 'out/test/vscode-suite/index.js'), // test/vscode-suite/index.ts, built above
  });
  for (const t of r.results)
    console.log(
      `${t.ok ? 'ok  ' : 'FAIL'} [host ${r.node}] ${t.name} (${t.ms} ms)${t.ok ? '' : '\n     ' + String(t.err).split('\n').slice(0, 6).join('\n     ')}`,
    );
  all.push(...r.results.map((t) => ({ ...t, name: `host: ${t.name}` })));
  mark('in-host suite done');
}
// 4. UI test.
if (want('ui')) {
  const dirs = { ...prepareDirs(path.join(WORK, 'ui'), extensions), shots: SHOTS };
  const ws = path.join(dirs.work, 'workspace');
  const files = createWorkspace(ws, { ...WORKSPACE_SETTINGS, ...modelOverride });
  const r = await runUi({ tools, dirs, workspace: ws, files, tokenCount, shots: SHOTS, fullTokenBytes: kvTokenBytes });
  all.push(...r.results.map((t) => ({ ...t, name: `ui: ${t.name}` })));
  console.log('ui timings (ms):', JSON.stringify(r.timings));
  mark('UI test done');
}
// 5. A new cursor spot in a ~2k-token file: reuse and latency read from the extension's log.
if (want('jump')) {
  const dirs = { ...prepareDirs(path.join(WORK, 'jump'), extensions), shots: SHOTS };
  const ws = path.join(dirs.work, 'workspace');
  createWorkspace(ws, { ...WORKSPACE_SETTINGS, ...modelOverride });
  const r = await runJumpCheck({ tools, dirs, workspace: ws, root, tokenCount, shots: SHOTS });
  all.push(...r.results.map((t) => ({ ...t, name: `jump: ${t.name}` })));
  mark('jump check done');
}

const failed = all.filter((t) => !t.ok);
fs.writeFileSync(path.join(SHOTS, 'e2e-results.json'), JSON.stringify({ timings, results: all }, null, 1));
for (const t of failed) console.log(`failed: ${t.name}`);
console.log(`screenshots and results: ${SHOTS}; logs: ${WORK}`);
console.log(`${all.length - failed.length} passed, ${failed.length} failed`);
process.exit(failed.length ? 1 : 0);
