// mixsga-complete CLI (bundled to dist/cli.js, worker.js next to it):
//   node dist/cli.js complete --model DIR --file F --line N --col M [--device cpu|cuda|auto] [--budget-mb X] [--multiline]
//   node dist/cli.js info --model DIR [--device ...]
// line and col are 1-based; prints the completion, then the request trace and memory report as JSON.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { EngineClient } from './engine/client';
import { loadManifest } from './engine/manifest';
import type { DeviceSetting } from './engine/api';

function args(argv: string[]): { cmd: string; flags: Record<string, string | true> } {
  const flags: Record<string, string | true> = {};
  for (let i = 1; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith('--')) continue;
    const next = argv[i + 1];
    if (next === undefined || next.startsWith('--')) flags[a.slice(2)] = true; else { flags[a.slice(2)] = next; i++; }
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
  if ((cmd !== 'complete' && cmd !== 'info') || !model) { console.error(usage); return 2; }
  const device = (str('device') ?? 'auto') as DeviceSetting;
  const budget = Math.round(Number(str('budget-mb') ?? 64) * 1024 * 1024);
  if (cmd === 'info') {
    try {
      const { manifest } = loadManifest(model);
      console.log(JSON.stringify({ name: manifest.name, architecture: manifest.architecture, experts: manifest.experts,
        fim: manifest.fim !== null, variants: Object.keys(manifest.variants) }, null, 2));
    } catch (e) { console.error(`error: ${(e as Error).message}`); return 1; }
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
    const file = str('file');
    if (!file) { console.error(usage); return 2; }
    const text = fs.readFileSync(file, 'utf8');
    const lines = text.split('\n');
    const line = Math.max(1, Number(str('line') ?? 1)), col = Math.max(1, Number(str('col') ?? 1));
    const before = lines.slice(0, line - 1).join('\n') + (line > 1 ? '\n' : '');
    const cur = lines[line - 1] ?? '';
    const offset = before.length + Math.min(col - 1, cur.length);
    const res = await engine.complete({
      docId: path.resolve(file), languageId: path.extname(file).slice(1), prefix: text.slice(0, offset),
      suffix: text.slice(offset), context: [], maxTokens: Number(str('max-tokens') ?? 64),
      multiline: flags.multiline === true, timeBudgetMs: Number(str('time-ms') ?? 5000),
    });
    console.log(res.text);
    console.log('--- trace');
    console.log(JSON.stringify({ state: engine.state, trace: res.trace, memory: await engine.memory() }, null, 2));
    return 0;
  } finally {
    await engine.dispose();
  }
}

main().then((code) => { process.exitCode = code; }, (e) => { console.error(e); process.exitCode = 1; });
