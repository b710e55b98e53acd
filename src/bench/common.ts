// Shared helpers of the benchmark bundle (dist/bench.js): arguments, statistics, machine facts, output files.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { execFileSync } from 'node:child_process';
import type { CompletionRequest } from '../engine/api';

export type Args = Record<string, string | boolean>;

/** --key value / --key=value / --flag. */
export function parseArgs(argv: string[]): Args {
  const a: Args = {};
  for (let i = 0; i < argv.length; i++) {
    const t = argv[i];
    if (!t.startsWith('--')) throw new Error(`unexpected argument ${t}`);
    const eq = t.indexOf('=');
    if (eq > 0) {
      a[t.slice(2, eq)] = t.slice(eq + 1);
      continue;
    }
    const k = t.slice(2);
    if (i + 1 < argv.length && !argv[i + 1].startsWith('--')) a[k] = argv[++i];
    else a[k] = true;
  }
  return a;
}

export const str = (a: Args, k: string, d: string): string => (typeof a[k] === 'string' ? (a[k] as string) : d);
export const int = (a: Args, k: string, d: number): number => {
  if (a[k] === undefined) return d;
  const n = Number(a[k]);
  if (!Number.isFinite(n) || n < 0) throw new Error(`--${k} needs a non-negative number, got ${String(a[k])}`);
  return Math.floor(n);
};
export const nums = (a: Args, k: string, d: number[]): number[] => {
  if (typeof a[k] !== 'string') return d;
  const v = (a[k] as string).split(',').map((x) => Number(x.trim()));
  if (v.some((x) => !Number.isFinite(x) || x <= 0))
    throw new Error(`--${k} needs a comma-separated list of positive numbers`);
  return v;
};

/** Repository (or copied dist/'s parent) root: dist/bench.js lives in <root>/dist. */
export const ROOT = path.resolve(__dirname, '..');

export function defaultModelDir(): string {
  const d = path.join(ROOT, 'models', 'default');
  return fs.existsSync(path.join(d, 'manifest.json')) ? d : path.join(ROOT, 'test', 'fixtures', 'fixture-tiny');
}

export function percentile(xs: number[], p: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const r = (p / 100) * (s.length - 1),
    lo = Math.floor(r),
    hi = Math.ceil(r);
  return s[lo] + (s[hi] - s[lo]) * (r - lo);
}
export const mean = (xs: number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : NaN);
export const stats = (xs: number[]) => ({
  n: xs.length,
  p50: percentile(xs, 50),
  p95: percentile(xs, 95),
  mean: mean(xs),
  min: xs.length ? Math.min(...xs) : NaN,
  max: xs.length ? Math.max(...xs) : NaN,
});
/** Deterministic uniform [0, 1) (xorshift32), so compared runs and re-runs see the same cursor spots. */
export function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 2 ** 32;
  };
}
/** A one-line completion request without extra context: what every benchmark sends. */
export const lineRequest = (
  docId: string,
  languageId: string,
  prefix: string,
  suffix: string,
  limits: { maxTokens: number; timeBudgetMs: number },
): CompletionRequest => ({ docId, languageId, prefix, suffix, context: [], multiline: false, ...limits });
export const r2 = (x: number) => (Number.isFinite(x) ? Math.round(x * 100) / 100 : x);

export function ortVersion(): string {
  try {
    const p = require.resolve('onnxruntime-node/package.json');
    return JSON.parse(fs.readFileSync(p, 'utf8')).version;
  } catch {
    return 'unknown';
  }
}

export function gpuFacts(): { name?: string; memoryTotalMiB?: number; driver?: string } | undefined {
  try {
    const out = execFileSync(
      'nvidia-smi',
      ['--query-gpu=name,memory.total,driver_version', '--format=csv,noheader,nounits'],
      { encoding: 'utf8', timeout: 10_000, stdio: ['ignore', 'pipe', 'ignore'] },
    )
      .trim()
      .split('\n')[0];
    const [name, mem, driver] = out.split(',').map((s) => s.trim());
    return { name, memoryTotalMiB: Number(mem), driver };
  } catch {
    return undefined;
  }
}

/** GPU memory in use (MiB) on device 0 per nvidia-smi, or undefined where there is none. */
export function gpuMemUsedMiB(): number | undefined {
  try {
    const out = execFileSync('nvidia-smi', ['--query-gpu=memory.used', '--format=csv,noheader,nounits'], {
      encoding: 'utf8',
      timeout: 10_000,
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    const v = Number(out.trim().split('\n')[0]);
    return Number.isFinite(v) ? v : undefined;
  } catch {
    return undefined;
  }
}

/** Resident memory of a process in MB (Linux /proc), or undefined where it cannot be read. */
export function processRssMB(pid: number | undefined): number | undefined {
  if (!pid) return undefined;
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : undefined;
  } catch {
    return undefined;
  }
}

/** Resident size of a process's [heap] mapping in MB (glibc's main malloc arena, grown with brk), or undefined. */
export function processHeapSegmentMB(pid: number | undefined): number | undefined {
  if (!pid) return undefined;
  try {
    const m = /\[heap\]\n(?:.*\n)*?Rss:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/smaps`, 'utf8'));
    return m ? Number(m[1]) / 1024 : 0;
  } catch {
    return undefined;
  }
}

export function machineFacts(): Record<string, unknown> {
  const cpus = os.cpus();
  let load: number[] = [];
  try {
    load = os.loadavg().map(r2);
  } catch {
    /* windows */
  }
  return {
    date: new Date().toISOString(),
    hostname: os.hostname(),
    platform: `${process.platform}-${process.arch}`,
    cpuModel: cpus[0]?.model ?? 'unknown',
    cores: cpus.length,
    totalMemGiB: r2(os.totalmem() / 2 ** 30),
    node: process.versions.node,
    ort: ortVersion(),
    loadavgAtStart: load,
    gpu: gpuFacts(),
  };
}

/** bench/results/<UTC date>-<device>-<model>[-suffix].json under the root, or --out. */
export function writeResult(
  outArg: string | undefined,
  device: string,
  model: string,
  suffix: string,
  data: unknown,
): string {
  const date = new Date().toISOString().slice(0, 10);
  const file = outArg
    ? path.resolve(outArg)
    : path.join(ROOT, 'bench', 'results', `${date}-${device}-${model}${suffix ? '-' + suffix : ''}.json`);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, JSON.stringify(data, null, 2) + '\n');
  return file;
}

/** Fixed-width table for the console. */
export function table(head: string[], rows: (string | number)[][]): string {
  const cells = [head, ...rows.map((r) => r.map((c) => (typeof c === 'number' ? String(r2(c)) : c)))];
  const w = head.map((_, i) => Math.max(...cells.map((r) => String(r[i] ?? '').length)));
  const line = (r: (string | number)[]) => r.map((c, i) => String(c ?? '').padStart(w[i])).join('  ');
  return [line(cells[0]), w.map((n) => '-'.repeat(n)).join('  '), ...cells.slice(1).map(line)].join('\n');
}

export class UsageError extends Error {}
/** Benchmark cannot run as asked (e.g. CUDA requested but unavailable): exit code 2 with the reason. */
export class UnavailableError extends Error {}
