// Suite "gpu": the model graph alone (no worker, no prompt), on the CUDA or the CPU EP, with synthetic
// per-expert past caches sized for KV budgets of 100/75/50/25 % of full KV (ratios 1:0:0, 1:1:0, 3:1:6, 0:0:1 for
// experts with 4/2/1 KV heads). Caches live in a real DocCache (kvStore.ts), so feeds are exactly the engine's
// (zero-copy views, Uint16Array fp16 bits with type 'float16'). Decode runs the graph's in-graph greedy loop for
// --decode-steps tokens per session.run (what the engine does); prefill runs the prompt in one chunk on CUDA (256
// on CPU, as the engine). Per run: JS feed build, session.run, output unwrap + DocCache.append, timed separately;
// ORT profiling splits a few runs into kernels / Memcpy nodes / the rest of model_run (graph input/output copies
// host↔device and the sync); a transfer probe (hand-built one-node ONNX graphs) measures host→device and
// device→host bandwidth for the analytic transfer estimate.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import type * as ortTypes from 'onnxruntime-node';
import { loadManifest, Variant } from '../engine/manifest';
import { cudaUnavailableReason } from '../engine/session';
import { DocCache, KvShape, bytesPerElem } from '../engine/kvStore';
import { ModelRunner, RunRequest } from '../engine/runner';
import { f32ToF16 } from '../engine/fp16';
import { Args, UnavailableError, gpuMemUsedMiB, int, nums, r2, stats, str, table } from './common';
import { splitProfile } from './ortProfile';
import { transferProbe } from './transferProbe';

const FIXED_RATIOS: Record<number, number[]> = { 100: [1, 0, 0], 75: [1, 1, 0], 50: [3, 1, 6], 25: [0, 0, 1] };

/** Expert shares giving `pct` % of full KV: the fixed ratios for 3 experts (g = 1,2,4), else expert 0 + last. */
export function ratiosFor(pct: number, groups: number[]): number[] {
  if (groups.length === 3 && groups.join() === '1,2,4' && FIXED_RATIOS[pct]) {
    const r = FIXED_RATIOS[pct],
      s = r.reduce((x, y) => x + y, 0);
    return r.map((x) => x / s);
  }
  const f = pct / 100,
    gl = groups[groups.length - 1];
  if (f < 1 / gl - 1e-9) throw new Error(`budget ${pct}% is below the coarsest expert's ${r2(100 / gl)}%`);
  const a = gl === 1 ? 1 : (f - 1 / gl) / (1 - 1 / gl);
  return groups.map((_, e) => (e === 0 ? a : e === groups.length - 1 ? 1 - a : 0));
}

/** Expert of token t so every prefix of the sequence follows the ratios (truncating keeps the mix). */
function assign(T: number, ratios: number[]): Int32Array {
  const out = new Int32Array(T),
    cnt = new Array<number>(ratios.length).fill(0);
  for (let t = 0; t < T; t++) {
    let best = 0,
      bv = -Infinity;
    ratios.forEach((r, e) => {
      const v = r * (t + 1) - cnt[e];
      if (r > 0 && v > bv) {
        bv = v;
        best = e;
      }
    });
    cnt[best]++;
    out[t] = best;
  }
  return out;
}

/** A DocCache holding T synthetic tokens per layer, spread over the experts by `ratios` (random small K/V). */
function syntheticDoc(shape: KvShape, T: number, ratios: number[]): DocCache {
  const doc = new DocCache(shape);
  const route = assign(T, ratios);
  const f16 = shape.dtype === 'float16';
  const table16 = Uint16Array.from({ length: 256 }, (_, i) => f32ToF16((i - 128) / 128));
  let seed = 12345;
  const rnd = () => (seed = (seed * 1103515245 + 12345) >>> 0) >>> 24;
  for (let l = 0; l < shape.layers; l++) {
    const counts = new Array<number>(shape.heads.length).fill(0);
    for (let t = 0; t < T; t++) counts[route[t]]++;
    doc.segs[l].forEach((s, e) => {
      s.reserve(counts[e]);
      const arr = s.data;
      for (let i = 0; i < arr.length; i++) arr[i] = f16 ? table16[rnd()] : (rnd() - 128) / 128;
      let n = 0;
      for (let t = 0; t < T; t++)
        if (route[t] === e) {
          s.pos[n] = t;
          s.scores[n * shape.heads.length + e] = 0.5;
          n++;
        }
      s.n = n;
    });
  }
  doc.ids = new Int32Array(Math.max(T, 1));
  doc.nIds = T;
  return doc;
}

