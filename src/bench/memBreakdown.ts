// `node dist/mem-breakdown.js [--docs 12] [--configs shipped,noarena] [--out FILE]`: where the engine process's
// resident memory goes beyond fresh RSS + KV (the RSS cap's headroom, docs/soak.md). Engines under different
// settings run the same work interleaved (one document per engine in turn): a cold completion of a ~6 KB prompt
// and a typing step on it, per document, until the 64 MB budget is full; then a budget cut to 16 MB and back.
// After each step it reads /proc/<pid>/smaps: glibc's [heap], anonymous mappings (mmapped buffers: ORT's arena,
// V8's heap, ArrayBuffers from 32 KB up, malloc's thread arenas), file-backed ones; and the engine's own
// process.memoryUsage() and KV bytes. JSON out. Configurations: shipped; noarena (ORT's CPU arena off); chunk128 /
// chunk64 (MIXSGA_PREFILL_CHUNK: smaller prefill chunks); warm16 / warm1 (MIXSGA_WARMUP_CHUNK: a smaller warm-up
// run, src/engine/warmup.ts); cold / cold64 (no warm-up, MIXSGA_WARMUP_CHUNK=0); mmap4k (malloc mmaps from 4 KB
// up). --ramp: instead, one prompt grown 1–8 KB per engine (the arena against the context length).
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { EngineClient, LEAN_MALLOC_ENV } from '../engine/client';
import { ROOT, defaultModelDir, machineFacts, parseArgs, r2, int, writeResult } from './common';

const MB = 2 ** 20;
const CONFIGS: Record<string, NodeJS.ProcessEnv> = {
  shipped: { ...LEAN_MALLOC_ENV },
  noarena: { ...LEAN_MALLOC_ENV, MIXSGA_ORT_MEM: '' },
  chunk128: { ...LEAN_MALLOC_ENV, MIXSGA_PREFILL_CHUNK: '128' },
  chunk64: { ...LEAN_MALLOC_ENV, MIXSGA_PREFILL_CHUNK: '64' },
  warm16: { ...LEAN_MALLOC_ENV, MIXSGA_WARMUP_CHUNK: '16' },
  warm1: { ...LEAN_MALLOC_ENV, MIXSGA_WARMUP_CHUNK: '1' },
  cold: { ...LEAN_MALLOC_ENV, MIXSGA_WARMUP_CHUNK: '0' },
  cold64: { ...LEAN_MALLOC_ENV, MIXSGA_WARMUP_CHUNK: '0', MIXSGA_PREFILL_CHUNK: '64' },
  mmap4k: { ...LEAN_MALLOC_ENV, MALLOC_MMAP_THRESHOLD_: '4096' },
};

/** Resident MB per kind of mapping, and the sizes of the large anonymous ones. */
export function smapsBreakdown(pid: number | undefined) {
  const out = { rss: 0, heap: 0, anon: 0, file: 0, other: 0, bigAnon: [] as number[] };
  if (!pid) return out;
  let kind = 'other';
  let size = 0;
  for (const line of fs.readFileSync(`/proc/${pid}/smaps`, 'utf8').split('\n')) {
    const head = /^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ \S+(?:\s+(.*))?$/.exec(line);
    if (head) {
      const name = head[1] ?? '';
      kind = name === '[heap]' ? 'heap' : name === '' ? 'anon' : name.startsWith('/') ? 'file' : 'other';
      continue;
    }
    const s = /^Size:\s+(\d+) kB/.exec(line);
    if (s) size = Number(s[1]) / 1024;
    const m = /^Rss:\s+(\d+) kB/.exec(line);
    if (!m) continue;
    const v = Number(m[1]) / 1024;
    out.rss += v;
    (out as unknown as Record<string, number>)[kind] += v;
    if (kind === 'anon' && v >= 1) out.bigAnon.push(r2(size), r2(v));
  }
  for (const k of ['rss', 'heap', 'anon', 'file', 'other'] as const) out[k] = r2(out[k]);
  return out;
}

