// "Run Speed Benchmark": a short in-process measurement through the same engine the editor uses, on a private
// document id so it never touches the user's caches.
import type { Engine } from '../engine/api';

export interface BenchResult {
  runs: number;
  coldPrefillTokens: number;
  coldPrefillMs: number;
  warmReusedTokens: number;
  warmTotalMs: number;
  decodeTokens: number;
  decodeMs: number;
  medianTotalMs: number;
}

const SAMPLE = `import { readFileSync } from 'fs';

export interface Point { x: number; y: number }

export function distance(a: Point, b: Point): number {
  const dx = a.x - b.x;
  const dy = a.y - b.y;
  return Math.sqrt(dx * dx + dy * dy);
}

export function centroid(points: Point[]): Point {
  let x = 0;
  let y = 0;
  for (const p of points) {
`;

export async function runBenchmark(engine: Engine, runs: number, onStep: (i: number) => void, signal: AbortSignal): Promise<BenchResult> {
  const docId = `mixsga-benchmark:${Date.now()}`;
  const totals: number[] = [];
  const r: BenchResult = { runs: 0, coldPrefillTokens: 0, coldPrefillMs: 0, warmReusedTokens: 0, warmTotalMs: 0, decodeTokens: 0, decodeMs: 0, medianTotalMs: 0 };
  try {
    for (let i = 0; i < runs && !signal.aborted; i++) {
      onStep(i);
      // Each run appends a line, so runs after the first measure the incremental (cache-reuse) path.
      const prefix = SAMPLE + '    x += p.x;\n'.repeat(i);
      const res = await engine.complete(
        { docId, languageId: 'typescript', prefix, suffix: '\n  }\n}\n', context: [], maxTokens: 16, multiline: false, timeBudgetMs: 10_000 },
        signal,
      );
      const t = res.trace;
      totals.push(t.totalMs);
      if (i === 0) {
        r.coldPrefillTokens = t.prefillTokens;
        r.coldPrefillMs = t.prefillMs;
      } else {
        r.warmReusedTokens += t.reusedTokens;
        r.warmTotalMs += t.totalMs;
      }
      r.decodeTokens += t.generatedTokens;
      r.decodeMs += t.decodeMs;
      r.runs++;
    }
  } finally {
    await engine.closeDocument(docId).catch(() => undefined);
  }
  totals.sort((a, b) => a - b);
  r.medianTotalMs = totals.length ? totals[Math.floor(totals.length / 2)] : 0;
  return r;
}

export function describeBenchmark(r: BenchResult): string {
  const warmRuns = Math.max(1, r.runs - 1);
  const tokPerS = r.decodeMs > 0 ? (r.decodeTokens / r.decodeMs) * 1000 : 0;
  const prefillPerTok = r.coldPrefillTokens ? r.coldPrefillMs / r.coldPrefillTokens : 0;
  return [
    `${r.runs} runs`,
    `cold prefill ${r.coldPrefillTokens} tokens in ${r.coldPrefillMs.toFixed(0)} ms (${prefillPerTok.toFixed(2)} ms/token)`,
    `warm requests ${(r.warmTotalMs / warmRuns).toFixed(0)} ms on average, ${(r.warmReusedTokens / warmRuns).toFixed(0)} tokens reused`,
    `decode ${tokPerS.toFixed(1)} tokens/s`,
    `median request ${r.medianTotalMs.toFixed(0)} ms`,
  ].join(' · ');
}
