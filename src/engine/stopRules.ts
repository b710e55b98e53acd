// When to stop generating, and how much of the generated text to keep. Pure text logic, no model.
import type { StopReason } from './api';

export interface StopContext {
  multiline: boolean;
  /** Text before the cursor (its last line gives the block indentation). */
  prefix: string;
  /** Text after the cursor. */
  suffix: string;
  maxTokens: number;
  /** Token ids that end generation (EOS, <fim_pad>, <file_sep>, ...). */
  stopIds: Set<number>;
}

export interface StopDecision { stop: StopReason | null; text: string }

const indentOf = (line: string) => /^[ \t]*/.exec(line)![0].replace(/\t/g, '    ').length;
const OPEN = '([{', CLOSE = ')]}';

export class StopRules {
  private readonly blockIndent: number;
  private readonly nextLine: string;
  private readonly restOfLine: string;
  private readonly cursorLineHead: string;

  constructor(private readonly c: StopContext) {
    const lines = c.prefix.split('\n');
    this.cursorLineHead = lines[lines.length - 1];
    // The block the cursor is in: the cursor line's indentation, or the previous non-empty line's when the
    // cursor line is still blank.
    let ref = this.cursorLineHead;
    for (let i = lines.length - 1; i >= 0 && ref.trim() === ''; i--) ref = lines[i];
    this.blockIndent = indentOf(ref);
    const sufLines = c.suffix.split('\n');
    this.restOfLine = sufLines[0];
    this.nextLine = (sufLines.slice(1).find((l) => l.trim() !== '') ?? '').trim();
  }

  /** A stop id ends generation; its own text ('<fim_middle>', '</s>') is never part of the completion. */
  isStopId(id: number): boolean { return this.c.stopIds.has(id); }

  /** Checks after each generated token; `text` is all generated text so far (without a final stop id's text),
   *  `ids` all generated ids. */
  check(text: string, ids: number[]): StopDecision {
    const last = ids[ids.length - 1];
    if (last !== undefined && this.c.stopIds.has(last)) return { stop: 'eos', text: this.finish(text) };
    if (!this.c.multiline) {
      const nl = text.indexOf('\n');
      if (nl >= 0) return { stop: 'newline', text: this.finish(text.slice(0, nl).replace(/\r$/, '')) }; // CRLF files
    }
    const br = this.bracketCut(text);
    if (br !== null) return { stop: 'bracket', text: this.finish(text.slice(0, br)) };
    if (this.c.multiline) {
      const lines = text.split('\n');
      // Only complete lines (followed by a newline) are judged.
      let offset = 0;
      for (let i = 0; i < lines.length - 1; i++) {
        const line = lines[i];
        const lineStart = offset;
        offset += line.length + 1;
        if (i === 0) continue; // the cursor line's continuation
        const trimmed = line.trim();
        if (trimmed !== '' && indentOf(line) < this.blockIndent) return { stop: 'indent', text: this.finish(text.slice(0, lineStart)) };
        if (trimmed !== '' && this.nextLine !== '' && trimmed === this.nextLine) {
          return { stop: 'suffix-overlap', text: this.finish(text.slice(0, lineStart)) };
        }
        // Two blank lines in a row end the block ('newline': a line-structure stop).
        if (trimmed === '' && i >= 1 && lines[i - 1].trim() === '' && i - 1 >= 1) {
          return { stop: 'newline', text: this.finish(text.slice(0, lineStart - 1)) };
        }
      }
      if (this.repeatsLines(lines)) return { stop: 'repetition', text: this.finish(this.dropRepeats(lines)) };
    }
    const loop = this.textLoop(text);
    if (loop !== null) return { stop: 'repetition', text: this.finish(text.slice(0, loop)) };
    if (this.repeatsTokens(ids)) return { stop: 'repetition', text: this.finish(text) };
    if (ids.length >= this.c.maxTokens) return { stop: 'max-tokens', text: this.finish(text) };
    return { stop: null, text };
  }

  /** Final clean-up: no duplicate of the rest of the cursor line, no trailing whitespace lines. */
  finish(text: string): string {
    let t = text;
    const rest = this.restOfLine.trim();
    if (rest) {
      const nl = t.indexOf('\n');
      const first = (nl < 0 ? t : t.slice(0, nl)).trimEnd();
      const cut = first.slice(0, first.length - rest.length);
      // The rest of the line is already there, unless the completion needs its brackets to balance itself.
      if (first.endsWith(rest) && this.depth(cut) <= 0) t = cut;
    }
    if (this.c.multiline) t = t.replace(/\s+$/, (m) => (m.includes('\n') ? '' : m));
    if (this.nextLine && t.trim() === this.nextLine) return '';
    return t;
  }

  private depth(text: string): number {
    let d = 0;
    for (const ch of text) { if (OPEN.includes(ch)) d++; else if (CLOSE.includes(ch)) d--; }
    return d;
  }

  /** Index of the first closing bracket that closes more than the completion opened (it belongs to the suffix). */
  private bracketCut(text: string): number | null {
    let depth = 0;
    let quote: string | null = null;
    for (let i = 0; i < text.length; i++) {
      const ch = text[i];
      if (quote) { if (ch === '\\') i++; else if (ch === quote || ch === '\n') quote = null; continue; }
      if (ch === '"' || ch === "'" || ch === '`') { quote = ch; continue; }
      if (OPEN.includes(ch)) depth++;
      else if (CLOSE.includes(ch)) { if (--depth < 0) return i; }
    }
    return null;
  }

  /** The same non-empty line three times in a row. */
  private repeatsLines(lines: string[]): boolean {
    const done = lines.slice(0, -1).filter((l) => l.trim() !== '');
    const n = done.length;
    return n >= 3 && done[n - 1] === done[n - 2] && done[n - 2] === done[n - 3];
  }
  private dropRepeats(lines: string[]): string {
    const out: string[] = [];
    for (const l of lines.slice(0, -1)) if (!(l.trim() && out.length && out[out.length - 1] === l)) out.push(l);
    return out.join('\n');
  }

  /**
   * A loop at the end of the text: the same unit of 3–40 characters three times in a row, where the unit holds a
   * word of 3+ letters and is not one repeated character (so '0, 0, 0', '----' and '#ffffff' are not loops, but
   * 'MaxMaxMax' and 'x.config.config.config' are). Returns where the second copy starts, so one copy is kept.
   */
  private textLoop(text: string): number | null {
    const n = text.length;
    for (let p = 3; p <= 40 && 3 * p <= n; p++) {
      const unit = text.slice(n - p);
      if (!/[A-Za-z_]{3}/.test(unit) || /^(.)\1*$/s.test(unit)) continue;
      if (text.slice(n - 2 * p, n - p) === unit && text.slice(n - 3 * p, n - 2 * p) === unit) return n - 2 * p;
    }
    return null;
  }

  /** The last ≥ 16 ids are a period-p loop (p ≤ 8) repeated at least 3 times. */
  private repeatsTokens(ids: number[]): boolean {
    for (let p = 1; p <= 8; p++) {
      const span = Math.max(16, 3 * p);
      if (ids.length < span) continue;
      let ok = true;
      for (let i = ids.length - span; i < ids.length - p && ok; i++) ok = ids[i] === ids[i + p];
      if (ok) return true;
    }
    return false;
  }
}
