// Loops: the model repeating a line, a short stretch of text (`/v2/v2/v2`) or a cycle of tokens. The text is cut
// so that one copy stays.
import type { Filter } from './filter';
import { linesOf } from './filter';

export const loops: Filter = {
  cut(text, c, final) {
    if (c.multiline) {
      // The same non-empty line three times in a row: keep the first.
      const done = linesOf(text, final).filter((l) => l.line.trim() !== '');
      for (let i = 2; i < done.length; i++) {
        if (done[i].line === done[i - 1].line && done[i - 1].line === done[i - 2].line)
          return { at: done[i - 1].start - 1, stop: 'repetition' };
      }
    }
    const at = textLoop(text);
    return at === null ? null : { at, stop: 'repetition' };
  },
};

/**
 * A loop at the end of the text: the same unit of 2–40 characters three times in a row. The unit must look like
 * code that should not repeat: a letter with a punctuation mark ('/v2', '.config') or three letters in a row
 * ('Max'); so '0, 0, 0', '----' and '#a1a1a1' are no loops. The first copy may lack a leading separator
 * when the rest is a word ('config.config.config'). Returns where the second copy starts.
 */
export function textLoop(text: string): number | null {
  const n = text.length;
  for (let p = 2; p <= 40 && 3 * p - 1 <= n; p++) {
    const unit = text.slice(n - p);
    if (!/[A-Za-z]/.test(unit) || /^(.)\1*$/s.test(unit)) continue;
    if (!/[A-Za-z_]{3}/.test(unit) && !/[^\sA-Za-z0-9]/.test(unit)) continue;
    if (text.slice(n - 2 * p, n - p) !== unit) continue;
    // The first copy may lack the unit's leading separator: 'config.config.config' is '.config' three times.
    const first = text.slice(Math.max(0, n - 3 * p), n - 2 * p);
    if (first === unit) return n - 2 * p;
    const bare = unit.slice(1);
    const wholeWord = first.length === bare.length || !/[A-Za-z0-9_]/.test(first[0]);
    if (/^[^\sA-Za-z0-9_]/.test(unit) && /[A-Za-z_]{3}/.test(bare) && first.endsWith(bare) && wholeWord)
      return n - 2 * p;
  }
  return null;
}

/** The last ≥ 16 ids are a period-p cycle (p ≤ 8) repeated at least 3 times. */
export function repeatsTokens(ids: number[]): boolean {
  for (let p = 1; p <= 8; p++) {
    const span = Math.max(16, 3 * p);
    if (ids.length < span) continue;
    let ok = true;
    for (let i = ids.length - span; i < ids.length - p && ok; i++) ok = ids[i] === ids[i + p];
    if (ok) return true;
  }
  return false;
}
