// Warms the KV cache of the document the user is looking at (opened or focused), so the first suggestion there
// does not pay for prefilling the whole prompt while the user types.
import * as vscode from 'vscode';
import type { EngineHost } from './engineHost';
import type { MixsgaInlineProvider } from './provider';
import { textWindow } from './textWindow';

const DELAY_MS = 300;

export class Prefetcher implements vscode.Disposable {
  private timer: NodeJS.Timeout | undefined;
  private readonly subs: vscode.Disposable[];
  private lastKind = '';

  constructor(
    private readonly host: EngineHost,
    private readonly provider: MixsgaInlineProvider,
    private readonly log: vscode.LogOutputChannel,
  ) {
    this.subs = [
      vscode.window.onDidChangeActiveTextEditor(() => this.schedule()),
      // Only on becoming ready: the host also fires after every request.
      host.onDidChange((st) => {
        if (st.kind === 'ready' && this.lastKind !== 'ready') this.schedule();
        this.lastKind = st.kind;
      }),
    ];
    this.schedule();
  }

  private schedule(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.run(), DELAY_MS);
  }

  private async run(): Promise<void> {
    this.timer = undefined;
    const editor = vscode.window.activeTextEditor;
    const engine = this.host.current;
    if (!editor || !engine || !this.host.ready) return;
    const doc = editor.document;
    if (this.provider.skipReason(doc)) return;
    const win = textWindow(doc, editor.selection.active);
    if (!win.ok) return;
    const t0 = Date.now();
    try {
      await engine.prefill(doc.uri.toString(), doc.languageId, win.prefix, win.suffix);
      this.log.debug(`prefilled ${vscode.workspace.asRelativePath(doc.uri)} in ${Date.now() - t0} ms`);
    } catch (e) {
      this.log.debug(`prefill skipped: ${String(e)}`);
    }
    this.host.notifyChanged();
  }

  dispose(): void {
    if (this.timer) clearTimeout(this.timer);
    for (const s of this.subs) s.dispose();
  }
}
