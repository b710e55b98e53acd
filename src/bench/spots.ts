// Suite "spots" (part of the default `npm run bench`; alone: `npm run bench -- --suite spots`): what a user does in a
// ~2k-token file that is already open — moves the cursor to a random line ("new spot"), then types characters at
// the end of that line ("typing"), pauses (the extension prefills while idle), moves again. The same request
// sequence runs on two engines, the document-order layout (psm, the default) and the earlier suffix-first layout
// (spm), interleaved request by request with alternating order, so machine load hits both alike
// (docs/cache-layout.md, docs/benchmarks.md).
import { performance } from 'node:perf_hooks';
import * as os from 'node:os';
import { EngineClient } from '../engine/client';
import type { CompletionRequest, DeviceSetting, PromptLayout, RequestTrace } from '../engine/api';
import { loadManifest } from '../engine/manifest';
import { ModelTokenizer } from '../engine/tokenizer';
import { Args, int, lineRequest, r2, rng, stats, str, table } from './common';
import { makeFiles } from './sources';

const MB = 1 << 20;
const TARGETS = { typing: { p50: 60, p95: 150 }, newSpot: { p50: 250, p95: 500 } };
type Scenario = 'typing' | 'newSpot';

export async function runSpotsSuite(
  a: Args,
): Promise<{ result: Record<string, unknown>; device: string; model: string; ok: boolean }> {
  const device = str(a, 'device', 'auto') as DeviceSetting;
  const spots = int(a, 'spots', 24);
  const keystrokes = int(a, 'keystrokes', 6);
  const docTokens = int(a, 'doc-tokens', 2000);
  const maxTokens = int(a, 'max-tokens', 64);
  const threads = int(a, 'threads', 0);
  const seed = int(a, 'seed', 1);
  const timeBudgetMs = int(a, 'time-budget-ms', 2000);
  const budgetMB = Number(str(a, 'budget', '64'));
  const layouts = str(a, 'layouts', 'psm,spm')
    .split(',')
    .map((s) => s.trim()) as PromptLayout[];
  const { dir, manifest } = loadManifest(str(a, 'model', ''));
  const tok = ModelTokenizer.load(dir, manifest);
  const file = makeFiles(tok, docTokens, 1, 'typescript')[0];
  const log = (s: string) => process.stderr.write(s);

  const engines = new Map<PromptLayout, EngineClient>();
  try {
    for (const l of layouts) {
      const e = await EngineClient.start({ modelDir: dir, device, kvBudgetBytes: budgetMB * MB, threads, layout: l });
      if (e.state.kind !== 'ready') throw new Error(`engine (${l}) did not start: ${JSON.stringify(e.state)}`);
      engines.set(l, e);
    }
    const st = engines.get(layouts[0])!.state as { device: string; deviceNote?: string };
    const docId = 'bench:spots';
    const lat = new Map(
      layouts.map((l) => [
        l,
        { typing: [] as number[], newSpot: [] as number[], idlePrefill: [] as number[], open: 0 },
      ]),
    );
    // CPU time of this process per request (all threads: the engine's worker and ORT's pool; one request runs at a
    // time): less sensitive to other load on a shared machine than wall time.
    const cpu = new Map(layouts.map((l) => [l, { typing: [] as number[], newSpot: [] as number[] }]));
    const traces = new Map(layouts.map((l) => [l, { typing: [] as RequestTrace[], newSpot: [] as RequestTrace[] }]));
    const texts = new Map(layouts.map((l) => [l, { typing: [] as string[], newSpot: [] as string[] }]));
    const load: number[][] = [];
    let text = file.text;
    // Opening the file: the extension prefills with the cursor at the top (not timed as a request).
    for (const l of layouts) {
      const s = performance.now();
      await engines.get(l)!.prefill(docId, file.languageId, '', text);
      lat.get(l)!.open = performance.now() - s;
    }
    const req = (prefix: string, suffix: string) =>
      lineRequest(docId, file.languageId, prefix, suffix, { maxTokens, timeBudgetMs });
    const timed = async (l: PromptLayout, kind: Scenario, r: CompletionRequest) => {
      const s = performance.now(),
        c0 = process.cpuUsage();
      const res = await engines.get(l)!.complete(r);
      lat.get(l)![kind].push(performance.now() - s);
      const c = process.cpuUsage(c0);
      cpu.get(l)![kind].push((c.user + c.system) / 1000);
      traces.get(l)![kind].push(res.trace);
      texts.get(l)![kind].push(res.text);
    };
    const rand = rng(seed);
    const typed = ' // keep typing';
    log(
      `[bench] spots: ${file.path} (${file.tokens} tokens), ${spots} spots × ${keystrokes} keystrokes, layouts ${layouts.join('/')}\n`,
    );
    for (let i = 0; i < spots; i++) {
      const lines = text.split('\n');
      const candidates = lines.map((t, j) => (t.trim() && j > 0 ? j : -1)).filter((j) => j >= 0);
      const line = candidates[Math.floor(rand() * candidates.length)];
      let at = lines.slice(0, line + 1).join('\n').length; // end of that line
      const order = i % 2 === 0 ? layouts : [...layouts].reverse();
      for (const l of order) await timed(l, 'newSpot', req(text.slice(0, at), text.slice(at)));
      for (let k = 0; k < keystrokes; k++) {
        text = text.slice(0, at) + typed[k % typed.length] + text.slice(at);
        at++;
        for (const l of order) await timed(l, 'typing', req(text.slice(0, at), text.slice(at)));
      }
      // The user pauses: the extension prefills the edited document while idle (not a request the user waits for).
      for (const l of order) {
        const s = performance.now();
        await engines.get(l)!.prefill(docId, file.languageId, text.slice(0, at), text.slice(at));
        lat.get(l)!.idlePrefill.push(performance.now() - s);
      }
      load.push(os.loadavg().map(r2));
    }
    const summarize = (l: PromptLayout, k: Scenario) => {
      const ts = traces.get(l)![k];
      return {
        latencyMs: stats(lat.get(l)![k]),
        cpuMs: stats(cpu.get(l)![k]),
        prefillTokens: stats(ts.map((t) => t.prefillTokens)),
        reusedTokens: stats(ts.map((t) => t.reusedTokens)),
        generatedTokens: stats(ts.map((t) => t.generatedTokens)),
        withText: texts.get(l)![k].filter((x) => x.length > 0).length,
        stopReasons: ts.reduce(
          (m, t) => ({ ...m, [t.stopReason]: (m[t.stopReason] ?? 0) + 1 }),
          {} as Record<string, number>,
        ),
      };
    };
    const byLayout = Object.fromEntries(
      layouts.map((l) => [
        l,
        {
          typing: summarize(l, 'typing'),
          newSpot: summarize(l, 'newSpot'),
          openPrefillMs: r2(lat.get(l)!.open),
          idlePrefillMs: stats(lat.get(l)!.idlePrefill),
        },
      ]),
    );
    const p = (l: string, k: Scenario, q: 'p50' | 'p95') => (byLayout[l]?.[k].latencyMs[q] ?? NaN) as number;
    const result = {
      suite: 'spots',
      model: manifest.name,
      modelDir: dir,
      device: st.device,
      deviceSetting: device,
      deviceNote: st.deviceNote,
      document: { path: file.path, languageId: file.languageId, tokens: file.tokens },
      settings: { spots, keystrokes, maxTokens, multiline: false, timeBudgetMs, budgetMB, threads, seed, layouts },
      targets: TARGETS,
      layouts: byLayout,
      met: layouts.includes('psm')
        ? {
            typing: p('psm', 'typing', 'p50') <= TARGETS.typing.p50 && p('psm', 'typing', 'p95') <= TARGETS.typing.p95,
            newSpot:
              p('psm', 'newSpot', 'p50') <= TARGETS.newSpot.p50 && p('psm', 'newSpot', 'p95') <= TARGETS.newSpot.p95,
          }
        : undefined,
      // old / new, same run, interleaved
      ratiosSpmOverPsm:
        layouts.includes('psm') && layouts.includes('spm')
          ? {
              typingP50: r2(p('spm', 'typing', 'p50') / p('psm', 'typing', 'p50')),
              newSpotP50: r2(p('spm', 'newSpot', 'p50') / p('psm', 'newSpot', 'p50')),
              newSpotP95: r2(p('spm', 'newSpot', 'p95') / p('psm', 'newSpot', 'p95')),
            }
          : undefined,
      loadavgPerSpot: load,
      niceness: os.getPriority(),
      traces: Object.fromEntries(layouts.map((l) => [l, traces.get(l)])),
    };
    return { result, device: st.device, model: manifest.name, ok: true };
  } finally {
    for (const e of engines.values()) await e.dispose();
  }
}

