// Cuts the text around the cursor that is sent to the engine, without ever reading a whole huge document, and
// names inputs that get no suggestion (binary content, giant lines, empty documents).
import type * as vscode from 'vscode';

export const MAX_PREFIX_CHARS = 12_000;
export const MAX_SUFFIX_CHARS = 3_000;
export const MAX_LINE_CHARS = 1_000_000;
const WINDOW_LINES_BEFORE = 400;
const WINDOW_LINES_AFTER = 80;

export type TextWindow = { ok: true; prefix: string; suffix: string } | { ok: false; reason: string };

type Doc = Pick<vscode.TextDocument, 'lineCount' | 'lineAt' | 'getText'>;
type Pos = Pick<vscode.Position, 'line' | 'character'>;

export function textWindow(doc: Doc, pos: Pos): TextWindow {
  const line = doc.lineAt(pos.line).text;
  if (line.length > MAX_LINE_CHARS) return { ok: false, reason: 'the current line is longer than 1 MB' };
  const before: string[] = [];
  let size = pos.character;
  for (let l = pos.line - 1; l >= Math.max(0, pos.line - WINDOW_LINES_BEFORE) && size < MAX_PREFIX_CHARS; l--) {
    const t = doc.lineAt(l).text;
    before.push(t.length > MAX_PREFIX_CHARS ? t.slice(-MAX_PREFIX_CHARS) : t);
    size += t.length + 1;
  }
  before.reverse();
  before.push(line.slice(0, pos.character));
  let prefix = before.join('\n');
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

  if (prefix.includes('\0') || suffix.includes('\0')) return { ok: false, reason: 'the file looks binary (NUL characters)' };
  if (prefix.trim() === '' && suffix.trim() === '') return { ok: false, reason: 'the document is empty' };
  return { ok: true, prefix, suffix };
}

/** Short context snippets from other open documents (same language first), capped in size. */
export function contextSnippet(text: string, maxChars = 2_000): string {
  if (text.includes('\0')) return '';
  return text.length > maxChars ? text.slice(0, maxChars) : text;
}
