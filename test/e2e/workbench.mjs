// Reading and driving the code-server workbench page for the e2e tests: the extension's log, the status-bar
// gauge, opening a file, the ghost text shown, and running a palette command. Selectors are VS Code internals
// (pinned code-server 4.139.1).
import fs from 'node:fs';
import path from 'node:path';

/** The extension's own log (the provider logs every request with the budget actions it took). */
export function extensionLog(userData) {
  const logs = path.join(userData, 'logs');
  if (!fs.existsSync(logs)) return '';
  for (const session of fs.readdirSync(logs).sort().reverse()) {
    for (const host of fs.readdirSync(path.join(logs, session)).filter((d) => d.startsWith('exthost'))) {
      const f = path.join(logs, session, host, 'mixsga.mixsga-complete', 'mixSGA.log');
      if (fs.existsSync(f)) return fs.readFileSync(f, 'utf8');
    }
  }
  return '';
}
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const GAUGE_RE = /(\d+(?:\.\d+)?)( KB)?\/(\d+(?:\.\d+)?) MB · (CPU|CUDA|NONE)/;

/** Reads the gauge text from the status bar (inside the page, so polling is cheap). */
export async function readGauge(page) {
  const texts = await page.evaluate(() =>
    [...document.querySelectorAll('[id="workbench.parts.statusbar"] .statusbar-item')].map((e) => e.textContent || ''),
  );
  for (const t of texts) {
    const m = GAUGE_RE.exec(t);
    if (m) return { text: t.trim(), used: Number(m[1]) / (m[2] ? 1024 : 1), budget: Number(m[3]), device: m[4] };
  }
  return undefined;
}

export async function waitGauge(page, pred, timeoutMs, what) {
  const end = Date.now() + timeoutMs;
  let g;
  while (Date.now() < end) {
    g = await readGauge(page);
    if (g && pred(g)) return g;
    await sleep(150);
  }
  throw new Error(`gauge: ${what} not reached in ${timeoutMs} ms (last: ${JSON.stringify(g)})`);
}

export async function openFile(page, name) {
  // Explorer first (as verified in docs/vscode-e2e.md); Quick Open as a fallback, retried: its file search can lag.
  const active = page.locator('.tabs-container .tab.active', { hasText: name });
  await page.keyboard.press('Escape');
  const row = page.locator('.explorer-folders-view .monaco-list-row', { hasText: name }).first();
  if (
    await row.waitFor({ timeout: 5_000 }).then(
      () => true,
      () => false,
    )
  ) {
    await row.dblclick();
  }
  for (
    let attempt = 0;
    attempt < 3 &&
    !(await active.waitFor({ timeout: 3_000 }).then(
      () => true,
      () => false,
    ));
    attempt++
  ) {
    await page.keyboard.press('Escape');
    await page.keyboard.press('Control+P');
    await page.locator('.quick-input-widget input').first().waitFor({ timeout: 10_000 });
    await page.keyboard.type(name, { delay: 10 });
    const hit = page.locator('.quick-input-list .monaco-list-row', { hasText: name }).first();
    if (
      await hit.waitFor({ timeout: 8_000 }).then(
        () => true,
        () => false,
      )
    )
      await page.keyboard.press('Enter');
  }
  await active.waitFor({ timeout: 5_000 });
  const lines = page.locator('.editor-group-container.active .monaco-editor .view-lines').first();
  await lines.waitFor({ timeout: 10_000 });
  await lines.click();
}

/** Text of the ghost text shown now (inline part + extra lines), '' if none. */
export async function ghostText(page) {
  return page.evaluate(() => {
    const parts = [
      ...document.querySelectorAll(
        '.editor-group-container.active .ghost-text-decoration, .editor-group-container.active .ghost-text .view-line',
      ),
    ];
    return parts.map((e) => (e.textContent || '').replace(/\u00a0/g, ' ')).join('\n');
  });
}

/** Runs a command from the palette by its title. */
export async function palette(page, title) {
  await page.keyboard.press('Escape');
  await page.keyboard.press('Control+Shift+P');
  await page.locator('.quick-input-widget input').first().waitFor({ timeout: 10_000 });
  await page.keyboard.type(title, { delay: 10 });
  await page
    .locator('.quick-input-list .monaco-list-row', { hasText: title.replace(/^mixSGA: /, '') })
    .first()
    .waitFor({ timeout: 10_000 });
  await page.keyboard.press('Enter');
}
