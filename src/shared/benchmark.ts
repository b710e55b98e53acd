// "Run Speed Benchmark": a short measurement with the editor's engine code on a realistic ~2k-token TypeScript
// file, run on a private engine instance so it never touches the user's caches or budget.
//
// The model runs the prompt's last chunk and the first batch of greedy decode steps in one graph call
// (docs/model-format.md, format 2), so a request's trace does not split prompt time from decode time: prefillMs
// runs until the first batch of tokens is there, decodeMs only covers further batches. The benchmark therefore
// measures each phase with requests built for it:
//   - cold prefill: the prompt on an empty cache with maxTokens 1 (the graph runs no decode step);
//   - warm requests: what typing does, one character typed at the cursor per run, answered from the reused cache;
//   - decode: on the same cache state, a request for REQUEST_TOKENS tokens minus its prompt-only twin
//     (maxTokens 1), the median per-token time over the runs. Only requests that stopped where the graph's loop stops too are counted (max tokens, EOS,
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

/** Where the benchmark's cursor sits in the sample: the end of the line at this share of the file. */
const CURSOR_AT = 0.6;
/** Typed one character per warm run at the cursor, as a user would. */
const TYPED = '\n    const total = this.used();';
const REQUEST_TOKENS = 16;
/** Stops the graph's decode loop makes as well (single-line requests). */
const LOOP_STOPS: RequestTrace['stopReason'][] = ['max-tokens', 'eos', 'newline'];

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.floor(s.length / 2)] : 0;
};

/** The sample split at a line end ~60 % into the file. */
export function benchmarkSpot(sample: string): { prefix: string; suffix: string } {
  const at = sample.indexOf('\n', Math.floor(sample.length * CURSOR_AT));
  const cut = at < 0 ? sample.length : at;
  return { prefix: sample.slice(0, cut), suffix: sample.slice(cut) };
}

/**
 * Runs on `engine`, which the caller gives the benchmark alone (a private engine: the user's caches and budget
 * are never touched), over the ~2k-token `sample` file.
 */
export async function runBenchmark(
  engine: Engine,
  sample: string,
  runs: number,
  onStep: (i: number) => void,
  signal: AbortSignal,
): Promise<BenchResult> {
  const docId = `mixsga-benchmark:${Date.now()}`;
  const r: BenchResult = {
    runs: 0,
    coldPrefillTokens: 0,
    coldPrefillMs: 0,
    warmRuns: 0,
    warmReusedTokens: 0,
    warmTotalMs: 0,
    medianTotalMs: 0,
    decodeTokens: 0,
    decodeMs: 0,
    decodeSamples: 0,
  };
  const spot = benchmarkSpot(sample);
  const warmTotals: number[] = [];
  const perToken: number[] = [];
  const ask = async (prefix: string, maxTokens: number): Promise<RequestTrace> => {
    const req: CompletionRequest = {
      docId,
      languageId: 'typescript',
      prefix,
      suffix: spot.suffix,
      context: [],
      maxTokens,
      multiline: false,
      timeBudgetMs: 20_000,
    };
    return (await engine.complete(req, signal)).trace;
  };
  try {
    for (let i = 0; i < runs && !signal.aborted; i++) {
      onStep(i);
      const prefix = spot.prefix + TYPED.slice(0, i);
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
      // Decode: a REQUEST_TOKENS request minus its prompt-only twin on the same cache state (the engine truncates
      // back to the prompt after each request), paired, so that the prompt part cancels out run by run.
      const p = await ask(prefix, 1);
      const d = await ask(prefix, REQUEST_TOKENS);
      if (
        LOOP_STOPS.includes(d.stopReason) &&
        d.generatedTokens >= 2 &&
        !['time-budget', 'cancelled', 'error'].includes(p.stopReason)
      ) {
        r.decodeSamples++;
        r.decodeTokens += d.generatedTokens - 1;
        perToken.push(Math.max(0, d.totalMs - p.totalMs) / (d.generatedTokens - 1));
      }
      r.runs++;
    }
  } finally {
    await engine.closeDocument(docId).catch(() => undefined);
  }
  r.medianTotalMs = median(warmTotals);
  // The median per-token time of the samples: one request slowed by the machine must not swing the figure.
  r.decodeMs = median(perToken) * r.decodeTokens;
  return r;
}

export function describeBenchmark(r: BenchResult): string {
  const warmRuns = Math.max(1, r.warmRuns);
  const prefillPerTok = r.coldPrefillTokens ? r.coldPrefillMs / r.coldPrefillTokens : 0;
  const decode =
    r.decodeTokens > 0 && r.decodeMs > 0
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
