// Per-document KV cache in mixSGA layout: for every layer l and expert e, the tokens routed there, pooled to
// H_e heads. Pure data structure (no ORT); the budget policy lives in budget.ts.
//
// Memory layout of one segment (layer l, expert e) with capacity C (grown ×1.5, never shrunk below use):
//   k, v    : KV dtype array [H_e][C][D], head-major so a feed [1,H_e,T,D] is H_e contiguous set() copies
//             (Float32Array for kv_dtype float32, Uint16Array of fp16 bits for float16)
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

/** Tokens of one (layer, expert). */
export class Segment {
  n = 0;
  cap = 0;
  k: KvArray;
  v: KvArray;
  pos = new Int32Array(0);
  scores = new Float32Array(0);
  constructor(readonly heads: number, readonly D: number, readonly E: number, readonly dtype: KvDtype) {
    this.k = this.alloc(0);
    this.v = this.alloc(0);
  }
  private alloc(n: number): KvArray {
    return this.dtype === 'float32' ? new Float32Array(n) : new Uint16Array(n);
  }
  /** Makes room for `extra` more entries (amortised O(1) per entry). */
  reserve(extra: number): void {
    const need = this.n + extra;
    if (need <= this.cap) return;
    const cap = Math.max(need, Math.ceil(this.cap * 1.5), 16);
    const { heads, D } = this;
    const k = this.alloc(heads * cap * D), v = this.alloc(heads * cap * D);
    for (let h = 0; h < heads; h++) {
      k.set(this.k.subarray(h * this.cap * D, (h * this.cap + this.n) * D), h * cap * D);
      v.set(this.v.subarray(h * this.cap * D, (h * this.cap + this.n) * D), h * cap * D);
    }
    const pos = new Int32Array(cap); pos.set(this.pos.subarray(0, this.n));
    const sc = new Float32Array(cap * this.E); sc.set(this.scores.subarray(0, this.n * this.E));
    this.k = k; this.v = v; this.pos = pos; this.scores = sc; this.cap = cap;
  }
  /** Offset of (head h, slot s) in k/v. */
  at(h: number, s: number): number { return (h * this.cap + s) * this.D; }
  /** Keeps the entries whose slot passes `keep`, preserving order. Returns how many were removed. */
  compact(keep: (slot: number) => boolean): number {
    const { heads, D, E } = this;
    let w = 0;
    for (let r = 0; r < this.n; r++) {
      if (!keep(r)) continue;
      if (w !== r) {
        for (let h = 0; h < heads; h++) {
          this.k.copyWithin(this.at(h, w), this.at(h, r), this.at(h, r) + D);
          this.v.copyWithin(this.at(h, w), this.at(h, r), this.at(h, r) + D);
        }
        this.pos[w] = this.pos[r];
        this.scores.copyWithin(w * E, r * E, r * E + E);
      }
      w++;
    }
    const removed = this.n - w;
    this.n = w;
    return removed;
  }
  /** [1,H_e,n,D] contiguous copies for an ORT feed: H_e set() calls each. */
  packedPair(): { k: KvArray; v: KvArray } {
    const { heads, D, n } = this;
    const mk = () => (this.dtype === 'float32' ? new Float32Array(heads * n * D) : new Uint16Array(heads * n * D));
    const k = mk(), v = mk();
    for (let h = 0; h < heads; h++) {
      k.set(this.k.subarray(this.at(h, 0), this.at(h, n)), h * n * D);
      v.set(this.v.subarray(this.at(h, 0), this.at(h, n)), h * n * D);
    }
    return { k, v };
  }
}

/** What one model run produced for a chunk, per layer (ORT outputs, already unwrapped). */
export interface ChunkKv {
  /** new_key.{l}: [H,S,D] */
  keys: KvArray[];
  values: KvArray[];
  /** route.{l}: [S] expert ids */
  routes: ArrayLike<number>[];
  /** scores.{l}: [S,E] */
  scores: Float32Array[];
}

export class DocCache {
  ids = new Int32Array(64);
  nIds = 0;
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
    return b;
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
   * Appends a chunk: token ids (positions nIds..nIds+S-1) and, per layer, each token's full-res K/V pooled to
   * its routed expert by adjacent-group mean.
   */
  append(ids: ArrayLike<number>, kv: ChunkKv): void {
    const S = ids.length, start = this.nIds;
    if (this.nIds + S > this.ids.length) {
      const grown = new Int32Array(Math.max(this.nIds + S, this.ids.length * 2));
      grown.set(this.tokenIds);
      this.ids = grown;
    }
    for (let t = 0; t < S; t++) this.ids[start + t] = ids[t];
    this.nIds += S;
    const { heads, headDim: D, dtype } = this.shape;
    const H = heads[0], E = heads.length, f16 = dtype === 'float16';
    for (let l = 0; l < this.shape.layers; l++) {
      const route = kv.routes[l], sc = kv.scores[l];
      const counts = new Array<number>(E).fill(0);
      for (let t = 0; t < S; t++) counts[route[t]]++;
      this.segs[l].forEach((s, e) => s.reserve(counts[e]));
      for (let t = 0; t < S; t++) {
        const e = route[t], seg = this.segs[l][e], g = H / heads[e], slot = seg.n;
        for (const [src, dst] of [[kv.keys[l], seg.k], [kv.values[l], seg.v]] as const) {
          for (let j = 0; j < heads[e]; j++) {
            const o = seg.at(j, slot);
            if (g === 1) { dst.set(src.subarray((j * S + t) * D, (j * S + t + 1) * D), o); continue; }
            for (let d = 0; d < D; d++) {
              let acc = 0;
              for (let h = j * g; h < (j + 1) * g; h++) {
                const x = src[(h * S + t) * D + d];
                acc += f16 ? f16ToF32(x) : x;
              }
              dst[o + d] = f16 ? f32ToF16(acc / g) : acc / g;
            }
          }
        }
        seg.pos[slot] = start + t;
        seg.scores.set(sc.subarray(t * E, (t + 1) * E), slot * E);
        seg.n++;
      }
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
    for (const s of slots) {
      if (moving[s]) continue;
      moving[s] = 1;
      const slot = dst.n;
      for (const [a, b] of [[src.k, dst.k], [src.v, dst.v]] as const) {
        for (let j = 0; j < dst.heads; j++) {
          const o = dst.at(j, slot);
          for (let d = 0; d < D; d++) {
            let acc = 0;
            for (let h = j * r; h < (j + 1) * r; h++) { const x = a[src.at(h, s) + d]; acc += f16 ? f16ToF32(x) : x; }
            b[o + d] = f16 ? f32ToF16(acc / r) : acc / r;
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

  /** ORT feed payloads: past_key.{l}.{e}, past_value.{l}.{e} as [1,H_e,T,D] (T may be 0). */
  feeds(): { name: string; data: KvArray; dims: number[] }[] {
    const out: { name: string; data: KvArray; dims: number[] }[] = [];
    this.segs.forEach((row, l) => row.forEach((s, e) => {
      const { k, v } = s.packedPair();
      const dims = [1, s.heads, s.n, s.D];
      out.push({ name: `past_key.${l}.${e}`, data: k, dims }, { name: `past_value.${l}.${e}`, data: v, dims });
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
