// Number formatting shared by the gauge, the report and the commands.
import { MB } from './engineHost';

/** "12.3" — one decimal, never rounded up past the true value (a full cache must not read as over budget). */
export function mb(bytes: number): string {
  return (Math.floor((bytes / MB) * 10) / 10).toFixed(1);
}

/** Gauge's used figure: MB with one decimal from 1 MB up ("12.3"), KB below ("7.8 KB") so small caches show. */
export function usedMb(bytes: number): string {
  if (bytes >= MB) return mb(bytes);
  return `${(Math.floor((bytes / 1024) * 10) / 10).toFixed(1)} KB`;
}

/** Budget in MB without a pointless ".0". */
export function budgetMb(bytes: number): string {
  return String(Number((bytes / MB).toFixed(2)));
}

export function pct(x: number): string {
  return `${(x * 100).toFixed(0)}%`;
}

/** Expert label from its KV head count, e.g. "E1 (2 KV heads)". */
export function expertLabel(e: number): string {
  const heads = [4, 2, 1][e];
  return heads ? `E${e} (${heads} KV head${heads > 1 ? 's' : ''})` : `E${e}`;
}
