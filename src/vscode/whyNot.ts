// "Why No Suggestion?": the last request's trace in words.
import type { HostState } from './engineHost';
import type { ProviderTrace } from '../shared/stats';
import { summariseBudgetActions } from '../shared/traceText';

export function describeTrace(t: ProviderTrace | undefined, state: HostState): string {
  const lines: string[] = [];
  if (!t) {
    lines.push(
      state.kind === 'ready' ? 'No completion has been requested yet.' : `No request yet; the engine is ${state.kind}.`,
    );
    if (state.kind === 'failed') lines.push(`Reason: ${state.reason}`);
    return lines.join('\n');
  }
  const ago = Math.round((Date.now() - t.at) / 1000);
  const head: Record<ProviderTrace['outcome'], string> = {
    shown: 'The last request produced a suggestion',
    cached: 'The last suggestion was served from the typing-along cache',
    empty: 'The model produced no usable text',
    skipped: 'No request was sent',
    cancelled: 'The request was cancelled',
    error: 'The request failed',
  };
  lines.push(`${head[t.outcome]} (${ago} s ago)${t.reason ? `: ${t.reason}` : ''}.`);
  lines.push(`Document: ${t.docId}`);
  lines.push(`Debounce ${t.debounceMs} ms; ${t.waitMs} ms from keystroke to answer.`);
  const e = t.engine;
  if (e) {
    lines.push(
      // prefillMs runs until the first batch of generated tokens (the prompt's last model run also picks them),
      // decodeMs covers the further batches: neither is "per token".
      `Engine request #${e.requestId}: stopped by ${e.stopReason}; ${e.reusedTokens} prompt tokens reused from the KV cache, ` +
        `${e.prefillTokens} computed; first tokens after ${e.prefillMs.toFixed(0)} ms, ${e.generatedTokens} generated in all ` +
        // picks past the host's stop (the graph's loop stops by itself only at stop ids and single-line newlines)
        `of ${e.modelTokens} the model picked ` +
        `(${e.decodeMs.toFixed(0)} ms after the first batch); ${e.totalMs.toFixed(0)} ms in total.`,
    );
    if (e.noSuggestionReason) lines.push(`Engine: ${e.noSuggestionReason}`);
    lines.push(
      e.budgetActions.length
        ? `Budget actions: ${summariseBudgetActions(e.budgetActions)}.`
        : 'Budget actions: none needed.',
    );
  }
  return lines.join('\n');
}
