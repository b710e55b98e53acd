// Cursor jumps under an age cascade (issue 19, docs/cache-layout.md). Demotion is lossy: the tokens just before a
// new cursor may have been quantised (and pooled) while the cursor was elsewhere, yet they are the band the request
// reads most. The fix the issue suggests: when a view opens at a spot whose preceding `band` tokens are demoted,
// compute that short span again at full precision from its token ids (the engine has them), on top of the cache
// before it. core.ts truncates the view there and runs the span as one chunk; the cache after the span is hidden by
// the view, so nothing else changes. Only the span from the first demoted token to the cursor line is recomputed.
import type { DocCache } from './kvStore';
import { viewOf } from './spotView';

/** Share of the largest chunk the budget can ever admit that a recompute may take: the band must never push the
 * request's own tokens out (budget.maxChunk: what fits with everything else demoted, evicted and windowed). */
export const RECOMPUTE_SHARE = 1 / 4;

export interface BandSpan {
  /** View positions [start, end) to compute again (end = the view's prefix length). */
  start: number;
  end: number;
  /** Tokens of the span found demoted (in a quantised tier). */
  demoted: number;
  /** false: the budget is too small for it (more than RECOMPUTE_SHARE of maxChunk); the band is read as stored. */
  fits: boolean;
}

/** The span to recompute before the open view's cursor line, or undefined when its band is at full precision. */
export function demotedBand(doc: DocCache, maxChunk: number): BandSpan | undefined {
  const c = doc.shape.cascade,
    v = viewOf(doc);
  if (!c || !v || !doc.tiers || c.band === 0) return undefined;
  const shift = v.from - v.head;
  // base positions the band may cover: not the sinks, and with a window only the kept tokens [from, at)
  const lo = Math.max(v.at - c.band, c.sinks, shift > 0 ? v.from : 0);
  let first = v.at,
    demoted = 0;
  for (const t of doc.tiers.tiers[0])
    t.forEach((_r, _s, p) => {
      if (p < lo || p >= v.at) return;
      demoted++;
      first = Math.min(first, p);
    });
  if (demoted === 0) return undefined;
  const end = v.head + v.at - v.from,
    start = first - shift;
  return { start, end, demoted, fits: end - start <= maxChunk * RECOMPUTE_SHARE };
}
