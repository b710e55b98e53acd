// Inline (ghost-text) completions. Returns plain insertText at the cursor so the built-in accept / accept word /
// accept line commands work; never edits the document itself.
import * as vscode from 'vscode';
import type { CompletionRequest, ContextSnippet } from '../engine/api';
import { AdaptiveDebounce, sleep } from '../shared/debounce';
import type { EngineHost } from './engineHost';
import type { Settings } from './settings';
import { wantsMultiline } from '../shared/multiline';
import type { ProviderTrace, Stats } from '../shared/stats';
import { SuggestionCache } from '../shared/suggestionCache';
import { contextSnippet, textWindow } from './textWindow';
import { requestLogLine } from '../shared/traceText';

export const SUPPORTED_SCHEMES = ['file', 'untitled'];
const REQUEST_TIME_BUDGET_MS = 2_000;

export class MixsgaInlineProvider implements vscode.InlineCompletionItemProvider {
  readonly cache = new SuggestionCache();
  private readonly debounce = new AdaptiveDebounce();
  /** One in-flight request per document; a newer one aborts the older. */
  private readonly inflight = new Map<string, AbortController>();

  constructor(
    private readonly host: EngineHost,
    private readonly settings: Settings,
    private readonly stats: Stats,
    private readonly log: vscode.LogOutputChannel,
  ) {}

