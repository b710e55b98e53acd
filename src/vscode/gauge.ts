// Status-bar memory gauge: "$(database) 12.3/64 MB · CPU". Click opens the memory panel.
import * as vscode from 'vscode';
import type { MemoryReport } from '../engine/api';
import type { EngineHost } from './engineHost';
import { budgetMb, expertLabel, MB, mb, pct, shortDeviceNote, usedMb } from '../shared/format';
import { modelView } from '../shared/panelView';
import type { Settings } from './settings';

const REFRESH_MIN_INTERVAL_MS = 200;

export class Gauge implements vscode.Disposable {
  private readonly item = vscode.window.createStatusBarItem('mixsga.gauge', vscode.StatusBarAlignment.Right, 100);
  private readonly subs: vscode.Disposable[] = [];
  private timer: NodeJS.Timeout | undefined;
  private lastRefresh = 0;
  /** Last report, for tests and the panel. */
  report: MemoryReport | undefined;
  /** What the status bar item shows (for tests). */
  get shown(): { text: string; tooltip: string; error: boolean } {
    const t = this.item.tooltip;
    return {
      text: this.item.text,
      tooltip: typeof t === 'string' ? t : (t?.value ?? ''),
      error: this.item.backgroundColor !== undefined && this.item.text.includes('$(error)'),
    };
  }

  constructor(
    private readonly host: EngineHost,
    private readonly settings: Settings,
  ) {
    this.item.name = 'mixSGA KV memory';
    this.item.command = 'mixsga.showMemoryReport';
    this.subs.push(
      host.onDidChange(() => this.schedule()),
      settings.onDidChange(() => this.schedule()),
    );
    this.render();
    this.item.show();
  }

  /** Coalesce bursts of change events: at most one memory() call per interval. */
  private schedule(): void {
    if (this.timer) return;
    const wait = Math.max(0, this.lastRefresh + REFRESH_MIN_INTERVAL_MS - Date.now());
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.lastRefresh = Date.now();
      void this.refresh();
    }, wait);
  }

  async refresh(): Promise<void> {
    const engine = this.host.current;
    if (engine && engine.state.kind === 'ready') {
      try {
        this.report = await engine.memory();
      } catch {
        this.report = undefined;
      }
    }
    this.render();
  }

  private render(): void {
    const st = this.host.state;
    const off = !this.settings.current.enabled;
    this.item.backgroundColor = undefined;
    if (st.kind === 'loading' || st.kind === 'restarting') {
      this.item.text = '$(loading~spin) mixSGA';
      const m = modelView(this.host.model, undefined);
      this.item.tooltip =
        st.kind === 'loading'
          ? `mixSGA: loading the model${m ? ` ${m.label} (${m.reason})` : ''}…`
          : `mixSGA: restarting (${st.reason})`;
      return;
    }
    if (st.kind === 'stopped') {
      // Only between a stop and the next start (restart, shutdown): nothing is wrong.
      this.item.text = '$(circle-slash) mixSGA';
      this.item.tooltip = 'mixSGA: engine not running';
      return;
    }
    if (st.kind === 'failed') {
      this.item.text = '$(error) mixSGA';
      this.item.tooltip = `mixSGA: not available — ${st.reason}`;
      this.item.backgroundColor = new vscode.ThemeColor('statusBarItem.errorBackground');
      return;
    }
    const r = this.report;
    const budget = r?.budgetBytes ?? this.settings.current.kvBudgetMB * MB;
    const used = r?.usedBytes ?? 0;
    const device = (r?.device ?? st.device).toUpperCase();
    this.item.text = `${off ? '$(circle-slash)' : '$(database)'} ${usedMb(used)}/${budgetMb(budget)} MB · ${device}`;
    if (budget > 0 && used >= 0.9 * budget)
      this.item.backgroundColor = new vscode.ThemeColor('statusBarItem.warningBackground');
    this.item.tooltip = tooltip(
      r,
      off,
      shortDeviceNote(this.settings.current.device, r?.deviceNote ?? st.deviceNote),
      modelView(this.host.model, r, st.device),
    );
  }

  dispose(): void {
    if (this.timer) clearTimeout(this.timer);
    for (const s of this.subs) s.dispose();
    this.item.dispose();
  }
}

function tooltip(
  r: MemoryReport | undefined,
  off: boolean,
  note: string | undefined,
  model: { label: string; reason: string } | undefined,
): vscode.MarkdownString {
  const md = new vscode.MarkdownString(undefined, true);
  md.isTrusted = { enabledCommands: ['mixsga.showMemoryReport', 'mixsga.setKvBudget'] };
  md.appendMarkdown(`**mixSGA KV cache**${off ? ' — completions off' : ''}\n\n`);
  // The active model and why it was chosen (issue 16: the bigger model on CUDA, the small one on a slow CPU).
  if (model) md.appendMarkdown(`Model: ${escape(model.label)}${model.reason ? ` — ${escape(model.reason)}` : ''}\n\n`);
  if (!r) return md.appendMarkdown('No memory report yet.');
  md.appendMarkdown(
    `${mb(r.usedBytes)} of ${budgetMb(r.budgetBytes)} MB used (${pct(r.budgetBytes ? r.usedBytes / r.budgetBytes : 0)})\n\n`,
  );
  if (note) md.appendMarkdown(`${escape(note)}\n\n`);
  if (r.expertShares.length) {
    md.appendMarkdown('| expert | token share |\n|---|---|\n');
    r.expertShares.forEach((s, e) => md.appendMarkdown(`| ${expertLabel(e)} | ${pct(s)} |\n`));
    md.appendMarkdown('\n');
  }
  if (r.cascade) {
    md.appendMarkdown(
      `KV tiers by age: ${r.cascade.sinks} sinks + band of ${r.cascade.band} tokens before the cursor at full precision\n\n`,
    );
    md.appendMarkdown('| tier | tokens | MB |\n|---|---|---|\n');
    for (const t of r.cascade.tiers) md.appendMarkdown(`| ${escape(t.name)} | ${t.tokens} | ${mb(t.bytes)} |\n`);
    md.appendMarkdown('\n');
  }
  const docs = [...r.docs].sort((a, b) => b.bytes - a.bytes).slice(0, 8);
  if (docs.length) {
    md.appendMarkdown('| document | tokens | MB |\n|---|---|---|\n');
    for (const d of docs) md.appendMarkdown(`| ${escape(shortName(d.docId))} | ${d.tokens} | ${mb(d.bytes)} |\n`);
  }
  md.appendMarkdown('\n[Memory report](command:mixsga.showMemoryReport) · [Set budget](command:mixsga.setKvBudget)');
  return md;
}

function shortName(docId: string): string {
  try {
    const p = vscode.Uri.parse(docId).path;
    return p.slice(p.lastIndexOf('/') + 1) || docId;
  } catch {
    return docId;
  }
}

function escape(s: string): string {
  return s.replace(/[\\`*_{}[\]()#+\-.!|<>]/g, '\\$&');
}
