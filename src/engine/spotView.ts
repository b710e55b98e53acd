// A prefix VIEW of a document's cache (docs/cache-layout.md). The cache holds the document in document order
// ("base": [BOS] context <fim_prefix> text...), so the text before any cursor line is a prefix of it. A request at
// a cursor hides the base tokens from the cursor line on (and, in long files, a window of old tokens after the
// head), runs its own tokens (<fim_suffix> suffix <fim_middle> line) on top of what is left, and later restores
// the hidden tokens: a jump recomputes only the request's own tokens, not the document.
//
// Hidden entries are moved out of the segments (one copy per jump, not per model run), so every run's feed stays a
// zero-copy view of the first rows of each segment. Their bytes still count (DocCache.bytes() adds them).
// Tokens kept after a hidden window are moved down to follow the head: their keys are rotated by -shift (RoPE is a
// rotation by position·θ_i; a pooled head is a mean of heads rotated by the same angles, so it rotates exactly too).
import { DocCache, Segment } from './kvStore';
import { Rope, ropeTables, rotateHeads } from './rope';

export type { Rope } from './rope';

export interface ViewSpec {
  /** Positions [0, head) are kept in place (BOS, context, <fim_prefix>). */
  head: number;
  /** Positions [head, from) are hidden; [from, at) are kept, moved down by from − head. from = head: no window. */
  from: number;
  /** Positions ≥ at (the cursor line and everything after it) are hidden. */
  at: number;
}

export interface OpenView extends ViewSpec {
  /** The base's ids (every position, hidden ones included). */
  baseIds: Int32Array;
  /** hidden[l][e]: the hidden entries of segment (l, e), with their base positions. */
  hidden: Segment[][];
  /** Allocated bytes of the hidden entries and the base's ids (the budget counts them). */
  bytes(): number;
  /** Bytes of the hidden entries in use (reports). */
  usedBytes(): number;
}

export const viewOf = (doc: DocCache): OpenView | undefined => doc.parked as OpenView | undefined;
export const viewShift = (v: ViewSpec): number => v.from - v.head;
/** Length of the view's prefix (what a request's own tokens follow). */
export const viewLength = (v: ViewSpec): number => v.head + v.at - v.from;

/** Appends the given slots (ascending) of `from` to `to`, one copy per run of consecutive slots. */
function moveRows(from: Segment, slots: number[], to: Segment): void {
  const E = from.E,
    row = from.row;
  to.reserve(slots.length);
  for (let i = 0; i < slots.length;) {
    let j = i + 1;
    while (j < slots.length && slots[j] === slots[j - 1] + 1) j++;
    const a = slots[i],
      n = j - i;
    to.data.set(from.data.subarray(a * row, (a + n) * row), to.n * row);
    to.pos.set(from.pos.subarray(a, a + n), to.n);
    to.scores.set(from.scores.subarray(a * E, (a + n) * E), to.n * E);
    to.n += n;
    i = j;
  }
}

/** Rotates the key heads of the given slots by `delta` positions (negative: earlier). */
export function rotateKeys(seg: Segment, slots: Iterable<number>, delta: number, rope: Rope, f16: boolean): void {
  const t = ropeTables(delta, rope, seg.D);
  for (const s of slots) rotateHeads(seg.data, seg.at(s), seg.heads, seg.D, t, f16); // keys lead a row, values follow
}

/** Hides the base positions outside [0, head) ∪ [from, at) and moves [from, at) down to follow the head. */
export function openView(doc: DocCache, spec: ViewSpec, rope: Rope): void {
  if (doc.parked) throw new Error('openView: a view is already open');
  const { head, from, at } = spec;
  if (!(head <= from && from <= at && at <= doc.nIds))
    throw new Error(`openView: bad view ${head}/${from}/${at} of ${doc.nIds}`);
  const shift = from - head,
    f16 = doc.shape.dtype === 'float16';
  const hide = (p: number) => (p >= head && p < from) || p >= at;
  const hidden = doc.segs.map((row) => row.map((s) => new Segment(s.heads, s.D, s.E, s.dtype)));
  doc.segs.forEach((row, l) =>
    row.forEach((s, e) => {
      const slots: number[] = [];
      for (let i = 0; i < s.n; i++) if (hide(s.pos[i])) slots.push(i);
      // the moved rows' room is given back at once, so the allocated total does not grow by the hidden copy
      if (slots.length) {
        moveRows(s, slots, hidden[l][e]);
        s.compact((i) => !hide(s.pos[i]));
        s.fit(0);
      }
      if (shift === 0) return;
      const band: number[] = [];
      for (let i = 0; i < s.n; i++)
        if (s.pos[i] >= from) {
          band.push(i);
          s.pos[i] -= shift;
        }
      rotateKeys(s, band, -shift, rope, f16);
    }),
  );
  const baseIds = doc.tokenIds.slice();
  doc.ids.copyWithin(head, from, at);
  doc.nIds = head + at - from;
  const view: OpenView = {
    head,
    from,
    at,
    baseIds,
    hidden,
    bytes: () =>
      hidden.reduce((b, row) => row.reduce((c, s) => c + s.allocatedBytes(), b), 0) + view.baseIds.byteLength,
    usedBytes: () =>
      hidden.reduce((b, row) => row.reduce((c, s) => c + s.n * (s.row * (f16 ? 2 : 4) + 4 + 4 * s.E), b), 0) +
      (view.baseIds.length - viewLength(view)) * 4,
  };
  doc.parked = view;
}

/** Drops the request's tokens (everything after the view's prefix) and restores the base. */
export function closeView(doc: DocCache, rope: Rope): void {
  const v = viewOf(doc);
  if (!v) return;
  const { head, from } = v,
    shift = from - head,
    f16 = doc.shape.dtype === 'float16';
  const end = viewLength(v);
  doc.parked = undefined;
  doc.truncateSegs(end); // the request's tokens; tiers hold base tokens only
  doc.segs.forEach((row, l) =>
    row.forEach((s, e) => {
      if (shift !== 0) {
        const band: number[] = [];
        for (let i = 0; i < s.n; i++)
          if (s.pos[i] >= head) {
            band.push(i);
            s.pos[i] += shift;
          }
        rotateKeys(s, band, shift, rope, f16);
      }
      const h = v.hidden[l][e];
      moveRows(
        h,
        Array.from({ length: h.n }, (_, i) => i),
        s,
      );
    }),
  );
  if (v.baseIds.length > doc.ids.length) doc.ids = new Int32Array(v.baseIds.length);
  doc.ids.set(v.baseIds);
  doc.nIds = v.baseIds.length;
}

/** Frees the hidden tokens after the cursor (a cache for later jumps only) when the budget needs their bytes. */
export function dropHiddenTail(doc: DocCache): number {
  const v = viewOf(doc);
  if (!v) return 0;
  const before = v.bytes() + (doc.tiers?.bytes() ?? 0);
  doc.tiers?.dropFrom(v.at);
  for (const row of v.hidden)
    for (const s of row) {
      s.compact((i) => s.pos[i] < v.at);
      s.fit(0);
    }
  v.baseIds = v.baseIds.slice(0, v.at);
  return before - v.bytes() - (doc.tiers?.bytes() ?? 0);
}
