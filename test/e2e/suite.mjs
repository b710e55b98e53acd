// Runs the in-host suite (test/vscode-suite, built into out/test/vscode-suite/index.js) inside code-server's (Node 24) extension host, as @vscode/test-electron would
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
    workspace,
    extraArgs: ['--vscode-option', 'enable-smoke-test-driver'],
    env: { MIXSGA_SUITE_RESULTS: resultsFile },
  });
  const payload = [
    ['extensionDevelopmentPath', `vscode-remote://${cs.authority}${extensionDir}`],
    ['extensionTestsPath', `vscode-remote://${cs.authority}${suiteFile}`],
  ];
  const ctx = await launchBrowser(dirs.work, tools.CHROMIUM);
  try {
    const page = ctx.pages()[0] ?? (await ctx.newPage());
    await page.goto(
      `http://${cs.authority}/?folder=${encodeURIComponent(workspace)}&payload=${encodeURIComponent(JSON.stringify(payload))}`,
    );
    // Wait for done:true. Partial results are written after each test, so a crashed extension host (the suite
    // stops making progress, or code-server logs the host's exit) still reports what ran and why it stopped.
    const end = Date.now() + timeoutMs;
    const csLog = path.join(dirs.work, 'code-server.log');
    let last = { results: [] };
    let lastChange = Date.now();
    let lastMtime = 0;
    let stopped = '';
    while (Date.now() < end) {
      if (fs.existsSync(resultsFile)) {
        const m = fs.statSync(resultsFile).mtimeMs;
        if (m !== lastMtime) {
          lastMtime = m;
          lastChange = Date.now();
          last = JSON.parse(fs.readFileSync(resultsFile, 'utf8'));
          if (last.done) return last;
        }
      }
      const logText = fs.existsSync(csLog) ? fs.readFileSync(csLog, 'utf8') : '';
      const crash = logText
        .split('\n')
        .filter((l) => /Extension Host Process exited|terminate called|what\(\)|Napi::Error/.test(l));
      if (crash.length) {
        await new Promise((r) => setTimeout(r, 2_000));
        stopped = `extension host died:\n${crash.join('\n')}`;
        break;
      }
      if (Date.now() - lastChange > 180_000) {
        stopped = 'no progress for 180 s';
        break;
      }
      await new Promise((r) => setTimeout(r, 250));
    }
    await page.screenshot({ path: path.join(dirs.shots, 'suite-stopped.png') }).catch(() => {});
    const why = stopped || `not finished within ${timeoutMs} ms`;
    return {
      ...last,
      node: last.node ?? '?',
      results: [
        ...(last.results ?? []),
        {
          name: `in-host suite finished (after "${last.last ?? 'start'}")`,
          ok: false,
          ms: 0,
          err: `${why}; see ${dirs.work}`,
        },
      ],
    };
  } finally {
    await ctx.close();
    await cs.stop();
  }
}
