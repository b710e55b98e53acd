// "Run Speed Benchmark": a short in-process measurement through the same engine the editor uses, on a private
// document id so it never touches the user's caches.
//
// The model runs the prompt's last chunk and the first batch of greedy decode steps in one graph call
// (docs/model-format.md, format 2), so a request's trace does not split prompt time from decode time: prefillMs
// runs until the first batch of tokens is there, decodeMs only covers further batches. The benchmark therefore
// measures each phase with requests built for it:
//   - cold prefill: the prompt on an empty cache with maxTokens 1 (the graph runs no decode step);
//   - warm requests: what typing does, one line appended per run, answered from the reused cache;
//   - decode: on the same cache state, a request for REQUEST_TOKENS tokens minus its prompt-only twin
//     (maxTokens 1). Only requests that stopped where the graph's loop stops too are counted (max tokens, EOS,
//     newline in single-line mode: the stop_mask / gen_steps of the format); after a stop the host alone makes
//     (bracket, repetition, ...) the graph may have run the rest of its batch, time without counted tokens.
import type { CompletionRequest, Engine, RequestTrace } from '../engine/api';

export interface BenchResult {
  runs: number;
  /** Prompt tokens of the cold request (empty cache) and its time: the prompt only, no decode step. */
  coldPrefillTokens: number;
  coldPrefillMs: number;
  /** Warm requests (runs after the first): prompt tokens reused and total time, summed. */
  warmRuns: number;
  warmReusedTokens: number;
  warmTotalMs: number;
  /** Median total time of the warm requests. */
  medianTotalMs: number;
  /** Decode steps measured (generated tokens after the first) and their time, over `decodeSamples` requests. */
  decodeTokens: number;
  decodeMs: number;
  decodeSamples: number;
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
const SUFFIX = '\n  }\n}\n';
const REQUEST_TOKENS = 16;
/** Stops the graph's decode loop makes as well (single-line requests). */
const LOOP_STOPS: RequestTrace['stopReason'][] = ['max-tokens', 'eos', 'newline'];

const INTERRUPTED: RequestTrace['stopReason'][] = ['time-budget', 'cancelled', 'error'];

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.floor(s.length / 2)] : 0;
};

export async function runBenchmark(engine: Engine, runs: number, onStep: (i: number) => void, signal: AbortSignal): Promise<BenchResult> {
  const docId = `mixsga-benchmark:${Date.now()}`;
  const r: BenchResult = {
    runs: 0, coldPrefillTokens: 0, coldPrefillMs: 0, warmRuns: 0, warmReusedTokens: 0, warmTotalMs: 0, medianTotalMs: 0,
    decodeTokens: 0, decodeMs: 0, decodeSamples: 0,
  };
  const warmTotals: number[] = [];
  const promptOnly: number[] = [];
  const decodes: RequestTrace[] = [];
  const ask = async (prefix: string, maxTokens: number): Promise<RequestTrace> => {
    const req: CompletionRequest = { docId, languageId: 'typescript', prefix, suffix: SUFFIX, context: [], maxTokens, multiline: false, timeBudgetMs: 10_000 };
    return (await engine.complete(req, signal)).trace;
  };
  try {
    for (let i = 0; i < runs && !signal.aborted; i++) {
      onStep(i);
      // Each run appends a line, so runs after the first measure the incremental (cache-reuse) path.
      const prefix = SAMPLE + '    x += p.x;\n'.repeat(i);
      if (i === 0) {
        const cold = await ask(prefix, 1);
        r.coldPrefillTokens = cold.prefillTokens;
        r.coldPrefillMs = cold.prefillMs;
      } else {
        const warm = await ask(prefix, REQUEST_TOKENS);
        r.warmRuns++;
        r.warmReusedTokens += warm.reusedTokens;
        r.warmTotalMs += warm.totalMs;
        warmTotals.push(warm.totalMs);
      }
      if (signal.aborted) break;
      // The cache now holds this prompt up to <fim_middle> (the engine truncates back to it after a request), so
      // the next two requests start from the same state and compute the same prompt tail.
      const p = await ask(prefix, 1);
      const d = await ask(prefix, REQUEST_TOKENS);
      // maxTokens 1: the graph runs no decode step whatever token it picks; only an interrupted run is no sample.
      if (!INTERRUPTED.includes(p.stopReason)) promptOnly.push(p.totalMs);
      if (LOOP_STOPS.includes(d.stopReason) && d.generatedTokens >= 2) decodes.push(d);
      r.runs++;
    }
  } finally {
    await engine.closeDocument(docId).catch(() => undefined);
  }
  r.medianTotalMs = median(warmTotals);
  if (promptOnly.length && decodes.length) {
    // Median of the prompt-only twins as the baseline: one slow twin must not make a decode sample look free.
    const base = median(promptOnly);
    r.decodeSamples = decodes.length;
    r.decodeTokens = decodes.reduce((a, t) => a + t.generatedTokens - 1, 0);
    r.decodeMs = Math.max(0, decodes.reduce((a, t) => a + t.totalMs, 0) - base * decodes.length);
  }
  return r;
}

export function describeBenchmark(r: BenchResult): string {
  const warmRuns = Math.max(1, r.warmRuns);
  const prefillPerTok = r.coldPrefillTokens ? r.coldPrefillMs / r.coldPrefillTokens : 0;
  const decode = r.decodeTokens > 0 && r.decodeMs > 0
    ? `decode ${((r.decodeTokens / r.decodeMs) * 1000).toFixed(1)} tokens/s (${(r.decodeMs / r.decodeTokens).toFixed(2)} ms/token over ${r.decodeTokens} tokens)`
    : 'decode not measured (no request stopped where the model stops)';
  return [
    `${r.runs} runs`,
    `cold prefill ${r.coldPrefillTokens} tokens in ${r.coldPrefillMs.toFixed(0)} ms (${prefillPerTok.toFixed(2)} ms/token)`,
    `warm requests ${(r.warmTotalMs / warmRuns).toFixed(0)} ms on average, ${(r.warmReusedTokens / warmRuns).toFixed(0)} tokens reused`,
    decode,
    `median warm request ${r.medianTotalMs.toFixed(0)} ms`,
  ].join(' · ');
}
