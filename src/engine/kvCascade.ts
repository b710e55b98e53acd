// Issue 19's age cascade in a document's cache: what toolchain/mixsga/kv_policy.py measured as the winning policy
// (spec `band=32,order=age,stores=g1-int8|g1-int4c|g2-int4c`). The sinks and the `band` tokens before the READ
// POINT keep full K/V (the segments of expert 0, kvStore.ts: fp16 on an fp32 graph, core.ts FP16_BAND, widened in
// the feed; else the graph's KV dtype); every other token is held
// in one quantised tier (kvTier.ts), most precise first. budget.ts decides when tokens move; this file moves them.
//
// Age, in a document-order cache (docs/cache-layout.md): the read point is the cursor line's start `at` of the
// open prefix view (spotView.ts), or the end of the cache when none is open. A base token's age is its distance
// from the read point (before it, or after it for the hidden text below the cursor, which later jumps read): the
// band is the `band` tokens on either side of the read point.
// The request's own tokens (suffix head, middle, generated) are never aged: they are dropped when the view closes.
// Only the band before the read point is read by a request; the one after it keeps the text just below the cursor
// whole for the next jump or line.
// Tokens past the band keep full precision until the budget binds; then budget step 2 moves them to the first tier
// (age(), least recently used documents first) and the oldest position groups (KIVI_GROUP aligned positions, the
// unit of a channel-mode key scale) one tier down.
// Demotion is lossy: a band demoted before the cursor jumped next to it is computed again at full precision when
// the view opens (bandRecompute.ts, core.ts placeView). The budget's demotions are planned (cascadePlan.ts).
//
// Feeds: past.{l}.{e} = the expert's full-precision rows, then every visible tier token of that expert
// dequantised (tiers g1 feed expert 0, g2 the expert with H/2 heads, or expert 0 with each pooled head repeated
// when the model has no such expert), rotated by the view's shift like the kept rows. They are built for each run
// and dropped after it: only codes and scales stay allocated between runs. Measured, the rebuild is not what makes the
// cascade slower (docs/cache-layout.md, "Cost of the cascade path"), so no dequantised copy is kept.
import type { DocCache, KvArray } from './kvStore';
import type { OpenView } from './spotView';
import { QuantTier, StoreSpec } from './kvTier';
import { Bits, KIVI_GROUP } from './kvQuant';
import { f16ToF32, f32ToF16 } from './fp16';
import { Rope, ropeTables, rotateHeads } from './rope';

export interface Cascade {
  spec: string;
  band: number;
  sinks: number;
  stores: StoreSpec[];
  /** Expert whose graph input feeds each store: the one with kv_heads = H / store.group, else expert 0 with the
   * pooled heads copied back to every head of their group (kv_policy's expand_heads: the same attention). */
  expertOf: number[];
  rope: Rope;
}

/** Parses a manifest/setting `kv_policy` spec into a cascade for a model with these experts' kv heads. */
export function parseCascade(spec: string, heads: number[], rope: Rope): Cascade {
  const { band, sinks, stores } = parseSpec(spec);
  const expertOf = stores.map((s) => {
    if (!Number.isInteger(heads[0] / s.group) || s.group < 1)
      throw new Error(
        `kv_policy "${spec}": store ${s.name}: ${heads[0]} kv heads do not split into groups of ${s.group}`,
      );
    return Math.max(0, heads.indexOf(heads[0] / s.group));
  });
  return { spec, band, sinks, stores, expertOf, rope };
}

/** What a `mixsga.kvPolicy` value is wrong with, or undefined: "" (the manifest's policy), "router", or a cascade
 * spec (checked here as far as it does not depend on the model; the engine checks the rest when it starts). */
export function kvPolicyProblem(value: string): string | undefined {
  if (value === '' || value === 'router') return undefined;
  try {
    parseSpec(value);
    return undefined;
  } catch (e) {
    return (e as Error).message;
  }
}

