// E2E: a new cursor spot in a ~2k-token file that was opened before (issue 14). The extension prefills the file in
// document order on open; the cursor then jumps to a line near the end and one character is typed there. The
// request's reuse and latency are read from the extension's log line ("#N typescript STOP: C chars in T ms
// (prompt R reused + P computed, …"): the text before the cursor line must come from the cache (docs/cache-layout.md), so only the
// suffix head and the cursor line are computed. Latency is reported, not asserted (shared, loaded machines).
import fs from 'node:fs';
import path from 'node:path';
import { launchBrowser } from './browser.mjs';
import { startCodeServer } from './codeServer.mjs';
import { extensionLog, openFile, waitGauge } from './workbench.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const REQUEST_RE = /#\d+ typescript ([\w-]+): \d+ chars in (\d+) ms \(prompt (\d+) reused \+ (\d+) computed/;

/** The first lines of `source` (a file of this repository), ≈ `tokens` tokens. */
function clip(source, tokens, tokenCount) {
  const lines = fs.readFileSync(source, 'utf8').split('\n');
  let lo = 1,
    hi = lines.length;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (tokenCount(lines.slice(0, mid).join('\n')) <= tokens) lo = mid;
    else hi = mid - 1;
  }
  return lines.slice(0, lo).join('\n') + '\n';
}

export async function runJumpCheck({ tools, dirs, workspace, root, tokenCount, shots }) {
  const results = [];
  const check = (name, ok, detail = '') => {
    results.push({ name, ok, err: ok ? undefined : detail, detail });
    console.log(`${ok ? 'ok  ' : 'FAIL'} ${name}${detail ? ' — ' + detail : ''}`);
  };
  const text = clip(path.join(root, 'src/engine/kvStore.ts'), 2000, tokenCount);
  fs.writeFileSync(path.join(workspace, 'spots.ts'), text);
  const lines = text.split('\n');
  const target = Math.floor(lines.length * 0.8); // 0-based line index of the jump
  const before = tokenCount(lines.slice(0, target).join('\n') + '\n');
  const cs = await startCodeServer(tools, dirs, { workspace });
  const ctx = await launchBrowser(dirs.work, tools.CHROMIUM);
  const page = ctx.pages()[0] ?? (await ctx.newPage());
  try {
    await page.goto(`http://${cs.authority}/?folder=${encodeURIComponent(workspace)}`);
    await page.waitForSelector('.monaco-workbench', { timeout: 60_000 });
    await waitGauge(page, () => true, 120_000, 'engine ready');
    await openFile(page, 'spots.ts');
    // Opened: the extension prefills the whole file. Wait until the cache stops growing.
    let last = -1;
    for (const end = Date.now() + 60_000; Date.now() < end; await sleep(1_000)) {
      const g = await waitGauge(page, (x) => x.used > 0, 5_000, 'prefill').catch(() => undefined);
      if (g && g.used === last) break;
      last = g ? g.used : -1;
    }
    const logBefore = extensionLog(dirs.userData).length;
    await page.keyboard.press('Control+G');
    await page.locator('.quick-input-widget input').first().waitFor({ timeout: 10_000 });
    await page.keyboard.type(String(target + 1), { delay: 10 });
    await page.keyboard.press('Enter');
    await page.keyboard.press('End');
    await page.keyboard.type(' ', { delay: 10 });
    let m;
    for (const end = Date.now() + 30_000; Date.now() < end && !m; await sleep(300)) {
      m = extensionLog(dirs.userData)
        .slice(logBefore)
        .split('\n')
        .map((l) => REQUEST_RE.exec(l))
        .find((x) => x && x[1] !== 'cancelled');
    }
    await page.screenshot({ path: path.join(shots, 'jump.png') });
    if (!m) {
      check('a jump in a ~2k-token file is logged', false, 'no request line in the extension log');
      return { results };
    }
    const [, stop, total, reused, prefill] = m;
    const detail = `line ${target + 1} of ${lines.length}, ${before} tokens before it: reused=${reused} prefill=${prefill} total=${total} ms (${stop})`;
    console.log(`[jump] ${detail}`);
    // BOS and <fim_prefix> are cached too; the tokenizer here counts a BOS: ≥ the text's tokens before the line.
    check(
      'a jump reuses the cached text before the cursor line (read from the log)',
      Number(reused) >= before - 1,
      detail,
    );
    check(
      'a jump computes only the suffix head and the cursor line',
      Number(prefill) <= 96 + 2 + tokenCount(lines[target]) + 4,
      detail,
    );
  } catch (e) {
    check('jump flow ran to the end', false, String((e && e.stack) || e));
  } finally {
    await ctx.close();
    await cs.stop();
  }
  return { results };
}
