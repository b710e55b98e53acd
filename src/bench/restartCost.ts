// `node dist/restart-cost.js [--rounds 6] [--out FILE]`: what the RSS cap's idle restart (src/engine/rssCap.ts)
// costs. Two engines, interleaved: one with a cap so low that every idle moment after a run restarts it, one without
// a cap. Each round: a cold prompt of a fresh document on both, an idle pause (the capped engine restarts: its
// restart time and the RSS it gave back are read from its memory report), then a typing step on the same document —
// warm on the uncapped engine, a full re-prefill on the restarted one. JSON out.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { EngineClient } from '../engine/client';
import type { CompletionRequest } from '../engine/api';
import { ROOT, defaultModelDir, machineFacts, parseArgs, processRssMB, r2, stats, int, writeResult } from './common';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function main(): Promise<void> {
  const a = parseArgs(process.argv.slice(2));
  const rounds = Math.max(2, int(a, 'rounds', 6));
  const modelDir = path.resolve(typeof a.model === 'string' ? a.model : defaultModelDir());
  const source = fs.readFileSync(path.join(ROOT, 'src', 'engine', 'client.ts'), 'utf8');
  const idleMs = 1000,
    budget = 8 * 2 ** 20;
  const capped = await EngineClient.start({
    modelDir,
    device: 'cpu',
    kvBudgetBytes: budget,
    rssCap: { idleMs, headroomMB: 0 },
  });
  const free = await EngineClient.start({ modelDir, device: 'cpu', kvBudgetBytes: budget, rssCap: false });
  const req = (docId: string, prefix: string): CompletionRequest => ({
    docId,
    languageId: 'typescript',
    prefix,
    suffix: '\n',
    context: [],
    maxTokens: 16,
    multiline: true,
    timeBudgetMs: 30_000,
  });
  const restartMs: number[] = [],
    rssBefore: number[] = [],
    rssAfter: number[] = [],
    afterRestart: number[] = [],
    warm: number[] = [],
    cold: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const cut = 3000 + ((r * 977) % (source.length - 9000));
    const prefix = source.slice(cut - 3000, cut + 3000),
      typed = prefix + source.slice(cut + 3000, cut + 3003);
    for (const e of [capped, free]) {
      const t = Date.now();
      await e.complete(req(`d${r}`, prefix));
      cold.push(Date.now() - t);
    }
    const seen = (await capped.memory()).rssCap?.restarts.count ?? 0;
    const t0 = Date.now();
    while (((await capped.memory()).rssCap?.restarts.count ?? 0) === seen && Date.now() - t0 < 60_000) await sleep(200);
    const last = (await capped.memory()).rssCap?.restarts.last;
    if (last) {
      restartMs.push(last.restartMs);
      rssBefore.push(last.rssMB);
      rssAfter.push(processRssMB(capped.pid) ?? NaN);
    }
    let t = Date.now();
    await capped.complete(req(`d${r}`, typed));
    afterRestart.push(Date.now() - t);
    t = Date.now();
    await free.complete(req(`d${r}`, typed));
    warm.push(Date.now() - t);
  }
  const cap = (await capped.memory()).rssCap;
  await Promise.all([capped.dispose(), free.dispose()]);
  const data = {
    tool: 'restart-cost',
    machine: machineFacts(),
    loadavgAtEnd: os.loadavg().map(r2),
    rounds,
    model: modelDir,
    rssCap: cap,
    restartMs: stats(restartMs),
    rssBeforeRestartMB: stats(rssBefore),
    rssAfterRestartMB: stats(rssAfter),
    coldPromptMs: stats(cold),
    typingStepAfterRestartMs: stats(afterRestart),
    typingStepWarmMs: stats(warm),
    ratioAfterRestartVsWarmP50: r2(stats(afterRestart).p50 / stats(warm).p50),
  };
  const file = writeResult(typeof a.out === 'string' ? a.out : undefined, 'cpu', 'restart-cost', '', data);
  console.log(
    `restart ${data.restartMs.p50} ms p50; typing step after a restart ${data.typingStepAfterRestartMs.p50} ms vs warm ` +
      `${data.typingStepWarmMs.p50} ms p50; RSS ${data.rssBeforeRestartMB.p50} -> ${data.rssAfterRestartMB.p50} MB; wrote ${file}`,
  );
}

main().catch((e) => {
  console.error(`restart-cost: ${(e as Error).message}`);
  process.exitCode = 1;
});
