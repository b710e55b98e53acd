// mixsga-complete CLI (bundled to dist/cli.js, worker.js next to it):
//   node dist/cli.js complete --model DIR --file F --line N --col M [--device cpu|cuda|auto] [--budget-mb X] [--multiline]
//   node dist/cli.js info --model DIR [--device ...]
// line and col are 1-based; prints the completion, then the request trace and memory report as JSON.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { EngineClient } from './engine/client';
import { loadManifest } from './engine/manifest';
import type { DeviceSetting } from './engine/api';
import { InputError, checkNumber, MAX_BUDGET_BYTES } from './engine/validate';

/** A numeric flag: absent → `dflt`; present → a finite number in [min, max], else InputError naming the flag. */
function numFlag(
  raw: string | true | undefined,
  name: string,
  dflt: number,
  min: number,
  max: number,
  integer: boolean,
): number {
  if (raw === undefined) return dflt;
  const v = raw === true || raw.trim() === '' ? NaN : Number(raw);
  if (!Number.isFinite(v))
    throw new InputError(`--${name} must be a number (got ${raw === true ? 'no value' : JSON.stringify(raw)})`);
  return checkNumber(v, `--${name}`, min, max, integer);
}

function args(argv: string[]): { cmd: string; flags: Record<string, string | true> } {
  const flags: Record<string, string | true> = {};
  for (let i = 1; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith('--')) continue;
    const next = argv[i + 1];
    if (next === undefined || next.startsWith('--')) flags[a.slice(2)] = true;
    else {
      flags[a.slice(2)] = next;
      i++;
    }
  }
  return { cmd: argv[0] ?? 'help', flags };
}

const usage = `usage:
  node dist/cli.js complete --model DIR --file F --line N --col M [--device auto|cuda|cpu] [--budget-mb X] [--multiline] [--max-tokens N] [--time-ms N]
  node dist/cli.js info --model DIR [--device auto|cuda|cpu]`;

async function main(): Promise<number> {
  const { cmd, flags } = args(process.argv.slice(2));
  const str = (k: string) => (typeof flags[k] === 'string' ? (flags[k] as string) : undefined);
  const model = str('model');
  if ((cmd !== 'complete' && cmd !== 'info') || !model) {
    console.error(usage);
    return 2;
  }
  const device = (str('device') ?? 'auto') as DeviceSetting;
  if (!['auto', 'cuda', 'cpu'].includes(device)) {
    console.error(`error: --device must be auto, cuda or cpu (got ${JSON.stringify(device)})`);
    return 2;
  }
  let budget: number, maxTokens: number, timeMs: number, line: number, col: number;
  try {
    budget = Math.round(numFlag(flags['budget-mb'], 'budget-mb', 64, 0, MAX_BUDGET_BYTES / 2 ** 20, false) * 2 ** 20);
    maxTokens = numFlag(flags['max-tokens'], 'max-tokens', 64, 1, 512, true);
    timeMs = numFlag(flags['time-ms'], 'time-ms', 5000, 0, 3_600_000, false);
    line = numFlag(flags.line, 'line', 1, 1, Number.MAX_SAFE_INTEGER, true);
    col = numFlag(flags.col, 'col', 1, 1, Number.MAX_SAFE_INTEGER, true);
  } catch (e) {
    console.error(`error: ${(e as Error).message}`);
    return 2;
  }
  if (cmd === 'info') {
    try {
      const { manifest } = loadManifest(model);
      console.log(
        JSON.stringify(
          {
            name: manifest.name,
            architecture: manifest.architecture,
            experts: manifest.experts,
            fim: manifest.fim !== null,
            variants: Object.keys(manifest.variants),
          },
          null,
          2,
        ),
      );
    } catch (e) {
      console.error(`error: ${(e as Error).message}`);
      return 1;
    }
  }
  let text = '';
  const file = str('file');
  if (cmd === 'complete') {
    if (!file) {
      console.error(usage);
      return 2;
    }
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch (e) {
      console.error(`error: cannot read --file ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
      return 1;
    }
  }
  const engine = await EngineClient.start({ modelDir: path.resolve(model), device, kvBudgetBytes: budget });
  try {
    if (engine.state.kind !== 'ready') {
      console.error(`engine ${engine.state.kind}: ${'reason' in engine.state ? engine.state.reason : ''}`);
      return 1;
    }
    if (cmd === 'info') {
      console.log(JSON.stringify({ state: engine.state, memory: await engine.memory() }, null, 2));
      return 0;
    }
    const lines = text.split('\n');
    const before = lines.slice(0, line - 1).join('\n') + (line > 1 ? '\n' : '');
    const cur = lines[line - 1] ?? '';
    const offset = before.length + Math.min(col - 1, cur.length);
    const res = await engine.complete({
      docId: path.resolve(file!),
      languageId: path.extname(file!).slice(1),
      prefix: text.slice(0, offset),
      suffix: text.slice(offset),
      context: [],
      maxTokens,
      multiline: flags.multiline === true,
      timeBudgetMs: timeMs,
    });
    console.log(res.text);
    console.log('--- trace');
    console.log(JSON.stringify({ state: engine.state, trace: res.trace, memory: await engine.memory() }, null, 2));
    return 0;
  } finally {
    await engine.dispose();
  }
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (e) => {
    console.error(`error: ${(e as Error).message}`);
    process.exitCode = 1;
  },
);
