// Adaptive debounce: wait less when the user has just typed along one of our suggestions (they are in the flow
// and the engine's cache is warm), wait more during fast bursts of typing (the request would be stale anyway).
export class AdaptiveDebounce {
  private lastCall = 0;
  private gapEma = 300;

  delay(baseMs: number, explicit: boolean, followedSuggestion: boolean): number {
    const now = Date.now();
    const gap = now - this.lastCall;
    this.lastCall = now;
    if (gap < 5_000) this.gapEma = 0.7 * this.gapEma + 0.3 * gap;
    if (explicit) return 0;
    if (followedSuggestion) return Math.round(baseMs / 3);
    if (this.gapEma < baseMs / 2) return Math.round(baseMs * 1.5);
    return baseMs;
  }
}

/** Resolves true after ms, or false as soon as the signal aborts. */
export function sleep(ms: number, signal: AbortSignal): Promise<boolean> {
  if (signal.aborted) return Promise.resolve(false);
  if (ms <= 0) return Promise.resolve(true);
  return new Promise((resolve) => {
    const t = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve(true);
    }, ms);
    const onAbort = (): void => {
      clearTimeout(t);
      resolve(false);
    };
    signal.addEventListener('abort', onAbort, { once: true });
  });
}