const kvBytes = (doc: DocCache, shape: KvShape) =>
  doc.segs.reduce((s, row) => s + row.reduce((x, seg) => x + seg.n * seg.row * bytesPerElem(shape.dtype), 0), 0);

export async function runGpuSuite(
  a: Args,
): Promise<{ result: Record<string, unknown>; device: string; model: string; ok: boolean }> {
  const modelDir = path.resolve(str(a, 'model', ''));
  const device = str(a, 'device', 'cuda');
  if (device !== 'cuda' && device !== 'cpu') throw new Error(`--suite gpu needs --device cuda or cpu (got ${device})`);
  const quick = a.quick === true;
  const budgets = nums(a, 'budgets', [100, 75, 50, 25]);
  const contexts = nums(a, 'contexts', quick ? [256, 1024] : [256, 1024, 2048]);
  const prefillLens = nums(a, 'prefill', quick ? [512] : [512, 2048]);
  const prefillBudgets = quick ? [budgets[0]] : budgets;
  const warmup = int(a, 'warmup', quick ? 1 : 3),
    iters = int(a, 'iterations', quick ? 3 : 5);
  const profiled = int(a, 'profile-runs', quick ? 1 : 2);
  const chunk = int(a, 'chunk', device === 'cuda' ? 2048 : 256); // the engine's prefill chunk per device
  // tokens per decode run; a list (--decode-steps 1,8,32) measures each, to separate per-run from per-step costs
  const stepsList = nums(a, 'decode-steps', [device === 'cuda' ? 32 : quick ? 4 : 16]).map((x) =>
    Math.max(1, Math.round(x)),
  );
  const decodeSteps = Math.max(...stepsList);
  const threads = int(a, 'threads', 0);
  const log = (s: string) => process.stderr.write(`[bench:gpu] ${s}\n`);

  const { dir, manifest } = loadManifest(modelDir, { checkHashes: a['check-hashes'] === true });
  const variantName = str(a, 'variant', device === 'cuda' ? 'cuda' : manifest.variants.cpu ? 'cpu' : 'cuda') as
    'cpu' | 'cuda';
  const variant: Variant | undefined = manifest.variants[variantName];
  if (!variant)
    throw new UnavailableError(
      `model ${manifest.name} has no "${variantName}" variant (has: ${Object.keys(manifest.variants).join(', ')}); use --variant`,
    );
  const file = path.join(dir, variant.file);
  if (!fs.existsSync(file)) throw new UnavailableError(`${variant.file} is missing from ${dir}`);
  if (device === 'cuda') {
    const why = cudaUnavailableReason();
    if (why) throw new UnavailableError(`CUDA execution provider unavailable: ${why}`);
  }
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const ort: typeof ortTypes = require('onnxruntime-node');
  // a profile folder only when profiling (--profile-runs 0 leaves nothing behind)
  const profDir = profiled > 0 ? fs.mkdtempSync(path.join(os.tmpdir(), 'mixsga-bench-prof-')) : '';
  const base: ortTypes.InferenceSession.SessionOptions = {
    graphOptimizationLevel: 'all',
    logSeverityLevel: 3,
    executionProviders: device === 'cuda' ? [{ name: 'cuda', deviceId: 0 }] : ['cpu'],
    ...(threads > 0 ? { intraOpNumThreads: threads } : {}),
    // --no-spin: ORT's intra-op pool threads do not spin-wait between parallel sections
    extra: {
      session: {
        ...(a['strict-placement'] === true ? { disable_cpu_ep_fallback: '1' } : {}),
        ...(a['no-spin'] === true ? { intra_op: { allow_spinning: '0' } } : {}),
      },
    },
  };
  const mem: Record<string, unknown> = {
    rssMiBBefore: r2(process.memoryUsage().rss / 2 ** 20),
    gpuMiBBefore: gpuMemUsedMiB(),
  };
  let session: ortTypes.InferenceSession;
  const tc = performance.now();
  try {
    session = await ort.InferenceSession.create(file, {
      ...base,
      enableProfiling: profiled > 0,
      ...(profDir ? { profileFilePrefix: path.join(profDir, 'prof') } : {}),
    });
  } catch (e) {
    const msg = (e as Error).message.split('\n')[0];
    if (device === 'cuda')
      throw new UnavailableError(`CUDA session could not be created (${msg}); ORT's real reason is on stderr above`);
    throw new UnavailableError(`session could not be created on ${device} for ${variant.file}: ${msg}`);
  }
  const loadMs = performance.now() - tc;
  Object.assign(mem, { rssMiBAfterLoad: r2(process.memoryUsage().rss / 2 ** 20), gpuMiBAfterLoad: gpuMemUsedMiB() });
  log(`${manifest.name} ${variant.file} on ${device}: session in ${r2(loadMs)} ms`);

  const A = manifest.architecture;
  const shape: KvShape = {
    layers: A.num_layers,
    heads: manifest.experts.map((e) => e.kv_heads),
    headDim: A.head_dim,
    dtype: variant.kv_dtype,
  };
  const groups = manifest.experts.map((e) => e.group_size);
  const E = groups.length,
    maxPos = A.max_position_embeddings;
  const fullKvPerToken = 2 * A.num_layers * A.num_kv_heads * A.head_dim * bytesPerElem(shape.dtype);
  // Feeds and outputs go through the engine's own ModelRunner (runner.ts); only session.run is timed apart.
  const runner = new ModelRunner(ort, session, manifest, shape.dtype);
  const zeroBias = new Float32Array(E),
    noStop = new Uint8Array(A.vocab_size);
  const scratch = new DocCache(shape);
  const bytesOf = (ts: Record<string, ortTypes.Tensor>) =>
    Object.values(ts).reduce((s, t) => s + (t.data as ArrayLike<number> & { byteLength: number }).byteLength, 0);
  interface Step {
    feedMs: number;
    runMs: number;
    unwrapMs: number;
    inBytes: number;
    outBytes: number;
    tokens: number;
  }
  const step = async (ids: number[], start: number, doc: DocCache, steps = 0): Promise<Step> => {
    const req: RunRequest = { ids, startPos: start, routeBias: zeroBias, genSteps: steps, stopMask: noStop };
    const t0 = performance.now();
    const feeds = runner.feeds(req, doc);
    const t1 = performance.now();
    const out = await session.run(feeds);
    const t2 = performance.now();
    const r = runner.unwrap(req, out);
    scratch.truncate(0);
    scratch.append(r.processed, r.kv); // what budget.commit does with a run's outputs
    return {
      feedMs: t1 - t0,
      runMs: t2 - t1,
      unwrapMs: performance.now() - t2,
      inBytes: bytesOf(feeds),
      outBytes: bytesOf(out),
      tokens: r.tokens.length,
    };
  };
  const tokens = (n: number, off = 0) => Array.from({ length: n }, (_, i) => 100 + (((i + off) * 37) % 20000));

  // Configurations: decode (budget, context) and prefill (budget, length; engine-style chunks with a growing past).
  type Cfg = { kind: 'decode' | 'prefill'; pct: number; T: number; label: string; steps?: number };
  const cfgs: Cfg[] = [];
  for (const pct of budgets)
    for (const T of [...contexts].sort((x, y) => y - x))
      for (const steps of stepsList) {
        cfgs.push({
          kind: 'decode',
          pct,
          T,
          steps,
          label: `decode:${pct}:${T}` + (stepsList.length > 1 ? `:s${steps}` : ''),
        });
      }
  const fits = prefillLens.filter((T) => T <= maxPos); // positions 0..T-1 need RoPE rows
  if (fits.length < prefillLens.length) log(`prefill lengths > max_position_embeddings ${maxPos} skipped`);
  for (const pct of prefillBudgets)
    for (const T of fits) cfgs.push({ kind: 'prefill', pct, T, label: `prefill:${pct}:${T}` });
  const docs = new Map<number, DocCache>();
  // Decode at context T: T cached tokens, one fed token and decodeSteps generated, all below max positions.
  const decodeCtx = (T: number) => Math.min(T, maxPos - decodeSteps - 2);
  const docFor = (pct: number, T: number) => {
    let d = docs.get(pct);
    if (!d || d.nIds < T) {
      d = syntheticDoc(shape, Math.max(T, ...contexts), ratiosFor(pct, groups));
      docs.set(pct, d);
    }
    d.truncate(T);
    return d;
  };
  const prefillPast = new Map<string, DocCache>();
  /** One whole prefill: chunks of `chunk` tokens, the past growing with the budget's expert mix. */
  const prefill = async (pct: number, L: number) => {
    let feedMs = 0,
      runMs = 0,
      unwrapMs = 0,
      inBytes = 0,
      outBytes = 0,
      fed = 0;
    for (let p = 0; p < L; p += chunk) {
      const n = Math.min(chunk, L - p);
      const key = `${pct}:${p}`; // the past of this chunk: p tokens in the budget's expert mix (built once)
      let past = prefillPast.get(key);
      if (!past) {
        past = syntheticDoc(shape, p, ratiosFor(pct, groups));
        prefillPast.set(key, past);
      }
      const s = await step(tokens(n, p), p, past);
      feedMs += s.feedMs;
      runMs += s.runMs;
      unwrapMs += s.unwrapMs;
      inBytes += s.inBytes;
      outBytes += s.outBytes;
      fed += n;
    }
    return { feedMs, runMs, unwrapMs, inBytes, outBytes, tokens: fed };
  };
  const runCfg = async (c: Cfg) => {
    if (c.kind === 'prefill') return prefill(c.pct, c.T);
    const T = decodeCtx(c.T);
    return step(tokens(1), T, docFor(c.pct, T), (c.steps ?? decodeSteps) - 1);
  };

  // Phase A: profiled runs (one unlabelled warmup each), then endProfiling() — profiling stops for the session.
  let profile: ReturnType<typeof splitProfile> | { error: string } | undefined;
  if (profiled > 0) {
    const labels: (string | null)[] = [];
    for (const c of cfgs) {
      const runsPer = c.kind === 'decode' ? 1 : Math.ceil(c.T / chunk);
      await runCfg(c);
      for (let i = 0; i < runsPer; i++) labels.push(null);
      for (let k = 0; k < (c.kind === 'decode' ? profiled : 1); k++) {
        await runCfg(c);
        for (let i = 0; i < runsPer; i++) labels.push(c.kind === 'decode' ? c.label : `${c.label}:chunk${i}`);
      }
    }
    session.endProfiling();
    const f = fs
      .readdirSync(profDir)
      .filter((x) => x.endsWith('.json'))
      .map((x) => path.join(profDir, x))[0];
    try {
      profile = f ? splitProfile(f, labels) : { error: `no profile file written in ${profDir}` };
    } catch (e) {
      profile = { error: `profile not parsed: ${(e as Error).message.split('\n')[0]}` };
    } // timed runs still go ahead
    if (a['keep-profiles'] !== true) fs.rmSync(profDir, { recursive: true, force: true });
    else if (f) log(`profile kept: ${f}`);
    log('profiling done');
  }

  // Phase B: timed.
  const probe = a['no-probe'] === true ? { skipped: true } : await transferProbe(ort, base, shape.dtype);
  const h2d = (probe as { h2dGBs?: number }).h2dGBs,
    d2h = (probe as { d2hGBs?: number }).d2hGBs;
  const results: Record<string, unknown>[] = [];
  let gpuPeak = gpuMemUsedMiB(),
    rssPeak = process.memoryUsage().rss;
  for (const c of cfgs) {
    const steps: Step[] = [];
    for (let i = 0; i < warmup + iters; i++) {
      const s = await runCfg(c);
      if (i >= warmup) steps.push(s);
    }
    const g = gpuMemUsedMiB();
    if (g !== undefined) gpuPeak = Math.max(gpuPeak ?? 0, g);
    rssPeak = Math.max(rssPeak, process.memoryUsage().rss);
    const run = stats(steps.map((s) => s.runMs)),
      feed = stats(steps.map((s) => s.feedMs)),
      unw = stats(steps.map((s) => s.unwrapMs));
    const total = stats(steps.map((s) => s.feedMs + s.runMs + s.unwrapMs));
    const { inBytes, outBytes } = steps[0];
    const doc = c.kind === 'decode' ? docFor(c.pct, decodeCtx(c.T)) : undefined;
    const prof =
      profile && 'perConfig' in profile
        ? c.kind === 'decode'
          ? profile.perConfig[c.label]
          : Object.entries(profile.perConfig)
              .filter(([k]) => k.startsWith(c.label + ':'))
              .map(([, v]) => v[0])
        : undefined;
    const profSum =
      prof && prof.length
        ? c.kind === 'decode'
          ? {
              modelRunMs: stats(prof.map((p) => p.modelRunMs)).p50,
              kernelMs: stats(prof.map((p) => p.kernelMs)).p50,
              memcpyNodeMs: stats(prof.map((p) => p.memcpyNodeMs)).p50,
              outsideExecutorMs: stats(prof.map((p) => p.outsideExecutorMs)).p50,
              memcpyNodes: prof[0].memcpyNodes,
              byProvider: prof[0].byProvider,
              // the decode loop: its whole time, the host time of its body's nodes (per op type) and the rest
              // (per-iteration overhead of the Loop itself: frames, state hand-over, the stop check's copy to the host)
              loopMs: prof[0].loopMs,
              stepNodeMs: prof[0].stepNodeMs,
              stepNodes: prof[0].stepNodes,
              loopOverheadMs: prof[0].loopMs - prof[0].stepNodeMs,
              stepByOp: prof[0].stepByOp,
            }
          : {
              modelRunMs: prof.reduce((s, p) => s + p.modelRunMs, 0),
              kernelMs: prof.reduce((s, p) => s + p.kernelMs, 0),
              memcpyNodeMs: prof.reduce((s, p) => s + p.memcpyNodeMs, 0),
              outsideExecutorMs: prof.reduce((s, p) => s + p.outsideExecutorMs, 0),
              memcpyNodes: prof.reduce((s, p) => s + p.memcpyNodes, 0),
            }
        : undefined;
    const estTransferMs =
      h2d && d2h && device === 'cuda' ? (inBytes / 1e9 / h2d + outBytes / 1e9 / d2h) * 1000 : undefined;
    const tokensPerRun = steps[0].tokens; // decode: tokens picked per run (the loop's); prefill: prompt tokens
    results.push({
      kind: c.kind,
      budgetPct: c.pct,
      ratios: ratiosFor(c.pct, groups).map((x) => Math.round(x * 1000) / 1000),
      tokens: c.T,
      ...(c.kind === 'decode' ? { cachedTokens: decodeCtx(c.T), tokensPerRun, decodeSteps: c.steps } : {}),
      kvBytesHeld: doc ? kvBytes(doc, shape) : undefined,
      kvBytesFull: c.kind === 'decode' ? decodeCtx(c.T) * fullKvPerToken : undefined,
      runMs: run,
      feedBuildMs: feed,
      unwrapAppendMs: unw,
      totalMs: total,
      tokensPerSec: r2(tokensPerRun / (total.p50 / 1000)),
      runOnlyTokensPerSec: r2(tokensPerRun / (run.p50 / 1000)),
      bytesIn: inBytes,
      bytesOut: outBytes,
      estTransferMs: estTransferMs !== undefined ? r2(estTransferMs) : null,
      estComputeMs: estTransferMs !== undefined ? r2(run.p50 - estTransferMs) : null,
      profile: profSum,
    });
    log(`${c.label}: run p50 ${r2(run.p50)} ms, feeds ${r2(feed.p50)} ms`);
  }
  Object.assign(mem, {
    rssMiBPeak: r2(rssPeak / 2 ** 20),
    gpuMiBPeak: gpuPeak,
    gpuMiBModelAndRuns:
      gpuPeak !== undefined && mem.gpuMiBBefore !== undefined
        ? (gpuPeak as number) - (mem.gpuMiBBefore as number)
        : undefined,
    kvBytesAt100pctMaxContext: Math.max(...contexts) * fullKvPerToken,
  });
  await session.release();
  const result = {
    suite: 'gpu',
    model: manifest.name,
    modelDir: dir,
    device,
    variant: variantName,
    variantFile: variant.file,
    kvDtype: shape.dtype,
    architecture: A,
    experts: manifest.experts,
    sessionLoadMs: r2(loadMs),
    settings: {
      budgets,
      contexts,
      prefillLens,
      prefillBudgets,
      warmup,
      iters,
      profiledRuns: profiled,
      chunk,
      decodeSteps,
      decodeStepsList: stepsList,
      quick,
      threads,
      caches:
        'synthetic per-expert past caches (random K/V) in a DocCache; decode = one run: one token fed on top of T cached tokens (T = min(context, max_position_embeddings - steps - 2)), then decodeSteps-1 greedy steps inside the graph; tokens/s = tokens picked per run / whole run; the document is not grown between runs',
      optimization: 'graphOptimizationLevel all',
      executionProviders: base.executionProviders,
    },
    transferProbe: probe,
    memory: mem,
    results,
    profileNote:
      'ORT profile: kernel times are host-side for CUDA (launches are async); outsideExecutorMs = model_run − executor = graph input/output copies host↔device, allocation and the final sync',
    profileError: profile && 'error' in profile ? profile.error : undefined,
  };
  return { result, device, model: manifest.name, ok: true };
}