/** The model-independent part of a spec: band, sinks and stores (throws with the reason). */
function parseSpec(spec: string): Pick<Cascade, 'band' | 'sinks' | 'stores'> {
  const bad = (why: string) => new Error(`kv_policy "${spec}": ${why}`);
  const kw = new Map<string, string>();
  for (const part of spec.split(',')) {
    const [k, v, extra] = part.split('=');
    if (!k || v === undefined || extra !== undefined) throw bad(`"${part}" is not key=value`);
    kw.set(k.trim(), v.trim());
  }
  for (const k of kw.keys()) if (!['band', 'sinks', 'order', 'stores'].includes(k)) throw bad(`unknown key "${k}"`);
  if (kw.get('order') !== 'age') throw bad('only order=age (an age cascade) is served by the engine');
  const int = (k: string, dflt: number) => {
    const n = Number(kw.get(k) ?? dflt);
    if (!Number.isInteger(n) || n < 0) throw bad(`${k} must be a whole number ≥ 0`);
    return n;
  };
  const band = int('band', 0),
    sinks = int('sinks', 4);
  const names = (kw.get('stores') ?? '').split('|').filter(Boolean);
  if (names.length === 0) throw bad('stores=… lists no store');
  const stores = names.map((name): StoreSpec => {
    const m = /^g(\d+)-int(4|8)(c?)$/.exec(name);
    if (!m || Number(m[1]) < 1) throw bad(`store "${name}" is not g<heads per group ≥ 1>-int4|int8[c]`);
    return { name, group: Number(m[1]), bits: Number(m[2]) as Bits, keyChannel: m[3] === 'c' };
  });
  stores.forEach((s, i) => {
    if (i > 0 && s.group < stores[i - 1].group) throw bad('stores must not un-pool heads (groups only grow)');
  });
  if (stores.some((s) => s.keyChannel) && band < KIVI_GROUP) {
    throw bad(`channel-mode keys need band ≥ ${KIVI_GROUP} (a key group is complete only ${KIVI_GROUP} tokens later)`);
  }
  return { band, sinks, stores };
}

/** Mean of adjacent heads: [m][2][Hs][D] → [m][2][Hd][D] (mixSGA's pooling, as DocCache.demote does it). */
export function poolRows(rows: Float32Array, m: number, Hs: number, Hd: number, D: number): Float32Array {
  if (Hs === Hd) return rows;
  const r = Hs / Hd,
    out = new Float32Array(m * 2 * Hd * D);
  for (let t = 0; t < m * 2; t++)
    for (let j = 0; j < Hd; j++)
      for (let d = 0; d < D; d++) {
        let acc = 0;
        for (let h = j * r; h < (j + 1) * r; h++) acc += rows[(t * Hs + h) * D + d];
        out[(t * Hd + j) * D + d] = acc / r;
      }
  return out;
}

const G = KIVI_GROUP;

/** Row i of src [..][2][Hs][D] into row j of dst [..][2][Hd][D], each pooled head copied to its Hd/Hs heads. */
function expandRow(
  src: Float32Array,
  i: number,
  Hs: number,
  dst: Float32Array,
  j: number,
  Hd: number,
  D: number,
): void {
  const g = Hd / Hs;
  for (let kv = 0; kv < 2; kv++)
    for (let h = 0; h < Hd; h++) {
      const from = (i * 2 * Hs + kv * Hs + Math.floor(h / g)) * D;
      dst.set(src.subarray(from, from + D), (j * 2 * Hd + kv * Hd + h) * D);
    }
}

/** A position group's live tokens and records in one tier (layer 0). */
export interface GroupCell {
  tokens: number;
  records: number;
}

export interface TierStats {
  name: string;
  tokens: number;
  bytes: number;
}

export class DocTiers {
  /** tiers[l][t] */
  readonly tiers: QuantTier[][];
  constructor(
    private readonly doc: DocCache,
    readonly c: Cascade,
  ) {
    const { layers, heads, headDim } = doc.shape;
    this.tiers = Array.from({ length: layers }, () =>
      c.stores.map((s) => new QuantTier(s, heads[0] / s.group, headDim)),
    );
  }

  private view(): OpenView | undefined {
    return this.doc.parked as OpenView | undefined;
  }

  /** Where the band ends, in base positions. */
  readPoint(): number {
    return this.view()?.at ?? this.doc.nIds;
  }

  /** Base position of a segment entry at position p (view coordinates while a view is open); −1: request token. */
  private basePos(p: number): number {
    const v = this.view();
    if (!v) return p;
    if (p < v.head) return p;
    return p < v.head + v.at - v.from ? p + v.from - v.head : -1;
  }

  /** Position the graph sees for base position b, or −1 when the open view hides it. */
  private viewPos(b: number): number {
    const v = this.view();
    if (!v || b < v.head) return b;
    return b >= v.from && b < v.at ? b - (v.from - v.head) : -1;
  }

  private isOld(b: number): boolean {
    const rp = this.readPoint();
    return b >= this.c.sinks && (b < rp - this.c.band || b >= rp + this.c.band);
  }

  bytes(): number {
    return this.tiers.reduce((a, row) => row.reduce((b, t) => b + t.allocatedBytes(), a), 0);
  }
  count(l = 0): number {
    return this.tiers[l].reduce((a, t) => a + t.count(), 0);
  }

