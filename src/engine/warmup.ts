// The largest run the engine can make, run once when the engine process starts (CPU), so that the RSS the process
// reports with 'ready' — the base of the RSS cap (rssCap.ts) — already holds ORT's working memory. ORT's CPU arena
// keeps the working set of the largest run for the session's life (docs/soak.md): ~65–75 MB for the shipped model
// at a full context, reached by the first long prompt. Measured before any run, that memory was counted against the
// cap's headroom, so a process with a full KV budget sat over its cap at every pause and was restarted for nothing.
// The arena grows with the context the graph attends, not with the chunk (64- and 256-token chunks left the same
// arena at a 6 KB prompt): the worst case is a full chunk plus a full batch of decode steps ending at the last
// position, on a cache of zeros held by the expert with the most KV heads.
import type { Manifest } from './manifest';
import type { RunRequest } from './runner';
import type { KvArray } from './kvStore';

export interface WorstCaseRun {
  /** Tokens already cached (all on expert 0) before the chunk. */
  pastTokens: number;
  chunk: number;
  genSteps: number;
}

/** The run that ends at the last position the graph can take (core.ts caps decode steps there). */
export function worstCaseRun(maxPositions: number, chunk: number, decodeSteps: number): WorstCaseRun {
  const last = maxPositions - 1; // startPos + chunk + genSteps never passes it
  const genSteps = Math.max(0, Math.min(decodeSteps, last - 1));
  const c = Math.max(1, Math.min(chunk, last - genSteps));
  return { pastTokens: last - genSteps - c, chunk: c, genSteps };
}

/** Graph inputs for that run: a request that never stops early, and a cache of zeros, as DocCache.feeds() gives it
 * (`past.<layer>.<expert>`, [1, n, 2, heads, headDim]). One zero array serves every layer (ORT only reads it). */
export function worstCaseFeeds(
  manifest: Manifest,
  w: WorstCaseRun,
  kvType: 'float32' | 'float16',
): { req: RunRequest; past: { name: string; data: KvArray; dims: number[] }[] } {
  const a = manifest.architecture;
  const heads = manifest.experts.map((e) => e.kv_heads);
  const zeros = (n: number) => (kvType === 'float16' ? new Uint16Array(n) : new Float32Array(n));
  const full = zeros(w.pastTokens * 2 * heads[0] * a.head_dim);
  const past: { name: string; data: KvArray; dims: number[] }[] = [];
  for (let l = 0; l < a.num_layers; l++) {
    heads.forEach((h, e) => {
      const n = e === 0 ? w.pastTokens : 0;
      past.push({ name: `past.${l}.${e}`, data: e === 0 ? full : zeros(0), dims: [1, n, 2, h, a.head_dim] });
    });
  }
  const req: RunRequest = {
    ids: Array.from({ length: w.chunk }, (_, i) => 3 + (i % 1000)),
    startPos: w.pastTokens,
    routeBias: Float32Array.from(heads, (_, e) => (e === 0 ? 0 : -1e4)), // new tokens on expert 0 too
    genSteps: w.genSteps,
    stopMask: new Uint8Array(a.vocab_size),
  };
  return { req, past };
}
