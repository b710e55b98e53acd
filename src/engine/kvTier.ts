// One quantised tier of one layer's cache (issue 19's age cascade, kvCascade.ts): the tokens stored in one
// precision, e.g. g1-int8 (every KV head, int8 per token and head) or g2-int4c (heads mean-pooled in pairs, int4
// with KIVI keys: per channel over a group of KIVI_GROUP tokens; values per token and head).
//
// Tokens sit in RECORDS: one token each in token mode; in channel mode up to KIVI_GROUP slots holding tokens of one
// aligned position group k = ⌊pos / KIVI_GROUP⌋ (what a channel-mode key scale covers, as fake_quant groups the
// sequence; a partial group pads). Arrays, record-major, with `cap` records of `slots` slots:
//   codes  : Uint8Array  [cap][keyCodes + valueCodes]
//            keys, token mode:   [slot][head][D·bits/8]     keys, channel mode: [head][channel][KIVI_GROUP·bits/8]
//            values (always token mode):  [slot][head][D·bits/8]
//   scales : Uint16Array [cap][keyPairs + valuePairs][2]   fp16 (scale, min): keys per (slot, head) or per
//            (head, channel); values per (slot, head)
//   pos    : Int32Array  [cap][slots]   base position of each slot, −1 = empty (removed or never filled)
// Bytes counted = the three arrays' byteLength (capacity included): arrays are kept exactly sized.
import { Bits, KIVI_GROUP, codeBytes, dequantiseGroup, dequantiseOne, quantiseGroup } from './kvQuant';

/** How one tier stores a token's K/V (kv_policy.Store): heads pooled in groups of `group`, `bits`, key mode. */
export interface StoreSpec {
  name: string;
  group: number;
  bits: Bits;
  keyChannel: boolean;
}

const G = KIVI_GROUP;

export class QuantTier {
  cap = 0;
  codes = new Uint8Array(0);
  scales = new Uint16Array(0);
  pos = new Int32Array(0);
  /** Tokens per record: KIVI_GROUP in channel mode, else 1. */
  readonly slots: number;
  readonly keyCodes: number;
  readonly recCodes: number;
  readonly keyPairs: number;
  readonly recPairs: number;
  /** Bytes of one token's K or V codes for one head. */
  private readonly cb: number;
  constructor(
    readonly spec: StoreSpec,
    readonly heads: number,
    readonly D: number,
  ) {
    this.cb = codeBytes(D, spec.bits);
    this.slots = spec.keyChannel ? G : 1;
    const valueCodes = this.slots * heads * this.cb;
    this.keyCodes = spec.keyChannel ? heads * D * codeBytes(G, spec.bits) : valueCodes;
    this.recCodes = this.keyCodes + valueCodes;
    this.keyPairs = spec.keyChannel ? heads * D : heads;
    this.recPairs = this.keyPairs + this.slots * heads;
  }

  /** Bytes one record allocates. */
  get recordBytes(): number {
    return this.recCodes + this.recPairs * 4 + this.slots * 4;
  }

  /** Bytes adding `m` tokens of one position group allocates. */
  costOf(m: number): number {
    return (this.spec.keyChannel ? 1 : m) * this.recordBytes;
  }

  allocatedBytes(): number {
    return this.codes.byteLength + this.scales.byteLength + this.pos.byteLength;
  }

  /** Live tokens. */
  count(): number {
    let n = 0;
    for (let i = 0; i < this.cap * this.slots; i++) if (this.pos[i] >= 0) n++;
    return n;
  }

  /** Calls f(record, slot, position) for every live token. */
  forEach(f: (rec: number, slot: number, pos: number) => void): void {
    const n = this.slots;
    for (let r = 0; r < this.cap; r++)
      for (let s = 0; s < n; s++) {
        const p = this.pos[r * n + s];
        if (p >= 0) f(r, s, p);
      }
  }

