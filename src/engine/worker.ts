// Worker thread entry (bundled to dist/worker.js): owns onnxruntime and the KV caches. Runs one call at a time;
// a newer complete() cancels older complete()/prefill() calls, a newer prefill() cancels older prefills.
//
// Shutdown is graceful ({type:'shutdown'}): every call is cancelled (generation and prefill stop at the next model
// step), the queue drains, the ORT session is released, and the worker exits by itself. The client terminates a
// worker only as a last resort: Worker.terminate() during a native session.run()/create() can abort the whole
// process (`terminate called after throwing an instance of 'Napi::Error'`).
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
let core: EngineCore | undefined;
let stopping = false;
let created: Promise<EngineCore | undefined> = Promise.resolve(undefined);

async function handle(c: EngineCore, id: number, call: Call, token: CancelToken): Promise<unknown> {
  switch (call.method) {
    case 'complete': return c.complete(id, call.req, token);
    case 'prefill': return c.prefillDoc(id, call.docId, call.prefix, call.suffix, token);
    case 'setBudget': c.setBudget(call.bytes); return c.memory();
    case 'closeDocument': return c.close(call.docId);
    case 'clearCaches': return c.clear();
    case 'memory': return c.memory();
  }
}

async function shutdown(): Promise<void> {
  if (stopping) return;
  stopping = true;
  for (const c of cancels.values()) c.token.cancelled = true;
  const c = await created; // undefined when init failed: nothing to release
  await queue; // the running call ends at its next step boundary; queued ones are answered without running
  try { await c?.release(); } catch { /* exiting anyway */ }
  core = undefined;
  process.exit(0); // inside a worker this ends only the worker, and no native call is in progress now
}

function onMessage(m: ToWorker): void {
  if (m.type === 'shutdown') { void shutdown(); return; }
  if (m.type === 'cancel') { const c = cancels.get(m.id); if (c) c.token.cancelled = true; return; }
  if (m.type === 'testCrash') {
    if (!init.testHooks) return;
    if (m.how === 'exit') process.exit(3);
    if (m.how === 'hang') { const t = Date.now(); while (Date.now() - t < 60_000) { /* a stuck engine */ } return; }
    setImmediate(() => { throw new Error('test hook: worker crash'); });
    return;
  }
  const { id, call } = m;
  if (stopping || !core) {
    post({ type: 'result', id, ok: false, error: stopping ? 'the engine is shutting down' : 'the engine is not ready' });
    return;
  }
  const c = core;
  if (call.method === 'memory') { // read-only: answered at once, not behind a running request
    post({ type: 'result', id, ok: true, value: c.memory() });
    return;
  }
  if (call.method === 'complete' || call.method === 'prefill') {
    for (const x of cancels.values()) {
      if (call.method === 'complete' ? (x.method === 'complete' || x.method === 'prefill') : x.method === 'prefill') {
        x.token.cancelled = true;
      }
    }
  }
  const token: CancelToken = { cancelled: false };
  cancels.set(id, { method: call.method, token });
  queue = queue.then(async () => {
    try {
      if (stopping) throw new Error('the engine is shutting down');
      const value = await handle(c, id, call, token);
      post({ type: 'result', id, ok: true, value });
    } catch (e) {
      post({ type: 'result', id, ok: false, error: (e as Error).message });
    } finally {
      cancels.delete(id);
    }
  });
}

async function main(): Promise<void> {
  // Listening from the start: a shutdown may arrive while the session is still being created.
  port.on('message', onMessage);
  let c: EngineCore;
  try {
    const p = EngineCore.create(init);
    created = p.catch(() => undefined);
    c = await p;
  } catch (e) {
    if (!stopping) post({ type: 'initError', reason: (e as Error).message });
    return; // stays alive (listening) until the client's shutdown
  }
  core = c;
  if (stopping) return; // shutdown() releases it
  post({ type: 'ready', device: c.loaded.device, ...(c.loaded.deviceNote ? { deviceNote: c.loaded.deviceNote } : {}) });
}

void main();
