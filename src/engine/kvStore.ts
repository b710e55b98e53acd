// Per-document KV cache in mixSGA layout: for every layer l and expert e, the tokens routed there, pooled to
// H_e heads. Pure data structure (no ORT); the budget policy lives in budget.ts.
//
// Memory layout of one segment (layer l, expert e) with capacity C (grown ×1.5, never shrunk below use):
//   data    : KV dtype array [C][2][H_e][D], token-major: per token its key heads, then its value heads. The
//             first n rows are exactly the graph input past.{l}.{e} [1, n, 2, H_e, D], so a feed is a
//             zero-copy view (Float32Array for kv_dtype float32, Uint16Array of fp16 bits for float16)
//   pos     : Int32Array [C]      the token's absolute position (= its index in the document's prompt ids)
//   scores  : Float32Array [C][E] the token's router scores at this layer (ranks tokens for demotion)
// Per document: ids : Int32Array [N] token ids of the cached prompt prefix (including tokens windowed out,
// so prefix matching still works after windowing).
//
// Counted bytes (what the budget sees), exact for the entries held:
//   per segment entry: 2·H_e·D·bpe (K+V) + 4 (pos) + 4·E (scores);   per document token id: 4.
// Spare capacity (preallocated growth) is not counted; it is at most half of a segment's used size
// plus 16 entries and is released when a document is dropped.
import type { KvDtype } from './manifest';
import { f16ToF32, f32ToF16 } from './fp16';

export type KvArray = Float32Array | Uint16Array;

export interface KvShape {
  layers: number;
  /** kv heads of each expert; heads[0] = H. */
  heads: number[];
  headDim: number;
  dtype: KvDtype;
}

export const bytesPerElem = (d: KvDtype) => (d === 'float32' ? 4 : 2);
export const ID_BYTES = 4;
export const entryBytes = (s: KvShape, e: number) =>
  2 * s.heads[e] * s.headDim * bytesPerElem(s.dtype) + 4 + 4 * s.heads.length;
/** Worst-case bytes for one new token (every layer at expert 0) plus its id. */
export const fullTokenBytes = (s: KvShape) => s.layers * entryBytes(s, 0) + ID_BYTES;

/**
 * What one model run hands back for the tokens it processed (graph outputs `route`, `scores`, `kv.{e}`,
 * docs/model-format.md): `n` tokens, for each layer l and token t its expert route[l·n + t] and scores
 * [l·n + t][E]; kv[e] holds the rows [2][H_e][D] of the tokens routed to e, ordered by layer, then token.
 */
export interface RunKv {
  n: number;
  route: Int32Array;
  scores: Float32Array;
  kv: KvArray[];
}

/** Tokens of one (layer, expert). */
export class Segment {
  n = 0;
  cap = 0;
  data: KvArray;
  pos = new Int32Array(0);
  scores = new Float32Array(0);
  /** Elements per token: 2·H_e·D. */
  readonly row: number;
  constructor(readonly heads: number, readonly D: number, readonly E: number, readonly dtype: KvDtype) {
    this.row = 2 * heads * D;
    this.data = this.alloc(0);
  }
  private alloc(n: number): KvArray {
    return this.dtype === 'float32' ? new Float32Array(n) : new Uint16Array(n);
  }
  /** Makes room for `extra` more entries (amortised O(1) per entry). */
  reserve(extra: number): void {
    const need = this.n + extra;
    if (need <= this.cap) return;
    const cap = Math.max(need, Math.ceil(this.cap * 1.5), 16);
    const data = this.alloc(cap * this.row);
    data.set(this.data.subarray(0, this.n * this.row));
    const pos = new Int32Array(cap); pos.set(this.pos.subarray(0, this.n));
    const sc = new Float32Array(cap * this.E); sc.set(this.scores.subarray(0, this.n * this.E));
    this.data = data; this.pos = pos; this.scores = sc; this.cap = cap;
  }
  /** Offset of slot s's key heads in data (its value heads follow at + heads·D). */
  at(s: number): number { return s * this.row; }
  /** Keeps the entries whose slot passes `keep`, preserving order. Returns how many were removed. */
  compact(keep: (slot: number) => boolean): number {
    const { row, E } = this;
    let w = 0;
    for (let r = 0; r < this.n; r++) {
      if (!keep(r)) continue;
      if (w !== r) {
        this.data.copyWithin(w * row, r * row, (r + 1) * row);
        this.pos[w] = this.pos[r];
        this.scores.copyWithin(w * E, r * E, r * E + E);
      }
      w++;
    }
    const removed = this.n - w;
    this.n = w;
    return removed;
  }
  /** The graph input past.{l}.{e}: [1, n, 2, H_e, D], a view of the first n rows (no copy). */
  feed(): KvArray { return this.data.subarray(0, this.n * this.row); }
}

export class DocCache {
  ids = new Int32Array(64);
  nIds = 0;
  /** Tokens moved out of the segments while a prefix view is open (spotView.ts); their bytes count here too. */
  parked?: { bytes(): number };
  /** segs[l][e] */
  readonly segs: Segment[][];
  constructor(readonly shape: KvShape) {
    const E = shape.heads.length;
    this.segs = Array.from({ length: shape.layers }, () =>
      shape.heads.map((h) => new Segment(h, shape.headDim, E, shape.dtype)));
  }

  get tokenIds(): Int32Array { return this.ids.subarray(0, this.nIds); }

  /** Bytes held, per the layout at the top of this file. */
  bytes(): number {
    let b = this.nIds * ID_BYTES;
    for (const row of this.segs) row.forEach((s, e) => { b += s.n * entryBytes(this.shape, e); });
    return b + (this.parked?.bytes() ?? 0);
  }

