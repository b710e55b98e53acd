// `node dist/mem-ab.js [--rounds 30] [--set ort|heap] [--out FILE]`: latency and RSS of the engine process under
// memory settings, interleaved (one request per configuration in turn, so all see the same machine load).
// Configurations, set 'ort': the shipped one, ORT's and glibc's defaults (the settings before), and single changes
// in between; set 'heap': the malloc mmap threshold and the engine's collection of dropped run outputs. Each round: a cold prompt of a fresh document (full prefill) and a
// typing step on it (cache reused). JSON out.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { EngineClient, LEAN_MALLOC_ENV } from '../engine/client';
import type { CompletionRequest } from '../engine/api';
import { ROOT, defaultModelDir, machineFacts, parseArgs, processRssMB, r2, stats, int, writeResult } from './common';

type Config = { name: string; env: NodeJS.ProcessEnv };
const ORT_SET: Config[] = [
  { name: 'ORT arena+patterns on, lean malloc', env: { ...LEAN_MALLOC_ENV, MIXSGA_ORT_MEM: 'arena,patterns' } },
  { name: 'shipped: ORT arena on, patterns off, lean malloc', env: { ...LEAN_MALLOC_ENV, MIXSGA_ORT_MEM: 'arena' } },
  { name: 'ORT arena+patterns off, lean malloc', env: { ...LEAN_MALLOC_ENV, MIXSGA_ORT_MEM: '' } },
  { name: 'before: ORT + glibc defaults', env: { MIXSGA_ORT_MEM: 'arena,patterns' } },
  { name: 'ORT arena+patterns off, glibc defaults', env: { MIXSGA_ORT_MEM: '' } },
];
const HEAP_SET: Config[] = [
  {
    name: 'before: mmap threshold 128 KB, no collection',
    env: { ...LEAN_MALLOC_ENV, MALLOC_MMAP_THRESHOLD_: '131072', MIXSGA_GC_GARBAGE_MB: '0' },
  },
  {
    name: 'mmap threshold 128 KB, collect outputs over 16 MB',
    env: { ...LEAN_MALLOC_ENV, MALLOC_MMAP_THRESHOLD_: '131072', MIXSGA_GC_GARBAGE_MB: '16' },
  },
  {
    name: 'mmap threshold 32 KB, no collection',
    env: { ...LEAN_MALLOC_ENV, MALLOC_MMAP_THRESHOLD_: '32768', MIXSGA_GC_GARBAGE_MB: '0' },
  },
  {
    name: 'shipped: mmap threshold 32 KB, collect outputs over 16 MB',
    env: { ...LEAN_MALLOC_ENV, MALLOC_MMAP_THRESHOLD_: '32768', MIXSGA_GC_GARBAGE_MB: '16' },
  },
];

const rss = (pid?: number) => processRssMB(pid) ?? NaN;

async function main(): Promise<void> {
  const a = parseArgs(process.argv.slice(2));
  const rounds = Math.max(2, int(a, 'rounds', 30));
  const set = typeof a.set === 'string' ? a.set : 'ort';
  if (set !== 'ort' && set !== 'heap') throw new Error(`--set must be ort or heap, got ${set}`);
  const CONFIGS = set === 'heap' ? HEAP_SET : ORT_SET;
  const modelDir = path.resolve(typeof a.model === 'string' ? a.model : defaultModelDir());
  const source = fs.readFileSync(path.join(ROOT, 'src', 'engine', 'client.ts'), 'utf8');
  const engines = await Promise.all(
    CONFIGS.map((c) => EngineClient.start({ modelDir, device: 'cpu', kvBudgetBytes: 64 * 2 ** 20, childEnv: c.env })),
  );
  const cold = CONFIGS.map(() => [] as number[]),
    warm = CONFIGS.map(() => [] as number[]);
  const idle = engines.map((e) => r2(rss(e.pid)));
  const req = (docId: string, prefix: string, maxTokens: number): CompletionRequest => ({
    docId,
    languageId: 'typescript',
    prefix,
    suffix: '\n',
    context: [],
    maxTokens,
    multiline: true,
    timeBudgetMs: 30_000,
  });
  for (let r = 0; r < rounds; r++) {
    const cut = 3000 + ((r * 977) % (source.length - 9000));
    const prefix = source.slice(cut - 3000, cut + 3000);
    for (const [i, e] of engines.entries()) {
      let t = Date.now();
      await e.complete(req(`d${r}`, prefix, 16));
      cold[i].push(Date.now() - t);
      t = Date.now();
      await e.complete(req(`d${r}`, prefix + source.slice(cut + 3000, cut + 3003), 32));
      warm[i].push(Date.now() - t);
    }
  }
  const after = engines.map((e) => r2(rss(e.pid)));
  const gc = await Promise.all(engines.map(async (e) => (await e.memory()).gc));
  for (const e of engines) await e.clearCaches();
  await new Promise((res) => setTimeout(res, 3000));
  const rows = CONFIGS.map((c, i) => ({
    config: c.name,
    env: c.env,
    idleRssMB: idle[i],
    rssAfterMB: after[i],
    rssAfterClearMB: r2(rss(engines[i].pid)),
    engineGc: gc[i],
    cold: stats(cold[i]),
    warm: stats(warm[i]),
  }));
  await Promise.all(engines.map((e) => e.dispose()));
  const data = {
    tool: 'mem-ab',
    set,
    machine: machineFacts(),
    loadavgAtEnd: os.loadavg().map(r2),
    rounds,
    model: modelDir,
    rows,
  };
  const file = writeResult(typeof a.out === 'string' ? a.out : undefined, 'cpu', 'mem-ab', '', data);
  for (const x of rows)
    console.log(
      `${x.config}: cold p50 ${x.cold.p50} ms, warm p50 ${x.warm.p50} ms, RSS ${x.idleRssMB} -> ${x.rssAfterMB} MB`,
    );
  console.log(`mem-ab: wrote ${file}`);
}

main().catch((e) => {
  console.error(`mem-ab: ${(e as Error).message}`);
  process.exitCode = 1;
});
