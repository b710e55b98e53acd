// Worker thread entry (bundled to dist/worker.js): owns onnxruntime and the KV caches. Runs one call at a time;
// a newer complete() cancels older complete()/prefill() calls, a newer prefill() cancels older prefills.
import './fp16Guard';
import { parentPort, workerData } from 'node:worker_threads';
import { EngineCore } from './core';
import type { Call, FromWorker, InitData, ToWorker } from './protocol';
import type { CancelToken } from './generate';

const port = parentPort!;
const init = workerData as InitData;
const post = (m: FromWorker) => port.postMessage(m);

const cancels = new Map<number, { method: Call['method']; token: CancelToken }>();
let queue: Promise<void> = Promise.resolve();

async function handle(core: EngineCore, id: number, call: Call, token: CancelToken): Promise<unknown> {
  switch (call.method) {
    case 'complete': return core.complete(id, call.req, token);
    case 'prefill': return core.prefillDoc(id, call.docId, call.prefix, call.suffix, token);
    case 'setBudget': core.setBudget(call.bytes); return core.memory();
    case 'closeDocument': return core.close(call.docId);
    case 'clearCaches': return core.clear();
    case 'memory': return core.memory();
  }
}

async function main(): Promise<void> {
  let core: EngineCore;
  try {
    core = await EngineCore.create(init);
  } catch (e) {
    post({ type: 'initError', reason: (e as Error).message });
    return;
  }
  post({ type: 'ready', device: core.loaded.device, ...(core.loaded.deviceNote ? { deviceNote: core.loaded.deviceNote } : {}) });
  port.on('message', (m: ToWorker) => {
    if (m.type === 'cancel') { const c = cancels.get(m.id); if (c) c.token.cancelled = true; return; }
    if (m.type === 'testCrash') {
      if (!init.testHooks) return;
      if (m.how === 'exit') process.exit(3);
      setImmediate(() => { throw new Error('test hook: worker crash'); });
      return;
    }
    const { id, call } = m;
    if (call.method === 'complete' || call.method === 'prefill') {
      for (const c of cancels.values()) {
        if (call.method === 'complete' ? (c.method === 'complete' || c.method === 'prefill') : c.method === 'prefill') {
          c.token.cancelled = true;
        }
      }
    }
    const token: CancelToken = { cancelled: false };
    cancels.set(id, { method: call.method, token });
    queue = queue.then(async () => {
      try {
        const value = await handle(core, id, call, token);
        post({ type: 'result', id, ok: true, value });
      } catch (e) {
        post({ type: 'result', id, ok: false, error: (e as Error).message });
      } finally {
        cancels.delete(id);
      }
    });
  });
}

void main();
