// Creates the ONNX Runtime session for a model folder: picks the execution provider (device auto|cuda|cpu) and
// the matching manifest variant (cpu → fp32 KV, cuda → fp16 KV), falling back to CPU with a reason in words.
//
// fp16 on Node ≥ 24: onnxruntime-common turns float16 tensor data into a Float16Array when that global exists,
// and the 1.29 native binding then reads 0 bytes (cuda-execution-provider.md §6). The worker deletes
// globalThis.Float16Array before creating any tensor (fp16Guard.ts; the worker owns its globals), and KV is passed
// as Uint16Array fp16 bits.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type * as ortTypes from 'onnxruntime-node';
import type { DeviceSetting } from './api';
import type { Manifest, Variant } from './manifest';

export interface LoadedSession {
  ort: typeof ortTypes;
  session: ortTypes.InferenceSession;
  device: 'cuda' | 'cpu';
  variant: Variant;
  deviceNote?: string;
}

/** Folder with libonnxruntime.so.1 (where ORT looks for its CUDA provider libraries). */
export function ortBinaryDir(): string {
  const pkg = path.dirname(require.resolve('onnxruntime-node/package.json'));
  return path.join(pkg, 'bin', 'napi-v6', process.platform, process.arch);
}

/** Why CUDA cannot work here, judged from files on disk; undefined when the provider libraries are present. */
export function cudaUnavailableReason(): string | undefined {
  if (process.platform !== 'linux' && process.platform !== 'win32')
    return `CUDA is not supported on ${process.platform}`;
  const dir = ortBinaryDir();
  const ext = process.platform === 'win32' ? '.dll' : '.so';
  const pre = process.platform === 'win32' ? '' : 'lib';
  const missing = ['onnxruntime_providers_cuda', 'onnxruntime_providers_shared']
    .map((n) => `${pre}${n}${ext}`)
    .filter((f) => !fs.existsSync(path.join(dir, f)));
  if (missing.length) {
    return `CUDA provider library not found next to ${pre}onnxruntime${ext}${process.platform === 'win32' ? '' : '.1'} in ${dir} (missing ${missing.join(', ')})`;
  }
  return undefined;
}

/** ORT memory settings used unless MIXSGA_ORT_MEM says otherwise (A/B measurements: docs/soak.md). */
export const ORT_MEM_DEFAULT = 'arena';

export async function createSession(
  dir: string,
  manifest: Manifest,
  device: DeviceSetting,
  threads = 0,
): Promise<LoadedSession> {
  // Loaded lazily so the Float16Array guard runs first and tests of other modules need no native binding.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const ort: typeof ortTypes = require('onnxruntime-node');
  // ORT's memory settings, MIXSGA_ORT_MEM = comma list of 'arena', 'patterns'. The CPU arena stays: without it
  // every run's buffers are fresh allocations (2x slower on this model, docs/soak.md); it stops growing at the
  // working set of the largest run and is given back by clearCaches (a new engine process). Memory patterns are off: one
  // is planned and kept per distinct input shape, and every cache length is a new one.
  const mem = (process.env.MIXSGA_ORT_MEM ?? ORT_MEM_DEFAULT).split(',');
  const base: ortTypes.InferenceSession.SessionOptions = {
    graphOptimizationLevel: 'all',
    enableCpuMemArena: mem.includes('arena'),
    enableMemPattern: mem.includes('patterns'),
    ...(threads > 0 ? { intraOpNumThreads: threads } : {}),
    logSeverityLevel: 3,
  };
  let note: string | undefined;
  if (device !== 'cpu') {
    const cuda = manifest.variants.cuda;
    const why = !cuda
      ? 'the model has no CUDA variant (model.cuda.onnx)'
      : !fs.existsSync(path.join(dir, cuda.file))
        ? `${cuda.file} is missing from ${dir}`
        : cudaUnavailableReason();
    if (!why && cuda) {
      try {
        const session = await ort.InferenceSession.create(path.join(dir, cuda.file), {
          ...base,
          executionProviders: [{ name: 'cuda', deviceId: 0 }],
        });
        return { ort, session, device: 'cuda', variant: cuda };
      } catch (e) {
        // ORT's real reason goes to stderr only; the JS error is generic.
        note = `CUDA execution provider failed to start (${(e as Error).message.split('\n')[0]}); using CPU`;
      }
    } else if (device === 'cuda' || why !== 'the model has no CUDA variant (model.cuda.onnx)') {
      note = `${why}; using CPU`;
    }
  }
  const cpu = manifest.variants.cpu;
  if (!cpu) throw new Error(`${note ? note + '. ' : ''}The model has no CPU variant`);
  const session = await ort.InferenceSession.create(path.join(dir, cpu.file), { ...base, executionProviders: ['cpu'] });
  return { ort, session, device: 'cpu', variant: cpu, ...(note ? { deviceNote: note } : {}) };
}