  /** Position groups (k) that hold live tokens. */
  groups(): Set<number> {
    const ks = new Set<number>();
    this.forEach((_r, _s, p) => ks.add(Math.floor(p / G)));
    return ks;
  }

  private resize(cap: number): void {
    const codes = new Uint8Array(cap * this.recCodes),
      scales = new Uint16Array(cap * this.recPairs * 2);
    const pos = new Int32Array(cap * this.slots).fill(-1);
    const keep = Math.min(cap, this.cap);
    codes.set(this.codes.subarray(0, keep * this.recCodes));
    scales.set(this.scales.subarray(0, keep * this.recPairs * 2));
    pos.set(this.pos.subarray(0, keep * this.slots));
    this.codes = codes;
    this.scales = scales;
    this.pos = pos;
    this.cap = cap;
  }

  /**
   * Adds tokens: `rows` [m][2][heads][D] float32 (keys, then values per token) at base positions `positions`
   * (ascending, all in one group k for channel mode, which quantises its keys over them at once).
   */
  add(rows: Float32Array, positions: number[]): void {
    const m = positions.length,
      H = this.heads,
      D = this.D,
      row = 2 * H * D,
      bits = this.spec.bits;
    if (m === 0) return;
    const first = this.cap;
    if (this.spec.keyChannel) {
      if (m > G || Math.floor(positions[0] / G) !== Math.floor(positions[m - 1] / G)) {
        throw new Error(`QuantTier.add: channel-mode keys take one group of ${G} positions at a time`);
      }
      this.resize(first + 1);
      const c0 = first * this.recCodes,
        p0 = first * this.recPairs;
      for (let h = 0; h < H; h++)
        for (let d = 0; d < D; d++) {
          const ch = h * D + d;
          quantiseGroup(
            { src: rows, off: h * D + d, stride: row, len: m },
            G,
            bits,
            this.codes,
            c0 + ch * codeBytes(G, bits),
            this.scales,
            p0 + ch,
          );
        }
      for (let s = 0; s < m; s++) {
        this.writeValues(first, s, rows, s * row);
        this.pos[first * G + s] = positions[s];
      }
      return;
    }
    this.resize(first + m);
    for (let i = 0; i < m; i++) {
      const r = first + i;
      for (let h = 0; h < H; h++) {
        quantiseGroup(
          { src: rows, off: i * row + h * D, stride: 1, len: D },
          D,
          bits,
          this.codes,
          r * this.recCodes + h * this.cb,
          this.scales,
          r * this.recPairs + h,
        );
      }
      this.writeValues(r, 0, rows, i * row);
      this.pos[r] = positions[i];
    }
  }

  private writeValues(r: number, s: number, rows: Float32Array, off: number): void {
    const H = this.heads,
      D = this.D;
    for (let h = 0; h < H; h++) {
      quantiseGroup(
        { src: rows, off: off + (H + h) * D, stride: 1, len: D },
        D,
        this.spec.bits,
        this.codes,
        r * this.recCodes + this.keyCodes + (s * H + h) * this.cb,
        this.scales,
        r * this.recPairs + this.keyPairs + s * H + h,
      );
    }
  }

  /** Dequantises every live token of record r into consecutive rows [2][heads][D] of out from row `at` (one
   * scale read per group); returns the positions, in row order. */
  readRecord(r: number, out: Float32Array, at: number): number[] {
    const H = this.heads,
      D = this.D,
      bits = this.spec.bits,
      row = 2 * H * D,
      n = this.slots;
    const c0 = r * this.recCodes,
      p0 = r * this.recPairs,
      live: number[] = [],
      positions: number[] = [];
    for (let s = 0; s < n; s++) {
      const p = this.pos[r * n + s];
      if (p >= 0) {
        live.push(s);
        positions.push(p);
      }
    }
    live.forEach((s, i) => this.readTokenHeads(c0, p0, s, out, (at + i) * row));
    if (this.spec.keyChannel && live.length) {
      // keys of slot s in channel ch are code s of the channel's group: contiguous slots read as one strided group
      const dense = live[live.length - 1] + 1 === live.length; // no holes: slots 0 … m−1
      for (let ch = 0; ch < H * D; ch++) {
        const off = c0 + ch * codeBytes(G, bits);
        if (dense) dequantiseGroup(this.codes, off, bits, this.scales, p0 + ch, out, at * row + ch, row, live.length);
        else
          live.forEach((s, i) => {
            out[(at + i) * row + ch] = dequantiseOne(this.codes, off, s, bits, this.scales, p0 + ch);
          });
      }
    }
    return positions;
  }

