// Number formatting shared by the gauge, the report, the log and the commands.

/** The one unit of memory the extension shows: MB here means 2^20 bytes (a MiB), KB 2^10; the setting, the gauge,
 *  the panel, the log and the messages all use it. */
export const KB = 1024;
export const MB = 1024 * KB;

/** "12.3" — one decimal, never rounded up past the true value (a full cache must not read as over budget). */
export function mb(bytes: number): string {
  return (Math.floor((bytes / MB) * 10) / 10).toFixed(1);
}

/** Gauge's used figure: MB with one decimal from 1 MB up ("12.3"), KB below ("7.8 KB") so small caches show. */
export function usedMb(bytes: number): string {
  if (bytes >= MB) return mb(bytes);
  return `${(Math.floor((bytes / KB) * 10) / 10).toFixed(1)} KB`;
}

/** Budget in MB without a pointless ".0". */
export function budgetMb(bytes: number): string {
  return String(Number((bytes / MB).toFixed(2)));
}

/**
 * The device note as users see it: one short line, and only where it says something they asked about. With
 * `auto` on a machine without a usable GPU, running on the CPU is the expected outcome, not a problem (the full
 * reason is in the log); after choosing `cpu` there is nothing to say.
 */
export function shortDeviceNote(setting: 'auto' | 'cuda' | 'cpu', note: string | undefined): string | undefined {
  if (!note || setting === 'cpu') return undefined;
  return setting === 'auto'
    ? 'No usable CUDA GPU here: running on the CPU.'
    : 'CUDA could not start: running on the CPU (see the log).';
}

/** Longest prompt the engine builds (src/engine/prompt.ts defaultLimits), in tokens. */
export const FULL_PROMPT_TOKENS = 1536;
/** KV heads of the largest and the smallest expert: the smallest stores this fraction of a full token's KV. */
const SMALLEST_EXPERT_SHARE = 1 / 4;

/**
 * Whether a budget is too small for useful suggestions: below what one full prompt takes with every token on the
 * smallest expert, the engine has to window the prompt (drop its older tokens) before every request. Returns the
 * warning to show and the smallest budget (MB, rounded up) that avoids it, or undefined when the budget is fine.
 */
export function budgetAdvice(
  budgetBytes: number,
  fullBytesPerToken: number,
): { warning: string; minMb: number } | undefined {
  if (!(fullBytesPerToken > 0)) return undefined;
  const minBytes = FULL_PROMPT_TOKENS * fullBytesPerToken * SMALLEST_EXPERT_SHARE;
  if (budgetBytes >= minBytes) return undefined;
  const minMb = Math.ceil(minBytes / MB);
  const tokens = Math.floor(budgetBytes / (fullBytesPerToken * SMALLEST_EXPERT_SHARE));
  return {
    minMb,
    warning:
      `a KV budget of ${Number((budgetBytes / MB).toFixed(2))} MB holds about ${tokens} prompt tokens even on the smallest ` +
      `expert (a full prompt has ${FULL_PROMPT_TOKENS}), so prompts are cut and suggestions see little context. ` +
      `Use at least ${minMb} MB.`,
  };
}

/** A typed value that reads as a number of MB ("2", "0.5", "2 MB", "2mb"), or undefined. */
export function typedMb(value: string): number | undefined {
  const m = /^\s*(\d+(?:\.\d+)?|\.\d+)\s*(mb)?\s*$/i.exec(value);
  return m ? Number(m[1]) : undefined;
}

export function pct(x: number): string {
  return `${(x * 100).toFixed(0)}%`;
}

/** Expert label from its KV head count, e.g. "E1 (2 KV heads)". */
export function expertLabel(e: number): string {
  const heads = [4, 2, 1][e];
  return heads ? `E${e} (${heads} KV head${heads > 1 ? 's' : ''})` : `E${e}`;
}