export function printSpots(r: any): void {
  console.log(
    `\nmixSGA spots benchmark — ${r.document.path} (${r.document.tokens} tokens), model ${r.model} on ${r.device}, ` +
      `${r.settings.spots} spots × ${r.settings.keystrokes} keystrokes, maxTokens ${r.settings.maxTokens}, niceness ${r.niceness}`,
  );
  const rows: (string | number)[][] = [];
  for (const [l, x] of Object.entries<any>(r.layouts)) {
    for (const k of ['typing', 'newSpot'] as const) {
      const s = x[k];
      rows.push([
        l,
        k,
        s.latencyMs.p50,
        s.latencyMs.p95,
        s.cpuMs.p50,
        s.cpuMs.p95,
        s.latencyMs.n,
        s.prefillTokens.p50,
        s.reusedTokens.p50,
        s.generatedTokens.p50,
        s.withText,
      ]);
    }
  }
  console.log(
    table(
      [
        'layout',
        'scenario',
        'p50 ms',
        'p95 ms',
        'cpu p50 ms',
        'cpu p95 ms',
        'n',
        'prefill tok p50',
        'reused tok p50',
        'generated p50',
        'with text',
      ],
      rows,
    ),
  );
  if (r.ratiosSpmOverPsm)
    console.log(
      `spm / psm: typing p50 ×${r.ratiosSpmOverPsm.typingP50}, new spot p50 ×${r.ratiosSpmOverPsm.newSpotP50}, p95 ×${r.ratiosSpmOverPsm.newSpotP95}`,
    );
  if (r.met)
    console.log(
      `targets (psm): typing ${r.met.typing ? 'met' : 'NOT met'}, new spot ${r.met.newSpot ? 'met' : 'NOT met'}; load average at start ${r.machine?.loadavgAtStart?.join(' ')}, at end ${r.machine?.loadavgAtEnd?.map(r2).join(' ')}`,
    );
}
