// Brackets, quotes, docstrings and block comments: a completion never leaves open what it opened, never closes
// what the text after the cursor already closes (the editor's auto-closed `)` or `"`), and never breaks the rest
// of the line by starting a line comment in front of it.
import type { PostContext } from './context';
import type { Filter } from './filter';
import { cloneState, closerOf, endsInEscape, Frame, scan } from './lexer';

export const balance: Filter = {
  cut(text, c) {
    if (c.splitsToken && text.length > 0) return { at: 0, stop: 'bracket' };
    // Inside a line comment with text after the cursor: a newline would turn the rest of that comment into code.
    if (c.before.lineComment && c.restOfLine.trim() !== '' && text.includes('\n'))
      return { at: text.indexOf('\n'), stop: 'bracket' };
    const base = c.before.stack.length;
    let cut: number | null = null;
    scan(text, cloneState(c.before), c.rules, (e) => {
      // A broken closer, or one for a prefix frame that the suffix closes already.
      if (e.type === 'error' || e.depth < base - c.free) {
        cut = e.at;
        return true;
      }
      return false;
    });
    return cut === null ? null : { at: cut, stop: 'bracket' };
  },

  shape(text, c) {
    let t = text;
    const s = cloneState(c.before);
    scan(t, s, c.rules);
    const own = s.stack.filter((f) => f.at >= 0);
    if (s.lineComment && s.commentAt >= 0 && (c.restOfLine.trim() !== '' || own.length)) {
      // The comment would swallow what follows the cursor on its line, or the closers appended below.
      return balance.shape!(t.slice(0, s.commentAt).trimEnd(), c);
    }
    if (own.length === 0) return t;
    t = t.trimEnd();
    for (const f of own.reverse()) {
      // A dangling escape would escape the closing quote, and '''x'''' would close early and leave a quote open:
      // neither right before the closer.
      const triple = f.kind === '"""' || f.kind === "'''";
      while (endsInEscape(t) || (triple && t.length > f.at + 3 && t.endsWith(f.kind[0]))) t = t.slice(0, -1);
      t += closing(t, f, c);
    }
    return t;
  },
};

/** The text that closes `f`: right after the text when it opened on the last line, else on a line of its own. */
function closing(text: string, f: Frame, c: PostContext): string {
  const closer = closerOf(f.kind);
  const lastLine = text.lastIndexOf('\n') + 1;
  // a one-line string that reaches here continues over an escaped newline: it closes where it is
  if (f.at >= lastLine || f.kind === '"' || f.kind === "'") return f.kind === '/*' ? ` ${closer}` : closer;
  const lineStart = text.lastIndexOf('\n', f.at - 1) + 1;
  const line =
    lineStart === 0
      ? c.cursorLineHead + text.slice(0, text.indexOf('\n'))
      : text.slice(lineStart, text.indexOf('\n', lineStart));
  return `\n${/^[ \t]*/.exec(line)![0]}${closer}`;
}
