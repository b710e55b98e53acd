// Suite "lines" (`npm run bench -- --suite lines`): do the two prompt layouts complete equally well? In real files
// (~2k tokens), a random line is cut at a random column; the rest of that line is removed and is the answer. Both
// layouts (psm, spm) get the same single-line requests on two engines; exact matches of the rest of the line are
// counted. A quality check of the layout choice (docs/cache-layout.md), not a model evaluation.
import * as os from 'node:os';
import { EngineClient } from '../engine/client';
import type { PromptLayout } from '../engine/api';
import { loadManifest } from '../engine/manifest';
import { ModelTokenizer } from '../engine/tokenizer';
import { Args, int, lineRequest, r2, rng, str, table } from './common';
import { makeFiles } from './sources';

export async function runLinesSuite(
  a: Args,
): Promise<{ result: Record<string, unknown>; device: string; model: string; ok: boolean }> {
  const cases = int(a, 'cases', 40);
  const rand = rng(int(a, 'seed', 1));
  const { dir, manifest } = loadManifest(str(a, 'model', ''));
  const tok = ModelTokenizer.load(dir, manifest);
  const files = makeFiles(tok, int(a, 'doc-tokens', 2000), 4);
  const layouts: PromptLayout[] = ['psm', 'spm'];
  const engines = await Promise.all(
    layouts.map((layout) =>
      EngineClient.start({
        modelDir: dir,
        device: 'cpu',
        kvBudgetBytes: 256 << 20,
        threads: int(a, 'threads', 0),
        layout,
      }),
    ),
  );
  try {
    const hits = layouts.map(() => 0),
      withText = layouts.map(() => 0);
    let agree = 0;
    const rows: { file: string; line: number; want: string; got: string[] }[] = [];
    for (let i = 0; i < cases; i++) {
      const f = files[i % files.length];
      const lines = f.text.split('\n');
      const ok = lines.map((l, j) => (l.trim().length >= 12 && j > 0 ? j : -1)).filter((j) => j >= 0);
      const line = ok[Math.floor(rand() * ok.length)];
      const indent = lines[line].length - lines[line].trimStart().length;
      const col = indent + 1 + Math.floor(rand() * (lines[line].length - indent - 4));
      const start = lines.slice(0, line).join('\n').length + (line ? 1 : 0);
      const prefix = f.text.slice(0, start + col),
        want = lines[line].slice(col);
      const suffix = f.text.slice(start + lines[line].length);
      const got: string[] = [];
      for (const [k, e] of engines.entries()) {
        const r = await e.complete(
          lineRequest(`lines:${i}`, f.languageId, prefix, suffix, { maxTokens: 48, timeBudgetMs: 20_000 }),
        );
        got.push(r.text);
        if (r.text) withText[k]++;
        if (r.text.trimEnd() === want.trimEnd()) hits[k]++;
      }
      if (got[0] === got[1]) agree++;
      rows.push({ file: f.path, line, want, got });
      for (const e of engines) await e.closeDocument(`lines:${i}`);
    }
    const result = {
      suite: 'lines',
      model: manifest.name,
      cases,
      maxTokens: 48,
      exact: Object.fromEntries(layouts.map((l, k) => [l, hits[k]])),
      withText: Object.fromEntries(layouts.map((l, k) => [l, withText[k]])),
      sameCompletion: agree,
      loadavgAtEnd: os.loadavg().map(r2),
      rows,
    };
    return { result, device: 'cpu', model: manifest.name, ok: true };
  } finally {
    for (const e of engines) await e.dispose();
  }
}

export function printLines(r: any): void {
  console.log(`\nmixSGA line completion by layout — ${r.cases} cut lines, exact rest of line`);
  console.log(
    table(
      ['layout', 'exact', 'with text'],
      Object.keys(r.exact).map((l) => [l, r.exact[l], r.withText[l]]),
    ),
  );
  console.log(`same completion in both layouts: ${r.sameCompletion} of ${r.cases}`);
}
