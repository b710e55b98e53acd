// Layout "psm" (the default; docs/cache-layout.md): the prompt for a cursor is built so that everything before the
// cursor LINE is a prefix of the document's cache, which holds the document in document order:
//   base   = [BOS] (<file_sep> context)* <fim_prefix> lines before the cursor line ...(lines after it)
//   prompt = [BOS] (<file_sep> context)* <fim_prefix> lines before the cursor line
//            <fim_suffix> suffix-head <fim_middle> cursor line up to the cursor
// The cursor line's text before the cursor opens the middle (token healing on its last token), so typing on a
// line only appends to the request's tokens, and a new spot recomputes <fim_suffix> suffix <fim_middle> line only.
// While the user types on from there (Enter included), the caller may keep the middle's start (`anchor`, a line
// start in the prefix): the typed lines stay in the middle and every keystroke still only appends.
// The model was trained with PSM on token cuts (toolchain/mixsga/fim.py): a prefix that ends at a line start and a
// middle that begins with part of a line are both shapes it saw.
//
// Long files: positions stop at max_position_embeddings. When the cursor line starts too late for the request's
// room, the prompt skips base tokens [head, from) (a window) and the view moves the rest down (spotView.ts).
import type { ContextSnippet } from './api';
import type { ModelTokenizer } from './tokenizer';
import { contextHead, suffixHead } from './prompt';
import type { ViewSpec } from './spotView';

export interface SpotLimits {
  maxPositions: number;
  maxNew: number;
  maxSuffixTokens: number;
  /** Most tokens of the cursor line before the cursor kept in the middle (longer lines move the anchor). */
  middleRoom: number;
  maxContextTokens: number;
}

/** The suffix head a new spot recomputes: chosen by bench (docs/benchmarks.md, "new spot"). */
export const SPOT_SUFFIX_TOKENS = 96;

export const spotLimits = (maxPositions: number, maxNew: number, maxSuffixTokens = SPOT_SUFFIX_TOKENS): SpotLimits => ({
  maxPositions,
  maxNew,
  maxSuffixTokens,
  middleRoom: 128,
  maxContextTokens: 384,
});

export interface SpotPrompt extends ViewSpec {
  ids: number[];
  /** Character offset in the prefix where the middle starts (a line start). */
  anchor: number;
  healed: string;
  /** Ids worth keeping after the request (all of `ids`: the next keystroke on this line appends to them). */
  keep: number;
  /** The base up to the cursor line (length `at`): what the view's prefix is made of. */
  base: number[];
  suffixUsed: string;
}

/** Window quantum (tokens): the window start moves in steps, so typing on a line keeps the same view. */
const WINDOW_STEP = 64;
/** Cut quantum for prefixes longer than the base can hold at all. */
const CUT_STEP = 512;

/** Ids of the text before the cursor line, cut at a line start when the base cannot hold them. */
function linesBefore(tok: ModelTokenizer, lines: string, room: number): number[] {
  const ids = tok.encodeFragment(lines);
  if (ids.length <= room) return ids;
  const nl = tok.encodeFragment('\n');
  const cut = Math.ceil((ids.length - room) / CUT_STEP) * CUT_STEP;
  if (nl.length === 1) {
    for (let i = cut; i < ids.length; i++) if (ids[i - 1] === nl[0]) return ids.slice(i);
    return [];
  }
  return ids.slice(cut);
}

/** Base ids for a whole document text (background prefill): head, <fim_prefix>, then the lines that fit. */
export function spotBase(tok: ModelTokenizer, text: string, context: ContextSnippet[], lim: SpotLimits): number[] {
  const fim = tok.manifest.fim!;
  const head = [...contextHead(tok, context, lim.maxContextTokens), fim.prefix_id];
  const room = lim.maxPositions - 8 - head.length;
  const ids = tok.encodeFragment(text);
  if (ids.length <= room) return [...head, ...ids];
  const nl = tok.encodeFragment('\n');
  let end = room;
  if (nl.length === 1) while (end > 0 && ids[end - 1] !== nl[0]) end--;
  return [...head, ...ids.slice(0, end || room)];
}

/** `anchor`: where the middle starts, a line start in the prefix (default: the cursor line's start). */
export function buildSpotPrompt(
  tok: ModelTokenizer,
  req: { prefix: string; suffix: string; context: ContextSnippet[] },
  lim: SpotLimits,
  anchor?: number,
): SpotPrompt {
  const fim = tok.manifest.fim;
  if (!fim) throw new Error('the psm layout needs a model with FIM tokens');
  const head = [...contextHead(tok, req.context, lim.maxContextTokens), fim.prefix_id];
  const start = anchor ?? req.prefix.lastIndexOf('\n') + 1;
  if (start > 0 && req.prefix[start - 1] !== '\n')
    throw new Error(`buildSpotPrompt: anchor ${start} is not a line start`);
  const line = req.prefix.slice(start);
  const before = linesBefore(tok, req.prefix.slice(0, start), lim.maxPositions - 8 - head.length);
  let lineIds = tok.encodeFragment(line);
  const base = [...head, ...before];
  if (lineIds.length > lim.middleRoom) {
    // a very long line: the anchor moves into the line, in steps
    const k = Math.floor((lineIds.length - lim.middleRoom / 2) / 32) * 32;
    base.push(...lineIds.slice(0, k));
    lineIds = lineIds.slice(k);
  }
  const healing = tok.heal(lineIds, line);
  const s = suffixHead(tok, req.suffix, lim.maxSuffixTokens);
  const at = base.length;
  const need = 1 + lim.maxSuffixTokens + 1 + lim.middleRoom + lim.maxNew + 1;
  const over = at + need - lim.maxPositions;
  const from = over > 0 ? Math.min(at, head.length + Math.ceil(over / WINDOW_STEP) * WINDOW_STEP) : head.length;
  const ids = [
    ...base.slice(0, head.length),
    ...base.slice(from),
    fim.suffix_id,
    ...s.ids,
    fim.middle_id,
    ...healing.ids,
  ];
  return {
    ids,
    anchor: start,
    healed: healing.removed,
    keep: ids.length,
    base,
    head: head.length,
    from,
    at,
    suffixUsed: s.text,
  };
}
