// Suite "completion" (npm run bench): what a user sees, through the real request path — EngineClient → worker →
// EngineCore (prompt building, cached-prefix reuse, the KV budget, chunked prefill, greedy decode, stop rules).
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import { EngineClient } from '../engine/client';
import type { CompletionRequest, DeviceSetting, MemoryReport, RequestTrace } from '../engine/api';
import { loadManifest } from '../engine/manifest';
import { ModelTokenizer } from '../engine/tokenizer';
import { Args, UnavailableError, int, lineRequest, nums, r2, stats, str, table } from './common';
import { makeFiles } from './sources';

const MB = 1 << 20;

/** Cursor at the end of a non-empty line at ~`frac` of the file: prefix up to it, suffix from there. */
function cursorAt(text: string, frac: number): { prefix: string; suffix: string } {
  let i = text.indexOf('\n', Math.floor(text.length * frac));
  while (i > 0 && text[i - 1] === '\n') i = text.indexOf('\n', i + 1);
  if (i < 0) i = text.length;
  return { prefix: text.slice(0, i), suffix: text.slice(i) };
}

export async function runCompletionSuite(
  a: Args,
): Promise<{ result: Record<string, unknown>; device: string; model: string; ok: boolean }> {
  const modelDir = path.resolve(str(a, 'model', ''));
  const device = str(a, 'device', 'auto') as DeviceSetting;
  const iterations = int(a, 'iterations', 40);
  const coldIterations = int(a, 'cold-iterations', 6);
  const budgetsMB = nums(a, 'budgets', [1, 4, 16, 64]);
  const runBudgetMB = Number(str(a, 'budget', '64'));
  const maxTokens = int(a, 'max-tokens', 64);
  const docTokens = int(a, 'doc-tokens', 2000);
  const threads = int(a, 'threads', 0);
  const timeBudgetMs = int(a, 'time-budget-ms', 2000);

  const { dir, manifest } = loadManifest(modelDir);
  const tok = ModelTokenizer.load(dir, manifest);
  const files = makeFiles(tok, docTokens, Math.max(coldIterations * 2, 4));
  const pyFiles = (() => {
    try {
      return makeFiles(tok, docTokens, 1, 'python');
    } catch {
      return [];
    }
  })();

  const t0 = performance.now();
  const eng = await EngineClient.start({ modelDir: dir, device, kvBudgetBytes: runBudgetMB * MB, threads });
  const startMs = performance.now() - t0;
  const st = eng.state;
  if (st.kind !== 'ready') {
    await eng.dispose();
    throw new Error(`engine did not start: ${JSON.stringify(st)}`);
  }
  if (device === 'cuda' && st.device !== 'cuda') {
    await eng.dispose();
    throw new UnavailableError(
      `--device cuda requested but the engine runs on ${st.device}: ${st.deviceNote ?? 'no reason given'}`,
    );
  }
  const req = (docId: string, f: { languageId: string }, prefix: string, suffix: string) =>
    lineRequest(docId, f.languageId, prefix, suffix, { maxTokens, timeBudgetMs });
  const traces: Record<string, RequestTrace[]> = { warm: [], cold: [], coldAfterPrefill: [] };
  const lat: Record<string, number[]> = { warm: [], cold: [], coldAfterPrefill: [], backgroundPrefill: [] };
  const timed = async (kind: string, r: CompletionRequest) => {
    const s = performance.now();
    const res = await eng.complete(r);
    lat[kind].push(performance.now() - s);
    traces[kind].push(res.trace);
    return res;
  };
  try {
    // Warm: one keystroke at the end of a line, then a request (the debounce has passed), ×iterations.
    const log = (s: string) => process.stderr.write(s);
    log(`[bench] engine ready on ${st.device} in ${r2(startMs)} ms; warm ×${iterations}\n`);
    const wf = files[0];
    const spot = cursorAt(wf.text, 0.75);
    const suffix = spot.suffix;
    let prefix = spot.prefix;
    await eng.complete(req('bench:warm', wf, prefix, suffix)); // opening the file: the cache fills (not timed)
    const typing = ' // keep the cache warm while typing at the end of this line';
    for (let i = 0; i < iterations; i++) {
      prefix += typing[i % typing.length];
      await timed('warm', req('bench:warm', wf, prefix, suffix));
    }
    // Cold: a fresh document (new docId) each time, first request without anything cached.
    log(`[bench] cold ×${coldIterations}, cold after background prefill ×${coldIterations}\n`);
    for (let i = 0; i < coldIterations; i++) {
      const f = files[(i + 1) % files.length];
      const c = cursorAt(f.text, 0.75);
      await timed('cold', req(`bench:cold:${i}`, f, c.prefix, c.suffix));
    }
    // Cold with prefill(): the extension prefills on open/focus; the user types one key, then requests.
    for (let i = 0; i < coldIterations; i++) {
      const f = files[(i + 1 + coldIterations) % files.length];
      const c = cursorAt(f.text, 0.75);
      const id = `bench:open:${i}`;
      const s = performance.now();
      await eng.prefill(id, f.languageId, c.prefix, c.suffix);
      lat.backgroundPrefill.push(performance.now() - s);
      await timed('coldAfterPrefill', req(id, f, c.prefix + ' ', c.suffix));
    }
    const pyCold: number[] = [];
    for (const f of pyFiles) {
      const c = cursorAt(f.text, 0.75);
      const s = performance.now();
      await eng.complete(req('bench:py', f, c.prefix, c.suffix));
      pyCold.push(performance.now() - s);
    }
    const runMem = await eng.memory();

    // KV bytes vs budget: for each budget, a fresh cache, three documents opened and typed in.
    log(`[bench] budgets ${budgetsMB.join(',')} MB\n`);
    const perBudget: Record<string, unknown>[] = [];
    for (const b of budgetsMB) {
      await eng.clearCaches();
      await eng.setBudget(b * MB);
      const bl: number[] = [];
      let maxUsed = 0,
        actions = 0;
      for (let d = 0; d < 3; d++) {
        const f = files[d % files.length];
        let c = cursorAt(f.text, 0.75);
        for (let k = 0; k < 6; k++) {
          const s = performance.now();
          const r = await eng.complete(req(`bench:budget:${d}`, f, c.prefix, c.suffix));
          if (k > 0) bl.push(performance.now() - s);
          actions += r.trace.budgetActions.length;
          const m = await eng.memory();
          maxUsed = Math.max(maxUsed, m.usedBytes);
          c = { prefix: c.prefix + 'x', suffix: c.suffix };
        }
      }
      const m: MemoryReport = await eng.memory();
      perBudget.push({
        budgetMB: b,
        budgetBytes: m.budgetBytes,
        usedBytes: m.usedBytes,
        maxUsedBytes: maxUsed,
        withinBudget: maxUsed <= m.budgetBytes,
        docs: m.docs.length,
        docTokens: m.docs.map((x) => x.tokens),
        expertShares: m.expertShares.map((x) => Math.round(x * 1000) / 1000),
        budgetActions: actions,
        warmLatencyMs: stats(bl),
        fullBytesPerToken: m.fullBytesPerToken,
      });
    }

    const sum = (ts: RequestTrace[], k: keyof RequestTrace) => ts.reduce((s, t) => s + (t[k] as number), 0);
    const all = [...traces.warm, ...traces.cold, ...traces.coldAfterPrefill];
    const prefillTs = [...traces.cold, ...traces.coldAfterPrefill].filter((t) => t.prefillTokens > 32);
    const stopReasons: Record<string, number> = {};
    for (const t of all) stopReasons[t.stopReason] = (stopReasons[t.stopReason] ?? 0) + 1;
    const summarize = (k: string) => ({
      latencyMs: stats(lat[k]),
      prefillTokens: stats(traces[k].map((t) => t.prefillTokens)),
      reusedTokens: stats(traces[k].map((t) => t.reusedTokens)),
      generatedTokens: stats(traces[k].map((t) => t.generatedTokens)),
      modelTokens: stats(traces[k].map((t) => t.modelTokens)),
    });
    const result = {
      suite: 'completion',
      model: manifest.name,
      modelDir: dir,
      device: st.device,
      deviceSetting: device,
      deviceNote: st.deviceNote,
      engineStartMs: r2(startMs),
      settings: {
        iterations,
        coldIterations,
        runBudgetMB,
        maxTokens,
        multiline: false,
        timeBudgetMs,
        threads,
        docTokens,
      },
      documents: files.map((f) => ({ path: f.path, languageId: f.languageId, tokens: f.tokens })),
      warm: summarize('warm'),
      cold: summarize('cold'),
      coldAfterPrefill: summarize('coldAfterPrefill'),
      backgroundPrefillMs: stats(lat.backgroundPrefill),
      pythonCold: pyFiles.length
        ? { path: pyFiles[0].path, tokens: pyFiles[0].tokens, latencyMs: r2(pyCold[0]) }
        : null,
      // prefill ms in a trace = request start → first generated tokens (tokenizing, budget and model runs; the run
      // over the prompt's last chunk also picks the first batch of tokens, so this slightly undercounts).
      promptTokensPerSec: r2(sum(prefillTs, 'prefillTokens') / (sum(prefillTs, 'prefillMs') / 1000)),
      // Decode throughput is not separable per request here (most tokens come from the prompt's run): see the
      // gpu suite (--suite gpu), which times the graph's decode loop directly.
      stopReasons,
      memoryAfterRun: {
        usedBytes: runMem.usedBytes,
        budgetBytes: runMem.budgetBytes,
        docs: runMem.docs.length,
        expertShares: runMem.expertShares,
        fullBytesPerToken: runMem.fullBytesPerToken,
      },
      budgets: perBudget,
      traces: { warm: traces.warm, cold: traces.cold, coldAfterPrefill: traces.coldAfterPrefill },
    };
    return { result, device: st.device, model: manifest.name, ok: true };
  } finally {
    await eng.dispose();
  }
}

