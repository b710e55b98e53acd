// Indentation relative to the cursor line: a multi-line completion ends where a line leaves the cursor's block, and
// a completion on a line the editor already indented (e.g. after `def f():` + Enter) does not indent it again.
import { indentOf } from './context';
import type { Filter } from './filter';
import { linesOf } from './filter';

export const indentation: Filter = {
  cut(text, c, final) {
    if (!c.multiline) return null;
    for (const l of linesOf(text, final)) {
      if (l.index > 0 && l.line.trim() !== '' && indentOf(l.line) < c.blockIndent)
        return { at: l.start, stop: 'indent' };
    }
    return null;
  },

  shape(text, c) {
    const head = c.cursorLineHead;
    if (head === '' || head.trim() !== '' || indentOf(head) < c.expectedIndent) return text;
    // The cursor line already has (at least) the indentation it needs: leading whitespace would add to it.
    return text.replace(/^[ \t]+/, '');
  },
};