  /** Dequantises token (rec, slot) into out[off …] as [2][heads][D] float32. */
  read(r: number, s: number, out: Float32Array, off: number): void {
    const H = this.heads,
      D = this.D,
      bits = this.spec.bits,
      c0 = r * this.recCodes,
      p0 = r * this.recPairs;
    if (this.spec.keyChannel)
      for (let ch = 0; ch < H * D; ch++)
        out[off + ch] = dequantiseOne(this.codes, c0 + ch * codeBytes(G, bits), s, bits, this.scales, p0 + ch);
    this.readTokenHeads(c0, p0, s, out, off);
  }

  /** The per-token groups of slot s of the record at (c0, p0) into out[off …]: its key heads (unless keys are
   * stored per channel) and its value heads. */
  private readTokenHeads(c0: number, p0: number, s: number, out: Float32Array, off: number): void {
    const H = this.heads,
      D = this.D,
      bits = this.spec.bits;
    for (let h = 0; h < H; h++) {
      const g = s * H + h;
      if (!this.spec.keyChannel)
        dequantiseGroup(this.codes, c0 + g * this.cb, bits, this.scales, p0 + g, out, off + h * D, 1, D);
      dequantiseGroup(
        this.codes,
        c0 + this.keyCodes + g * this.cb,
        bits,
        this.scales,
        p0 + this.keyPairs + g,
        out,
        off + (H + h) * D,
        1,
        D,
      );
    }
  }

  /** Removes (and returns, dequantised, ascending by position) the live tokens whose position passes `take`. */
  take(take: (pos: number) => boolean): { rows: Float32Array; positions: number[] } {
    const found: { r: number; s: number; p: number }[] = [];
    this.forEach((r, s, p) => {
      if (take(p)) found.push({ r, s, p });
    });
    found.sort((a, b) => a.p - b.p);
    const row = 2 * this.heads * this.D,
      rows = new Float32Array(found.length * row);
    found.forEach((t, i) => {
      this.read(t.r, t.s, rows, i * row);
      this.pos[t.r * this.slots + t.s] = -1;
    });
    if (found.length) this.dropEmpty();
    return { rows, positions: found.map((t) => t.p) };
  }

  /** Removes the live tokens whose position passes `drop`; returns how many. */
  remove(drop: (pos: number) => boolean): number {
    let n = 0;
    for (let i = 0; i < this.cap * this.slots; i++)
      if (this.pos[i] >= 0 && drop(this.pos[i])) {
        this.pos[i] = -1;
        n++;
      }
    if (n) this.dropEmpty();
    return n;
  }

  /** Drops records without live tokens (arrays end exactly sized). */
  private dropEmpty(): void {
    let w = 0;
    const n = this.slots;
    for (let r = 0; r < this.cap; r++) {
      let live = false;
      for (let s = 0; s < n && !live; s++) live = this.pos[r * n + s] >= 0;
      if (!live) continue;
      if (w !== r) {
        this.codes.copyWithin(w * this.recCodes, r * this.recCodes, (r + 1) * this.recCodes);
        this.scales.copyWithin(w * this.recPairs * 2, r * this.recPairs * 2, (r + 1) * this.recPairs * 2);
        this.pos.copyWithin(w * n, r * n, (r + 1) * n);
      }
      w++;
    }
    if (w < this.cap) this.resize(w);
  }
}
