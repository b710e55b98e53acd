// Greedy decoding for one request: picks tokens (the first one constrained by token healing), applies the stop
// rules, honours the time budget and cancellation. The model step is injected, so this file knows no ORT.
import type { StopReason } from './api';
import type { StopRules } from './stopRules';

export interface CancelToken { cancelled: boolean }

export interface GenerateArgs {
  /** Logits after the prompt. */
  logits: Float32Array;
  /** Feeds one generated token, returns the next logits. */
  step: (id: number) => Promise<Float32Array>;
  decode: (ids: number[]) => string;
  rules: StopRules;
  /** Healed text the first token must start with ('' = none) and the ids allowed for it. */
  healed: string;
  healCandidates?: Int32Array;
  deadline: number;
  cancel: CancelToken;
  now?: () => number;
}

export interface GenerateResult { text: string; ids: number[]; stop: StopReason }

export function argmax(logits: Float32Array, among?: Int32Array): number {
  let best = -1, bv = -Infinity;
  if (among) {
    for (let i = 0; i < among.length; i++) { const v = logits[among[i]]; if (v > bv) { bv = v; best = among[i]; } }
  } else {
    for (let i = 0; i < logits.length; i++) if (logits[i] > bv) { bv = logits[i]; best = i; }
  }
  return best;
}

export async function generate(a: GenerateArgs): Promise<GenerateResult> {
  const now = a.now ?? Date.now;
  const ids: number[] = [];
  let logits = a.logits;
  let text = '';
  for (;;) {
    const id = argmax(logits, ids.length === 0 && a.healed ? a.healCandidates : undefined);
    ids.push(id);
    const raw = a.decode(ids);
    // The healed text is already in the document: the completion is what comes after it.
    text = a.healed && raw.startsWith(a.healed) ? raw.slice(a.healed.length) : raw;
    const d = a.rules.check(text, ids);
    if (d.stop) return { text: d.text, ids, stop: d.stop };
    if (a.cancel.cancelled) return { text: a.rules.finish(text), ids, stop: 'cancelled' };
    if (now() >= a.deadline) return { text: a.rules.finish(text), ids, stop: 'time-budget' };
    logits = await a.step(id);
  }
}
