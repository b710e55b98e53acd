// The shape of one post-processing filter. A filter may say where a completion must end (`cut`: used while tokens
// stream in to stop generating, and again on the final text) and how the final text is reshaped (`shape`).
import type { StopReason } from '../api';
import type { PostContext } from './context';

export interface Cut {
  at: number;
  stop: StopReason;
}

export interface Filter {
  /** Earliest offset where the text must end, or null. `final`: the text is complete, its last line too. */
  cut?(text: string, c: PostContext, final: boolean): Cut | null;
  shape?(text: string, c: PostContext): string;
}

/** The lines of `text` with their start offsets; `final` false leaves out the last (still growing) line. */
export function linesOf(text: string, final: boolean): { line: string; start: number; index: number }[] {
  const parts = text.split('\n');
  const out: { line: string; start: number; index: number }[] = [];
  let start = 0;
  const n = final ? parts.length : parts.length - 1;
  for (let i = 0; i < n; i++) {
    out.push({ line: parts[i], start, index: i });
    start += parts[i].length + 1;
  }
  return out;
}
