// `npm run soak -- [--minutes 60] [--docs 50] [--seed 1] [--out FILE] [--model DIR] [--budget-mb 64] [--marks 15,30,45,60]
//   [--ort-defaults] [--child-env K=V,K=V] [--rss-cap off|HEADROOM_MB]` (--ort-defaults: ORT's arena and memory patterns
//   on, glibc malloc defaults, the memory settings before; --child-env: variables set over the engine process's usual
//   ones; --rss-cap: the engine's RSS cap off, or its headroom; all for A/B)
// (bundled to dist/soak.js). A long working day in fast motion against the real engine process (EngineClient,
// child process, the shipped model on the CPU): documents of 200–20k tokens made of this repository's own code,
// typing bursts with completions, edits above the cursor, file switches with background prefill, closes, aborted
// requests, budget changes, and clearCaches at every mark (default every 15 minutes). It samples the engine process's RSS, the KV
// bytes allocated vs the budget (after every request), latency p50/p95 per 5 minutes and crashes, and writes JSON
// (rewritten every 5 minutes, so a cut-short run still leaves its data). Plot: scripts/soak-plot.py.
//
// Protocol for the RSS marks (15/30/60 min), so that every mark reads the same state: budget changes are held off for
// the 2 minutes before a mark; then the user pauses (the RSS cap's idle time + 3 s: the cap may restart the engine, as
// at any pause in the editor); then every document is closed and documents are prefilled in a fixed order until the KV
// bytes allocated reach 95 % of the base budget; RSS is read 1 s later; then clearCaches, and RSS again 3 s later.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { EngineClient, LEAN_MALLOC_ENV } from '../engine/client';
import { RSS_CAP_DEFAULTS } from '../engine/rssCap';
import type { CompletionRequest } from '../engine/api';
import {
  ROOT,
  defaultModelDir,
  machineFacts,
  nums,
  parseArgs,
  percentile,
  processHeapSegmentMB,
  processRssMB,
  r2,
  str,
  int,
  writeResult,
} from './common';

const MB = 2 ** 20;

/** Deterministic PRNG (mulberry32). */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const rssMB = processRssMB;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** This repository's source files (TypeScript, Python): the soak's documents are built from real code. */
function corpus(): { ext: string; text: string }[] {
  const out: { ext: string; text: string }[] = [];
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) {
        if (!['node_modules', 'fixtures', '__pycache__'].includes(e.name)) walk(p);
        continue;
      }
      if (/\.(ts|py)$/.test(e.name))
        out.push({ ext: e.name.endsWith('.py') ? 'py' : 'ts', text: fs.readFileSync(p, 'utf8') });
    }
  };
  for (const d of ['src', 'toolchain/mixsga', 'test']) if (fs.existsSync(path.join(ROOT, d))) walk(path.join(ROOT, d));
  if (out.length === 0) throw new Error(`soak: no source files under ${ROOT} to build documents from`);
  return out;
}

interface Doc {
  id: string;
  lang: string;
  text: string;
  cursor: number;
}

function makeDocs(n: number, rand: () => number): Doc[] {
  const files = corpus();
  return Array.from({ length: n }, (_, i) => {
    const tokens = Math.round(200 * Math.pow(100, rand())); // log-uniform 200 … 20,000
    const want = tokens * 3.3; // characters per token of code with this tokenizer, roughly
    const ext = rand() < 0.7 ? 'ts' : 'py';
    const pool = files.filter((f) => f.ext === ext);
    let text = '';
    while (text.length < want) text += pool[Math.floor(rand() * pool.length)].text + '\n';
    text = text.slice(0, Math.round(want));
    return {
      id: `soak://doc${i}.${ext}`,
      lang: ext === 'py' ? 'python' : 'typescript',
      text,
      cursor: Math.floor(rand() * text.length),
    };
  });
}

