// Engine process entry (bundled to dist/worker.js, started by EngineClient with child_process.fork): owns
// onnxruntime and the KV caches. A separate process, not a worker thread, so that a native abort or segfault in
// the runtime (or a forced stop) ends only this process, never the editor's extension host. Runs one call at a
// time; a newer complete() cancels older complete()/prefill() calls, a newer prefill() cancels older prefills;
// memory() is answered at once.
//
// Shutdown is graceful ({type:'shutdown'}): every call is cancelled (generation and prefill stop at the next model
// step), the queue drains, the ORT session is released, and the process exits by itself. The client kills it
// only when it does not exit in time or stops answering. If the client goes away, the process exits too.
import './fp16Guard';
import { EngineCore } from './core';
import type { Call, FromWorker, InitData, ToWorker } from './protocol';
import type { CancelToken } from './generate';

if (!process.send) throw new Error('worker.js is the engine process: start it with child_process.fork (IPC channel)');
const post = (m: FromWorker) => {
  if (process.connected) process.send!(m);
};
let init: InitData;

const cancels = new Map<number, { method: Call['method']; token: CancelToken }>();
let queue: Promise<void> = Promise.resolve();
let core: EngineCore | undefined;
let stopping = false;
let created: Promise<EngineCore | undefined> = Promise.resolve(undefined);

/** Collects garbage now (the process runs with --expose-gc): dropped KV arrays go back to the system at once. A
 * plain gc() (all available garbage): gc({ type: 'major' }) left the ArrayBuffers of dropped outputs counted and
 * resident (test/integration/outputGarbage.test.ts). */
const collect = () => (globalThis as { gc?: () => void }).gc?.();

/** Run outputs (KV, logits) are copied into the caches and dropped, but V8 frees their buffers only at a collection
 * it starts by its own measure, tens of MB later (docs/soak.md). So after a call, with nothing else queued, the
 * engine collects once the array buffers exceed what the caches allocate by more than this (MIXSGA_GC_GARBAGE_MB,
 * default 16; 0 = leave it to V8). */
const garbageLimit = Number(process.env.MIXSGA_GC_GARBAGE_MB ?? 16) * 2 ** 20;
const gcStats = { count: 0, ms: 0 };
function collectGarbageOutputs(c: EngineCore): void {
  if (!(garbageLimit > 0) || cancels.size > 0 || stopping) return;
  if (process.memoryUsage().arrayBuffers - c.budget.used() <= garbageLimit) return;
  const t = performance.now();
  collect();
  gcStats.count++;
  gcStats.ms += performance.now() - t;
}

async function handle(c: EngineCore, id: number, call: Call, token: CancelToken): Promise<unknown> {
  switch (call.method) {
    case 'complete':
      return c.complete(id, call.req, token);
    case 'prefill':
      return c.prefillDoc(id, call.docId, call.prefix, call.suffix, token, call.context);
    case 'setBudget':
      c.setBudget(call.bytes);
      collect();
      return c.memory();
    case 'closeDocument':
      c.close(call.docId);
      collect();
      return;
    case 'memory':
      return c.memory();
  }
}

async function shutdown(): Promise<void> {
  if (stopping) return;
  stopping = true;
  for (const c of cancels.values()) c.token.cancelled = true;
  const c = await created; // undefined when init failed: nothing to release
  await queue; // the running call ends at its next step boundary; queued ones are answered without running
  try {
    await c?.release();
  } catch {
    /* exiting anyway */
  }
  core = undefined;
  process.exit(0); // no native call is in progress now
}

function onMessage(m: Exclude<ToWorker, { type: 'init' }>): void {
  if (m.type === 'shutdown') {
    void shutdown();
    return;
  }
  if (m.type === 'cancel') {
    const c = cancels.get(m.id);
    if (c) c.token.cancelled = true;
    return;
  }
  if (m.type === 'testCrash') {
    if (!init?.testHooks) return;
    if (m.how === 'exit') process.exit(3);
    if (m.how === 'abort') {
      setImmediate(() => process.abort());
      return;
    } // a native fault, mid-run if one is running
    if (m.how === 'hang') {
      const t = Date.now();
      while (Date.now() - t < 60_000) {
        /* a stuck engine */
      }
      return;
    }
    setImmediate(() => {
      throw new Error('test hook: worker crash');
    });
    return;
  }
  const { id, call } = m;
  if (stopping || !core) {
    post({
      type: 'result',
      id,
      ok: false,
      error: stopping ? 'the engine is shutting down' : 'the engine is not ready',
    });
    return;
  }
  const c = core;
  if (call.method === 'memory') {
    // read-only: answered at once, not behind a running request
    post({ type: 'result', id, ok: true, value: { ...c.memory(), gc: { ...gcStats, ms: Math.round(gcStats.ms) } } });
    return;
  }
  if (call.method === 'complete' || call.method === 'prefill') {
    for (const x of cancels.values()) {
      if (call.method === 'complete' ? x.method === 'complete' || x.method === 'prefill' : x.method === 'prefill') {
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
      collectGarbageOutputs(c);
    }
  });
}

async function start(data: InitData): Promise<void> {
  init = data;
  let c: EngineCore;
  let coldRssMB = 0;
  let warmupMs: number | undefined;
  try {
    // The warm-up is part of creation: a shutdown meanwhile waits for it before releasing the session.
    const p = EngineCore.create(init).then(async (x) => {
      coldRssMB = process.memoryUsage().rss / 2 ** 20;
      warmupMs = await x.warmUp().catch(() => undefined); // without it the cap's base is only lower
      collect(); // its zero cache and outputs are garbage now
      return x;
    });
    created = p.catch(() => undefined);
    c = await p;
  } catch (e) {
    if (!stopping) post({ type: 'initError', reason: (e as Error).message });
    return; // stays alive (listening) until the client's shutdown
  }
  core = c;
  if (stopping) return; // shutdown() releases it
  post({
    type: 'ready',
    device: c.loaded.device,
    ...(c.loaded.deviceNote ? { deviceNote: c.loaded.deviceNote } : {}),
    rssMB: process.memoryUsage().rss / 2 ** 20,
    coldRssMB,
    ...(warmupMs !== undefined ? { warmupMs } : {}),
  });
}

// Listening from the start: a shutdown may arrive while the session is still being created. The first message
// is the init data.
process.on('message', (m: ToWorker) => {
  if (m.type === 'init') void start(m.init);
  else onMessage(m);
});
process.on('disconnect', () => process.exit(0)); // the client is gone: nobody needs this engine
