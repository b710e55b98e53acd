// A small lexical scanner: which brackets, strings, docstrings and block comments are open after a text. Not a
// parser: it knows only the quoting and comment rules of a language family, which is what deciding "does this
// completion leave something open that was not open before" needs. Unknown languages get C-like rules.

/** Something that is open: a bracket, a string of some quoting, a block comment or a template `${`. */
export type FrameKind = '(' | '[' | '{' | '${' | '"' | "'" | '`' | '"""' | "'''" | '/*';

export interface Frame {
  kind: FrameKind;
  /** Offset of its opener in the scanned text (-1: opened before it). */ at: number;
}

export interface LexState {
  stack: Frame[];
  /** Inside a line comment (ends at the next newline). */
  lineComment: boolean;
  /** Offset where that line comment started (-1: before the scanned text). */
  commentAt: number;
  /** Closers that matched nothing and single-line strings cut by a newline: things already broken. */
  errors: number;
}

export interface LangRules {
  lineComments: string[];
  blockComment: boolean;
  /** Python-style """ and ''' strings. */
  tripleQuotes: boolean;
  /** Quote characters that open strings on one line. */
  quotes: string[];
  /** Backtick strings span lines; with `${` interpolation in JS/TS. */
  backtick: 'none' | 'raw' | 'template';
}

const C_LIKE: LangRules = {
  lineComments: ['//'],
  blockComment: true,
  tripleQuotes: false,
  quotes: ['"', "'"],
  backtick: 'none',
};
const RULES: Record<string, Partial<LangRules>> = {
  python: { lineComments: ['#'], blockComment: false, tripleQuotes: true },
  shellscript: { lineComments: ['#'], blockComment: false },
  ruby: { lineComments: ['#'], blockComment: false },
  yaml: { lineComments: ['#'], blockComment: false },
  typescript: { backtick: 'template' },
  typescriptreact: { backtick: 'template' },
  javascript: { backtick: 'template' },
  javascriptreact: { backtick: 'template' },
  go: { backtick: 'raw' },
  rust: { quotes: ['"'] }, // 'a is a lifetime
  json: { lineComments: [], blockComment: false, quotes: ['"'] },
  markdown: { lineComments: [], blockComment: false, quotes: [] }, // prose: apostrophes are not quotes
  plaintext: { lineComments: [], blockComment: false, quotes: [] },
  html: { lineComments: [], blockComment: false, quotes: [] },
  css: { lineComments: [] },
};

export function langRules(languageId: string | undefined): LangRules {
  return { ...C_LIKE, ...(RULES[languageId ?? ''] ?? {}) };
}

export const emptyState = (): LexState => ({ stack: [], lineComment: false, commentAt: -1, errors: 0 });
export const cloneState = (s: LexState): LexState => ({ ...s, stack: s.stack.map((f) => ({ ...f })) });

const CLOSER: Record<FrameKind, string> = {
  '(': ')',
  '[': ']',
  '{': '}',
  '${': '}',
  '"': '"',
  "'": "'",
  '`': '`',
  '"""': '"""',
  "'''": "'''",
  '/*': '*/',
};
export const closerOf = (k: FrameKind): string => CLOSER[k];
const isString = (k: FrameKind): boolean => k === '"' || k === "'" || k === '`' || k === '"""' || k === "'''";

/** What happened at one offset of the scanned text. */
export type LexEvent =
  | { type: 'close'; at: number; depth: number } // the frame at stack index `depth` was closed properly
  | { type: 'error'; at: number; depth: number }; // broken: a closer matching nothing, or a newline ending a one-line string

/**
 * Scans `text` on from `state` (which it changes). `onEvent` may return true to stop there; the offset where the
 * scan stopped is returned (text.length when it ran to the end).
 */
export function scan(text: string, state: LexState, rules: LangRules, onEvent?: (e: LexEvent) => boolean): number {
  const st = state.stack;
  const emit = (e: LexEvent): boolean => (onEvent ? onEvent(e) : false);
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (state.lineComment) {
      if (ch === '\n') state.lineComment = false;
      continue;
    }
    const top = st[st.length - 1]?.kind;
    if (top === '/*') {
      if (text.startsWith('*/', i)) {
        if (emit({ type: 'close', at: i, depth: st.length - 1 })) return i;
        st.pop();
        i++;
      }
      continue;
    }
    if (top !== undefined && isString(top)) {
      if (ch === '\\') {
        i++;
        continue;
      }
      if (top === '"""' || top === "'''") {
        if (text.startsWith(top, i)) {
          if (emit({ type: 'close', at: i, depth: st.length - 1 })) return i;
          st.pop();
          i += 2;
        }
      } else if (top === '`') {
        if (ch === '`') {
          if (emit({ type: 'close', at: i, depth: st.length - 1 })) return i;
          st.pop();
        } else if (rules.backtick === 'template' && text.startsWith('${', i)) {
          st.push({ kind: '${', at: i });
          i++;
        }
      } else if (ch === top) {
        if (emit({ type: 'close', at: i, depth: st.length - 1 })) return i;
        st.pop();
      } else if (ch === '\n') {
        if (emit({ type: 'error', at: i, depth: st.length - 1 })) return i;
        st.pop();
        state.errors++;
      }
      continue;
    }
    // code
    if (rules.lineComments.some((c) => text.startsWith(c, i))) {
      state.lineComment = true;
      state.commentAt = i;
      continue;
    }
    if (rules.blockComment && text.startsWith('/*', i)) {
      st.push({ kind: '/*', at: i });
      i++;
      continue;
    }
    if (rules.tripleQuotes && (text.startsWith('"""', i) || text.startsWith("'''", i))) {
      st.push({ kind: text.slice(i, i + 3) as FrameKind, at: i });
      i += 2;
      continue;
    }
    if (rules.quotes.includes(ch) || (ch === '`' && rules.backtick !== 'none')) {
      st.push({ kind: ch as FrameKind, at: i });
      continue;
    }
    if (ch === '(' || ch === '[' || ch === '{') {
      st.push({ kind: ch, at: i });
      continue;
    }
    if (ch === ')' || ch === ']' || ch === '}') {
      if (top !== undefined && CLOSER[top] === ch) {
        if (emit({ type: 'close', at: i, depth: st.length - 1 })) return i;
        st.pop();
      } else {
        if (emit({ type: 'error', at: i, depth: st.length })) return i;
        state.errors++;
      }
    }
  }
  return text.length;
}

/** The text ends in an unpaired backslash: whatever comes next is escaped. */
export const endsInEscape = (text: string): boolean => /(^|[^\\])(\\\\)*\\$/.test(text);

/** How much is open or broken after a whole text: open frames plus errors (the property the pipeline keeps). */
export function unclosed(text: string, rules: LangRules): number {
  const s = emptyState();
  scan(text, s, rules);
  return s.stack.length + s.errors;
}
