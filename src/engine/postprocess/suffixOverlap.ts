// Nothing that is already after the cursor: a multi-line completion ends where it starts repeating the next line
// of the document, and the first line does not end with the text already right of the cursor.
import type { Filter } from './filter';
import { linesOf } from './filter';
import { cloneState, scan } from './lexer';

export const suffixOverlap: Filter = {
  cut(text, c, final) {
    if (!c.multiline || c.nextLine === '') return null;
    for (const l of linesOf(text, final)) {
      if (l.index > 0 && l.line.trim() === c.nextLine) return { at: l.start, stop: 'suffix-overlap' };
    }
    return null;
  },

  shape(text, c) {
    let t = text;
    const rest = c.restOfLine.trim();
    if (rest) {
      const nl = t.indexOf('\n');
      const first = (nl < 0 ? t : t.slice(0, nl)).trimEnd();
      const cut = first.slice(0, first.length - rest.length);
      // Drop the echo only when what stays leaves no more open than the prefix did: `feeds.values()` before an
      // auto-closed `)` keeps its own `)`.
      if (first.endsWith(rest) && opensNothing(cut, c)) t = cut + (nl < 0 ? '' : t.slice(nl));
    }
    return c.nextLine && t.trim() === c.nextLine ? '' : t;
  },
};

function opensNothing(text: string, c: Parameters<NonNullable<Filter['shape']>>[1]): boolean {
  const s = cloneState(c.before);
  scan(text, s, c.rules);
  return s.stack.length <= c.before.stack.length && s.errors === c.before.errors;
}
