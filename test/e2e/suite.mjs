// Runs test/vscode-suite/index.js inside code-server's (Node 24) extension host, as @vscode/test-electron would
// in desktop VS Code. The workbench honours extensionDevelopmentPath/extensionTestsPath from the URL payload
// only when the server runs with --vscode-option enable-smoke-test-driver (otherwise they are silently ignored).
import fs from 'node:fs';
import path from 'node:path';
import { launchBrowser } from './browser.mjs';
import { startCodeServer } from './codeServer.mjs';

export async function runInHostSuite({ tools, dirs, workspace, extensionDir, suiteFile, timeoutMs = 420_000 }) {
  const resultsFile = path.join(dirs.work, 'suite-results.json');
  fs.rmSync(resultsFile, { force: true });
  const cs = await startCodeServer(tools, dirs, {
    workspace, extraArgs: ['--vscode-option', 'enable-smoke-test-driver'], env: { MIXSGA_SUITE_RESULTS: resultsFile },
  });
  const payload = [
    ['extensionDevelopmentPath', `vscode-remote://${cs.authority}${extensionDir}`],
    ['extensionTestsPath', `vscode-remote://${cs.authority}${suiteFile}`],
  ];
  const ctx = await launchBrowser(dirs.work, tools.CHROMIUM);
  try {
    const page = ctx.pages()[0] ?? (await ctx.newPage());
    await page.goto(`http://${cs.authority}/?folder=${encodeURIComponent(workspace)}&payload=${encodeURIComponent(JSON.stringify(payload))}`);
    const end = Date.now() + timeoutMs;
    while (!fs.existsSync(resultsFile) && Date.now() < end) await new Promise((r) => setTimeout(r, 250));
    if (!fs.existsSync(resultsFile)) {
      await page.screenshot({ path: path.join(dirs.shots, 'suite-timeout.png') }).catch(() => {});
      return { node: '?', results: [{ name: 'in-host suite finished', ok: false, ms: timeoutMs, err: `no results within ${timeoutMs} ms; see ${dirs.work}` }] };
    }
    await new Promise((r) => setTimeout(r, 200));
    return JSON.parse(fs.readFileSync(resultsFile, 'utf8'));
  } finally {
    await ctx.close();
    await cs.stop();
  }
}
