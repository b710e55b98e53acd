// Whether a request asks for one line or several, from the setting and the cursor's context. Everything done to
// the model's text afterwards is the engine's post-processing pipeline (src/engine/postprocess/).

/** The mixsga.multiline setting. */
export type MultilineMode = 'auto' | 'always' | 'never';

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
