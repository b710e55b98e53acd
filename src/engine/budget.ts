// THE place the KV budget is enforced. One budget in bytes covers the caches of all documents.
//
// Invariant (checked by assertInvariant; on in tests and when MIXSGA_DEBUG=1):
//     Σ_docs DocCache.bytes() + reserved ≤ budget        at every moment between operations,
// where DocCache.bytes() is what the document's arrays *allocate* (capacity, plus a fixed per-document overhead;
// kvStore.ts), not what its tokens use. commit() hands the run's reservation to DocCache.append as the most it
// may allocate, so spare capacity never takes the caches past the budget.
//
// Routing happens inside the graph, so before a model run we reserve the worst case for the chunk (every new
// token at expert 0 in every layer, see kvStore.fullTokenBytes) and after the run commit() appends the actual
// K/V and releases the reservation (actual ≤ reserved). To make room for a reservation, admit() in order:
//   0. trims spare capacity (arrays cut to their used size),
//   1. steers route_bias so new tokens go to coarser experts as the cache fills (routeBias),
//   2. demotes the lowest-importance tokens one expert coarser (importance = the token's router score for the
//      expert it currently sits in; lowest first, across all documents),
//   3. evicts least-recently-used other documents,
//   3½. drops the current document's tokens after the cursor that its open view hides (layout psm),
//   4. windows the current document: keeps its first `sink` positions and the most recent ones, dropping the
//      oldest in between (kept tokens keep their positions: RoPE is already applied).
//
// With an age cascade (shape.cascade, from the manifest's or the settings' kv_policy; kvCascade.ts) the policy is
// the one kv_policy.py measured, and steps 1 and 2 change:
//   1. route_bias forces expert 0 for every new token (the cascade, not the router, decides what is kept);
//   2. demotes the OLDEST position groups (KIVI_GROUP aligned positions) one tier down: every group of the most
//      precise tier first, oldest first across documents, then the next tier (kv_policy.cascade_for_budget's
//      order: the boundary age between two adjacent stores moves until the budget is met; windowing comes last).
// Age is the distance from the read point: the open view's cursor line (`at`), or the end of the cache (layout
// spm, background prefill) — see kvCascade.ts. Tokens past the band stay at full precision while the budget has
// room (as kv_policy trains at budget 1.0); step 2 first moves them to the first tier, least recently used
// documents first (kvCascade age()), then demotes among tiers. Aging frees bytes, so it cannot break the invariant.
import { LRUCache } from 'lru-cache';
import { DocCache, ID_BYTES, KvShape, RunKv, docOverheadBytes, entryBytes, fullTokenBytes } from './kvStore';
import { dropHiddenTail } from './spotView';
import { collapse, planSteps } from './cascadePlan';
import { checkBudgetBytes } from './validate';

export interface BudgetOptions {
  /** Positions always kept by windowing (attention sinks); a cascade's `sinks` take precedence. */
  sink?: number;
  /** Fill fraction from which route_bias starts favouring coarser experts. */
  steerFrom?: number;
  /** Check the invariant after every operation (throws on violation). */
  debug?: boolean;
}

export class BudgetError extends Error {}

export class KvBudget {
  private readonly lru: LRUCache<string, DocCache>;
  private readonly lastUsed = new Map<string, number>();
  private reserved = 0;
  private pendingActions: string[] = [];
  readonly sink: number;
  readonly steerFrom: number;
  debug: boolean;
  /** Cascade only: move a group one tier per step, re-quantising at each (before cascadePlan.ts; bench A/B). */
  stepwiseDemotion = false;

  private budget: number;

  constructor(
    readonly shape: KvShape,
    budget: number,
    opts: BudgetOptions = {},
  ) {
    this.budget = checkBudgetBytes(budget);
    this.sink = shape.cascade?.sinks ?? opts.sink ?? 4; // a cascade's sinks are the windowing sinks too
    this.steerFrom = opts.steerFrom ?? 0.7;
    this.debug = opts.debug ?? process.env.MIXSGA_DEBUG === '1';
    // lru-cache gives the recency order and a dispose hook. Its own maxSize eviction is not used: document sizes
    // change in place (append/demote) and the policy above must demote before it evicts.
    this.lru = new LRUCache<string, DocCache>({
      max: 100_000,
      dispose: (_doc, id, reason) => {
        this.lastUsed.delete(id);
        if (reason === 'evict' || reason === 'delete') this.pendingActions.push(`evicted ${id}`);
      },
    });
  }

