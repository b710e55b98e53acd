// Warms the KV cache of the document the user is looking at (opened or focused, and again after edits once the
// user pauses), so the first suggestion there does not pay for prefilling the whole prompt while the user types.
// The engine keeps the document in document order (docs/cache-layout.md): the text after the cursor is sent too
// (up to MAX_REST_CHARS), so that a later cursor spot anywhere below finds the text before it cached.
import * as vscode from 'vscode';
import type { EngineHost } from './engineHost';
import type { MixsgaInlineProvider } from './provider';
import { textWindow } from './textWindow';

const DELAY_MS = 300;
/** Pause after an edit before the document is prefilled again (the edit made its cached text after it stale). */
const IDLE_AFTER_EDIT_MS = 1_500;
const MAX_REST_CHARS = 24_000;

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
      vscode.workspace.onDidChangeTextDocument((e) => {
        if (e.contentChanges.length && e.document === vscode.window.activeTextEditor?.document)
          this.schedule(IDLE_AFTER_EDIT_MS);
      }),
      // Only on becoming ready: the host also fires after every request.
      host.onDidChange((st) => {
        if (st.kind === 'ready' && this.lastKind !== 'ready') this.schedule();
        this.lastKind = st.kind;
      }),
    ];
    this.schedule();
  }

  private schedule(delay = DELAY_MS): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.run(), delay);
  }

  private async run(): Promise<void> {
    this.timer = undefined;
    const editor = vscode.window.activeTextEditor;
    const engine = this.host.current;
    if (!editor || !engine || !this.host.ready) return;
    const doc = editor.document;
    if (this.provider.skipReason(doc)) return;
    const pos = editor.selection.active;
    const win = textWindow(doc, pos);
    if (!win.ok) return;
    const rest = doc.getText(new vscode.Range(pos, doc.positionAt(doc.offsetAt(pos) + MAX_REST_CHARS)));
    const t0 = Date.now();
    try {
      await engine.prefill(doc.uri.toString(), doc.languageId, win.prefix, rest, this.provider.contextFor(doc));
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