async function main(): Promise<void> {
  const a = parseArgs(process.argv.slice(2));
  const nDocs = int(a, 'docs', 12);
  const names = (typeof a.configs === 'string' ? a.configs : 'shipped,noarena').split(',');
  const modelDir = path.resolve(typeof a.model === 'string' ? a.model : defaultModelDir());
  const text = ['core.ts', 'budget.ts', 'kvStore.ts', 'kvCascade.ts', 'client.ts']
    .map((f) => fs.readFileSync(path.join(ROOT, 'src', 'engine', f), 'utf8'))
    .join('\n');
  const engines: EngineClient[] = [];
  for (const n of names) {
    if (!CONFIGS[n]) throw new Error(`unknown config ${n}`);
    engines.push(
      await EngineClient.start({
        modelDir,
        device: 'cpu',
        kvBudgetBytes: 64 * MB,
        childEnv: CONFIGS[n],
        rssCap: false,
      }),
    );
  }
  const rows: Record<string, unknown>[] = [];
  const read = async (i: number, step: string, ms?: number[]) => {
    const m = await engines[i].memory();
    const row = {
      config: names[i],
      step,
      kvMB: r2(m.usedBytes / MB),
      budgetMB: r2(m.budgetBytes / MB),
      ...(ms ? { ms } : {}), // the step's requests, wall time each
      ...m.process,
      smaps: smapsBreakdown(engines[i].pid),
    };
    rows.push(row);
    const s = row.smaps;
    console.log(
      `${names[i]} ${step}: rss ${s.rss} kv ${row.kvMB} heap[] ${s.heap} anon ${s.anon} file ${s.file} ` +
        `v8used ${m.process?.heapUsedMB} ab ${m.process?.arrayBuffersMB} big anon ${s.bigAnon.join(' ')}`,
    );
  };
  const req = (d: number, extra: string, maxTokens: number) => {
    const cut = 6000 + ((d * 7919) % (text.length - 12000));
    return {
      docId: `d${d}`,
      languageId: 'typescript',
      prefix: text.slice(cut - 6000, cut) + extra,
      suffix: '\n',
      context: [],
      maxTokens,
      multiline: true,
      timeBudgetMs: 60_000,
    };
  };
  for (let i = 0; i < engines.length; i++) await read(i, 'fresh');
  if (a.ramp) {
    // one document's prompt grown step by step: how the arena follows the context length
    for (const kb of [1, 2, 3, 4, 6, 8]) {
      for (let i = 0; i < engines.length; i++) {
        const t = Date.now();
        await engines[i].complete({ ...req(0, '', 16), docId: `r${kb}`, prefix: text.slice(0, kb * 1024) });
        await read(i, `ramp ${kb} KB ${Date.now() - t} ms`);
      }
    }
  }
  for (let d = 0; d < (a.ramp ? 0 : nDocs); d++) {
    for (let i = 0; i < engines.length; i++) {
      const t = [Date.now()];
      await engines[i].complete(req(d, '', 16));
      t.push(Date.now());
      await engines[i].complete(req(d, '\n  ', 16));
      t.push(Date.now());
      await read(i, `doc ${d + 1}`, [t[1] - t[0], t[2] - t[1]]);
    }
  }
  for (const [i, e] of a.ramp ? [] : engines.entries()) {
    let t = Date.now();
    await e.setBudget(16 * MB);
    await read(i, 'budget 16', [Date.now() - t]);
    await e.setBudget(64 * MB);
    const ms: number[] = [];
    for (let d = 0; d < 4; d++) {
      t = Date.now();
      await e.complete(req(d + nDocs, '', 16));
      ms.push(Date.now() - t);
    }
    await read(i, 'budget 64 again, 4 docs', ms);
    await e.clearCaches();
    await read(i, 'after clearCaches');
  }
  await Promise.all(engines.map((e) => e.dispose()));
  const data = {
    tool: 'mem-breakdown',
    machine: machineFacts(),
    loadavgAtEnd: os.loadavg().map(r2),
    model: modelDir,
    rows,
  };
  console.log(
    `mem-breakdown: wrote ${writeResult(typeof a.out === 'string' ? a.out : undefined, 'cpu', 'mem-breakdown', '', data)}`,
  );
}

main().catch((e) => {
  console.error(`mem-breakdown: ${(e as Error).message}`);
  process.exitCode = 1;
});
