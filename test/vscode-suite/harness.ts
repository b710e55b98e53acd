// Tiny test runner for the extension host (no Mocha): sequential tests, each with its own timeout, results
// written as JSON to $MIXSGA_SUITE_RESULTS for the driver outside the host.
import * as fs from 'fs';

export interface TestResult {
  name: string;
  ok: boolean;
  ms: number;
  err?: string;
}
type TestFn = () => unknown;
export type Runner = ReturnType<typeof createRunner>;

export function createRunner() {
  const tests: { name: string; fn: TestFn; timeoutMs: number }[] = [];
  return {
    test(name: string, fn: TestFn, timeoutMs = 30_000) {
      tests.push({ name, fn, timeoutMs });
    },
    /** onProgress is called after each test (partial results survive a host crash). */
    async runAll(onProgress?: (results: TestResult[], last: string) => void): Promise<TestResult[]> {
      const results: TestResult[] = [];
      for (const t of tests) {
        const start = Date.now();
        let timer: NodeJS.Timeout | undefined;
        try {
          await Promise.race([
            Promise.resolve().then(t.fn),
            new Promise((_resolve, rej) => {
              timer = setTimeout(() => rej(new Error(`timed out after ${t.timeoutMs} ms`)), t.timeoutMs);
            }),
          ]);
          results.push({ name: t.name, ok: true, ms: Date.now() - start });
        } catch (e) {
          results.push({
            name: t.name,
            ok: false,
            ms: Date.now() - start,
            err: String((e as Error | undefined)?.stack || e),
          });
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

export function writeResults(results: TestResult[], extra: Record<string, unknown>): void {
  const out = process.env.MIXSGA_SUITE_RESULTS;
  if (!out) return;
  fs.writeFileSync(out + '.tmp', JSON.stringify({ node: process.version, ...extra, results }, null, 1));
  fs.renameSync(out + '.tmp', out); // the driver never reads a half-written file
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export async function waitFor<T>(
  what: string,
  fn: () => T | Promise<T>,
  timeoutMs = 20_000,
  everyMs = 100,
): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(everyMs);
  }
}
