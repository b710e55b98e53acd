// Entry point: wires settings, the engine host, the inline provider, the gauge, the panel and the commands.
import * as vscode from 'vscode';
import type { Engine, EngineOptions } from './engine/api';
import { EngineClient } from './engine/client';
import { registerCommands } from './vscode/commands';
import { EngineHost } from './vscode/engineHost';
import { Gauge } from './vscode/gauge';
import { MemoryPanel } from './vscode/memoryPanel';
import { Prefetcher } from './vscode/prefetch';
import { MixsgaInlineProvider, SUPPORTED_SCHEMES } from './vscode/provider';
import { Settings } from './vscode/settings';
import { Stats } from './shared/stats';

/** What activate() returns: used by the in-host test suite (test/vscode-suite), not a public API. */
export interface MixsgaTestApi {
  settings: Settings;
  host: EngineHost;
  provider: MixsgaInlineProvider;
  stats: Stats;
  gauge: Gauge;
  /** Runs the provider directly, as an explicit trigger would (`selected`: the suggest widget's selected item). */
  complete(
    doc: vscode.TextDocument,
    pos: vscode.Position,
    token?: vscode.CancellationToken,
    selected?: vscode.SelectedCompletionInfo,
  ): Promise<vscode.InlineCompletionItem[]>;
}

export async function activate(context: vscode.ExtensionContext): Promise<MixsgaTestApi> {
  const log = vscode.window.createOutputChannel('mixSGA', { log: true });
  const settings = new Settings(log);
  const stats = new Stats();
  const host = new EngineHost(context.extensionPath, settings, log, (o: EngineOptions): Promise<Engine> =>
    EngineClient.start(o),
  );
  const provider = new MixsgaInlineProvider(host, settings, stats, log);
  const gauge = new Gauge(host, settings);
  const panel = new MemoryPanel(context.extensionUri, host, stats);
  const prefetcher = new Prefetcher(host, provider, log);
  context.subscriptions.push(
    log,
    settings,
    host,
    gauge,
    panel,
    prefetcher,
    ...registerCommands({ host, settings, provider, stats, panel, log }),
  );

  // The selector follows mixsga.enabledLanguages; re-register when it changes.
  let registration: vscode.Disposable | undefined;
  const register = (): void => {
    registration?.dispose();
    const selector = settings.current.enabledLanguages.flatMap((language) =>
      SUPPORTED_SCHEMES.map((scheme) => ({ language, scheme })),
    );
    registration = vscode.languages.registerInlineCompletionItemProvider(selector, provider);
  };
  register();
  context.subscriptions.push(
    { dispose: () => registration?.dispose() },
    settings.onDidChange(({ changed }) => {
      if (changed.includes('enabledLanguages')) register();
      if (changed.includes('enabled')) host.notifyChanged();
    }),
    vscode.workspace.onDidCloseTextDocument((d) => {
      const id = d.uri.toString();
      provider.forget(id);
      void host.current?.closeDocument(id);
    }),
  );

  // Load in the background: activation must not block the editor on a model load.
  void host.start();

  const none = new vscode.CancellationTokenSource().token;
  return {
    settings,
    host,
    provider,
    stats,
    gauge,
    async complete(doc, pos, token = none, selected = undefined) {
      const r = await provider.provideInlineCompletionItems(
        doc,
        pos,
        { triggerKind: vscode.InlineCompletionTriggerKind.Invoke, selectedCompletionInfo: selected },
        token,
      );
      return r ? [...r.items] : [];
    },
  };
}

export function deactivate(): void {
  // Disposables in context.subscriptions stop the engine.
}
