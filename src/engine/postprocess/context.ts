// What every filter needs to know about the spot a completion goes into, computed once per request.
import { cloneState, emptyState, endsInEscape, FrameKind, LangRules, langRules, LexState, scan } from './lexer';

export interface PostInput {
  multiline: boolean;
  /** Text before the cursor (its last line gives the block indentation). */
  prefix: string;
  /** Text after the cursor. */
  suffix: string;
  maxTokens: number;
  /** Token ids that end generation (EOS, <fim_pad>, <file_sep>, ...). */
  stopIds: Set<number>;
  /** Language id (quoting and comment rules); unknown or absent: C-like. */
  languageId?: string;
  /** The document's line break; the completion's lines are joined with it. */
  eol?: '\n' | '\r\n';
}

export interface PostContext {
  multiline: boolean;
  prefix: string;
  suffix: string;
  eol: '\n' | '\r\n';
  rules: LangRules;
  /** Text of the cursor line before the cursor, and after it. */
  cursorLineHead: string;
  restOfLine: string;
  /** First non-blank line below the cursor line, trimmed ('' if none). */
  nextLine: string;
  /** Indentation (columns) of the block the cursor is in. */
  blockIndent: number;
  /** Columns the cursor line should be indented to when it is blank so far. */
  expectedIndent: number;
  /** Lexical state after the prefix. */
  before: LexState;
  /** How many of the prefix's innermost open frames nothing after the cursor closes: the completion may close these. */
  free: number;
  /** The cursor sits inside a two- or three-character token (`/|/`, `"|""`, an escape `\\|n`): any text breaks it. */
  splitsToken: boolean;
}

export const indentOf = (line: string): number => /^[ \t]*/.exec(line)![0].replace(/\t/g, '    ').length;
const normalize = (s: string): string => s.replace(/\r\n?/g, '\n');
/** Lines that open a block: the next line is indented one step deeper. */
const OPENS_BLOCK = /(:|\{|\(|\[|=>)\s*$/;

export function postContext(i: PostInput): PostContext {
  const prefix = normalize(i.prefix),
    suffix = normalize(i.suffix);
  const rules = langRules(i.languageId);
  const lines = prefix.split('\n');
  const cursorLineHead = lines[lines.length - 1];
  // The block the cursor is in: the cursor line's indentation, or the previous non-empty line's when the cursor
  // line is still blank.
  let ref = cursorLineHead;
  let refIdx = lines.length - 1;
  for (; refIdx >= 0 && ref.trim() === ''; refIdx--) ref = lines[refIdx];
  const blockIndent = indentOf(ref);
  const prev =
    cursorLineHead.trim() === ''
      ? lines
          .slice(0, -1)
          .reverse()
          .find((l) => l.trim() !== '')
      : undefined;
  const expectedIndent =
    prev === undefined ? indentOf(cursorLineHead) : indentOf(prev) + (OPENS_BLOCK.test(prev) ? indentUnit(lines) : 0);
  const sufLines = suffix.split('\n');
  const before = emptyState();
  scan(prefix, before, rules);
  for (const f of before.stack) f.at = -1; // offsets below refer to the completion's text
  before.commentAt = -1;
  return {
    multiline: i.multiline,
    prefix,
    suffix,
    eol: i.eol ?? '\n',
    rules,
    cursorLineHead,
    restOfLine: sufLines[0],
    nextLine: (sufLines.slice(1).find((l) => l.trim() !== '') ?? '').trim(),
    blockIndent,
    expectedIndent,
    before,
    free: freeFrames(before, suffix, rules),
    splitsToken: splitsToken(prefix, suffix, rules),
  };
}

function splitsToken(prefix: string, suffix: string, rules: LangRules): boolean {
  if (endsInEscape(prefix)) return true;
  const marks = [
    ...rules.lineComments,
    ...(rules.blockComment ? ['/*', '*/'] : []),
    ...(rules.tripleQuotes ? ['"""', "'''"] : []),
    ...(rules.backtick === 'template' ? ['${'] : []),
  ];
  return marks.some((m) =>
    [...m].some((_, k) => k > 0 && prefix.endsWith(m.slice(0, k)) && suffix.startsWith(m.slice(k))),
  );
}

/** The indentation step of the text: the most common positive difference between consecutive indented lines. */
function indentUnit(lines: string[]): number {
  const counts = new Map<number, number>();
  let last = -1;
  for (const l of lines) {
    if (l.trim() === '') continue;
    const n = indentOf(l);
    if (last >= 0 && n > last) counts.set(n - last, (counts.get(n - last) ?? 0) + 1);
    last = n;
  }
  let best = 4,
    bestN = 0;
  for (const [d, n] of counts)
    if (n > bestN || (n === bestN && d < best)) {
      best = d;
      bestN = n;
    }
  return best;
}

/**
 * The prefix's innermost open frames that the suffix does not close properly (it never reaches them, or a newline
 * ends them as broken one-line strings). Closing one of those is the completion's job; closing any other would
 * duplicate a closer that is already there (the editor's auto-closed ")" or the docstring's own """).
 */
function freeFrames(before: LexState, suffix: string, rules: LangRules): number {
  const n = before.stack.length;
  const closedProperly = new Array<boolean>(n).fill(false);
  let alive = n; // the prefix's frames still on the stack (the suffix's own frames sit above them)
  scan(suffix, cloneState(before), rules, (e) => {
    if (e.depth < alive) {
      if (e.type === 'close') closedProperly[e.depth] = true;
      alive = e.depth;
    }
    return false;
  });
  // Closing a string or comment turns what follows into code: only where nothing follows (on its line for a
  // one-line string, in the whole suffix for the others).
  const restOfLine = suffix.split('\n', 1)[0];
  const mayClose = (k: FrameKind): boolean =>
    '([{'.includes(k) || k === '${' || (k === '"' || k === "'" ? restOfLine.trim() === '' : suffix.trim() === '');
  let free = 0;
  for (let d = n - 1; d >= 0 && !closedProperly[d] && mayClose(before.stack[d].kind); d--) free++;
  return free;
}