  get budgetBytes(): number {
    return this.budget;
  }
  get reservedBytes(): number {
    return this.reserved;
  }
  /** Bytes of all caches plus the open reservation. */
  used(): number {
    let b = this.reserved;
    for (const d of this.lru.values()) b += d.bytes();
    return b;
  }
  docIds(): string[] {
    return [...this.lru.keys()];
  }
  peek(id: string): DocCache | undefined {
    return this.lru.peek(id);
  }
  lastUsedAt(id: string): number {
    return this.lastUsed.get(id) ?? 0;
  }

  /**
   * The document's cache, created if needed, marked most recently used. A new document's fixed overhead is made
   * room for like a reservation (spare trimmed, then least recently used documents evicted).
   */
  touch(id: string): DocCache {
    let d = this.lru.get(id);
    if (!d) {
      const need = docOverheadBytes(this.shape);
      this.makeRoom(() => this.used() + need - this.budget);
      for (const other of [...this.lru.rkeys()]) {
        if (this.used() + need <= this.budget) break;
        this.lru.delete(other);
      }
      if (this.used() + need > this.budget) {
        throw new BudgetError(`KV budget of ${this.budget} B cannot hold a document's fixed ${need} B of bookkeeping`);
      }
      d = new DocCache(this.shape);
      this.lru.set(id, d);
    }
    this.lastUsed.set(id, Date.now());
    return d;
  }

  /** Bytes that are never available to tokens of a document: its fixed overhead and its sink tokens. */
  get fixedBytes(): number {
    return docOverheadBytes(this.shape) + this.sink * fullTokenBytes(this.shape);
  }

  /** Largest chunk admit() can ever satisfy for one document (all else evicted, windowed to the sinks). With `id`,
   * also minus the ids that document keeps for positions windowing drops (kept for prefix matching). */
  maxChunk(id?: string): number {
    const kept = Math.max(0, (this.lru.peek(id ?? '')?.nIds ?? 0) - this.sink) * ID_BYTES;
    return Math.max(0, Math.floor((this.budget - this.fixedBytes - kept) / fullTokenBytes(this.shape)));
  }

  /** Step 0: trims spare capacity, least recently used documents first, until `deficit()` ≤ 0. */
  private makeRoom(deficit: () => number): void {
    if (deficit() <= 0) return;
    for (const id of [...this.lru.rkeys()]) {
      if (deficit() <= 0) break;
      this.lru.peek(id)?.trimSpare();
    }
  }

  /**
   * Step 1: route_bias (float32 [E]) added to the router logits. Zero below `steerFrom` of the budget; above it,
   * a bias growing linearly with the fill level and with the expert index pushes new tokens to coarser experts.
   */
  routeBias(newTokens: number): Float32Array {
    const E = this.shape.heads.length;
    if (this.shape.cascade) return Float32Array.from({ length: E }, (_, e) => (e === 0 ? 0 : -1e4));
    const fill = (this.used() + newTokens * fullTokenBytes(this.shape)) / Math.max(1, this.budget);
    const bias = new Float32Array(E);
    if (fill <= this.steerFrom) return bias;
    const strength = Math.min(8, ((fill - this.steerFrom) / Math.max(1e-6, 1 - this.steerFrom)) * 4);
    for (let e = 0; e < E; e++) bias[e] = strength * e;
    return bias;
  }

