// Webview with live charts of the KV cache (per document, per expert, per layer), the engine process's memory against
// its RSS cap, and request latency; names the model and why it was chosen.
// Strict CSP with a nonce; scripts and styles come only from the extension's media/ folder.
import * as crypto from 'crypto';
import * as vscode from 'vscode';
import type { EngineHost } from './engineHost';
import { modelView, rssCapView } from '../shared/panelView';
import { LATENCY_BUCKETS_MS, type Stats } from '../shared/stats';

export class MemoryPanel implements vscode.Disposable {
  private panel: vscode.WebviewPanel | undefined;
  private sub: vscode.Disposable | undefined;
  private pending: NodeJS.Timeout | undefined;

  constructor(
    private readonly extensionUri: vscode.Uri,
    private readonly host: EngineHost,
    private readonly stats: Stats,
  ) {}

  show(): void {
    if (this.panel) {
      this.panel.reveal();
      return;
    }
    const media = vscode.Uri.joinPath(this.extensionUri, 'media');
    const panel = vscode.window.createWebviewPanel('mixsga.memory', 'mixSGA Memory', vscode.ViewColumn.Beside, {
      enableScripts: true,
      localResourceRoots: [media],
      retainContextWhenHidden: false,
    });
    this.panel = panel;
    panel.iconPath = vscode.Uri.joinPath(media, 'icon.png');
    panel.webview.html = this.html(panel.webview, media);
    this.sub = this.host.onDidChange(() => this.schedule());
    panel.webview.onDidReceiveMessage((m: { type?: string }) => {
      if (m?.type === 'ready') void this.post();
      if (m?.type === 'clear') void vscode.commands.executeCommand('mixsga.clearKvCaches');
      if (m?.type === 'budget') void vscode.commands.executeCommand('mixsga.setKvBudget');
    });
    panel.onDidDispose(() => {
      this.sub?.dispose();
      if (this.pending) clearTimeout(this.pending);
      this.panel = undefined;
    });
  }

  private schedule(): void {
    if (this.pending) return;
    this.pending = setTimeout(() => {
      this.pending = undefined;
      void this.post();
    }, 250);
  }

  private async post(): Promise<void> {
    const panel = this.panel;
    if (!panel) return;
    const st = this.host.state;
    const engine = this.host.current;
    const report = engine && st.kind === 'ready' ? await engine.memory().catch(() => undefined) : undefined;
    void panel.webview.postMessage({
      type: 'update',
      state: st.kind === 'failed' ? `failed: ${st.reason}` : st.kind,
      report,
      model: modelView(this.host.model, report, st.kind === 'ready' ? st.device : undefined),
      rssCap: rssCapView(report),
      latency: {
        bucketsMs: LATENCY_BUCKETS_MS.map((b) => (Number.isFinite(b) ? b : null)),
        counts: this.stats.histogram,
      },
      requests: { total: this.stats.requests, served: this.stats.served, cacheHits: this.stats.cacheHits },
    });
  }

  private html(webview: vscode.Webview, media: vscode.Uri): string {
    const nonce = crypto.randomBytes(16).toString('base64');
    const js = webview.asWebviewUri(vscode.Uri.joinPath(media, 'panel.js'));
    const css = webview.asWebviewUri(vscode.Uri.joinPath(media, 'panel.css'));
    const csp = [
      "default-src 'none'",
      `style-src ${webview.cspSource}`,
      `script-src 'nonce-${nonce}'`,
      `img-src ${webview.cspSource} data:`,
    ].join('; ');
    return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="UTF-8">
<meta http-equiv="Content-Security-Policy" content="${csp}">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<link rel="stylesheet" href="${css}">
<title>mixSGA Memory</title>
</head>
<body>
<header>
  <h1>mixSGA KV cache</h1>
  <div id="summary">waiting for the engine…</div>
  <div id="model" class="note"></div>
  <div id="requests" class="note"></div>
  <div class="actions"><button id="budget">Set budget…</button><button id="clear">Clear caches</button></div>
</header>
<section><h2>Used vs budget</h2><svg id="usage" class="chart" role="img" aria-label="KV memory used against the budget"></svg></section>
<section><h2>KV bytes per document</h2><svg id="docs" class="chart" role="img" aria-label="KV bytes per document"></svg></section>
<section id="tiersSection" hidden><h2>KV tiers by age</h2><div id="tiersNote" class="note"></div><svg id="tiers" class="chart" role="img" aria-label="tokens and bytes per KV tier"></svg></section>
<section><h2>Tokens per expert</h2><svg id="experts" class="chart" role="img" aria-label="token share per expert"></svg></section>
<section><h2>Routing shares per layer</h2><svg id="layers" class="chart" role="img" aria-label="expert shares per layer"></svg></section>
<section id="rssSection" hidden><h2>Engine process memory (RSS cap)</h2><svg id="rss" class="chart" role="img" aria-label="the engine process's resident memory against its cap"></svg><div id="rssNote" class="note"></div></section>
<section><h2>Request latency</h2><svg id="latency" class="chart" role="img" aria-label="latency histogram"></svg></section>
<script nonce="${nonce}" src="${js}"></script>
</body>
</html>`;
  }

  dispose(): void {
    this.panel?.dispose();
  }
}