export function printGpu(r: any): void {
  console.log(
    `\nmixSGA graph benchmark — ${r.model} (${r.variantFile}, KV ${r.kvDtype}) on ${r.device}; load ${r.sessionLoadMs} ms; synthetic caches`,
  );
  const p = r.transferProbe;
  if (p?.rows) console.log(`transfer probe: host→device ${p.h2dGBs} GB/s, device→host ${p.d2hGBs} GB/s`);
  else if (p?.error) console.log(`transfer probe failed: ${p.error}`);
  console.log(
    table(
      [
        'kind',
        'budget %',
        'tokens',
        'KV held MB',
        'tok/s',
        'run p50 ms',
        'feeds ms',
        'unwrap ms',
        'in MB',
        'out MB',
        'est xfer ms',
        'prof run',
        'prof kern',
        'prof memcpy',
        'prof outside',
      ],
      r.results.map((x: any) => [
        x.kind,
        x.budgetPct,
        x.tokens,
        x.kvBytesHeld !== undefined ? x.kvBytesHeld / 2 ** 20 : '',
        x.tokensPerSec,
        x.runMs.p50,
        x.feedBuildMs.p50,
        x.unwrapAppendMs.p50,
        x.bytesIn / 2 ** 20,
        x.bytesOut / 2 ** 20,
        x.estTransferMs ?? '',
        x.profile?.modelRunMs ?? '',
        x.profile?.kernelMs ?? '',
        x.profile?.memcpyNodeMs ?? '',
        x.profile?.outsideExecutorMs ?? '',
      ]),
    ),
  );
  console.log(`memory: ${JSON.stringify(r.memory)}`);
  if (r.profileError) console.log(`profile: ${r.profileError}`);
}
