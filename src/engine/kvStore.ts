// Per-document KV cache in mixSGA layout: for every layer l and expert e, the tokens routed there, pooled to
// H_e heads. Pure data structure (no ORT); the budget policy lives in budget.ts.
//
// Memory layout of one segment (layer l, expert e) with capacity C ≥ n entries:
//   data    : KV dtype array [C][2][H_e][D], token-major: per token its key heads, then its value heads. The
//             first n rows are exactly the graph input past.{l}.{e} [1, n, 2, H_e, D], so a feed is a
//             zero-copy view (Float32Array for kv_dtype float32, Uint16Array of fp16 bits for float16)
//   pos     : Int32Array [C]      the token's absolute position (= its index in the document's prompt ids)
//   scores  : Float32Array [C][E] the token's router scores at this layer (ranks tokens for demotion)
// Per document: ids : Int32Array [C_ids ≥ N] token ids of the cached prompt prefix (including tokens windowed
// out, so prefix matching still works after windowing).
//
// Counted bytes (what the budget sees) = what is allocated, not what is used:
//   Σ_segments C·(2·H_e·D·bpe + 4 + 4·E)  +  4·C_ids  +  docOverheadBytes (a fixed estimate of the JS objects:
//   SEG_OVERHEAD per segment + DOC_OVERHEAD_BASE per document, independent of the token count).
// Spare capacity (C − n) is therefore counted too. It is granted on append only out of the caller's allowance
// (the budget's reservation for the run), at most max(16, n/2) entries per array; removing tokens (truncate,
// window, demote) shrinks an array whose spare exceeds that, and trimSpare() drops all of it.
//
// With an age cascade (shape.cascade, kvCascade.ts) the segments of expert 0 hold only the sinks, the band and
// the request's tokens; every older token sits in a quantised tier (DocCache.tiers), whose codes and scales are
// counted as allocated (kvTier.ts) and whose feeds are dequantised for each run.
import type { KvDtype } from './manifest';
import { f16ToF32, f32ToF16 } from './fp16';
import { Cascade, DocTiers } from './kvCascade';

export type KvArray = Float32Array | Uint16Array;

export interface KvShape {
  layers: number;
  /** kv heads of each expert; heads[0] = H. */
  heads: number[];
  headDim: number;
  dtype: KvDtype;
  /** The graph's KV dtype where it differs from the stored `dtype` (only with a cascade, whose feeds are built per
   * run: its full-precision rows stored fp16 for an fp32 graph, kvCascade.ts). */
  feedDtype?: KvDtype;
  /** Age cascade of quantised tiers (issue 19); absent: router-score demotion between experts. */
  cascade?: Cascade;
}

export const bytesPerElem = (d: KvDtype) => (d === 'float32' ? 4 : 2);
export const ID_BYTES = 4;
export const entryBytes = (s: KvShape, e: number) =>
  2 * s.heads[e] * s.headDim * bytesPerElem(s.dtype) + 4 + 4 * s.heads.length;
/** Worst-case bytes for one new token (every layer at expert 0) plus its id. */
export const fullTokenBytes = (s: KvShape) => s.layers * entryBytes(s, 0) + ID_BYTES;
/** Estimated bytes of V8 objects per segment (Segment + 3 typed arrays with their ArrayBuffers). */
export const SEG_OVERHEAD = 640;
/** Estimated bytes of V8 objects per document besides its segments (DocCache, arrays, ids, LRU entry). */
export const DOC_OVERHEAD_BASE = 1024;
/** Fixed bytes one document counts even when empty. */
export const docOverheadBytes = (s: KvShape) =>
  DOC_OVERHEAD_BASE + s.layers * (s.heads.length + (s.cascade?.stores.length ?? 0)) * SEG_OVERHEAD;
/** Most spare entries an array keeps beyond its n used ones. */
export const spareFor = (n: number) => Math.max(16, Math.ceil(n / 2));

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
  constructor(
    readonly heads: number,
    readonly D: number,
    readonly E: number,
    readonly dtype: KvDtype,
  ) {
    this.row = 2 * heads * D;
    this.data = this.alloc(0);
  }
  private alloc(n: number): KvArray {
    return this.dtype === 'float32' ? new Float32Array(n) : new Uint16Array(n);
  }
  /** Bytes one entry takes in the three arrays. */
  get entryBytes(): number {
    return this.row * this.data.BYTES_PER_ELEMENT + 4 + 4 * this.E;
  }
  /** Bytes allocated by the three arrays (capacity, not use). */
  allocatedBytes(): number {
    return this.data.byteLength + this.pos.byteLength + this.scores.byteLength;
  }
  /** Makes room for `extra` more entries plus up to `spare` more; returns the bytes newly allocated. */
  reserve(extra: number, spare = 0): number {
    const need = this.n + extra;
    if (need <= this.cap) return 0;
    const before = this.allocatedBytes();
    this.resize(need + Math.max(0, spare));
    return this.allocatedBytes() - before;
  }
  /** Shrinks the arrays to n + `spare` entries when they hold more; returns the bytes given back. */
  fit(spare = 0): number {
    if (this.cap <= this.n + spare) return 0;
    const before = this.allocatedBytes();
    this.resize(this.n + spare);
    return before - this.allocatedBytes();
  }
  private resize(cap: number): void {
    const data = this.alloc(cap * this.row);
    data.set(this.data.subarray(0, this.n * this.row));
    const pos = new Int32Array(cap);
    pos.set(this.pos.subarray(0, this.n));
    const sc = new Float32Array(cap * this.E);
    sc.set(this.scores.subarray(0, this.n * this.E));
    this.data = data;
    this.pos = pos;
    this.scores = sc;
    this.cap = cap;
  }
  /** Offset of slot s's key heads in data (its value heads follow at + heads·D). */
  at(s: number): number {
    return s * this.row;
  }
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
  feed(): KvArray {
    return this.data.subarray(0, this.n * this.row);
  }
}

