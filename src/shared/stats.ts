// Request history the UI shows: the last trace (Why No Suggestion?) and a latency histogram (memory panel).
import type { RequestTrace } from '../engine/api';

export interface ProviderTrace {
  at: number;
  docId: string;
  /** Where the request ended before or inside the engine. */
  outcome: 'shown' | 'cached' | 'empty' | 'skipped' | 'cancelled' | 'error';
  reason?: string;
  debounceMs: number;
  waitMs: number;
  engine?: RequestTrace;
  chars: number;
}

export const LATENCY_BUCKETS_MS = [25, 50, 100, 200, 400, 800, 1600, Infinity];

export class Stats {
  last: ProviderTrace | undefined;
  readonly histogram = LATENCY_BUCKETS_MS.map(() => 0);
  requests = 0;
  served = 0;
  cacheHits = 0;

  record(t: ProviderTrace): void {
    this.last = t;
    this.requests++;
    if (t.outcome === 'cached') this.cacheHits++;
    if (t.outcome === 'shown' || t.outcome === 'cached') this.served++;
    if (t.engine && t.outcome !== 'cancelled') {
      const i = LATENCY_BUCKETS_MS.findIndex((b) => t.engine!.totalMs <= b);
      this.histogram[i]++;
    }
  }
}