  /**
   * Reserves room for `n` new tokens of document `id`, freeing bytes by steps 2–4. Returns the reservation size
   * and the actions taken; throws BudgetError when even step 4 cannot make room (n > maxChunk()).
   */
  admit(id: string, n: number): { reserved: number; actions: string[] } {
    const need = n * fullTokenBytes(this.shape);
    this.pendingActions = [];
    const doc = this.touch(id);
    const deficit = () => this.used() + need - this.budget;
    this.makeRoom(deficit);
    if (deficit() > 0) this.demote(deficit);
    for (const other of [...this.lru.rkeys()]) {
      if (deficit() <= 0) break;
      if (other !== id) this.lru.delete(other); // dispose records the eviction
    }
    if (deficit() > 0) this.dropHiddenTail(id, doc);
    for (let tries = 0; deficit() > 0 && tries < 8; tries++) if (!this.windowDoc(id, doc, deficit())) break;
    if (deficit() > 0) {
      this.check();
      throw new BudgetError(
        `KV budget ${this.budget} B too small for ${n} new tokens (need ${need} B beyond ${this.sink} sink tokens)`,
      );
    }
    this.reserved += need;
    this.check();
    return { reserved: need, actions: this.pendingActions.splice(0) };
  }

  /** Appends a run's K/V to the document and releases its reservation. */
  commit(id: string, reservation: number, ids: ArrayLike<number>, kv: RunKv): void {
    this.reserved -= reservation;
    const doc = this.lru.peek(id);
    if (doc) doc.append(ids, kv, reservation); // allocates at most the reservation (may have been closed meanwhile)
    this.check();
  }

  /** Releases a reservation without appending (run failed or was cancelled). */
  release(reservation: number): void {
    this.reserved -= reservation;
    this.check();
  }

  truncate(id: string, n: number): void {
    this.lru.peek(id)?.truncate(n);
    this.check();
  }

  /** Changes the budget and shrinks the caches to fit: demote, evict LRU, window the most recent document. */
  setBudget(bytes: number): string[] {
    this.budget = checkBudgetBytes(bytes); // throws for NaN/Infinity/negative: the old budget stays
    this.pendingActions = [];
    const over = () => this.used() - this.budget;
    this.makeRoom(over);
    if (over() > 0) this.demote(over);
    const ids = [...this.lru.rkeys()];
    for (const id of ids.slice(0, -1)) {
      if (over() <= 0) break;
      this.lru.delete(id);
    }
    const mru = ids[ids.length - 1];
    if (over() > 0 && mru !== undefined) this.dropHiddenTail(mru, this.lru.peek(mru)!);
    for (let tries = 0; mru !== undefined && over() > 0 && tries < 8; tries++) {
      if (!this.windowDoc(mru, this.lru.peek(mru)!, over())) break;
    }
    if (over() > 0 && mru !== undefined) this.lru.delete(mru); // budget below even the sink tokens
    this.check();
    return this.pendingActions.splice(0);
  }

  /** Brings the allocation back within the budget after a change made outside admit() (a prefix view opened or
   * closed, spotView.ts: its copy of the document's ids is new memory), with setBudget's steps. */
  enforce(): string[] {
    return this.setBudget(this.budget);
  }

  close(id: string): void {
    this.lru.delete(id);
    this.pendingActions = [];
    this.check();
  }
  clear(): void {
    this.lru.clear();
    this.pendingActions = [];
    this.check();
  }

  /** Step 2 of the manifest's policy. */
  private demote(deficit: () => number): void {
    if (this.shape.cascade) this.demoteOldest(deficit);
    else this.demoteLowest(deficit());
  }

  /** Step 2 with an age cascade: the oldest position groups of the most precise tier one tier down, across
   * documents, until `deficit()` ≤ 0 or every group sits in the last tier; planned first, each group then moved
   * once to the deepest tier the plan reached (cascadePlan.ts). */
  private demoteOldest(deficit: () => number): void {
    let count = 0,
      freed = 0;
    // Tokens past the band stay at full precision until the budget binds: quantising them costs quality and, at
    // every request, the dequantisation of the whole tier into the graph's inputs (kvCascade feeds()). They move to
    // the first tier here, least recently used documents first, before any tier-to-tier demotion.
    for (const id of [...this.lru.rkeys()]) {
      if (deficit() <= 0) break;
      const before = this.used();
      if (this.lru.peek(id)?.tiers?.age())
        this.pendingActions.push(`moved ${id}'s tokens past the band to the first tier (${before - this.used()} B)`);
    }
    for (let d = deficit(); d > 0; d = deficit()) {
      const steps = planSteps([...this.lru.values()], d);
      if (steps.length === 0) break;
      let got = 0;
      if (this.stepwiseDemotion) for (const s of steps) got += s.doc.tiers!.demote(s.tier, s.group);
      else for (const m of collapse(steps)) got += m.doc.tiers!.moveGroup(m.group, m.from, m.to);
      count += steps.length;
      freed += got;
      if (got <= 0) break;
    }
    if (count) this.pendingActions.push(`demoted ${count} position groups one tier down (${freed} B)`);
  }

