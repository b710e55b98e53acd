// --suite cascade: issue 19's must-show for the engine. Completions at cursor spots of a ~4k-token file with the
// age cascade (quantised tiers by age) vs plain windowing, both at the same budget in bytes (a fraction of the
// fp16 cache of the whole base), against the full cache. All three force every token to expert 0 (full heads):
//   full    band covering everything, a budget that never binds: every token at full precision, nothing dropped
//   cascade the spec (default band=32,order=age,stores=g1-int8|g1-int4c|g2-int4c) at the budget
//   window  full precision only, windowed when the budget binds (budget.ts step 4), at the same budget
// A/B arms of the cascade itself (--arms, e.g. full,cascade,cascade-stepwise):
//   cascade-stepwise     demotion one tier per step, re-quantising at each (before cascadePlan.ts)
//   cascade-fp32band     the band, sinks and request tokens stored in the graph's fp32 (not fp16)
//   cascade-norecompute  a demoted band before a new cursor read as stored (bandRecompute.ts off)
// Requests are the same for each engine, interleaved per spot (rotating order). Reported: how many completions
// equal the full cache's, the time each arm spent in the engine's phases (phaseMs), and wall/CPU latency ratios of
// every arm over --base (default window; ratios only: the
// machine may be loaded; load is recorded).
import type { DeviceSetting } from '../engine/api';
import { EngineCore, FP16_BAND } from '../engine/core';
import { loadManifest } from '../engine/manifest';
import { ModelTokenizer } from '../engine/tokenizer';
import { Args, int, lineRequest, r2, rng, stats, str } from './common';
import { makeFiles } from './sources';
import { viewOf } from '../engine/spotView';
import { ModelRunner } from '../engine/runner';
import { DocTiers } from '../engine/kvCascade';
import { KvBudget } from '../engine/budget';

type Arm = 'full' | 'cascade' | 'window' | 'cascade-stepwise' | 'cascade-fp32band' | 'cascade-norecompute';
interface ArmSetup {
  /** `spec`: the suite's --policy; `full`: every token at full precision (windowed when the budget binds). */
  policy: 'spec' | 'full';
  binds: boolean;
  /** Full-precision rows stored fp16 (CoreOptions.fp16Band); the references keep the graph's fp32. */
  fp16Band: boolean;
  tweak?: (e: EngineCore) => void;
}
/** Wall ms per arm spent in the engine's phases (summed over the spots): the model run, the cascade's feed build
 * (dequantising every tier token), the budget's admit (demotion) and the aging after each run. Arms run one at a
 * time, so the prototypes are wrapped once and charge the arm being measured. */
const phases: Record<string, Record<string, number>> = {};
let charging: string | undefined;
function timePhase(proto: any, method: string, label: string): void {
  const f = proto[method];
  proto[method] = function (this: unknown, ...args: unknown[]) {
    const t0 = performance.now(),
      add = () => {
        if (!charging) return;
        const acc = (phases[charging] ??= {});
        acc[label] = (acc[label] ?? 0) + performance.now() - t0;
      };
    const r = f.apply(this, args);
    if (r instanceof Promise) return r.finally(add);
    add();
    return r;
  };
}
timePhase(ModelRunner.prototype, 'run', 'modelRun');
timePhase(DocTiers.prototype, 'feeds', 'cascadeFeeds');
timePhase(KvBudget.prototype, 'admit', 'budgetAdmit');
timePhase(DocTiers.prototype, 'age', 'cascadeAge');