  /** Cached entries per layer (tokens still attended to; ≤ nIds after windowing). */
  heldTokens(l = 0): number { return this.segs[l].reduce((a, s) => a + s.n, 0); }

  /** Longest common prefix of the cached ids and `ids`. */
  commonPrefix(ids: ArrayLike<number>): number {
    const n = Math.min(this.nIds, ids.length);
    let i = 0;
    while (i < n && this.ids[i] === ids[i]) i++;
    return i;
  }

  /**
   * Appends the tokens a run processed: their ids (positions nIds..nIds+n-1) and, per layer and expert, the
   * run's pooled K/V rows — one contiguous copy per (layer, expert).
   */
  append(ids: ArrayLike<number>, run: RunKv): void {
    const S = ids.length, start = this.nIds, E = this.shape.heads.length;
    if (run.n !== S) throw new Error(`append: ${S} ids but the run processed ${run.n} tokens`);
    if (this.nIds + S > this.ids.length) {
      const grown = new Int32Array(Math.max(this.nIds + S, this.ids.length * 2));
      grown.set(this.tokenIds);
      this.ids = grown;
    }
    for (let t = 0; t < S; t++) this.ids[start + t] = ids[t];
    this.nIds += S;
    const offset = new Array<number>(E).fill(0); // next row of run.kv[e]
    for (let l = 0; l < this.shape.layers; l++) {
      const route = run.route.subarray(l * S, (l + 1) * S);
      const counts = new Array<number>(E).fill(0);
      for (let t = 0; t < S; t++) counts[route[t]]++;
      this.segs[l].forEach((seg, e) => {
        const c = counts[e];
        if (c === 0) return;
        seg.reserve(c);
        const src = run.kv[e];
        if ((offset[e] + c) * seg.row > src.length) throw new Error(`append: kv.${e} has too few rows for layer ${l}`);
        seg.data.set(src.subarray(offset[e] * seg.row, (offset[e] + c) * seg.row), seg.n * seg.row);
        offset[e] += c;
        let slot = seg.n;
        for (let t = 0; t < S; t++) {
          if (route[t] !== e) continue;
          seg.pos[slot] = start + t;
          seg.scores.set(run.scores.subarray((l * S + t) * E, (l * S + t + 1) * E), slot * E);
          slot++;
        }
        seg.n = slot;
      });
    }
  }

  /** Drops every cached token at position ≥ n (after an edit, n = common prefix with the new prompt). */
  truncate(n: number): void {
    if (n >= this.nIds) return;
    this.nIds = n;
    for (const row of this.segs) for (const s of row) {
      let any = false;
      for (let i = 0; i < s.n; i++) if (s.pos[i] >= n) { any = true; break; }
      if (any) s.compact((i) => s.pos[i] < n);
    }
  }

  /**
   * Moves the given slots of segment (l, e) to the coarser expert e2 > e, mean-pooling their stored heads again
   * (exact: mean of equal-size adjacent group means). Returns bytes freed.
   */
  demote(l: number, e: number, slots: number[], e2: number): number {
    if (slots.length === 0) return 0;
    if (!(e2 > e)) throw new Error(`demote: expert ${e2} is not coarser than ${e}`);
    const src = this.segs[l][e], dst = this.segs[l][e2], D = this.shape.headDim, E = this.shape.heads.length;
    const r = src.heads / dst.heads, f16 = this.shape.dtype === 'float16';
    dst.reserve(slots.length);
    const moving = new Uint8Array(src.n);
    const a = src.data, b = dst.data;
    for (const s of slots) {
      if (moving[s]) continue;
      moving[s] = 1;
      const slot = dst.n;
      for (let kv = 0; kv < 2; kv++) { // keys, then values
        const from = src.at(s) + kv * src.heads * D, to = dst.at(slot) + kv * dst.heads * D;
        for (let j = 0; j < dst.heads; j++) {
          for (let d = 0; d < D; d++) {
            let acc = 0;
            for (let h = j * r; h < (j + 1) * r; h++) { const x = a[from + h * D + d]; acc += f16 ? f16ToF32(x) : x; }
            b[to + j * D + d] = f16 ? f32ToF16(acc / r) : acc / r;
          }
        }
      }
      dst.pos[slot] = src.pos[s];
      dst.scores.set(src.scores.subarray(s * E, (s + 1) * E), slot * E);
      dst.n++;
    }
    const moved = src.compact((i) => !moving[i]);
    return moved * (entryBytes(this.shape, e) - entryBytes(this.shape, e2));
  }

  /**
   * Windowing: keeps positions < sink and ≥ keepFrom in every layer, drops the rest from attention. Token ids stay
   * (prefix matching), positions of kept tokens are unchanged (RoPE was applied when they were computed).
   */
  window(sink: number, keepFrom: number): number {
    const before = this.bytes();
    for (const row of this.segs) for (const s of row) s.compact((i) => s.pos[i] < sink || s.pos[i] >= keepFrom);
    return before - this.bytes();
  }

  /** ORT feed payloads: past.{l}.{e} as [1, T, 2, H_e, D] views of the cache (T may be 0). */
  feeds(): { name: string; data: KvArray; dims: number[] }[] {
    const out: { name: string; data: KvArray; dims: number[] }[] = [];
    this.segs.forEach((row, l) => row.forEach((s, e) => {
      out.push({ name: `past.${l}.${e}`, data: s.feed(), dims: [1, s.n, 2, s.heads, s.D] });
    }));
    return out;
  }

  /** Entries per expert, summed over layers. */
  expertEntries(): number[] {
    const c = new Array<number>(this.shape.heads.length).fill(0);
    for (const row of this.segs) row.forEach((s, e) => { c[e] += s.n; });
    return c;
  }
}
