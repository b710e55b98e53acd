// Suite "suffix" (`npm run bench -- --suite suffix`): what the suffix head costs a new cursor spot in layout psm
// (docs/cache-layout.md). One engine in this thread, a ~2k-token file prefilled; at each random spot, one request per
// suffix size (order rotating), maxTokens 1 (no decode steps): the time is the prompt's own tokens on the view.
import { performance } from 'node:perf_hooks';
import * as os from 'node:os';
import { EngineCore } from '../engine/core';
import { Args, int, lineRequest, nums, r2, rng, stats, str, table } from './common';
import { makeFiles } from './sources';

export async function runSuffixSuite(
  a: Args,
): Promise<{ result: Record<string, unknown>; device: string; model: string; ok: boolean }> {
  const sizes = nums(a, 'suffix-sizes', [32, 64, 96, 128, 256]);
  const spots = int(a, 'spots', 16);
  const rand = rng(int(a, 'seed', 1));
  const core = await EngineCore.create({
    modelDir: str(a, 'model', ''),
    device: 'cpu',
    kvBudgetBytes: 256 << 20,
    threads: int(a, 'threads', 0),
    layout: 'psm',
  });
  try {
    const file = makeFiles(core.tok, int(a, 'doc-tokens', 2000), 1, 'typescript')[0];
    const never = { cancelled: false };
    await core.prefillDoc(0, 'doc', '', file.text, never);
    const lines = file.text.split('\n');
    const per = new Map(sizes.map((s) => [s, { wall: [] as number[], cpu: [] as number[], tokens: [] as number[] }]));
    for (let i = 0; i < spots; i++) {
      const line = 1 + Math.floor(rand() * (lines.length - 2));
      const at = lines.slice(0, line + 1).join('\n').length;
      const order = sizes.map((_, k) => sizes[(k + i) % sizes.length]);
      for (const s of order) {
        core.spotSuffixTokens = s;
        const t = performance.now(),
          c0 = process.cpuUsage();
        const r = await core.complete(
          i * sizes.length + s,
          lineRequest('doc', file.languageId, file.text.slice(0, at), file.text.slice(at), {
            maxTokens: 1,
            timeBudgetMs: 10_000,
          }),
          never,
        );
        const c = process.cpuUsage(c0);
        per.get(s)!.wall.push(performance.now() - t);
        per.get(s)!.cpu.push((c.user + c.system) / 1000);
        per.get(s)!.tokens.push(r.trace.prefillTokens);
      }
    }
    const result = {
      suite: 'suffix',
      model: core.manifest.name,
      document: { path: file.path, tokens: file.tokens },
      settings: { sizes, spots },
      bySize: Object.fromEntries(
        sizes.map((s) => [
          s,
          { wallMs: stats(per.get(s)!.wall), cpuMs: stats(per.get(s)!.cpu), promptTokens: stats(per.get(s)!.tokens) },
        ]),
      ),
      loadavgAtEnd: os.loadavg().map(r2),
      niceness: os.getPriority(),
    };
    return { result, device: 'cpu', model: core.manifest.name, ok: true };
  } finally {
    await core.release();
  }
}

export function printSuffix(r: any): void {
  console.log(
    `\nmixSGA suffix trade (psm new spot, prompt only) — ${r.document.path} (${r.document.tokens} tokens), ${r.settings.spots} spots`,
  );
  console.log(
    table(
      ['suffix tokens', 'prompt tok p50', 'wall p50 ms', 'wall p95 ms', 'cpu p50 ms', 'cpu p95 ms'],
      Object.entries<any>(r.bySize).map(([s, x]) => [
        s,
        x.promptTokens.p50,
        x.wallMs.p50,
        x.wallMs.p95,
        x.cpuMs.p50,
        x.cpuMs.p95,
      ]),
    ),
  );
}