  /** Step 2: demote lowest-score entries one expert coarser until `deficit` bytes are freed or none is left. */
  private demoteLowest(deficit: number): void {
    const E = this.shape.heads.length;
    let freedTotal = 0,
      passes = 0;
    while (freedTotal < deficit && passes++ < E) {
      type Cand = { doc: DocCache; l: number; e: number; slot: number; score: number };
      const cands: Cand[] = [];
      for (const doc of this.lru.values())
        doc.segs.forEach((row, l) =>
          row.forEach((s, e) => {
            if (e === E - 1) return;
            for (let i = 0; i < s.n; i++) cands.push({ doc, l, e, slot: i, score: s.scores[i * E + e] });
          }),
        );
      if (cands.length === 0) break;
      cands.sort((a, b) => a.score - b.score);
      const chosen = new Map<string, { doc: DocCache; l: number; e: number; slots: number[] }>();
      const docKey = new Map<DocCache, number>();
      let planned = 0,
        count = 0;
      for (const c of cands) {
        if (freedTotal + planned >= deficit) break;
        if (!docKey.has(c.doc)) docKey.set(c.doc, docKey.size);
        const key = `${docKey.get(c.doc)}:${c.l}:${c.e}`;
        let g = chosen.get(key);
        if (!g) chosen.set(key, (g = { doc: c.doc, l: c.l, e: c.e, slots: [] }));
        g.slots.push(c.slot);
        planned += entryBytes(this.shape, c.e) - entryBytes(this.shape, c.e + 1);
        count++;
      }
      for (const g of chosen.values()) freedTotal += g.doc.demote(g.l, g.e, g.slots, g.e + 1);
      this.pendingActions.push(`demoted ${count} token-layers (${freedTotal} B)`);
    }
  }

  /** Step 3½ (layout psm): the document's tokens after the cursor, hidden by its open view, only serve later jumps. */
  private dropHiddenTail(id: string, doc: DocCache): void {
    const freed = dropHiddenTail(doc);
    if (freed > 0) this.pendingActions.push(`dropped ${id}'s cached text after the cursor (${freed} B)`);
  }

  /** Step 4: drop the oldest non-sink positions of `doc` until `deficit` bytes are freed (or only sinks remain);
   * false when nothing was left to drop. Callers repeat it while tier estimates fall short. */
  private windowDoc(id: string, doc: DocCache, deficit: number): boolean {
    const freedAt = new Map<number, number>(); // position -> bytes its entries hold
    const add = (p: number, b: number) => {
      if (p >= this.sink) freedAt.set(p, (freedAt.get(p) ?? 0) + b);
    };
    doc.segs.forEach((row) =>
      row.forEach((s, e) => {
        const b = entryBytes(this.shape, e);
        for (let i = 0; i < s.n; i++) add(s.pos[i], b);
      }),
    );
    doc.tiers?.visibleBytes(add); // an estimate: a tier's record is freed once all its tokens are dropped
    const positions = [...freedAt.keys()].sort((a, b) => a - b);
    let freed = 0,
      keepFrom = this.sink;
    for (const p of positions) {
      if (freed >= deficit) break;
      freed += freedAt.get(p)!;
      keepFrom = p + 1;
    }
    if (keepFrom > this.sink) {
      doc.window(this.sink, keepFrom);
      this.pendingActions.push(`windowed ${id}: dropped positions ${this.sink}..${keepFrom - 1}`);
    }
    return keepFrom > this.sink;
  }

  private check(): void {
    if (this.debug) this.assertInvariant();
  }

  assertInvariant(): void {
    const u = this.used();
    if (u > this.budget) throw new Error(`KV budget invariant violated: ${u} B held > ${this.budget} B budget`);
    if (this.reserved < 0) throw new Error(`negative reservation ${this.reserved}`);
  }
}
