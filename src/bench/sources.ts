// Benchmark documents: real source files of this repository (then production node_modules), cut to a token size.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { ModelTokenizer } from '../engine/tokenizer';
import { ROOT } from './common';

export interface SourceFile {
  path: string;
  languageId: string;
  text: string;
  tokens: number;
}

/** Real source files (repo first, then production node_modules, so it also works from a bare dist/ copy). */
function sourceCandidates(): { p: string; languageId: string }[] {
  const ts = [
    'src/engine/budget.ts',
    'src/engine/kvStore.ts',
    'src/engine/core.ts',
    'src/engine/client.ts',
    'node_modules/onnxruntime-common/lib/tensor-impl.ts',
    'node_modules/onnxruntime-common/lib/inference-session-impl.ts',
    'node_modules/onnxruntime-common/lib/tensor-factory-impl.ts',
    'node_modules/onnxruntime-common/lib/tensor-conversion-impl.ts',
    'node_modules/lru-cache/dist/commonjs/index.js',
  ];
  const py = fs.existsSync(path.join(ROOT, 'toolchain/mixsga'))
    ? fs
        .readdirSync(path.join(ROOT, 'toolchain/mixsga'))
        .filter((f) => f.endsWith('.py'))
        .sort()
        .map((f) => `toolchain/mixsga/${f}`)
    : [];
  return [
    ...ts.map((p) => ({ p, languageId: p.endsWith('.js') ? 'javascript' : 'typescript' })),
    ...py.map((p) => ({ p, languageId: 'python' })),
  ].filter((c) => fs.existsSync(path.join(ROOT, c.p)));
}

/** Up to `n` texts of ≈`target` tokens: whole files concatenated/cut at line boundaries. */
export function makeFiles(tok: ModelTokenizer, target: number, n: number, lang?: string): SourceFile[] {
  const cands = sourceCandidates().filter((c) => !lang || c.languageId === lang);
  const out: SourceFile[] = [];
  for (let i = 0; i < cands.length && out.length < n; i++) {
    let text = '';
    for (let j = i; j < cands.length + i && tok.encodeFragment(text).length < target; j++) {
      const c = cands[j % cands.length];
      text += fs.readFileSync(path.join(ROOT, c.p), 'utf8') + '\n';
    }
    const lines = text.split('\n');
    // binary search the number of lines that gives ≈ target tokens
    let lo = 1,
      hi = lines.length;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (tok.encodeFragment(lines.slice(0, mid).join('\n')).length <= target) lo = mid;
      else hi = mid - 1;
    }
    const t = lines.slice(0, lo).join('\n') + '\n';
    out.push({ path: cands[i].p, languageId: cands[i].languageId, text: t, tokens: tok.encodeFragment(t).length });
  }
  if (out.length === 0) throw new Error(`no source files found under ${ROOT} to build benchmark documents from`);
  return out;
}
