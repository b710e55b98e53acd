// The VS Code layer's words and numbers that need no editor: the budget picker's parsing, the budget advice, the
// device note, and the log's one line per request with budget actions summarised.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { budgetAdvice, MB, shortDeviceNote, typedMb } from '../../src/shared/format';
import { requestLogLine, summariseBudgetActions } from '../../src/shared/traceText';
import type { RequestTrace } from '../../src/engine/api';

test('a number typed into the budget picker is that number of MB', () => {
  assert.equal(typedMb('2'), 2);
  assert.equal(typedMb(' 0.5 '), 0.5);
  assert.equal(typedMb('2 MB'), 2);
  assert.equal(typedMb('12mb'), 12);
  for (const v of ['', 'Custom', '2 GB', '-1', '1e3', '256 MB extra']) assert.equal(typedMb(v), undefined, v);
});

test('too small budgets get a warning with a sensible minimum; usual ones none', () => {
  const perToken = 12_420; // the shipped model, bytes per token at full KV
  const tiny = budgetAdvice(0.25 * MB, perToken);
  assert.ok(tiny, 'no warning at 0.25 MB');
  assert.equal(tiny.minMb, 5);
  assert.match(tiny.warning, /0\.25 MB holds about 84 prompt tokens/);
  assert.ok(budgetAdvice(1 * MB, perToken));
  assert.equal(budgetAdvice(8 * MB, perToken), undefined);
  assert.equal(budgetAdvice(64 * MB, perToken), undefined);
});

test('the CUDA note is one short line, and none after choosing cpu', () => {
  const raw =
    'libcublasLt.so.12: cannot open shared object file: No such file or directory (/very/long/path/to/onnxruntime/bin/napi-v6/linux/x64/libonnxruntime_providers_cuda.so); using CPU';
  const auto = shortDeviceNote('auto', raw)!;
  assert.ok(auto.length <= 60 && !/warning|\$\(/.test(auto), auto);
  assert.equal(shortDeviceNote('cpu', raw), undefined);
  assert.equal(shortDeviceNote('auto', undefined), undefined);
  assert.ok(shortDeviceNote('cuda', raw)!.length <= 60);
});

test('thousands of budget actions become one short phrase; the request log line stays short', () => {
  const actions: string[] = [];
  for (let i = 0; i < 400; i++) actions.push(`demoted ${10 + i} token-layers (${1000 * i} B)`);
  actions.push('evicted file:///w/a.ts', 'evicted file:///w/b.ts', 'evicted file:///w/a.ts');
  actions.push(
    'windowed file:///w/long.ts: dropped positions 4..1360',
    'windowed file:///w/long.ts: dropped positions 4..99',
  );
  const text = summariseBudgetActions(actions);
  assert.equal(
    text,
    'demoted 83,800 token-layers (76.10 MB), evicted 2 documents, windowed 1 document (1,453 positions dropped)',
  );
  // the age cascade's demotions (budget.ts) are named, not counted as "other actions"
  const tiers = [
    'demoted 12 position groups one tier down (1048576 B)',
    'demoted 3 position groups one tier down (0 B)',
  ];
  assert.equal(
    summariseBudgetActions([...tiers, 'evicted file:///w/a.ts']),
    'demoted 15 position groups a tier down (1.00 MB freed), evicted 1 document',
  );
  const tr: RequestTrace = {
    requestId: 7,
    docId: 'file:///w/long.ts',
    reusedTokens: 1200,
    prefillTokens: 34,
    generatedTokens: 9,
    modelTokens: 16,
    prefillMs: 80,
    decodeMs: 40,
    totalMs: 125,
    stopReason: 'newline',
    budgetActions: actions,
    bandRecomputed: 0,
  };
  const line = requestLogLine(tr, 'typescript', 120, 21);
  assert.ok(line.length < 300, `${line.length} chars: ${line}`);
  assert.match(line, /^#7 typescript newline: 21 chars in 125 ms \(prompt 1200 reused \+ 34 computed/);
  assert.match(line, /; 9 generated of 16 picked, \+40 ms;/); // decode steps run vs tokens kept
  assert.match(line, / budget: demoted 83,800 token-layers/);
  assert.equal(
    summariseBudgetActions([
      'demoted 12 position groups one tier down (40000 B)',
      'demoted 3 position groups one tier down (10000 B)',
      'band recomputed: 27 tokens',
    ]),
    'demoted 15 position groups a tier down (0.05 MB freed), band recomputed: 27 tokens',
    "the age cascade's actions in words",
  );
});

test('settings read well in the Settings editor: a title, an order, and a documented minimum budget', async () => {
  const fs = await import('node:fs');
  const path = await import('node:path');
  const pkg = JSON.parse(fs.readFileSync(path.resolve(__dirname, '../../../package.json'), 'utf8'));
  const props = pkg.contributes.configuration.properties as Record<
    string,
    { order?: number; markdownDescription?: string; description?: string }
  >;
  const titles: Record<string, string> = {};
  for (const [k, v] of Object.entries(props)) {
    assert.equal(typeof v.order, 'number', `${k} has no order`);
    const m = /^\*\*([^*]+)\*\* — /.exec(v.markdownDescription ?? '');
    assert.ok(m, `${k}: no title at the start of its description`);
    titles[k] = m[1];
    assert.ok(!/MiB/.test(v.markdownDescription!), `${k} mixes in MiB`);
  }
  assert.equal(titles['mixsga.kvBudgetMB'], 'KV Budget (MB)');
  assert.equal(titles['mixsga.debounceMs'], 'Debounce (ms)');
  assert.match(props['mixsga.kvBudgetMB'].markdownDescription!, /Sensible minimum: \d+ MB/);
});
