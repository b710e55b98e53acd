// --suite cascade: issue 19's must-show for the engine. Completions at cursor spots of a ~4k-token file with the
// age cascade (quantised tiers by age) vs plain windowing, both at the same budget in bytes (a fraction of the
// fp16 cache of the whole base), against the full cache. All three force every token to expert 0 (full heads):
//   full    band covering everything, a budget that never binds: every token at full precision, nothing dropped
//   cascade the spec (default band=32,order=age,stores=g1-int8|g1-int4c|g2-int4c) at the budget
//   window  full precision only, windowed when the budget binds (budget.ts step 4), at the same budget
// Requests are the same for each engine, interleaved per spot (rotating order). Reported: how many completions
// equal the full cache's, and wall/CPU latency ratios (ratios only: the machine may be loaded; load is recorded).
import type { DeviceSetting } from '../engine/api';
import { EngineCore } from '../engine/core';
import { loadManifest } from '../engine/manifest';
import { ModelTokenizer } from '../engine/tokenizer';
import { Args, int, lineRequest, r2, rng, stats, str } from './common';
import { makeFiles } from './sources';
import { viewOf } from '../engine/spotView';

const ARMS = ['full', 'cascade', 'window'] as const;
type Arm = (typeof ARMS)[number];
/** A band longer than any base: every token stays at full precision (no tier is ever used). */
const FULL_PRECISION = 'band=1000000,order=age,stores=g1-int8';

