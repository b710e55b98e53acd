// The memory panel's and the gauge tooltip's words, computed in the extension (media/panel.js only draws them), so
// that they are unit-tested: the active model and why it was chosen, and the engine process's RSS cap.
import type { MemoryReport } from '../engine/api';
import { modelLabel } from './modelChoice';
import type { ActiveModel } from './modelPath';

/** What the host knows about the model it started. */
export type ModelInfo = Pick<ActiveModel, 'dir' | 'folder' | 'reason' | 'manifest'>;

/** "mixsga-default (22.9M parameters) on CPU", and why it runs. */
export function modelView(
  model: ModelInfo | undefined,
  report: Pick<MemoryReport, 'modelName' | 'device'> | undefined,
  device?: string,
): { label: string; reason: string } | undefined {
  if (!model && !report) return undefined;
  const fallback = report?.modelName || model?.folder || model?.dir || 'model';
  const on = report && report.device !== 'none' ? report.device : device;
  return { label: modelLabel(model?.manifest, fallback, on), reason: model?.reason ?? '' };
}

export interface RssCapView {
  /** The engine process's resident memory and the cap, in bytes (for the panel's bar and its marker). */
  rssBytes?: number;
  capBytes?: number;
  /** Sentences under the bar: the cap's parts, then the restarts so far and the last one's time and reason. */
  lines: string[];
}

const MiB = 2 ** 20;
const fmt = (mb: number): string => `${mb.toFixed(1)} MB`;

function ago(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 90) return `${s} s ago`;
  const m = Math.round(s / 60);
  return m < 90 ? `${m} min ago` : `${Math.round(m / 60)} h ago`;
}

/** The panel's "Engine process memory" section; undefined when the report has no RSS cap (it is off). */
export function rssCapView(r: MemoryReport | undefined, now = Date.now()): RssCapView | undefined {
  const c = r?.rssCap;
  if (!r || !c) return undefined;
  const rss = r.process?.rssMB;
  const lines: string[] = [];
  const rssText = rss === undefined ? 'Resident memory (RSS) not known yet' : `Resident memory (RSS) ${fmt(rss)}`;
  if (c.capMB === undefined) {
    lines.push(`${rssText}; no cap yet: it is set once the fresh engine process reports its own RSS.`);
  } else {
    const budgetMB = r.budgetBytes / MiB;
    const fresh = c.capMB - budgetMB - c.headroomMB;
    lines.push(
      `${rssText} of a ${fmt(c.capMB)} cap (fresh process ${fmt(fresh)}` +
        (c.workingSetMB
          ? `, of which ${fmt(c.workingSetMB)} is ONNX Runtime's working memory for the largest run`
          : '') +
        ` + KV budget ${fmt(budgetMB)} + ` +
        `${fmt(c.headroomMB)} headroom). Above it, the engine process is restarted once it has been idle for ` +
        `${Math.round(c.idleMs / 1000)} s, and the document completed last is prefilled again.`,
    );
  }
  const last = c.restarts.last;
  if (!c.restarts.count || !last) {
    lines.push('No restarts for the cap so far.');
  } else {
    const at = new Date(last.at);
    const when = Number.isNaN(at.getTime())
      ? last.at
      : `${at.toISOString().slice(0, 19).replace('T', ' ')} UTC (${ago(now - at.getTime())})`;
    lines.push(
      `Restarts for the cap so far: ${c.restarts.count}. Last at ${when}: RSS ${fmt(last.rssMB)} was over the ` +
        `${fmt(last.capMB)} cap; the fresh process was ready in ${last.restartMs} ms.`,
    );
  }
  return {
    ...(rss !== undefined ? { rssBytes: rss * MiB } : {}),
    ...(c.capMB !== undefined ? { capBytes: c.capMB * MiB } : {}),
    lines,
  };
}