const ARM_SETUP: Record<Arm, ArmSetup> = {
  full: { policy: 'full', binds: false, fp16Band: false },
  cascade: { policy: 'spec', binds: true, fp16Band: FP16_BAND },
  window: { policy: 'full', binds: true, fp16Band: false },
  'cascade-stepwise': {
    policy: 'spec',
    binds: true,
    fp16Band: FP16_BAND,
    tweak: (e) => {
      e.budget.stepwiseDemotion = true;
    },
  },
  'cascade-fp32band': { policy: 'spec', binds: true, fp16Band: false },
  'cascade-norecompute': {
    policy: 'spec',
    binds: true,
    fp16Band: FP16_BAND,
    tweak: (e) => {
      e.bandRecompute = false;
    },
  },
};
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
  const arms = str(a, 'arms', 'full,cascade,window').split(',') as Arm[];
  for (const x of arms)
    if (!(x in ARM_SETUP)) throw new Error(`unknown arm ${x} (${Object.keys(ARM_SETUP).join(' | ')})`);
  if (!arms.includes('full')) throw new Error('--arms must include full (the reference)');
  const baseArm = str(a, 'base', arms.includes('window') ? 'window' : arms[1]) as Arm;
  const { dir, manifest } = loadManifest(str(a, 'model', ''));
  const tok = ModelTokenizer.load(dir, manifest);
  const file = makeFiles(tok, docTokens, 1, 'typescript')[0];
  const text = file.text;
  const log = (s: string) => process.stderr.write(s);
  const never = { cancelled: false };
  const ar = manifest.architecture;

  // The reference first: its base length gives the budget (fraction of the fp16 cache of the whole base).
  const engines = new Map<Arm, EngineCore>();
  const start = (kvPolicy: string, bytes: number, fp16Band: boolean) =>
    EngineCore.create({ modelDir: dir, device, kvBudgetBytes: bytes, layout: 'psm', kvPolicy, fp16Band });
  try {
    engines.set('full', await start(FULL_PRECISION, 1 << 30, false));
    const full = engines.get('full')!;
    await full.prefillDoc(0, 'doc', '', text, never);
    const doc = full.budget.peek('doc')!;
    const baseTokens = viewOf(doc)?.baseIds.length ?? doc.nIds; // the whole base, not the open spot's prefix
    const fp16Full = baseTokens * ar.num_layers * 2 * ar.num_kv_heads * ar.head_dim * 2;
    const budget = Math.round(fraction * fp16Full);
    for (const arm of arms.filter((x) => x !== 'full')) {
      const setup = ARM_SETUP[arm];
      const policy = setup.policy === 'spec' ? spec : FULL_PRECISION;
      const e = await start(policy, setup.binds ? budget : 1 << 30, setup.fp16Band);
      setup.tweak?.(e);
      engines.set(arm, e);
      await e.prefillDoc(0, 'doc', '', text, never);
    }

    const r = rng(seed);
    const rows: {
      spot: number;
      at: number;
      text: Record<Arm, string>;
      wallMs: Record<Arm, number>;
      cpuMs: Record<Arm, number>;
      bandRecomputed: Record<Arm, number>;
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
        bandRecomputed: {} as Record<Arm, number>,
      };
      for (let k = 0; k < arms.length; k++) {
        const arm = arms[(i + k) % arms.length];
        const t0 = performance.now(),
          c0 = process.cpuUsage();
        charging = arm;
        const res = await engines.get(arm)!.complete(1 + i * 3 + k, req, never);
        charging = undefined;
        const c = process.cpuUsage(c0);
        row.wallMs[arm] = performance.now() - t0;
        row.cpuMs[arm] = (c.user + c.system) / 1000;
        row.text[arm] = res.text;
        row.bandRecomputed[arm] = res.trace.bandRecomputed;
        if (res.trace.stopReason === 'error')
          throw new Error(`${arm} failed at spot ${i}: ${JSON.stringify(res.trace)}`);
      }
      rows.push(row);
      log(
        `spot ${i}: ${arms.map((x) => `${x} ${JSON.stringify(row.text[x])} ${Math.round(row.wallMs[x])} ms`).join(' | ')}\n`,
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
      arms: arms,
      base: baseArm,
      equalToFull: {
        ...Object.fromEntries(arms.filter((x) => x !== 'full').map((x) => [x, equal(x)])),
        of: rows.length,
      },
      // each arm's p50 over the base arm's, and the per-spot ratios' median (pairs measured back to back)
      latencyRatio: Object.fromEntries(
        arms
          .filter((x) => x !== baseArm)
          .map((x) => [
            `${x}/${baseArm}`,
            {
              wallP50: r2(p50(x, 'wallMs') / p50(baseArm, 'wallMs')),
              cpuP50: r2(p50(x, 'cpuMs') / p50(baseArm, 'cpuMs')),
              wallPairedMedian: r2(stats(rows.map((y) => y.wallMs[x] / y.wallMs[baseArm])).p50),
              cpuPairedMedian: r2(stats(rows.map((y) => y.cpuMs[x] / y.cpuMs[baseArm])).p50),
            },
          ]),
      ),
      latencyMs: Object.fromEntries(
        arms.map((x) => [x, { wall: stats(rows.map((y) => y.wallMs[x])), cpu: stats(rows.map((y) => y.cpuMs[x])) }]),
      ),
      phaseMs: Object.fromEntries(
        arms.map((x) => [
          x,
          {
            total: r2(rows.reduce((acc, y) => acc + y.wallMs[x], 0)),
            ...Object.fromEntries(Object.entries(phases[x] ?? {}).map(([k, v]) => [k, r2(v)])),
          },
        ]),
      ),
      memoryAtEnd: Object.fromEntries(arms.map((x) => [x, mem(x)])),
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
  const { of, ...equal } = d.equalToFull;
  console.log(
    `equal to the full-cache completion: ${Object.entries(equal)
      .map(([k, v]) => `${k} ${v}/${of}`)
      .join(', ')}`,
  );
  for (const [arm, ph] of Object.entries<any>(d.phaseMs ?? {}))
    console.log(
      `${arm} phases (ms over all spots): ${Object.entries(ph)
        .map(([k, v]) => `${k} ${Math.round(v as number)}`)
        .join(', ')}`,
    );
  for (const [k, v] of Object.entries<any>(d.latencyRatio))
    console.log(
      `latency ${k}: p50 wall ${v.wallP50}, cpu ${v.cpuP50}; paired median wall ${v.wallPairedMedian}, cpu ${v.cpuPairedMedian}`,
    );
}
