// Cuts the text around the cursor that is sent to the engine, without ever reading a whole huge document, and
// names inputs that get no suggestion (binary content, giant lines, empty documents).
import type * as vscode from 'vscode';

export const MAX_PREFIX_CHARS = 24_000;
export const MAX_SUFFIX_CHARS = 3_000;
export const MAX_LINE_CHARS = 1_000_000;
const WINDOW_LINES_BEFORE = 400;
/** The window's first line moves in steps of this many lines, not on every keystroke (see below). */
const START_QUANTUM_LINES = 32;
const WINDOW_LINES_AFTER = 80;

export type TextWindow = { ok: true; prefix: string; suffix: string } | { ok: false; reason: string };

type Doc = Pick<vscode.TextDocument, 'lineCount' | 'lineAt' | 'getText'>;
type Pos = Pick<vscode.Position, 'line' | 'character'>;

export function textWindow(doc: Doc, pos: Pos): TextWindow {
  const line = doc.lineAt(pos.line).text;
  if (line.length > MAX_LINE_CHARS) return { ok: false, reason: 'the current line is longer than 1 MB' };
  // The prefix must start at the same document line from one keystroke to the next: the engine reuses its KV
  // cache for the longest common token prefix, so a window sliding by one character would defeat the reuse.
  let start = Math.max(0, Math.floor((pos.line - WINDOW_LINES_BEFORE) / START_QUANTUM_LINES) * START_QUANTUM_LINES);
  const lens: number[] = [];
  let size = pos.character;
  for (let l = start; l < pos.line; l++) {
    lens.push(doc.lineAt(l).text.length + 1);
    size += lens[lens.length - 1];
  }
  while (size > MAX_PREFIX_CHARS && start + START_QUANTUM_LINES <= pos.line) {
    for (let i = 0; i < START_QUANTUM_LINES; i++) size -= lens.shift() ?? 0;
    start += START_QUANTUM_LINES;
  }
  const before: string[] = [];
  for (let l = start; l < pos.line; l++) before.push(doc.lineAt(l).text);
  before.push(line.slice(0, pos.character));
  let prefix = before.join('\n');
  // Only when single lines are huge (minified code) does the cut fall inside a line.
  if (prefix.length > MAX_PREFIX_CHARS) prefix = prefix.slice(-MAX_PREFIX_CHARS);

  const after: string[] = [line.slice(pos.character)];
  size = after[0].length;
  const last = Math.min(doc.lineCount - 1, pos.line + WINDOW_LINES_AFTER);
  for (let l = pos.line + 1; l <= last && size < MAX_SUFFIX_CHARS; l++) {
    const t = doc.lineAt(l).text;
    after.push(t.length > MAX_SUFFIX_CHARS ? t.slice(0, MAX_SUFFIX_CHARS) : t);
    size += t.length + 1;
  }
  let suffix = after.join('\n');
  if (suffix.length > MAX_SUFFIX_CHARS) suffix = suffix.slice(0, MAX_SUFFIX_CHARS);

  if (prefix.includes('\0') || suffix.includes('\0'))
    return { ok: false, reason: 'the file looks binary (NUL characters)' };
  if (prefix.trim() === '' && suffix.trim() === '') return { ok: false, reason: 'the document is empty' };
  return { ok: true, prefix, suffix };
}

/** Short context snippets from other open documents (same language first), capped in size. */
export function contextSnippet(text: string, maxChars = 2_000): string {
  if (text.includes('\0')) return '';
  return text.length > maxChars ? text.slice(0, maxChars) : text;
}
