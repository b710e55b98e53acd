// Builds the prompt token ids for a completion request.
//
// Layout "spm" (the engine's first layout; "psm", the default, is in spotPrompt.ts and docs/cache-layout.md).
// FIM (SPM-style), laid out so that typing at the cursor only appends to what the cache already holds:
//   [BOS] (<file_sep> path \n text)*  <fim_suffix> suffix-head  <fim_prefix> prefix-tail  <fim_middle>
// Context from other files comes first (it changes least often), then the suffix (unchanged while typing at the
// cursor), then the prefix, whose tail is where keystrokes land. <fim_middle> and the generated tokens are
// truncated from the cache after each request, so the next keystroke's prompt extends the cached one.
// Without FIM: [BOS] context prefix-tail, left to right.
//
// The prefix tail starts at a line boundary chosen from a quantised character offset, so it moves only once
// every QUANTUM typed characters (not on every keystroke) when the prefix is longer than the bound.
import type { ContextSnippet } from './api';
import type { ModelTokenizer } from './tokenizer';

export interface PromptLimits {
  maxPromptTokens: number;
  maxSuffixTokens: number;
  maxContextTokens: number;
}

export const defaultLimits = (maxPositions: number, maxNewTokens: number): PromptLimits => ({
  maxPromptTokens: Math.max(64, Math.min(1536, maxPositions - maxNewTokens - 8)),
  maxSuffixTokens: 256,
  maxContextTokens: 384,
});

export interface Prompt {
  ids: number[];
  /** Text backed off by token healing (the first generated token must start with it). */
  healed: string;
  /** Ids worth keeping in the cache after the request (everything before <fim_middle>). */
  keep: number;
  /** The prefix text actually used (its last line gives the cursor's indentation). */
  prefixUsed: string;
  suffixUsed: string;
}

const QUANTUM = 512;

/** Start of the last ~`capChars` characters of `text`, moved forward to a line boundary; quantised (see top). */
function lineAlignedStart(text: string, capChars: number): number {
  if (text.length <= capChars) return 0;
  const start = Math.ceil((text.length - capChars) / QUANTUM) * QUANTUM;
  const nl = text.indexOf('\n', start - 1);
  return nl < 0 ? text.length : nl + 1;
}

/**
 * Tail of `text`, at most `maxTokens` tokens, starting at a line boundary. A cursor line longer than half the
 * room (minified code) would leave no room for the lines before it, so it is cut inside instead: its tail (at a
 * quantised offset) gets about half the room and the lines before it the rest.
 */
export function prefixTail(tok: ModelTokenizer, text: string, maxTokens: number): { text: string; ids: number[] } {
  if (!(maxTokens >= 1)) return { text: '', ids: [] };
  const lineStart = text.lastIndexOf('\n') + 1;
  let capChars = maxTokens * 4;
  for (;;) {
    let t: string;
    const lineCap = Math.floor(capChars / 2);
    if (text.length - lineStart > lineCap) {
      const cut = Math.max(lineStart, Math.floor((text.length - lineCap) / QUANTUM) * QUANTUM);
      const before = text.slice(0, lineStart);
      t = before.slice(lineAlignedStart(before, capChars - (text.length - cut))) + text.slice(cut);
    } else {
      t = text.slice(lineAlignedStart(text, capChars));
    }
    const ids = tok.encodeFragment(t);
    if (ids.length <= maxTokens) return { text: t, ids };
    if (capChars < 16) return { text: '', ids: [] };
    capChars = Math.floor(capChars * 0.75);
  }
}

/** Head of `text` ending at a line boundary (the cursor line is always kept whole if it fits), ≤ maxTokens. */
export function suffixHead(tok: ModelTokenizer, text: string, maxTokens: number): { text: string; ids: number[] } {
  if (!(maxTokens >= 1)) return { text: '', ids: [] };
  let capChars = maxTokens * 4;
  for (;;) {
    let t = text.slice(0, capChars);
    if (t.length < text.length) {
      const nl = t.lastIndexOf('\n');
      if (nl >= 0) t = t.slice(0, nl + 1);
    }
    const ids = tok.encodeFragment(t);
    if (ids.length <= maxTokens) return { text: t, ids };
    if (capChars < 8) return { text: '', ids: [] };
    capChars = Math.floor(capChars * 0.75);
  }
}

/** [BOS] (<file_sep> path \n text)*: the other files' context every layout starts with. */
export function contextHead(tok: ModelTokenizer, context: ContextSnippet[], maxContextTokens: number): number[] {
  const fim = tok.manifest.fim;
  const head: number[] = tok.addBos ? [tok.bos] : [];
  let ctxLeft = maxContextTokens;
  for (const c of context) {
    if (ctxLeft <= 8) break;
    const body = suffixHead(tok, `${c.path}\n${c.text}`, ctxLeft - 1);
    if (body.ids.length === 0) continue;
    if (fim) head.push(fim.file_sep_id);
    head.push(...body.ids);
    if (!fim) head.push(...tok.encodeFragment('\n'));
    ctxLeft -= body.ids.length + 1;
  }
  return head;
}

export function buildPrompt(
  tok: ModelTokenizer,
  req: { prefix: string; suffix: string; context: ContextSnippet[] },
  limits: PromptLimits,
): Prompt {
  const fim = tok.manifest.fim;
  const head = contextHead(tok, req.context, limits.maxContextTokens);
  let suffixUsed = '';
  if (fim) {
    const s = suffixHead(tok, req.suffix, limits.maxSuffixTokens);
    suffixUsed = s.text;
    head.push(fim.suffix_id, ...s.ids, fim.prefix_id);
  }
  const room = limits.maxPromptTokens - head.length - (fim ? 1 : 0);
  const p = prefixTail(tok, req.prefix, Math.max(0, room));
  const healing = tok.heal(p.ids, p.text);
  const ids = [...head, ...healing.ids];
  const keep = ids.length;
  if (fim) ids.push(fim.middle_id);
  return { ids, healed: healing.removed, keep, prefixUsed: p.text, suffixUsed };
}
