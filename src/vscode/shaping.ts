// Turns raw model text into what the editor shows: single- vs multi-line by context, nothing that duplicates
// the text already after the cursor, balanced closing brackets, no trailing blank lines.
import type { MultilineMode } from './settings';

const BLOCK_OPENER = /(\{|\(|\[|:|=>|\bthen|\bdo|\bbegin)\s*$/;
const CLOSERS = new Set([')', ']', '}', '"', "'", '`', ';', ',']);

/** Multi-line if the cursor ends a line that opens a block, or sits on an empty line inside a block. */
export function wantsMultiline(mode: MultilineMode, prefix: string, suffix: string): boolean {
  if (mode !== 'auto') return mode === 'always';
  const restOfLine = suffix.split('\n', 1)[0];
  if (restOfLine.trim() !== '' && ![...restOfLine.trim()].every((c) => CLOSERS.has(c))) return false;
  const lines = prefix.split('\n');
  const current = lines[lines.length - 1];
  if (BLOCK_OPENER.test(current)) return true;
  if (current.trim() === '' && lines.length > 1) return BLOCK_OPENER.test(lines[lines.length - 2]);
  return false;
}

export function shapeCompletion(raw: string, prefix: string, suffix: string, multiline: boolean): string {
  let text = raw.replace(/\r\n/g, '\n');
  const restOfLine = suffix.split('\n', 1)[0];
  if (!multiline) {
    const nl = text.indexOf('\n');
    if (nl >= 0) text = text.slice(0, nl);
  } else {
    text = dropLinesAlreadyBelow(text, suffix);
  }
  text = dropRestOfLineEcho(text, restOfLine);
  text = trimUnbalancedClosers(text, prefix, restOfLine);
  text = text.replace(/[ \t]+$/gm, '').replace(/\n+$/, '');
  // A suggestion made only of whitespace is noise.
  return text.trim() === '' ? '' : text;
}

/** Cut the completion where it starts repeating the next non-blank lines of the document. */
function dropLinesAlreadyBelow(text: string, suffix: string): string {
  const below = suffix.split('\n').slice(1).map((l) => l.trim()).filter((l) => l !== '');
  if (below.length === 0) return text;
  const lines = text.split('\n');
  for (let i = 1; i < lines.length; i++) {
    if (lines[i].trim() !== '' && lines[i].trim() === below[0]) return lines.slice(0, i).join('\n');
  }
  return text;
}

/** If the completion's first line ends with what is already right of the cursor (e.g. ")"), drop that echo. */
function dropRestOfLineEcho(text: string, restOfLine: string): string {
  const tail = restOfLine.trim();
  if (!tail) return text;
  const nl = text.indexOf('\n');
  const first = nl < 0 ? text : text.slice(0, nl);
  const rest = nl < 0 ? '' : text.slice(nl);
  if (first.trimEnd().endsWith(tail)) {
    const cut = first.trimEnd();
    return cut.slice(0, cut.length - tail.length) + rest;
  }
  return text;
}

/**
 * On a single line: stop before a closing bracket that would close a bracket opened before the cursor when the
 * rest of the line already closes it (the user's ")" stays; we don't add a second).
 */
function trimUnbalancedClosers(text: string, prefix: string, restOfLine: string): string {
  if (text.includes('\n') || !restOfLine.trim()) return text;
  const pairs: Record<string, string> = { ')': '(', ']': '[', '}': '{' };
  let depth = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '(' || c === '[' || c === '{') depth++;
    else if (pairs[c]) {
      if (depth === 0 && restOfLine.trimStart().startsWith(c) && prefix.lastIndexOf(pairs[c]) >= 0) return text.slice(0, i);
      depth = Math.max(0, depth - 1);
    }
  }
  return text;
}
