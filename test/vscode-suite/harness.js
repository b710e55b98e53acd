// Tiny test runner for the extension host (no Mocha): sequential tests, each with its own timeout, results
// written as JSON to $MIXSGA_SUITE_RESULTS for the driver outside the host.
const fs = require('fs');

function createRunner() {
  const tests = [];
  return {
    test(name, fn, timeoutMs = 30_000) {
      tests.push({ name, fn, timeoutMs });
    },
    /** @param {(results: object[]) => void} [onProgress] called after each test (partial results survive a host crash) */
    async runAll(onProgress) {
      const results = [];
      for (const t of tests) {
        const start = Date.now();
        let timer;
        try {
          await Promise.race([
            Promise.resolve().then(t.fn),
            new Promise((_, rej) => {
              timer = setTimeout(() => rej(new Error(`timed out after ${t.timeoutMs} ms`)), t.timeoutMs);
            }),
          ]);
          results.push({ name: t.name, ok: true, ms: Date.now() - start });
        } catch (e) {
          results.push({ name: t.name, ok: false, ms: Date.now() - start, err: String((e && e.stack) || e) });
        } finally {
          clearTimeout(timer);
        }
        const r = results[results.length - 1];
        console.log(`${r.ok ? 'ok  ' : 'FAIL'} ${r.name} (${r.ms} ms)${r.ok ? '' : '\n' + r.err}`);
        if (onProgress) onProgress(results, t.name);
      }
      return results;
    },
  };
}

function writeResults(results, extra) {
  const out = process.env.MIXSGA_SUITE_RESULTS;
  if (!out) return;
  fs.writeFileSync(out + '.tmp', JSON.stringify({ node: process.version, ...extra, results }, null, 1));
  fs.renameSync(out + '.tmp', out); // the driver never reads a half-written file
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function waitFor(what, fn, timeoutMs = 20_000, everyMs = 100) {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(everyMs);
  }
}

module.exports = { createRunner, writeResults, sleep, waitFor };
