// The engine's memory report (api.ts MemoryReport): what the budget holds per document, expert and layer, the
// cascade's tiers by age, and the engine process's own memory. Read-only over the budget; no ORT.
import type { MemoryReport } from './api';
import type { KvBudget } from './budget';
import { KvShape, fullTokenBytes } from './kvStore';

export interface ReportContext {
  device: MemoryReport['device'];
  deviceNote?: string;
  modelName: string;
}

export function memoryReport(budget: KvBudget, shape: KvShape, ctx: ReportContext): MemoryReport {
  const E = shape.heads.length,
    L = shape.layers;
  const perLayer = Array.from({ length: L }, () => new Array<number>(E).fill(0));
  const docs = budget.docIds().map((id) => {
    const d = budget.peek(id)!;
    d.segs.forEach((row, l) =>
      row.forEach((s, e) => {
        perLayer[l][e] += s.n;
      }),
    );
    d.tiers?.tiers.forEach((row, l) =>
      row.forEach((t, i) => {
        perLayer[l][d.tiers!.c.expertOf[i]] += t.count();
      }),
    );
    return {
      docId: id,
      tokens: d.nIds,
      bytes: d.bytes(),
      expertTokens: d.expertEntries().map((x) => x / L),
      lastUsed: budget.lastUsedAt(id),
    };
  });
  const tot = perLayer.flat().reduce((a, b) => a + b, 0);
  const shares = new Array<number>(E).fill(0).map((_, e) => (tot ? perLayer.reduce((a, r) => a + r[e], 0) / tot : 0));
  return {
    usedBytes: budget.used(),
    budgetBytes: budget.budgetBytes,
    device: ctx.device,
    ...(ctx.deviceNote ? { deviceNote: ctx.deviceNote } : {}),
    modelName: ctx.modelName,
    docs,
    expertShares: shares,
    process: processMemory(),
    perLayerShares: perLayer.map((r) => {
      const s = r.reduce((a, b) => a + b, 0);
      return r.map((x) => (s ? x / s : 0));
    }),
    fullBytesPerToken: fullTokenBytes(shape),
    ...(shape.cascade ? { cascade: cascadeReport(budget, shape) } : {}),
  };
}

/** MemoryReport.cascade: tier shares summed over documents. */
function cascadeReport(budget: KvBudget, shape: KvShape): NonNullable<MemoryReport['cascade']> {
  const c = shape.cascade!;
  const tiers = [
    { name: 'full', tokens: 0, bytes: 0 },
    ...c.stores.map((s) => ({ name: s.name, tokens: 0, bytes: 0 })),
  ];
  for (const id of budget.docIds()) {
    const d = budget.peek(id)!;
    tiers[0].tokens += d.segs[0][0].n;
    for (const row of d.segs) tiers[0].bytes += row[0].allocatedBytes();
    d.tiers?.stats().forEach((t, i) => {
      tiers[i + 1].tokens += t.tokens;
      tiers[i + 1].bytes += t.bytes;
    });
  }
  return { spec: c.spec, band: c.band, sinks: c.sinks, tiers };
}

/** The engine process's memory in MB (where growth is: JS heap, array buffers, or native). */
function processMemory(): MemoryReport['process'] {
  const m = process.memoryUsage(),
    mb = (x: number) => Math.round((x / 2 ** 20) * 10) / 10;
  return {
    rssMB: mb(m.rss),
    heapUsedMB: mb(m.heapUsed),
    externalMB: mb(m.external),
    arrayBuffersMB: mb(m.arrayBuffers),
  };
}
