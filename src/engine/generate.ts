// Greedy decoding for one request, on the host side: the model picks tokens in batches (the graph's decode loop,
// see runner.ts), this file applies the post-processing pipeline's stop decisions token by token, honours the time budget and cancellation
// between batches, and asks for more while neither a rule nor the budget says stop. The model is injected, so
// this file knows no ORT.
import type { StopReason } from './api';
import type { PostProcessor } from './postprocess';

export interface CancelToken {
  cancelled: boolean;
}

export interface GenerateArgs {
  /** Tokens picked by the run that ended the prompt (the first one already honours token healing). */
  first: number[];
  /** Continues after `last` (picked, not yet fed): returns the next tokens, at most `max` of them. */
  more: (last: number, max: number) => Promise<number[]>;
  decode: (ids: number[]) => string;
  rules: PostProcessor;
  /** Healed text the first token starts with ('' = none): it is already in the document. */
  healed: string;
  maxTokens: number;
  deadline: number;
  cancel: CancelToken;
  now?: () => number;
}

export interface GenerateResult {
  text: string;
  ids: number[];
  stop: StopReason;
}

export async function generate(a: GenerateArgs): Promise<GenerateResult> {
  const now = a.now ?? Date.now;
  const ids: number[] = [];
  let text = '';
  let batch = a.first;
  for (;;) {
    for (const id of batch) {
      ids.push(id);
      // a stop id's own text ('<fim_middle>', '</s>') is not part of the completion
      const raw = a.decode(a.rules.isStopId(id) ? ids.slice(0, -1) : ids);
      text = a.healed && raw.startsWith(a.healed) ? raw.slice(a.healed.length) : raw;
      const d = a.rules.check(text, ids);
      if (d.stop) return { text: d.text, ids, stop: d.stop };
    }
    if (batch.length === 0) return { text: a.rules.finish(text), ids, stop: 'error' };
    if (a.cancel.cancelled) return { text: a.rules.finish(text), ids, stop: 'cancelled' };
    if (now() >= a.deadline) return { text: a.rules.finish(text), ids, stop: 'time-budget' };
    batch = await a.more(ids[ids.length - 1], a.maxTokens - ids.length);
  }
}
