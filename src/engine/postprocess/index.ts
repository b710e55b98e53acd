// The one post-processing pipeline for completions: the same filters decide when to stop generating (check, per
// token) and shape the final text (finish). One filter per file; docs in each.
import type { StopReason } from '../api';
import { PostContext, postContext, PostInput } from './context';
import type { Cut, Filter } from './filter';
import { balance } from './balance';
import { indentation } from './indentation';
import { lineBreaks, normalizeBreaks } from './lineBreaks';
import { lineMode } from './lineMode';
import { loops, repeatsTokens } from './loops';
import { suffixOverlap } from './suffixOverlap';
import { whitespace } from './whitespace';

export type { PostInput } from './context';

export interface StopDecision {
  stop: StopReason | null;
  text: string;
}

/** Filters that may end the text; the earliest cut wins. */
const CUTS: Filter[] = [lineMode, balance, indentation, suffixOverlap, loops];
/** Final shaping, in this order (closing brackets needs trailing whitespace gone; line breaks come last). */
const SHAPES: Filter[] = [suffixOverlap, indentation, whitespace, balance, whitespace, lineBreaks];

export class PostProcessor {
  readonly ctx: PostContext;

  constructor(private readonly input: PostInput) {
    this.ctx = postContext(input);
  }

  /** A stop id ends generation; its own text ('<fim_middle>', '</s>') is never part of the completion. */
  isStopId(id: number): boolean {
    return this.input.stopIds.has(id);
  }

  /** After each generated token: `raw` is all text generated so far (without a final stop id's), `ids` all ids. */
  check(raw: string, ids: number[]): StopDecision {
    const text = normalizeBreaks(raw);
    const last = ids[ids.length - 1];
    if (last !== undefined && this.isStopId(last)) return { stop: 'eos', text: this.finish(text) };
    const cut = firstCut(text, this.ctx, false);
    if (cut) return { stop: cut.stop, text: this.finish(text.slice(0, cut.at)) };
    if (repeatsTokens(ids)) return { stop: 'repetition', text: this.finish(text) };
    if (ids.length >= this.input.maxTokens) return { stop: 'max-tokens', text: this.finish(text) };
    return { stop: null, text };
  }

  /** The text the editor shows, from whatever was generated (also after a time-limit or cancellation cut). */
  finish(raw: string): string {
    let text = normalizeBreaks(raw);
    const cut = firstCut(text, this.ctx, true);
    if (cut) text = text.slice(0, cut.at);
    for (const f of SHAPES) text = f.shape!(text, this.ctx);
    return text;
  }
}

function firstCut(text: string, c: PostContext, final: boolean): Cut | null {
  let best: Cut | null = null;
  for (const f of CUTS) {
    const cut = f.cut!(text, c, final);
    if (cut && (!best || cut.at < best.at)) best = cut;
  }
  return best;
}