  async provideInlineCompletionItems(
    document: vscode.TextDocument,
    position: vscode.Position,
    context: vscode.InlineCompletionContext,
    token: vscode.CancellationToken,
  ): Promise<vscode.InlineCompletionList | undefined> {
    const t0 = Date.now();
    const docId = document.uri.toString();
    const trace: ProviderTrace = { at: t0, docId, outcome: 'skipped', debounceMs: 0, waitMs: 0, chars: 0 };
    const finish = (outcome: ProviderTrace['outcome'], reason?: string): undefined => {
      trace.outcome = outcome;
      trace.reason = reason;
      trace.waitMs = Date.now() - t0;
      if (outcome !== 'shown' && outcome !== 'cached')
        this.log.debug(`no suggestion (${outcome}) after ${trace.waitMs} ms: ${reason ?? ''}`);
      this.stats.record(trace);
      return undefined;
    };
    try {
      const skip = this.skipReason(document);
      if (skip) return finish('skipped', skip);
      // The suggest widget is open with an item selected: complete as if that item were accepted, and show an
      // inline item that starts with the item's text over its range (VS Code shows it only then).
      const selected = context.selectedCompletionInfo;

      // Typing along a shown suggestion: serve the rest without asking the engine.
      const offset = document.offsetAt(position);
      const cached = selected
        ? undefined
        : this.cache.lookup(docId, offset, (a, b) =>
            document.getText(new vscode.Range(document.positionAt(a), document.positionAt(b))),
          );
      if (cached) {
        trace.chars = cached.length;
        finish('cached');
        return { items: [new vscode.InlineCompletionItem(cached, new vscode.Range(position, position))] };
      }

      const found = textWindow(document, position);
      if (!found.ok) return finish('skipped', found.reason);
      const win = selected ? withSelectedItem(found, position, selected) : found;
      if (!win) return finish('skipped', 'the selected suggestion does not end at the cursor line');
      if (!this.host.ready) {
        const st = this.host.state;
        return finish('skipped', st.kind === 'failed' ? `the engine failed: ${st.reason}` : `the engine is ${st.kind}`);
      }

      const s = this.settings.current;
      const explicit = context.triggerKind === vscode.InlineCompletionTriggerKind.Invoke;
      trace.debounceMs = this.debounce.delay(s.debounceMs, explicit, this.cache.recentlyFollowed(docId, offset, 3_000));

      this.inflight.get(docId)?.abort();
      const ac = new AbortController();
      this.inflight.set(docId, ac);
      const sub = token.onCancellationRequested(() => ac.abort());
      try {
        if (!(await sleep(trace.debounceMs, ac.signal)))
          return finish('cancelled', 'newer typing replaced this request');
        const engine = this.host.current;
        if (!engine) return finish('skipped', 'the engine stopped');
        const multiline = wantsMultiline(s.multiline, win.prefix, win.suffix);
        const req: CompletionRequest = {
          docId,
          languageId: document.languageId,
          prefix: win.prefix,
          suffix: win.suffix,
          context: this.contextFrom(document, s.contextFiles),
          maxTokens: s.maxTokens,
          multiline,
          timeBudgetMs: REQUEST_TIME_BUDGET_MS,
          eol: document.eol === vscode.EndOfLine.CRLF ? '\r\n' : '\n',
        };
        const res = await engine.complete(req, ac.signal);
        trace.engine = res.trace;
        this.host.notifyChanged();
        if (ac.signal.aborted) return finish('cancelled', 'the request was cancelled by newer typing');
        const text = res.text; // shaped by the engine's post-processing pipeline
        const tr = res.trace;
        this.log.info(requestLogLine(tr, document.languageId, trace.debounceMs, text.length));
        if (!text) {
          return finish(
            'empty',
            tr.noSuggestionReason ??
              (res.text
                ? 'the model text only repeated what follows the cursor'
                : `the model stopped (${tr.stopReason}) without text`),
          );
        }
        trace.chars = text.length;
        finish('shown');
        if (selected) return { items: [new vscode.InlineCompletionItem(selected.text + text, selected.range)] };
        this.cache.put(docId, offset, win.prefix, text);
        return { items: [new vscode.InlineCompletionItem(text, new vscode.Range(position, position))] };
      } finally {
        sub.dispose();
        if (this.inflight.get(docId) === ac) this.inflight.delete(docId);
      }
    } catch (e) {
      if (token.isCancellationRequested) return finish('cancelled', 'cancelled');
      this.log.error(`completion failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
      return finish('error', e instanceof Error ? e.message : String(e));
    }
  }

  /** Why this document gets no suggestions at all, or undefined if it may. */
  skipReason(document: vscode.TextDocument): string | undefined {
    const s = this.settings.current;
    if (!s.enabled) return 'completions are turned off (mixSGA: Toggle Completions)';
    if (!SUPPORTED_SCHEMES.includes(document.uri.scheme))
      return `documents of scheme "${document.uri.scheme}" get no suggestions`;
    if (!s.enabledLanguages.includes(document.languageId))
      return `language "${document.languageId}" is not in mixsga.enabledLanguages`;
    return undefined;
  }

  /** Other open files as extra context: same language first, most recently visible first. */
  /** The context snippets a request for `doc` sends now (the prefetcher prefills with the same). */
  contextFor(doc: vscode.TextDocument): ContextSnippet[] {
    return this.contextFrom(doc, this.settings.current.contextFiles);
  }

  private contextFrom(current: vscode.TextDocument, count: number): ContextSnippet[] {
    if (count <= 0) return [];
    const docs = vscode.workspace.textDocuments.filter(
      (d) => d !== current && SUPPORTED_SCHEMES.includes(d.uri.scheme) && d.lineCount < 50_000,
    );
    docs.sort((a, b) => Number(b.languageId === current.languageId) - Number(a.languageId === current.languageId));
    const out: ContextSnippet[] = [];
    for (const d of docs) {
      if (out.length >= count) break;
      const text = contextSnippet(d.getText(new vscode.Range(0, 0, Math.min(d.lineCount, 200), 0)));
      if (text.trim()) out.push({ path: vscode.workspace.asRelativePath(d.uri), text });
    }
    return out;
  }

  forget(docId: string): void {
    this.inflight.get(docId)?.abort();
    this.inflight.delete(docId);
    this.cache.forget(docId);
  }

  clear(): void {
    this.cache.clear();
  }
}

/**
 * The text around the cursor as if the suggest widget's selected item were accepted: what the item replaces
 * (`range`, usually the word typed so far) gives way to its text. Undefined when the range leaves the cursor line.
 */
export function withSelectedItem(
  win: { prefix: string; suffix: string },
  position: vscode.Position,
  selected: vscode.SelectedCompletionInfo,
): { prefix: string; suffix: string } | undefined {
  const { start, end } = selected.range;
  if (start.line !== position.line || end.line !== position.line || start.character > position.character)
    return undefined;
  const before = position.character - start.character;
  const after = Math.max(0, end.character - position.character);
  return { prefix: win.prefix.slice(0, win.prefix.length - before) + selected.text, suffix: win.suffix.slice(after) };
}