  /** Moves every full-precision base token outside the sinks and the band to the first tier; returns how many
   * token-layers moved. Frees bytes: rows leave exactly sized segments, the tier grows by what they need. */
  age(): number {
    const v = this.view(),
      shift = v ? v.from - v.head : 0,
      D = this.doc.shape.headDim,
      H = this.doc.shape.heads[0];
    const f16 = this.doc.shape.dtype === 'float16',
      first = this.c.stores[0];
    const unshift = shift ? ropeTables(shift, this.c.rope, D) : undefined;
    let moved = 0;
    this.doc.segs.forEach((row, l) => {
      const sources = [{ seg: row[0], inView: true }, ...(v ? [{ seg: v.hidden[l][0], inView: false }] : [])];
      for (const { seg, inView } of sources) {
        const slots: number[] = [],
          positions: number[] = [];
        for (let i = 0; i < seg.n; i++) {
          const b = inView ? this.basePos(seg.pos[i]) : seg.pos[i];
          if (b >= 0 && this.isOld(b)) {
            slots.push(i);
            positions.push(b);
          }
        }
        if (slots.length === 0) continue;
        const rows = new Float32Array(slots.length * seg.row);
        slots.forEach((s, i) => {
          for (let j = 0; j < seg.row; j++)
            rows[i * seg.row + j] = f16 ? f16ToF32(seg.data[seg.at(s) + j]) : seg.data[seg.at(s) + j];
          // kept rows of a windowed view were rotated to their view position: tiers hold base positions
          if (inView && unshift && v && positions[i] >= v.from) rotateHeads(rows, i * seg.row, H, D, unshift, false);
        });
        const moving = new Set(slots);
        seg.compact((i) => !moving.has(i));
        seg.fit(0);
        this.tiers[l][0].add(poolRows(rows, slots.length, H, H / first.group, D), positions);
        moved += slots.length;
      }
    });
    return moved;
  }

  /** Per tier, the live tokens and records of each position group (layer 0 stands for all: every layer holds the
   * same tokens), and the groups still holding a full-precision non-sink token (they stay: channel-mode key groups
   * are complete only then). cascadePlan.ts plans the budget's demotions on this table. */
  groupTable(): { cells: Map<number, GroupCell>[]; full: Set<number> } {
    const full = new Set<number>(),
      v = this.view();
    this.doc.segs[0].forEach((s) => {
      for (let i = 0; i < s.n; i++) {
        const b = this.basePos(s.pos[i]);
        if (b >= this.c.sinks) full.add(Math.floor(b / G));
      }
    });
    if (v)
      v.hidden[0].forEach((s) => {
        for (let i = 0; i < s.n; i++) if (s.pos[i] >= this.c.sinks) full.add(Math.floor(s.pos[i] / G));
      });
    const cells = this.tiers[0].map((t) => {
      const byGroup = new Map<number, GroupCell>(),
        records = new Map<number, Set<number>>();
      t.forEach((r, _s, p) => {
        const k = Math.floor(p / G);
        const cell = byGroup.get(k) ?? { tokens: 0, records: 0 };
        byGroup.set(k, cell);
        cell.tokens++;
        if (!records.has(k)) records.set(k, new Set());
        records.get(k)!.add(r);
      });
      for (const [k, rs] of records) byGroup.get(k)!.records = rs.size;
      return byGroup;
    });
    return { cells, full };
  }

  /** A position group's age: its distance from the read point. */
  groupAge(k: number): number {
    const rp = this.readPoint();
    return Math.max(rp - (k + 1) * G, k * G - rp);
  }

  /** Moves position group k from tier t to tier t + 1 in every layer; returns the bytes freed. */
  demote(t: number, k: number): number {
    return this.moveGroup(k, t, t + 1);
  }

  /** Moves position group k's tokens in tiers from … to−1 to tier `to` in every layer: dequantised, pooled to the
   * target's heads and quantised once (one record in channel mode); returns the bytes freed. */
  moveGroup(k: number, from: number, to: number): number {
    const before = this.bytes(),
      D = this.doc.shape.headDim;
    for (const row of this.tiers) {
      const dst = row[to],
        width = 2 * dst.heads * D,
        parts: { p: number; rows: Float32Array; i: number }[] = [];
      for (let t = from; t < to; t++) {
        const { rows, positions } = row[t].take((p) => Math.floor(p / G) === k);
        const pooled = poolRows(rows, positions.length, row[t].heads, dst.heads, D);
        positions.forEach((p, i) => parts.push({ p, rows: pooled, i }));
      }
      if (parts.length === 0) continue;
      parts.sort((a, b) => a.p - b.p);
      const rows = new Float32Array(parts.length * width);
      parts.forEach((x, j) => rows.set(x.rows.subarray(x.i * width, (x.i + 1) * width), j * width));
      dst.add(
        rows,
        parts.map((x) => x.p),
      );
    }
    return before - this.bytes();
  }