export class DocCache {
  ids = new Int32Array(0);
  nIds = 0;
  /** Tokens moved out of the segments while a prefix view is open (spotView.ts); their bytes count here too:
   * bytes() = allocated (what the budget counts), usedBytes() = in use (reports). */
  parked?: { bytes(): number; usedBytes(): number };
  /** segs[l][e] */
  readonly segs: Segment[][];
  /** The quantised tiers of an age cascade (shape.cascade). */
  readonly tiers?: DocTiers;
  constructor(readonly shape: KvShape) {
    const E = shape.heads.length;
    this.segs = Array.from({ length: shape.layers }, () =>
      shape.heads.map((h) => new Segment(h, shape.headDim, E, shape.dtype)),
    );
    if (shape.cascade) this.tiers = new DocTiers(this, shape.cascade);
  }

  get tokenIds(): Int32Array {
    return this.ids.subarray(0, this.nIds);
  }

  /** Bytes allocated, per the layout at the top of this file (what the budget counts). */
  bytes(): number {
    let b =
      docOverheadBytes(this.shape) + this.ids.byteLength + (this.parked?.bytes() ?? 0) + (this.tiers?.bytes() ?? 0);
    for (const row of this.segs) for (const s of row) b += s.allocatedBytes();
    return b;
  }

  /** Bytes of the entries in use (no spare capacity, no overhead): for reports. */
  usedBytes(): number {
    let b = this.nIds * ID_BYTES;
    for (const row of this.segs)
      row.forEach((s, e) => {
        b += s.n * entryBytes(this.shape, e);
      });
    return b + (this.parked?.usedBytes() ?? 0) + (this.tiers?.bytes() ?? 0);
  }

  /** Drops all spare capacity (exact-size arrays); returns the bytes given back. */
  trimSpare(): number {
    let freed = this.fitIds(0);
    for (const row of this.segs) for (const s of row) freed += s.fit(0);
    return freed;
  }

  private fitIds(spare: number): number {
    if (this.ids.length <= this.nIds + spare) return 0;
    const before = this.ids.byteLength;
    this.ids = this.ids.slice(0, this.nIds + spare);
    return before - this.ids.byteLength;
  }

  /** Cached entries per layer (tokens still attended to; ≤ nIds after windowing). */
  heldTokens(l = 0): number {
    return this.segs[l].reduce((a, s) => a + s.n, 0) + (this.tiers?.count(l) ?? 0);
  }

  /** Longest common prefix of the cached ids and `ids`. */
  commonPrefix(ids: ArrayLike<number>): number {
    const n = Math.min(this.nIds, ids.length);
    let i = 0;
    while (i < n && this.ids[i] === ids[i]) i++;
    return i;
  }

