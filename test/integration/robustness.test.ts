// Bad numbers at every boundary (client API, worker protocol, CLI), call deadlines, and fault isolation, on the
// real fixture model.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { EngineClient } from '../../src/engine/client';
import type { CompletionRequest } from '../../src/engine/api';
import { FIXTURE, WORKER, fixtureRequest, fullBytesPerToken, skip, startOnFixture } from './fixtureEngine';

process.env.MIXSGA_DEBUG = '1';
const CLI = path.resolve(__dirname, '../../../dist/cli.js');

const req = (docId: string, prefix: string, o: Partial<CompletionRequest> = {}) =>
  fixtureRequest(docId, prefix, ';\n', o);

test('bad budgets and maxTokens: clear errors, the engine keeps its previous valid state', { skip }, async () => {
  await assert.rejects(startOnFixture(NaN), /KV budget \(bytes\) must be a finite number \(got NaN\)/);
  const budget = 4 << 20;
  const eng = await startOnFixture(budget);
  try {
    assert.equal(eng.state.kind, 'ready');
    const warm = await eng.complete(req('a', 'const total = items.length + '));
    assert.notEqual(warm.trace.stopReason, 'error', JSON.stringify(warm.trace));
    const before = await eng.memory();
    for (const bad of [NaN, Infinity, -Infinity, -1, 'abc', undefined]) {
      await assert.rejects(eng.setBudget(bad as number), /KV budget \(bytes\) must be/, String(bad));
      const m = await eng.memory();
      assert.equal(m.budgetBytes, budget);
      assert.equal(m.usedBytes, before.usedBytes);
    }
    for (const maxTokens of [NaN, Infinity, -3, 0, 'many']) {
      const t0 = Date.now();
      const r = await eng.complete(req('a', 'const total = items.length + ', { maxTokens: maxTokens as number }));
      assert.equal(r.text, '');
      assert.equal(r.trace.stopReason, 'error');
      assert.match(r.trace.noSuggestionReason ?? '', /invalid request: request\.maxTokens must be/);
      assert.ok(Date.now() - t0 < 5000, 'answered at once, not hung');
      const m = await eng.memory();
      assert.deepEqual([m.budgetBytes, m.usedBytes, m.docs.length], [budget, before.usedBytes, before.docs.length]);
    }
    const r = await eng.complete(req('a', 'const total = items.length + ', { timeBudgetMs: NaN }));
    assert.match(r.trace.noSuggestionReason ?? '', /request\.timeBudgetMs must be a finite number/);
    // clearCaches drops every cache by starting a fresh engine process (all its memory goes back); requests go on.
    const pid = eng.pid;
    await eng.clearCaches();
    assert.equal(eng.state.kind, 'ready');
    assert.notEqual(eng.pid, pid);
    const cleared = await eng.memory();
    assert.equal(cleared.docs.length, 0);
    assert.equal(cleared.usedBytes, 0);
    assert.ok((cleared.process?.rssMB ?? 0) > 0, 'the engine process reports its memory');
    // Still enforcing the old budget and serving requests.
    const ok = await eng.complete(req('b', 'function add(a: number, b: number) {\n  return '));
    assert.notEqual(ok.trace.stopReason, 'error', JSON.stringify(ok.trace));
    const m = await eng.memory();
    assert.ok(Number.isFinite(m.usedBytes) && m.usedBytes <= budget && m.docs.length === 1, JSON.stringify(m));
  } finally {
    await eng.dispose();
  }
});

