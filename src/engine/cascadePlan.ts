// Budget step 2 with an age cascade (budget.ts), planned before anything moves. The order is kv_policy's: every
// movable group of the most precise tier one tier down, oldest first across documents, then the next tier, until
// the deficit is met. Done literally, a group that one deficit pushes through several tiers is dequantised and
// quantised again at each tier: at a new spot of a 4k-token file at 25 % that re-quantisation was most of the
// engine's own CPU time (docs/benchmarks.md, "Age cascade"). So the passes run on a byte model of each document's
// groups (exact: tier arrays are sized record by record, kvTier.ts), and each group then moves ONCE, from the tiers
// it sits in to the deepest tier the plan took it to: one dequantise + pool + quantise, as kv_policy quantises
// every store from the full-precision K/V (one rounding, not one per tier crossed).
import type { DocCache } from './kvStore';
import type { GroupCell } from './kvCascade';

/** One tier-to-next step of the plan (what the literal passes would do, in their order). */
export interface PlanStep {
  doc: DocCache;
  group: number;
  tier: number;
}
/** A group's move in one go: its tokens in tiers from … to−1 go to tier `to`. */
export interface PlanMove {
  doc: DocCache;
  group: number;
  from: number;
  to: number;
}

/** The literal passes on a copy of each document's group table, until `deficit` bytes would be freed. */
export function planSteps(docs: DocCache[], deficit: number): PlanStep[] {
  const models = docs.map((doc) => ({ doc, ...doc.tiers!.groupTable() }));
  const steps: PlanStep[] = [];
  let left = deficit;
  while (left > 0) {
    type Cand = { m: (typeof models)[number]; tier: number; group: number; cell: GroupCell; age: number };
    const cands: Cand[] = [];
    for (const m of models) {
      const tiers = m.doc.tiers!.tiers[0];
      m.cells.forEach((byGroup, t) => {
        if (t + 1 >= tiers.length) return;
        for (const [k, cell] of byGroup)
          if (!m.full.has(k) && freedBy(m.doc, t, cell) > 0)
            cands.push({ m, tier: t, group: k, cell, age: m.doc.tiers!.groupAge(k) });
      });
    }
    if (cands.length === 0) break;
    const tier = Math.min(...cands.map((c) => c.tier));
    const pass = cands.filter((c) => c.tier === tier).sort((a, b) => b.age - a.age);
    for (const c of pass) {
      if (left <= 0) break;
      left -= freedBy(c.m.doc, c.tier, c.cell) * c.m.doc.shape.layers;
      c.m.cells[tier].delete(c.group);
      const next = c.m.cells[tier + 1].get(c.group) ?? { tokens: 0, records: 0 };
      c.m.cells[tier + 1].set(c.group, {
        tokens: next.tokens + c.cell.tokens,
        records: next.records + recordsFor(c.m.doc, tier + 1, c.cell.tokens),
      });
      steps.push({ doc: c.m.doc, group: c.group, tier });
    }
  }
  return steps;
}

/** The steps of each group collapsed into one move (a group's steps are consecutive tiers). */
export function collapse(steps: PlanStep[]): PlanMove[] {
  const moves = new Map<DocCache, Map<number, PlanMove>>();
  for (const s of steps) {
    const byGroup = moves.get(s.doc) ?? new Map<number, PlanMove>();
    moves.set(s.doc, byGroup);
    const m = byGroup.get(s.group);
    if (m) m.to = s.tier + 1;
    else byGroup.set(s.group, { doc: s.doc, group: s.group, from: s.tier, to: s.tier + 1 });
  }
  return [...moves.values()].flatMap((g) => [...g.values()]);
}

/** Records `tokens` tokens of one group take when added to tier t (one in channel mode, else one per token). */
function recordsFor(doc: DocCache, t: number, tokens: number): number {
  return doc.tiers!.tiers[0][t].slots > 1 ? 1 : tokens;
}

/** Bytes one layer frees when the group's cell in tier t moves to tier t + 1 (≤ 0: the move would not pay). */
function freedBy(doc: DocCache, t: number, cell: GroupCell): number {
  const [src, dst] = [doc.tiers!.tiers[0][t], doc.tiers!.tiers[0][t + 1]];
  return cell.records * src.recordBytes - dst.costOf(cell.tokens);
}