  /**
   * Appends the tokens a run processed: their ids (positions nIds..nIds+n-1) and, per layer and expert, the
   * run's pooled K/V rows — one contiguous copy per (layer, expert). Arrays that must grow get exactly what
   * they need plus spare capacity paid out of `allowance` bytes (the part of it the exact growth leaves).
   */
  append(ids: ArrayLike<number>, run: RunKv, allowance = Infinity): void {
    const S = ids.length,
      start = this.nIds,
      E = this.shape.heads.length,
      L = this.shape.layers;
    if (run.n !== S) throw new Error(`append: ${S} ids but the run processed ${run.n} tokens`);
    const counts = Array.from({ length: L }, (_, l) => {
      const c = new Array<number>(E).fill(0);
      for (let t = 0; t < S; t++) c[run.route[l * S + t]]++;
      return c;
    });
    // Exact growth first; what the allowance leaves is shared out as spare capacity.
    let spareLeft = allowance - (this.nIds + S > this.ids.length ? (this.nIds + S - this.ids.length) * ID_BYTES : 0);
    this.segs.forEach((row, l) =>
      row.forEach((seg, e) => {
        if (seg.n + counts[l][e] > seg.cap) spareLeft -= (seg.n + counts[l][e] - seg.cap) * seg.entryBytes;
      }),
    );
    const spare = (n: number, perEntry: number) => {
      const k = Math.max(0, Math.min(spareFor(n), Math.floor(spareLeft / perEntry)));
      spareLeft -= k * perEntry;
      return k;
    };
    if (this.nIds + S > this.ids.length) {
      const grown = new Int32Array(this.nIds + S + spare(this.nIds + S, ID_BYTES));
      grown.set(this.tokenIds);
      this.ids = grown;
    }
    for (let t = 0; t < S; t++) this.ids[start + t] = ids[t];
    this.nIds += S;
    const offset = new Array<number>(E).fill(0); // next row of run.kv[e]
    for (let l = 0; l < L; l++) {
      const route = run.route.subarray(l * S, (l + 1) * S);
      this.segs[l].forEach((seg, e) => {
        const c = counts[l][e];
        if (c === 0) return;
        if (seg.n + c > seg.cap) seg.reserve(c, spare(seg.n + c, seg.entryBytes));
        const src = run.kv[e];
        if ((offset[e] + c) * seg.row > src.length) throw new Error(`append: kv.${e} has too few rows for layer ${l}`);
        const rows = src.subarray(offset[e] * seg.row, (offset[e] + c) * seg.row);
        if (rows instanceof Float32Array && seg.data instanceof Uint16Array)
          for (let j = 0; j < rows.length; j++) seg.data[seg.n * seg.row + j] = f32ToF16(rows[j]); // fp16 band
        else seg.data.set(rows, seg.n * seg.row);
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
    this.tiers?.truncate(n);
    this.truncateSegs(n);
  }

  /** truncate() of the ids and segments only (closing a view drops the request's tokens, which no tier holds). */
  truncateSegs(n: number): void {
    if (n >= this.nIds) return;
    this.nIds = n;
    this.fitIds(spareFor(n));
    for (const row of this.segs)
      for (const s of row) {
        let any = false;
        for (let i = 0; i < s.n; i++)
          if (s.pos[i] >= n) {
            any = true;
            break;
          }
        if (any) {
          s.compact((i) => s.pos[i] < n);
          s.fit(spareFor(s.n));
        }
      }
  }

  /**
   * Moves the given slots of segment (l, e) to the coarser expert e2 > e, mean-pooling their stored heads again
   * (exact: mean of equal-size adjacent group means). Both arrays end exactly sized. Returns bytes freed.
   */
  demote(l: number, e: number, slots: number[], e2: number): number {
    if (slots.length === 0) return 0;
    const before = this.bytes();
    if (!(e2 > e)) throw new Error(`demote: expert ${e2} is not coarser than ${e}`);
    const src = this.segs[l][e],
      dst = this.segs[l][e2],
      D = this.shape.headDim,
      E = this.shape.heads.length;
    const r = src.heads / dst.heads,
      f16 = this.shape.dtype === 'float16';
    dst.reserve(slots.length);
    const moving = new Uint8Array(src.n);
    const a = src.data,
      b = dst.data;
    for (const s of slots) {
      if (moving[s]) continue;
      moving[s] = 1;
      const slot = dst.n;
      for (let kv = 0; kv < 2; kv++) {
        // keys, then values
        const from = src.at(s) + kv * src.heads * D,
          to = dst.at(slot) + kv * dst.heads * D;
        for (let j = 0; j < dst.heads; j++) {
          for (let d = 0; d < D; d++) {
            let acc = 0;
            for (let h = j * r; h < (j + 1) * r; h++) {
              const x = a[from + h * D + d];
              acc += f16 ? f16ToF32(x) : x;
            }
            b[to + j * D + d] = f16 ? f32ToF16(acc / r) : acc / r;
          }
        }
      }
      dst.pos[slot] = src.pos[s];
      dst.scores.set(src.scores.subarray(s * E, (s + 1) * E), slot * E);
      dst.n++;
    }
    src.compact((i) => !moving[i]);
    src.fit(0);
    dst.fit(0);
    return before - this.bytes();
  }

  /**
   * Windowing: keeps positions < sink and ≥ keepFrom in every layer, drops the rest from attention. Token ids stay
   * (prefix matching), positions of kept tokens are unchanged (RoPE was applied when they were computed).
   */
  window(sink: number, keepFrom: number): number {
    const before = this.bytes();
    this.tiers?.window(sink, keepFrom);
    for (const row of this.segs)
      for (const s of row) {
        s.compact((i) => s.pos[i] < sink || s.pos[i] >= keepFrom);
        s.fit(0);
      }
    return before - this.bytes();
  }

  /** ORT feed payloads: past.{l}.{e} as [1, T, 2, H_e, D] views of the cache (T may be 0); with a cascade, arrays
   * built for this run (the tiers dequantised). */
  feeds(): { name: string; data: KvArray; dims: number[] }[] {
    if (this.tiers) return this.tiers.feeds();
    const out: { name: string; data: KvArray; dims: number[] }[] = [];
    this.segs.forEach((row, l) =>
      row.forEach((s, e) => {
        out.push({ name: `past.${l}.${e}`, data: s.feed(), dims: [1, s.n, 2, s.heads, s.D] });
      }),
    );
    return out;
  }

  /** Entries per expert, summed over layers. */
  expertEntries(): number[] {
    const c = new Array<number>(this.shape.heads.length).fill(0);
    for (const row of this.segs)
      row.forEach((s, e) => {
        c[e] += s.n;
      });
    return c;
  }
}
