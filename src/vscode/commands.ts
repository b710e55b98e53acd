// Command-palette commands (category "mixSGA"). Handlers never return UI promises: executeCommand() callers
// (tests, keybindings) must not wait for a toast to be dismissed.
import * as vscode from 'vscode';
import type { DeviceSetting } from '../engine/api';
import { describeBenchmark, runBenchmark } from './benchmark';
import type { EngineHost } from './engineHost';
import type { MemoryPanel } from './memoryPanel';
import type { MixsgaInlineProvider } from './provider';
import { KV_BUDGET_MAX_MB, KV_BUDGET_MIN_MB, problemWith, type Settings } from './settings';
import type { Stats } from './stats';
import { describeTrace } from './whyNot';

const BUDGET_PRESETS_MB = [8, 16, 32, 64, 128, 256, 512, 1024];

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
    i?.workspaceFolderValue !== undefined ? vscode.ConfigurationTarget.WorkspaceFolder
    : i?.workspaceValue !== undefined ? vscode.ConfigurationTarget.Workspace
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
      const pick = typeof arg === 'string' ? items.find((i) => i.value === arg) : await vscode.window.showQuickPick(items, { title: 'mixSGA: device' });
      if (pick) await updateSetting('device', pick.value);
    }),

    reg('whyNoSuggestion', () => {
      const text = describeTrace(d.stats.last, d.host.state);
      d.log.info(`why no suggestion: ${text.replace(/\n/g, ' | ')}`);
      void vscode.window.showInformationMessage(text.split('\n')[0], { modal: false, detail: text }, 'Show Log').then((p) => {
        if (p === 'Show Log') d.log.show(true);
      });
    }),

    reg('runBenchmark', async () => {
      const engine = d.host.current;
      if (!engine || !d.host.ready) {
        void vscode.window.showWarningMessage('mixSGA: the engine is not ready; see the mixSGA log.');
        return;
      }
      const runs = 8;
      const result = await vscode.window.withProgress(
        { location: vscode.ProgressLocation.Notification, title: 'mixSGA: speed benchmark', cancellable: true },
        async (progress, token) => {
          const ac = new AbortController();
          token.onCancellationRequested(() => ac.abort());
          return runBenchmark(engine, runs, (i) => progress.report({ message: `run ${i + 1}/${runs}`, increment: 100 / runs }), ac.signal);
        },
      );
      const text = describeBenchmark(result);
      d.log.info(`benchmark: ${text}`);
      d.host.notifyChanged();
      void vscode.window.showInformationMessage(`mixSGA benchmark: ${text}`);
      return result;
    }),
  ];
}

async function pickBudget(current: number): Promise<number | undefined> {
  type Item = vscode.QuickPickItem & { mb?: number };
  const items: Item[] = BUDGET_PRESETS_MB.map((mb) => ({ label: `${mb} MB`, mb, description: mb === current ? 'current' : undefined }));
  items.push({ label: 'Custom…', description: `${KV_BUDGET_MIN_MB}–${KV_BUDGET_MAX_MB} MB` });
  const pick = await vscode.window.showQuickPick(items, { title: 'mixSGA: KV cache budget', placeHolder: `now ${current} MB` });
  if (!pick) return undefined;
  if (pick.mb !== undefined) return pick.mb;
  const text = await vscode.window.showInputBox({
    title: 'mixSGA: KV cache budget (MB)',
    value: String(current),
    prompt: `Memory for the KV caches of all open documents, ${KV_BUDGET_MIN_MB}–${KV_BUDGET_MAX_MB} MB`,
    validateInput: (v) => {
      const n = Number(v.trim());
      if (v.trim() === '' || Number.isNaN(n)) return 'Enter a number of MB';
      return problemWith('kvBudgetMB', n);
    },
  });
  return text === undefined ? undefined : Number(text.trim());
}
