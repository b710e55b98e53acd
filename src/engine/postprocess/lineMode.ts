// Line structure: a single-line completion ends at its first newline; a multi-line one at two blank lines in a row.
import type { Filter } from './filter';
import { linesOf } from './filter';

export const lineMode: Filter = {
  cut(text, c, final) {
    if (!c.multiline) {
      const nl = text.indexOf('\n');
      return nl >= 0 ? { at: nl, stop: 'newline' } : null;
    }
    const lines = linesOf(text, final);
    // From the third line on (the first is the cursor line's continuation): a blank line after a blank line.
    for (const l of lines) {
      if (l.index >= 2 && l.line.trim() === '' && lines[l.index - 1].line.trim() === '') {
        return { at: lines[l.index - 1].start - 1, stop: 'newline' };
      }
    }
    return null;
  },
};