export async function runCascadeSuite(
  a: Args,
): Promise<{ result: Record<string, unknown>; device: string; model: string }> {
  const device = str(a, 'device', 'cpu') as DeviceSetting;
  const spots = int(a, 'spots', 12),
    docTokens = int(a, 'doc-tokens', 4000),
    maxTokens = int(a, 'max-tokens', 24);
  const fraction = Number(str(a, 'fraction', '0.25'));
  const spec = str(a, 'policy', 'band=32,order=age,stores=g1-int8|g1-int4c|g2-int4c');
  const seed = int(a, 'seed', 1);
  const { dir, manifest } = loadManifest(str(a, 'model', ''));
  const tok = ModelTokenizer.load(dir, manifest);
  const file = makeFiles(tok, docTokens, 1, 'typescript')[0];
  const text = file.text;
  const log = (s: string) => process.stderr.write(s);
  const never = { cancelled: false };
  const ar = manifest.architecture;

  // The reference first: its base length gives the budget (fraction of the fp16 cache of the whole base).
  const engines = new Map<Arm, EngineCore>();
  const start = (kvPolicy: string, bytes: number) =>
    EngineCore.create({ modelDir: dir, device, kvBudgetBytes: bytes, layout: 'psm', kvPolicy });
  try {
    engines.set('full', await start(FULL_PRECISION, 1 << 30));
    const full = engines.get('full')!;
    await full.prefillDoc(0, 'doc', '', text, never);
    const doc = full.budget.peek('doc')!;
    const baseTokens = viewOf(doc)?.baseIds.length ?? doc.nIds; // the whole base, not the open spot's prefix
    const fp16Full = baseTokens * ar.num_layers * 2 * ar.num_kv_heads * ar.head_dim * 2;
    const budget = Math.round(fraction * fp16Full);
    engines.set('cascade', await start(spec, budget));
    engines.set('window', await start(FULL_PRECISION, budget));
    for (const arm of ['cascade', 'window'] as Arm[]) await engines.get(arm)!.prefillDoc(0, 'doc', '', text, never);

    const r = rng(seed);
    const rows: {
      spot: number;
      at: number;
      text: Record<Arm, string>;
      wallMs: Record<Arm, number>;
      cpuMs: Record<Arm, number>;
    }[] = [];
    for (let i = 0; i < spots; i++) {
      // a mid-line cursor in a random line (the model mostly ends a line at once at its end)
      let at = text.indexOf('\n', Math.floor(r() * text.length * 0.95));
      if (at < 0) at = text.length;
      const lineStart = text.lastIndexOf('\n', at - 1) + 1;
      at = Math.max(lineStart, at - 1 - Math.floor(r() * Math.min(12, at - lineStart)));
      const req = lineRequest('doc', 'typescript', text.slice(0, at), text.slice(at), {
        maxTokens,
        timeBudgetMs: 120_000,
      });
      const row = {
        spot: i,
        at,
        text: {} as Record<Arm, string>,
        wallMs: {} as Record<Arm, number>,
        cpuMs: {} as Record<Arm, number>,
      };
      for (let k = 0; k < ARMS.length; k++) {
        const arm = ARMS[(i + k) % ARMS.length];
        const t0 = performance.now(),
          c0 = process.cpuUsage();
        const res = await engines.get(arm)!.complete(1 + i * 3 + k, req, never);
        const c = process.cpuUsage(c0);
        row.wallMs[arm] = performance.now() - t0;
        row.cpuMs[arm] = (c.user + c.system) / 1000;
        row.text[arm] = res.text;
        if (res.trace.stopReason === 'error')
          throw new Error(`${arm} failed at spot ${i}: ${JSON.stringify(res.trace)}`);
      }
      rows.push(row);
      log(
        `spot ${i}: ${ARMS.map((x) => `${x} ${JSON.stringify(row.text[x])} ${Math.round(row.wallMs[x])} ms`).join(' | ')}\n`,
      );
    }
    const equal = (arm: Arm) => rows.filter((x) => x.text[arm] === x.text.full).length;
    const p50 = (arm: Arm, k: 'wallMs' | 'cpuMs') => stats(rows.map((x) => x[k][arm])).p50;
    const mem = (arm: Arm) => {
      const m = engines.get(arm)!.memory();
      return { usedBytes: m.usedBytes, budgetBytes: m.budgetBytes, cascade: m.cascade };
    };
    const result = {
      suite: 'cascade',
      model: manifest.name,
      device,
      spec,
      fraction,
      docTokens: tok.encodeFragment(text).length,
      baseTokens,
      fp16FullBytes: fp16Full,
      budgetBytes: budget,
      spots,
      maxTokens,
      seed,
      equalToFull: { cascade: equal('cascade'), window: equal('window'), of: rows.length },
      latencyRatio: {
        cascadeOverWindow: {
          wallP50: r2(p50('cascade', 'wallMs') / p50('window', 'wallMs')),
          cpuP50: r2(p50('cascade', 'cpuMs') / p50('window', 'cpuMs')),
        },
        cascadeOverFull: {
          wallP50: r2(p50('cascade', 'wallMs') / p50('full', 'wallMs')),
          cpuP50: r2(p50('cascade', 'cpuMs') / p50('full', 'cpuMs')),
        },
      },
      latencyMs: Object.fromEntries(
        ARMS.map((x) => [x, { wall: stats(rows.map((y) => y.wallMs[x])), cpu: stats(rows.map((y) => y.cpuMs[x])) }]),
      ),
      memoryAtEnd: { cascade: mem('cascade'), window: mem('window'), full: mem('full') },
      rows,
    };
    return { result, device, model: manifest.name };
  } finally {
    for (const e of engines.values()) await e.release();
  }
}

export function printCascade(d: any): void {
  console.log(
    `cascade vs window at ${d.fraction * 100} % of the fp16 cache (${(d.budgetBytes / 2 ** 20).toFixed(2)} MB), ` +
      `${d.docTokens}-token file, base ${d.baseTokens} tokens, ${d.spots} spots`,
  );
  console.log(
    `equal to the full-cache completion: cascade ${d.equalToFull.cascade}/${d.equalToFull.of}, window ${d.equalToFull.window}/${d.equalToFull.of}`,
  );
  console.log(
    `latency p50 cascade/window: wall ${d.latencyRatio.cascadeOverWindow.wallP50}, cpu ${d.latencyRatio.cascadeOverWindow.cpuP50}`,
  );
}
