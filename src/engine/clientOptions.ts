// EngineClient's start options and the engine process's allocator settings (client.ts).
import type { EngineOptions } from './api';
import type { RssCapOptions } from './rssCap';

export interface EngineStartOptions extends EngineOptions {
  /** Path of the bundled engine process script; default: worker.js next to this bundle. */
  workerPath?: string;
  /** Enables the engine process's crash hooks (tests only). */
  testHooks?: boolean;
  /** Restart delays; their count bounds the retries before `failed`. */
  restartBackoffMs?: number[];
  /** How long a graceful shutdown may take before the engine process is killed (default 5000 ms). */
  shutdownTimeoutMs?: number;
  /** Deadline of a call without a time budget of its own (default 120 s; memory(): a tenth of it). A complete()
   *  gets its timeBudgetMs plus this grace. A call past its deadline resolves as if the engine were unavailable. */
  callTimeoutMs?: number;
  /** Environment added for the engine process instead of LEAN_MALLOC_ENV (measurements of the memory settings). */
  childEnv?: NodeJS.ProcessEnv;
  /** The engine process's RSS cap, enforced by a restart at idle (rssCap.ts); false: none. Default on. */
  rssCap?: RssCapOptions | false;
}

/**
 * glibc malloc settings for the engine process: few arenas (ORT's thread pool otherwise gets one each, and freed
 * memory stays in them) and a fixed, low mmap threshold, so buffers from 32 KB up (KV arrays, run outputs: logits are
 * 125 KB) are mmapped and go back to the system when freed; in the main heap they fragmented it and it grew with
 * every few hundred requests (docs/soak.md). The default threshold also rises after the first large free.
 */
export const LEAN_MALLOC_ENV: NodeJS.ProcessEnv = {
  MALLOC_ARENA_MAX: '2',
  MALLOC_MMAP_THRESHOLD_: '32768',
  MALLOC_TRIM_THRESHOLD_: '1048576',
};