export function printCompletion(r: any): void {
  const row = (name: string, s: any) => [
    name,
    s.latencyMs.p50,
    s.latencyMs.p95,
    s.latencyMs.n,
    s.prefillTokens.p50,
    s.reusedTokens.p50,
    s.generatedTokens.p50,
  ];
  console.log(
    `\nmixSGA completion benchmark — model ${r.model} on ${r.device}${r.deviceNote ? ` (${r.deviceNote})` : ''}, budget ${r.settings.runBudgetMB} MB, maxTokens ${r.settings.maxTokens}`,
  );
  console.log(
    table(
      ['request', 'p50 ms', 'p95 ms', 'n', 'prefill tok p50', 'reused tok p50', 'generated p50'],
      [
        row('warm (1 keystroke)', r.warm),
        row('cold (new doc)', r.cold),
        row('cold after prefill()', r.coldAfterPrefill),
      ],
    ),
  );
  console.log(
    `background prefill() on open: p50 ${r2(r.backgroundPrefillMs.p50)} ms, p95 ${r2(r.backgroundPrefillMs.p95)} ms`,
  );
  if (r.pythonCold)
    console.log(`python cold (${r.pythonCold.path}, ${r.pythonCold.tokens} tok): ${r.pythonCold.latencyMs} ms`);
  console.log(
    `prompt ${r.promptTokensPerSec} tok/s (to the first generated tokens); stop reasons ${JSON.stringify(r.stopReasons)}`,
  );
  console.log(
    table(
      ['budget MB', 'used B', 'max used B', '≤ budget', 'docs', 'expert shares', 'actions', 'warm p50 ms'],
      r.budgets.map((b: any) => [
        b.budgetMB,
        b.usedBytes,
        b.maxUsedBytes,
        b.withinBudget ? 'yes' : 'NO',
        b.docs,
        b.expertShares.join('/'),
        b.budgetActions,
        b.warmLatencyMs.p50,
      ]),
    ),
  );
}