test(
  'a stuck engine cannot hang the caller: calls resolve by their deadline, the engine is restarted',
  { skip },
  async () => {
    const eng = await startOnFixture(4 << 20, { testHooks: true, callTimeoutMs: 5000, restartBackoffMs: [100] });
    try {
      const pid = eng.pid;
      eng.testCrash('hang');
      const t0 = Date.now();
      const [m, r] = await Promise.all([eng.memory(), eng.complete(req('a', 'let x = ', { timeBudgetMs: 500 }))]);
      assert.ok(Date.now() - t0 < 4000, `resolved after ${Date.now() - t0} ms`);
      assert.match(m.deviceNote ?? '', /did not answer within 1\.0 s/);
      assert.equal(r.text, '');
      assert.match(r.trace.noSuggestionReason ?? '', /did not answer within 1\.0 s \(stuck; restarted\)/);
      assert.ok(await eng.whenReady(20_000));
      assert.notEqual(eng.pid, pid);
      const ok = await eng.complete(req('a', 'let x = '));
      assert.notEqual(ok.trace.stopReason, 'error', JSON.stringify(ok.trace));
    } finally {
      await eng.dispose();
    }
  },
);

test('CLI: non-numeric or out-of-range flags and a missing --file give one clear line, no stack', { skip }, () => {
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'mixsga-cli-')), 'a.ts');
  fs.writeFileSync(file, 'const a = 1;\n');
  const cli = (...a: string[]) =>
    spawnSync(process.execPath, [CLI, 'complete', '--model', FIXTURE, '--device', 'cpu', ...a], {
      encoding: 'utf8',
      timeout: 60_000,
    });
  for (const [flags, msg] of [
    [['--file', file, '--budget-mb', 'abc'], /^error: --budget-mb must be a number \(got "abc"\)$/],
    [['--file', file, '--budget-mb', '-2'], /^error: --budget-mb must be between 0 and/],
    [['--file', file, '--budget-mb', 'Infinity'], /^error: --budget-mb must be a number/],
    [['--file', file, '--max-tokens', 'abc'], /^error: --max-tokens must be a number \(got "abc"\)$/],
    [['--file', file, '--max-tokens', 'NaN'], /^error: --max-tokens must be a number/],
    [['--file', file, '--max-tokens', 'Infinity'], /^error: --max-tokens must be a number/],
    [['--file', file, '--max-tokens', '-3'], /^error: --max-tokens must be between 1 and 512 \(got -3\)$/],
    [['--file', file, '--line', '0'], /^error: --line must be between 1 and/],
  ] as [string[], RegExp][]) {
    const r = cli(...flags);
    assert.equal(r.status, 2, `${flags.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr.trim(), msg);
  }
  const missing = cli('--file', '/nonexistent/x.ts');
  assert.equal(missing.status, 1);
  assert.equal(missing.stderr.trim(), 'error: cannot read --file /nonexistent/x.ts: ENOENT');
  const good = cli('--file', file, '--line', '1', '--col', '11', '--max-tokens', '4', '--budget-mb', '2');
  assert.equal(good.status, 0, good.stderr);
  assert.match(good.stdout, /--- trace/);
});

test(
  'a native abort in the engine mid-run leaves this (host) process alive; the next request is served within 5 s',
  { skip },
  async () => {
    const eng = await startOnFixture(64 << 20, { testHooks: true, restartBackoffMs: [250, 1000, 4000] });
    try {
      assert.equal(eng.state.kind, 'ready');
      const body = Array.from({ length: 150 }, (_, i) => `  const v${i} = compute(alpha${i}, beta) + ${i};\n`).join('');
      for (let round = 0; round < 2; round++) {
        // two crashes: the third restart would wait 4 s by design
        const pid = eng.pid;
        // A long prompt keeps session.run() busy; the abort message arrives while it runs.
        const inflight = eng.complete(
          req(`doc${round}`, `function f() {\n${body}`, { maxTokens: 64, multiline: true }),
        );
        await new Promise((r) => setTimeout(r, 50 + round * 30));
        const t0 = Date.now();
        eng.testCrash('abort');
        const r = await inflight;
        assert.equal(r.text, '');
        assert.match(
          r.trace.noSuggestionReason ?? '',
          /engine process was ended by SIGABRT/,
          'aborted while the request ran',
        );
        let served = false;
        while (Date.now() - t0 < 5000 && !served) {
          const next = await eng.complete(req('after', 'const total = items.length + ', { maxTokens: 4 }));
          served = next.trace.stopReason !== 'error';
          if (!served) await new Promise((res) => setTimeout(res, 100));
        }
        assert.ok(
          served,
          `round ${round}: no request served within 5 s of the abort (state ${JSON.stringify(eng.state)})`,
        );
        assert.notEqual(eng.pid, pid, 'a new engine process');
      }
      assert.equal(process.exitCode ?? 0, 0);
    } finally {
      await eng.dispose();
    }
  },
);

/** A copy of the fixture with tokenizer.json replaced by `body` (a string, or 'dir' for a folder), checksums updated. */
function fixtureWithTokenizer(body: string | 'dir'): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'mixsga-tok-'));
  for (const f of fs.readdirSync(FIXTURE)) fs.copyFileSync(path.join(FIXTURE, f), path.join(d, f));
  const t = path.join(d, 'tokenizer.json');
  fs.rmSync(t);
  if (body === 'dir') fs.mkdirSync(t);
  else fs.writeFileSync(t, body);
  const m = JSON.parse(fs.readFileSync(path.join(d, 'manifest.json'), 'utf8'));
  if (body !== 'dir') m.files['tokenizer.json'] = createHash('sha256').update(body).digest('hex');
  fs.writeFileSync(path.join(d, 'manifest.json'), JSON.stringify(m));
  return d;
}

test(
  'errors name their cause: broken tokenizer files, too-small and negative budgets, caller aborts',
  { skip },
  async () => {
    for (const [body, want] of [
      ['this is { not json', /tokenizer\.json is not valid JSON: Unexpected token/],
      ['{"model": {"type": "BPE", "vocab": {}, "merges": []}}', /tokenizer\.json: not a usable tokenizer \(/],
      ['dir', /tokenizer\.json: is a folder in .*, expected a file/],
    ] as [string, RegExp][]) {
      const dir = fixtureWithTokenizer(body);
      const e = await EngineClient.start({ modelDir: dir, device: 'cpu', kvBudgetBytes: 1 << 20, workerPath: WORKER });
      assert.equal(e.state.kind, 'failed');
      const reason = (e.state as { reason: string }).reason;
      assert.match(reason, want);
      if (body !== 'dir') assert.ok(reason.includes(path.join(dir, 'tokenizer.json')), `names the file: ${reason}`);
      await e.dispose();
    }
    await assert.rejects(
      startOnFixture(-5 * 2 ** 20),
      /KV budget \(bytes\) must be between 0 and \d+ \(got -5242880\)/,
    );

    const full = await fullBytesPerToken();
    const eng = await startOnFixture(5 * full);
    try {
      const r = await eng.complete(req('a', 'const a = '));
      assert.equal(r.text, '');
      assert.match(
        r.trace.noSuggestionReason ?? '',
        /cannot hold even one token: a document needs [\d.]+ KB before it \(4 always-kept attention-sink tokens .* bookkeeping\).*raise it to at least/,
      );
      await eng.setBudget(64 << 20);
      const body = Array.from({ length: 150 }, (_, i) => `  const v${i} = compute(alpha${i}, beta) + ${i};\n`).join('');
      const ac = new AbortController();
      const aborted = eng.complete(req('b', `function f() {\n${body}`, { maxTokens: 64, multiline: true }), ac.signal);
      setTimeout(() => ac.abort(), 30);
      const ra = await aborted;
      if (ra.trace.stopReason === 'cancelled')
        assert.match(ra.trace.noSuggestionReason ?? '', /cancelled by the caller/);
      const older = eng.complete(req('c', `function g() {\n${body}`, { maxTokens: 64, multiline: true }));
      await new Promise((res) => setTimeout(res, 30));
      const newer = eng.complete(req('c', `function g() {\n${body}  const w = `));
      const ro = await older;
      if (ro.trace.stopReason === 'cancelled')
        assert.match(ro.trace.noSuggestionReason ?? '', /superseded by a newer one/);
      assert.ok(
        ra.trace.stopReason === 'cancelled' || ro.trace.stopReason === 'cancelled',
        'at least one request was stopped mid-run',
      );
      await newer;
    } finally {
      await eng.dispose();
    }
  },
);
