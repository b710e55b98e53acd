// Command-palette commands (category "mixSGA"). Handlers never return UI promises: executeCommand() callers
// (tests, keybindings) must not wait for a toast to be dismissed.
import * as vscode from 'vscode';
import type { DeviceSetting } from '../engine/api';
import benchmarkSample from 'benchmark-sample';
import { describeBenchmark, runBenchmark } from '../shared/benchmark';
import type { EngineHost } from './engineHost';
import type { MemoryPanel } from './memoryPanel';
import type { MixsgaInlineProvider } from './provider';
import { pickBudget } from './budgetPick';
import { MB } from '../shared/format';
import { problemWith, type Settings } from './settings';
import type { Stats } from '../shared/stats';
import { describeTrace } from './whyNot';

/** The benchmark engine's own budget: room for its one document at full KV, whatever the user's budget is. */
const BENCHMARK_BUDGET_MB = 64;

export interface CommandDeps {
  host: EngineHost;
  settings: Settings;
  provider: MixsgaInlineProvider;
  stats: Stats;
  panel: MemoryPanel;
  log: vscode.LogOutputChannel;
}

/** Write to the scope that currently wins, so the change is not shadowed by a workspace value. */
export async function updateSetting(key: string, value: unknown): Promise<void> {
  const cfg = vscode.workspace.getConfiguration('mixsga');
  const i = cfg.inspect(key);
  const target =
    i?.workspaceFolderValue !== undefined
      ? vscode.ConfigurationTarget.WorkspaceFolder
      : i?.workspaceValue !== undefined
        ? vscode.ConfigurationTarget.Workspace
        : vscode.ConfigurationTarget.Global;
  await cfg.update(key, value, target);
}

export function registerCommands(d: CommandDeps): vscode.Disposable[] {
  const reg = (id: string, fn: (...args: unknown[]) => unknown): vscode.Disposable =>
    vscode.commands.registerCommand(`mixsga.${id}`, async (...args: unknown[]) => {
      try {
        return await fn(...args); // data only (e.g. the benchmark's figures, for tests), never a UI promise
      } catch (e) {
        d.log.error(`command ${id} failed: ${String(e)}`);
        void vscode.window.showErrorMessage(`mixSGA: ${id} failed — ${e instanceof Error ? e.message : String(e)}`);
        return undefined;
      }
    });

  return [
    // Optional argument (number of MB) lets tests and keybindings skip the pickers.
    reg('setKvBudget', async (arg) => {
      const mb = typeof arg === 'number' ? arg : await pickBudget(d.settings.current.kvBudgetMB);
      if (mb === undefined) return;
      const problem = problemWith('kvBudgetMB', mb);
      if (problem) {
        void vscode.window.showWarningMessage(`mixSGA: budget ${problem}.`);
        return;
      }
      await updateSetting('kvBudgetMB', mb);
      void vscode.window.setStatusBarMessage(`mixSGA: KV budget ${mb} MB`, 3000);
    }),

    reg('showMemoryReport', () => d.panel.show()),

    reg('clearKvCaches', async () => {
      d.provider.clear();
      await d.host.current?.clearCaches();
      d.host.notifyChanged();
      d.log.info('KV caches cleared');
      void vscode.window.setStatusBarMessage('mixSGA: KV caches cleared', 3000);
    }),

    reg('toggleCompletions', async () => {
      const on = !d.settings.current.enabled;
      await updateSetting('enabled', on);
      void vscode.window.setStatusBarMessage(`mixSGA: completions ${on ? 'on' : 'off'}`, 3000);
    }),

    reg('selectDevice', async (arg) => {
      const items: (vscode.QuickPickItem & { value: DeviceSetting })[] = [
        { label: 'auto', value: 'auto', description: 'CUDA if it loads, else CPU' },
        { label: 'cuda', value: 'cuda', description: 'NVIDIA GPU (CUDA execution provider)' },
        { label: 'cpu', value: 'cpu', description: 'CPU only' },
      ];
      const cur = d.settings.current.device;
      for (const i of items) if (i.value === cur) i.detail = '$(check) current';
      const pick =
        typeof arg === 'string'
          ? items.find((i) => i.value === arg)
          : await vscode.window.showQuickPick(items, { title: 'mixSGA: device' });
      if (pick) await updateSetting('device', pick.value);
    }),

    reg('whyNoSuggestion', () => {
      const text = describeTrace(d.stats.last, d.host.state);
      d.log.info(`why no suggestion: ${text.replace(/\n/g, ' | ')}`);
      // Modal: only a modal message shows its detail, and the detail is the trace (tokens, timings, budget).
      const [head, ...rest] = text.split('\n');
      void vscode.window
        .showInformationMessage(head, { modal: true, detail: rest.join('\n') }, 'Show Log')
        .then((p) => {
          if (p === 'Show Log') d.log.show(true);
        });
      return text;
    }),

    reg('runBenchmark', async () => {
      if (!d.host.ready) {
        void vscode.window.showWarningMessage('mixSGA: the engine is not ready; see the mixSGA log.');
        return;
      }
      const runs = 8;
      const result = await vscode.window.withProgress(
        { location: vscode.ProgressLocation.Notification, title: 'mixSGA: speed benchmark', cancellable: true },
        async (progress, token) => {
          const ac = new AbortController();
          token.onCancellationRequested(() => ac.abort());
          progress.report({ message: 'starting a private engine (your caches stay as they are)…' });
          const engine = await d.host.privateEngine(BENCHMARK_BUDGET_MB * MB);
          try {
            if (engine.state.kind !== 'ready')
              throw new Error(`the benchmark engine did not start: ${JSON.stringify(engine.state)}`);
            return await runBenchmark(
              engine,
              benchmarkSample,
              runs,
              (i) => progress.report({ message: `run ${i + 1}/${runs} on a ~2k-token file`, increment: 100 / runs }),
              ac.signal,
            );
          } finally {
            await engine.dispose();
          }
        },
      );
      const text = describeBenchmark(result);
      d.log.info(`benchmark: ${text}`);
      void vscode.window.showInformationMessage(`mixSGA benchmark: ${text}`);
      return result;
    }),
  ];
}
