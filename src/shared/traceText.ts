// Request traces in words, shared by the log (one line a request) and Why No Suggestion? (the full story).
import type { RequestTrace } from '../engine/api';
import { MB } from './format';

const n = (x: number): string => x.toLocaleString('en-US');

/**
 * The engine's budget actions (one string per demotion / eviction / windowing step, thousands of them at a small
 * budget) as one short phrase: "demoted 1,234 token-layers (0.4 MB), demoted 56 position groups a tier down
 * (0.2 MB freed), evicted 2 documents, windowed 1 document (1,356 positions dropped)".
 */
export function summariseBudgetActions(actions: string[]): string {
  let demoted = 0,
    demotedBytes = 0,
    tiered = 0,
    tieredBytes = 0,
    band = 0,
    other = 0,
    dropped = 0;
  const evicted = new Set<string>(),
    windowed = new Set<string>();
  for (const a of actions) {
    let m: RegExpExecArray | null;
    if ((m = /^demoted (\d+) token-layers \((\d+) B\)/.exec(a))) {
      demoted += Number(m[1]);
      demotedBytes += Number(m[2]);
    } else if ((m = /^demoted (\d+) position groups one tier down \((\d+) B\)/.exec(a))) {
      tiered += Number(m[1]); // the age cascade (kvCascade.ts): old tokens stored more compactly
      tieredBytes += Number(m[2]);
    } else if ((m = /^band recomputed: (\d+) tokens/.exec(a))) band += Number(m[1]);
    else if ((m = /^evicted (.+)$/.exec(a))) evicted.add(m[1]);
    else if ((m = /^windowed (.+): dropped positions (\d+)\.\.(\d+)$/.exec(a))) {
      windowed.add(m[1]);
      dropped += Number(m[3]) - Number(m[2]) + 1;
    } else other++;
  }
  const parts: string[] = [];
  if (demoted) parts.push(`demoted ${n(demoted)} token-layers (${(demotedBytes / MB).toFixed(2)} MB)`);
  if (tiered)
    parts.push(`demoted ${n(tiered)} position groups a tier down (${(tieredBytes / MB).toFixed(2)} MB freed)`);
  if (band) parts.push(`band recomputed: ${n(band)} tokens`);
  if (evicted.size) parts.push(`evicted ${evicted.size} document${evicted.size > 1 ? 's' : ''}`);
  if (windowed.size)
    parts.push(`windowed ${windowed.size} document${windowed.size > 1 ? 's' : ''} (${n(dropped)} positions dropped)`);
  if (other) parts.push(`${other} other action${other > 1 ? 's' : ''}`);
  return parts.join(', ');
}

/** The log's line for one request: short, fixed order, budget actions summarised. */
export function requestLogLine(tr: RequestTrace, languageId: string, debounceMs: number, chars: number): string {
  const budget = summariseBudgetActions(tr.budgetActions);
  return (
    `#${tr.requestId} ${languageId} ${tr.stopReason}: ${chars} chars in ${tr.totalMs.toFixed(0)} ms ` +
    `(prompt ${tr.reusedTokens} reused + ${tr.prefillTokens} computed, ${tr.prefillMs.toFixed(0)} ms; ` +
    `${tr.generatedTokens} generated of ${tr.modelTokens} picked, +${tr.decodeMs.toFixed(0)} ms; debounce ${debounceMs} ms)` +
    (budget ? `; budget: ${budget}` : '')
  );
}