  /** Drops tokens the graph sees at a position ≥ n (DocCache.truncate). */
  truncate(n: number): void {
    this.drop((b) => {
      const p = this.viewPos(b);
      return p >= n;
    });
  }
  /** Drops tokens the graph sees at positions [sink, keepFrom) (windowing). */
  window(sink: number, keepFrom: number): void {
    this.drop((b) => {
      const p = this.viewPos(b);
      return p >= sink && p < keepFrom;
    });
  }
  /** Drops base positions ≥ at (a view's hidden tail). */
  dropFrom(at: number): void {
    this.drop((b) => b >= at);
  }
  private drop(f: (b: number) => boolean): void {
    for (const row of this.tiers) for (const t of row) t.remove(f);
  }

  /** Bytes windowing frees by position the graph sees: a record's bytes count at its last token (dropping the
   * positions up to it frees the record); records holding hidden tokens free nothing. */
  visibleBytes(add: (viewPos: number, bytes: number) => void): void {
    for (const row of this.tiers)
      for (const t of row) {
        const last = new Map<number, number>(); // record -> its last visible position, −1 once a hidden token is seen
        t.forEach((r, _s, b) => {
          const p = this.viewPos(b),
            seen = last.get(r);
          last.set(r, seen === -1 || p < 0 ? -1 : Math.max(seen ?? 0, p));
        });
        for (const p of last.values()) if (p >= 0) add(p, t.recordBytes);
      }
  }

  /** The graph inputs past.{l}.{e}: full rows, then the visible tier tokens dequantised (see the header). */
  feeds(): { name: string; data: KvArray; dims: number[] }[] {
    const { shape } = this.doc,
      D = shape.headDim,
      f16 = (shape.feedDtype ?? shape.dtype) === 'float16',
      widen = shape.dtype === 'float16' && !f16; // fp16-stored full rows into an fp32 feed
    const v = this.view(),
      shift = v ? v.from - v.head : 0;
    const rot = shift ? ropeTables(-shift, this.c.rope, D) : undefined;
    const out: { name: string; data: KvArray; dims: number[] }[] = [];
    this.doc.segs.forEach((segRow, l) =>
      segRow.forEach((seg, e) => {
        const tiers = this.tiers[l].filter((_t, i) => this.c.expertOf[i] === e);
        const row = seg.row,
          n = seg.n + tiers.reduce((a, t) => a + t.count(), 0);
        // every tier token dequantised after the full rows; hidden ones are then dropped by compacting
        const all = new Float32Array((n - seg.n) * row),
          pos: number[] = [];
        for (const t of tiers) {
          const pooled = t.heads === seg.heads ? undefined : new Float32Array(t.slots * 2 * t.heads * D);
          for (let r = 0; r < t.cap; r++) {
            if (!pooled) {
              pos.push(...t.readRecord(r, all, pos.length));
              continue;
            }
            const ps = t.readRecord(r, pooled, 0);
            ps.forEach((_p, i) => expandRow(pooled, i, t.heads, all, pos.length + i, seg.heads, D));
            pos.push(...ps);
          }
        }
        let m = 0;
        pos.forEach((b, i) => {
          if (this.viewPos(b) < 0) return;
          if (m !== i) all.copyWithin(m * row, i * row, (i + 1) * row);
          if (rot && v && b >= v.from) rotateHeads(all, m * row, seg.heads, D, rot, false);
          m++;
        });
        const data: KvArray = f16 ? new Uint16Array((seg.n + m) * row) : new Float32Array((seg.n + m) * row);
        const kept = seg.feed();
        if (widen) for (let j = 0; j < kept.length; j++) data[j] = f16ToF32(kept[j]);
        else data.set(kept);
        if (f16) for (let j = 0; j < m * row; j++) data[seg.n * row + j] = f32ToF16(all[j]);
        else data.set(all.subarray(0, m * row), seg.n * row);
        out.push({ name: `past.${l}.${e}`, data, dims: [1, seg.n + m, 2, seg.heads, D] });
      }),
    );
    return out;
  }

  /** Tokens (layer 0) and allocated bytes (all layers) of each tier, for reports. */
  stats(): TierStats[] {
    return this.c.stores.map((s, t) => ({
      name: s.name,
      tokens: this.tiers[0][t].count(),
      bytes: this.tiers.reduce((a, row) => a + row[t].allocatedBytes(), 0),
    }));
  }
}