async function main(): Promise<void> {
  const a = parseArgs(process.argv.slice(2));
  const minutes = Number(str(a, 'minutes', '60'));
  if (!(minutes > 0)) throw new Error('--minutes must be a positive number');
  const nDocs = Math.max(1, int(a, 'docs', 50)),
    seed = int(a, 'seed', 1),
    baseMB = Number(str(a, 'budget-mb', '64'));
  const modelDir = path.resolve(str(a, 'model', defaultModelDir()));
  const out =
    typeof a.out === 'string'
      ? a.out
      : path.join(ROOT, 'docs', 'results', `soak-${new Date().toISOString().slice(0, 10)}.json`);
  const rand = rng(seed);
  const docs = makeDocs(nDocs, rand);
  const facts = machineFacts();

  // A private copy of the engine bundle: rebuilding dist/ during a long run must not change a restarted engine.
  const workerPath = path.join(__dirname, `.soak-worker-${process.pid}.js`);
  fs.copyFileSync(path.join(__dirname, 'worker.js'), workerPath);
  process.on('exit', () => {
    try {
      fs.unlinkSync(workerPath);
    } catch {
      /* gone */
    }
  });
  const ortDefaults = a['ort-defaults'] === true;
  const childEnv: Record<string, string> = {};
  for (const kv of str(a, 'child-env', '').split(',').filter(Boolean)) {
    const eq = kv.indexOf('=');
    if (eq <= 0) throw new Error(`--child-env wants KEY=VALUE pairs separated by commas, got "${kv}"`);
    childEnv[kv.slice(0, eq)] = kv.slice(eq + 1);
  }
  const capFlag = str(a, 'rss-cap', String(RSS_CAP_DEFAULTS.headroomMB));
  const rssCap = capFlag === 'off' ? (false as const) : { headroomMB: Number(capFlag) };
  if (rssCap && !(rssCap.headroomMB >= 0)) throw new Error(`--rss-cap wants off or a headroom in MB, got "${capFlag}"`);
  const eng = await EngineClient.start({
    rssCap,
    modelDir,
    device: 'cpu',
    kvBudgetBytes: baseMB * MB,
    workerPath,
    childEnv: ortDefaults ? { MIXSGA_ORT_MEM: 'arena,patterns', ...childEnv } : { ...LEAN_MALLOC_ENV, ...childEnv },
  });
  if (eng.state.kind !== 'ready') throw new Error(`engine ${eng.state.kind}: ${JSON.stringify(eng.state)}`);
  let crashes = 0;
  const crashLog: { t: number; state: string }[] = [];
  const t0 = Date.now();
  const tmin = () => (Date.now() - t0) / 60_000;
  eng.onDidChange((s) => {
    if (s.kind === 'restarting' || s.kind === 'failed') {
      crashes++;
      crashLog.push({ t: r2(tmin()), state: JSON.stringify(s) });
    }
  });

  await sleep(2000);
  const idleColdMB = rssMB(eng.pid);
  await eng.complete({
    docId: 'soak://warmup',
    languageId: 'typescript',
    prefix: 'const a = ',
    suffix: ';\n',
    context: [],
    maxTokens: 4,
    multiline: false,
    timeBudgetMs: 10_000,
  });
  await eng.closeDocument('soak://warmup');
  await sleep(2000);
  const idleMB = rssMB(eng.pid);

  const requests: { t: number; ms: number; stop: string; prefill: number; reused: number }[] = [];
  const samples: {
    t: number;
    rssMB?: number;
    heapSegmentMB?: number;
    hostRssMB: number;
    kvAllocatedMB: number;
    budgetMB: number;
    docs: number;
    requests: number;
    engineHeapMB?: number;
    engineArrayBuffersMB?: number;
    gcCount?: number;
    gcMs?: number;
  }[] = [];
  const marks: {
    minute: number;
    rssMB?: number;
    afterClearMB?: number;
    refill?: { docs: number; kvAllocatedMB: number; fill: number; seconds: number };
  }[] = [];
  const capRestarts: { t: number; rssMB: number; capMB: number; restartMs: number }[] = [];
  let overBudget = 0,
    maxFill = 0,
    cur = docs[0],
    budgetMB = baseMB;
  const actions: Record<string, number> = {};
  const markAt = nums(a, 'marks', [15, 30, 45, 60]).filter((m) => m <= minutes);
  const count = (k: string) => {
    actions[k] = (actions[k] ?? 0) + 1;
  };

  const idleMs = RSS_CAP_DEFAULTS.idleMs;
  /** The mark protocol's common state: every document closed, then documents prefilled in a fixed order until the
   *  base budget is 95 % full — the same documents at every mark, whatever the caches held. */
  const refillBudget = async () => {
    const t = Date.now();
    for (const d of (await eng.memory()).docs) await eng.closeDocument(d.docId);
    let m = await checkBudget(),
      n = 0;
    for (const d of docs) {
      if (m.usedBytes >= 0.95 * m.budgetBytes) break;
      await eng.prefill(d.id, d.lang, d.text.slice(0, d.cursor), d.text.slice(d.cursor));
      m = await checkBudget();
      n++;
    }
    const kv = r2(m.usedBytes / MB);
    return { docs: n, kvAllocatedMB: kv, fill: r2(m.usedBytes / m.budgetBytes), seconds: r2((Date.now() - t) / 1000) };
  };
  const checkBudget = async () => {
    const m = await eng.memory();
    if (m.device === 'none') return m;
    if (m.usedBytes > m.budgetBytes) overBudget++;
    const r = m.rssCap?.restarts;
    if (r?.last && r.count > capRestarts.length) {
      const { rssMB, capMB, restartMs } = r.last;
      capRestarts.push({ t: r2(tmin()), rssMB, capMB, restartMs });
    }
    maxFill = Math.max(maxFill, m.usedBytes / Math.max(1, m.budgetBytes));
    return m;
  };
  const sample = async () => {
    const m = await checkBudget();
    const seg = processHeapSegmentMB(eng.pid);
    samples.push({
      t: r2(tmin()),
      rssMB: rssMB(eng.pid),
      heapSegmentMB: seg && r2(seg),
      hostRssMB: r2(process.memoryUsage().rss / MB),
      kvAllocatedMB: r2(m.usedBytes / MB),
      budgetMB: r2(m.budgetBytes / MB),
      docs: m.docs.length,
      requests: requests.length,
      engineHeapMB: m.process?.heapUsedMB,
      engineArrayBuffersMB: m.process?.arrayBuffersMB,
      gcCount: m.gc?.count,
      gcMs: m.gc?.ms,
    });
  };
  const request = (d: Doc, signal?: AbortSignal): Promise<void> => {
    const other = docs[Math.floor(rand() * docs.length)];
    const ctx = rand() < 0.5 && other !== d ? [{ path: other.id, text: other.text.slice(0, 1500) }] : [];
    const req: CompletionRequest = {
      docId: d.id,
      languageId: d.lang,
      prefix: d.text.slice(0, d.cursor),
      suffix: d.text.slice(d.cursor),
      context: ctx,
      maxTokens: 32,
      multiline: rand() < 0.3,
      timeBudgetMs: 3000,
    };
    const s = Date.now();
    return eng.complete(req, signal).then(async (r) => {
      requests.push({
        t: r2(tmin()),
        ms: Date.now() - s,
        stop: r.trace.stopReason,
        prefill: r.trace.prefillTokens,
        reused: r.trace.reusedTokens,
      });
      await checkBudget();
    });
  };
  const windows = () => {
    const w: Record<string, unknown>[] = [];
    for (let from = 0; from < Math.ceil(tmin() / 5) * 5; from += 5) {
      const rs = requests.filter((r) => r.t >= from && r.t < from + 5),
        ss = samples.filter((s) => s.t >= from && s.t < from + 5);
      const ok = rs.filter((r) => r.stop !== 'cancelled');
      w.push({
        fromMin: from,
        toMin: from + 5,
        requests: rs.length,
        p50Ms: r2(
          percentile(
            ok.map((r) => r.ms),
            50,
          ),
        ),
        p95Ms: r2(
          percentile(
            ok.map((r) => r.ms),
            95,
          ),
        ),
        errors: rs.filter((r) => r.stop === 'error').length,
        crashes: crashLog.filter((c) => c.t >= from && c.t < from + 5).length,
        rssMaxMB: ss.length ? r2(Math.max(...ss.map((s) => s.rssMB ?? 0))) : null,
        kvAllocatedMaxMB: ss.length ? r2(Math.max(...ss.map((s) => s.kvAllocatedMB))) : null,
      });
    }
    return w;
  };
  const report = (done: boolean) => {
    const at = (m: number) => marks.find((x) => x.minute === m)?.rssMB;
    const base = at(markAt[0]);
    const vsFirst = markAt.map((m) => ({
      minute: m,
      rssMB: at(m) ?? null,
      vsFirstMark: base && at(m) ? r2(at(m)! / base - 1) : null,
    }));
    return {
      tool: 'soak',
      done,
      flags: {
        minutes,
        docs: nDocs,
        seed,
        budgetMB: baseMB,
        model: modelDir,
        device: 'cpu',
        marks: markAt,
        ortDefaults,
        childEnv,
      },
      machine: facts,
      loadavgAtEnd: os.loadavg().map(r2),
      elapsedMin: r2(tmin()),
      requests: requests.length,
      actions,
      crashes,
      crashLog,
      overBudgetMoments: overBudget,
      maxFill: r2(maxFill),
      idleColdMB: idleColdMB && r2(idleColdMB),
      idleMB: idleMB && r2(idleMB),
      marks,
      rssVsFirstMark: vsFirst,
      rssCap: { flag: capFlag, restarts: capRestarts.length, events: capRestarts },
      docTokensApprox: docs.map((d) => Math.round(d.text.length / 3.3)),
      windows: windows(),
      samples,
    };
  };

  let nextSample = 0,
    nextWrite = 5,
    mi = 0;
  console.log(
    `soak: ${minutes} min, ${nDocs} docs, seed ${seed}, budget ${baseMB} MB, model ${modelDir}; idle RSS ${idleMB?.toFixed(1)} MB`,
  );
  while (tmin() < minutes || mi < markAt.length) {
    const now = tmin();
    if (now >= nextSample) {
      await sample();
      nextSample = now + 1 / 6;
    }
    if (mi < markAt.length && now >= markAt[mi]) {
      if (budgetMB !== baseMB) await eng.setBudget((budgetMB = baseMB) * MB);
      await sleep(idleMs + 3000); // the user pauses: the RSS cap may act
      await eng.whenReady(120_000);
      const refill = await refillBudget();
      await sleep(1000);
      const rss = rssMB(eng.pid);
      await eng.clearCaches();
      await sleep(3000);
      marks.push({
        minute: markAt[mi],
        rssMB: rss && r2(rss),
        refill,
        afterClearMB: (() => {
          const x = rssMB(eng.pid);
          return x && r2(x);
        })(),
      });
      console.log(
        `soak: mark ${markAt[mi]} min: RSS ${rss?.toFixed(1)} MB (KV ${refill.kvAllocatedMB} MB after prefilling ` +
          `${refill.docs} documents), after clearCaches ${marks[marks.length - 1].afterClearMB} MB`,
      );
      mi++;
      continue;
    }
    if (now >= nextWrite) {
      writeResult(out, 'cpu', 'soak', '', report(false));
      nextWrite += 5;
    }
    const quiet = mi < markAt.length && markAt[mi] - now < 2; // hold budget changes off before a mark
    const x = rand();
    if (x < 0.6) {
      // typing burst at the cursor, then a completion
      const src = docs[Math.floor(rand() * docs.length)].text,
        o = Math.floor(rand() * Math.max(1, src.length - 8));
      const add = src.slice(o, o + 1 + Math.floor(rand() * 6));
      cur.text = cur.text.slice(0, cur.cursor) + add + cur.text.slice(cur.cursor);
      cur.cursor += add.length;
      count('type');
      await request(cur);
    } else if (x < 0.7) {
      // an edit elsewhere (above the cursor: the cache is cut there)
      const at = Math.floor(rand() * cur.text.length),
        del = Math.floor(rand() * 200);
      cur.text = cur.text.slice(0, at) + (rand() < 0.5 ? '\n// edited\n' : '') + cur.text.slice(at + del);
      cur.cursor = Math.min(cur.text.length, Math.max(0, at < cur.cursor ? cur.cursor - del : cur.cursor));
      count('edit');
      await request(cur);
    } else if (x < 0.82) {
      // switch files: background prefill, then a completion there
      cur = docs[Math.floor(rand() * docs.length)];
      count('switch');
      void eng.prefill(cur.id, cur.lang, cur.text.slice(0, cur.cursor), cur.text.slice(cur.cursor));
      await sleep(100 + rand() * 400);
      await request(cur);
    } else if (x < 0.86) {
      const d = docs[Math.floor(rand() * docs.length)];
      count('close');
      await eng.closeDocument(d.id);
    } else if (x < 0.95) {
      // typed on: the request is aborted by the caller
      const ac = new AbortController();
      setTimeout(() => ac.abort(), rand() * 300);
      count('abort');
      await request(cur, ac.signal);
    } else if (!quiet) {
      budgetMB = rand() < 0.5 ? baseMB : [baseMB / 16, baseMB / 4, baseMB / 2][Math.floor(rand() * 3)];
      count('budget');
      await eng.setBudget(budgetMB * MB);
    } else if (budgetMB !== baseMB) {
      budgetMB = baseMB;
      await eng.setBudget(budgetMB * MB);
    }
    // The user's pause between bursts; now and then a longer one, reading (the RSS cap's chance to act).
    await sleep(rand() < 0.01 ? idleMs + 2000 : 50 + rand() * 250);
  }
  await sample();
  const file = writeResult(out, 'cpu', 'soak', '', report(true));
  await eng.dispose();
  console.log(
    `soak: done, ${requests.length} requests, ${crashes} crashes, ${overBudget} over-budget moments; wrote ${file}`,
  );
}

main().catch((e) => {
  console.error(`soak: ${(e as Error).message}`);
  process.exitCode = 1;
});
