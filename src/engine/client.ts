// EngineClient: the extension host's handle on the engine process (dist/worker.js next to the bundle, started with
// child_process.fork). Talks to it with request ids, supersedes stale requests, gives every call a deadline, and
// restarts a crashed or unresponsive engine with bounded retries and backoff.
//
// A process rather than a worker thread: a native abort or segfault in onnxruntime (a CUDA error, an out-of-memory
// abort) and a forced stop end only the engine process. Worker.terminate() during a native call aborted the whole
// host process ("terminate called after throwing an instance of 'Napi::Error'"); killing a child process is safe.
import * as path from 'node:path';
import { fork, ChildProcess } from 'node:child_process';
import type {
  CompletionRequest,
  CompletionResult,
  ContextSnippet,
  DeviceSetting,
  Engine,
  EngineState,
  MemoryReport,
  RequestTrace,
} from './api';
import type { Call, FromWorker, TestCrash, ToWorker } from './protocol';
import { newTrace } from './api';
import { checkBudgetBytes, checkNumber, requestProblem } from './validate';
import { EngineStartOptions, LEAN_MALLOC_ENV } from './clientOptions';
import { RssCap } from './rssCap';

export { LEAN_MALLOC_ENV };
export type { EngineStartOptions };

interface Pending {
  call: Call;
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
  /** Arms the RSS cap's idle check when it settles. */
  work: boolean;
}

const emptyTrace = (
  requestId: number,
  docId: string,
  reason: string,
  stop: RequestTrace['stopReason'] = 'error',
): RequestTrace => ({ ...newTrace(requestId, docId, stop), noSuggestionReason: reason });

export class EngineClient implements Engine {
  private _state: EngineState = { kind: 'loading' };
  private worker?: ChildProcess;
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private readonly listeners = new Set<(s: EngineState) => void>();
  private last?: RequestTrace;
  /** The last completion asked for: its document is prefilled again after an RSS-cap restart. */
  private lastRequest?: CompletionRequest;
  private lastComplete?: number;
  private attempts = 0;
  private readyAt = 0;
  private disposed = false;
  private restartTimer?: NodeJS.Timeout;
  private readyWaiters: (() => void)[] = [];
  /** Serialises setDevice()/dispose() so that two of them never spawn or stop workers at the same time. */
  private lifecycle: Promise<unknown> = Promise.resolve();
  private forced = 0;
  private expired = 0;
  /** Resident-memory cap, enforced by a restart at idle; calls made meanwhile wait for the fresh process. */
  private readonly rssCap?: RssCap;
  private recycling?: Promise<unknown>;

  private constructor(private opts: EngineStartOptions) {
    if (opts.rssCap === false) return;
    this.rssCap = new RssCap(
      {
        idle: () => this.pending.size === 0 && this._state.kind === 'ready' && !this.recycling,
        rssMB: async () => (await this.call<MemoryReport>({ method: 'memory' })).process?.rssMB,
        budgetBytes: () => this.opts.kvBudgetBytes,
        restart: async (why) => {
          const last = this.lastRequest;
          const r = this.respawn(why);
          this.recycling = r;
          await r;
          this.recycling = undefined;
          if (!last) return;
          const { docId, languageId, prefix, suffix, context } = last; // sent before calls that waited for `r`
          this.call({ method: 'prefill', docId, languageId, prefix, suffix, context }, undefined, true).catch(() => 0);
        },
      },
      opts.rssCap,
    );
  }

  /** Starts the worker and waits until it is ready or has failed; never throws for a bad model folder. */
  static async start(opts: EngineStartOptions): Promise<EngineClient> {
    checkBudgetBytes(opts.kvBudgetBytes); // throws a clear InputError for NaN, Infinity, negatives, non-numbers
    if (opts.threads !== undefined) checkNumber(opts.threads, 'threads', 0, 1024, true);
    const c = new EngineClient(opts);
    await c.spawn();
    return c;
  }

  get state(): EngineState {
    return this._state;
  }

  onDidChange(listener: (state: EngineState) => void): { dispose(): void } {
    this.listeners.add(listener);
    return { dispose: () => this.listeners.delete(listener) };
  }

  private setState(s: EngineState): void {
    this._state = s;
    for (const l of [...this.listeners]) {
      try {
        l(s);
      } catch {
        /* a listener's bug is not ours */
      }
    }
  }

  private workerPath(): string {
    return this.opts.workerPath ?? path.join(__dirname, 'worker.js');
  }

  /** Sends to an engine process; a message to one that is gone is dropped (its 'exit' handles the rest). */
  private send(w: ChildProcess | undefined, m: ToWorker): void {
    if (!w?.connected) return;
    try {
      w.send(m);
    } catch {
      /* the channel closed meanwhile */
    }
  }

  /** Starts an engine process; resolves once it reports ready or failure (or dies). */
  private spawn(): Promise<void> {
    return new Promise((resolve) => {
      let settled = false;
      const settle = () => {
        if (!settled) {
          settled = true;
          resolve();
        }
      };
      // In VS Code desktop process.execPath is Electron: ELECTRON_RUN_AS_NODE makes it a plain Node process.
      // No inherited execArgv: the host's --inspect flags would make the child fight for the debug port.
      // --expose-gc: after caches are dropped the engine collects at once, so their memory is returned promptly.
      const w = fork(this.workerPath(), [], {
        env: { ...process.env, ...(this.opts.childEnv ?? LEAN_MALLOC_ENV), ELECTRON_RUN_AS_NODE: '1' },
        execArgv: [
          '--expose-gc',
          // MIXSGA_ENGINE_PROF=DIR: a CPU profile of the engine process (NODE_OPTIONS may not carry --cpu-prof)
          ...(process.env.MIXSGA_ENGINE_PROF ? ['--cpu-prof', `--cpu-prof-dir=${process.env.MIXSGA_ENGINE_PROF}`] : []),
        ],
        serialization: 'advanced',
        stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      });
      this.worker = w;
      this.send(w, {
        type: 'init',
        init: {
          modelDir: this.opts.modelDir,
          device: this.opts.device,
          kvBudgetBytes: this.opts.kvBudgetBytes,
          threads: this.opts.threads,
          layout: this.opts.layout,
          kvPolicy: this.opts.kvPolicy,
          testHooks: this.opts.testHooks,
        },
      });
      w.on('message', (m: FromWorker) => {
        // A worker being stopped may still report ready/initError: it is no longer ours.
        if ((m.type === 'ready' || m.type === 'initError') && this.worker !== w) {
          settle();
          return;
        }
        if (m.type === 'ready') {
          this.readyAt = Date.now();
          this.rssCap?.freshProcess(m.rssMB, m.coldRssMB);
          this.setState({ kind: 'ready', device: m.device, ...(m.deviceNote ? { deviceNote: m.deviceNote } : {}) });
          this.readyWaiters.splice(0).forEach((f) => f());
          settle();
        } else if (m.type === 'initError') {
          // A bad model folder does not get better by restarting.
          this.worker = undefined;
          void this.stopWorker(w);
          this.setState({ kind: 'failed', reason: m.reason });
          this.failPending(m.reason);
          settle();
        } else if (m.type === 'result') {
          const p = this.pending.get(m.id);
          if (!p) return;
          this.pending.delete(m.id);
          clearTimeout(p.timer);
          if (p.work) this.rssCap?.activity();
          if (m.ok) p.resolve(m.value);
          else p.reject(new Error(m.error));
        }
      });
      w.on('error', (e) => {
        this.onCrash(w, `engine process failed: ${e.message}`);
        settle();
      });
      w.on('exit', (code, signal) => {
        this.onCrash(w, `engine process ${signal ? `was ended by ${signal}` : `exited (code ${code})`}`);
        settle();
      });
    });
  }

  private onCrash(w: ChildProcess, reason: string): void {
    if (this.worker !== w || this.disposed) return; // already handled, or an intended stop
    this.worker = undefined;
    if (w.exitCode === null && w.signalCode === null) w.kill('SIGKILL'); // failing but alive: a process may be killed
    this.failPending(reason);
    // A worker that ran a while before dying starts a fresh retry series.
    if (this.readyAt && Date.now() - this.readyAt > 60_000) this.attempts = 0;
    const backoff = this.opts.restartBackoffMs ?? [250, 1000, 4000];
    if (this.attempts >= backoff.length) {
      this.setState({ kind: 'failed', reason: `${reason}; gave up after ${backoff.length} restarts` });
      return;
    }
    const delay = backoff[this.attempts++];
    this.setState({ kind: 'restarting', reason });
    this.restartTimer = setTimeout(() => {
      if (!this.disposed) void this.spawn();
    }, delay);
  }

  /** Settles every in-flight call as if the engine were unavailable. */
  private failPending(reason: string): void {
    for (const [id, p] of this.pending) {
      this.pending.delete(id);
      clearTimeout(p.timer);
      p.resolve(this.fallback(id, p.call, reason));
    }
  }

  private fallback(id: number, call: Call, reason: string): unknown {
    if (call.method === 'complete') {
      const r: CompletionResult = { text: '', trace: emptyTrace(id, call.req.docId, reason) };
      this.last = r.trace;
      return r;
    }
    if (call.method === 'memory' || call.method === 'setBudget') {
      return {
        usedBytes: 0,
        budgetBytes: call.method === 'setBudget' ? call.bytes : this.opts.kvBudgetBytes,
        device: 'none',
        deviceNote: reason,
        modelName: '',
        docs: [],
        expertShares: [],
        perLayerShares: [],
        fullBytesPerToken: 0,
      } satisfies MemoryReport;
    }
    return undefined;
  }

  private notReadyReason(): string | undefined {
    const s = this._state;
    if (s.kind === 'ready') return undefined;
    if (s.kind === 'loading') return 'the engine is still loading the model';
    return s.kind === 'failed' ? `the engine failed: ${s.reason}` : `the engine is restarting (${s.reason})`;
  }

  /** `internal`: the client's own call (the RSS cap's prefill after a restart), not work that arms the cap. */
  private call<T>(call: Call, id = this.nextId++, internal = false): Promise<T> {
    if (this.recycling) return this.recycling.then(() => this.call<T>(call, id, internal));
    const work = call.method === 'complete' || call.method === 'prefill';
    if (work && !internal) this.rssCap?.activity();
    const why = this.notReadyReason();
    if (why || !this.worker) return Promise.resolve(this.fallback(id, call, why ?? 'no engine process') as T);
    return new Promise<T>((resolve, reject) => {
      const ms = this.deadlineMs(call);
      const timer = setTimeout(() => this.expire(id, ms), ms);
      this.pending.set(id, { call, resolve: resolve as (v: unknown) => void, reject, timer, work: work && !internal });
      this.send(this.worker, { type: 'call', id, call });
    });
  }

  private deadlineMs(call: Call): number {
    const base = this.opts.callTimeoutMs ?? 120_000;
    if (call.method === 'complete') return call.req.timeBudgetMs + base;
    return call.method === 'memory' ? Math.max(1000, base / 10) : base;
  }

  /**
   * A call past its deadline: answered as unavailable, so no caller waits on a stuck engine. memory() is answered
   * at once by a live engine, so when it expires the engine is stuck: it is killed and restarted. Any other expired
   * call sends such a probe.
   */
  private expire(id: number, ms: number): void {
    const p = this.pending.get(id);
    if (!p) return;
    this.pending.delete(id);
    this.expired++;
    const why = `the engine did not answer within ${(ms / 1000).toFixed(1)} s`;
    p.resolve(this.fallback(id, p.call, why));
    const w = this.worker;
    if (p.call.method === 'memory') {
      if (w) this.onCrash(w, `${why} (stuck; restarted)`);
    } else void this.memory();
  }

  async complete(req: CompletionRequest, signal?: AbortSignal): Promise<CompletionResult> {
    const id = this.nextId++;
    const bad = requestProblem(req);
    if (bad) {
      this.last = emptyTrace(id, typeof req?.docId === 'string' ? req.docId : '', `invalid request: ${bad}`);
      return { text: '', trace: this.last };
    }
    // Supersede: the previous completion is stale once a newer one is asked for.
    if (this.lastComplete !== undefined && this.pending.has(this.lastComplete)) {
      this.send(this.worker, { type: 'cancel', id: this.lastComplete });
    }
    this.lastComplete = id;
    this.lastRequest = req;
    const onAbort = () => this.send(this.worker, { type: 'cancel', id });
    if (signal?.aborted) {
      const r = { text: '', trace: emptyTrace(id, req.docId, 'the request was cancelled', 'cancelled') };
      this.last = r.trace;
      return r;
    }
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      const r = await this.call<CompletionResult>({ method: 'complete', req }, id).catch((e: Error) => ({
        text: '',
        trace: emptyTrace(id, req.docId, `engine error: ${e.message}`),
      }));
      // The engine only knows it was cancelled; here we know whether by the caller or by a newer request.
      if (signal?.aborted && r.trace.stopReason === 'cancelled' && !r.text) {
        r.trace.noSuggestionReason = 'the request was cancelled by the caller (the editor no longer needs it)';
      }
      this.last = r.trace;
      return r;
    } finally {
      signal?.removeEventListener('abort', onAbort);
      this.emit();
    }
  }

  async prefill(
    docId: string,
    languageId: string,
    prefix: string,
    suffix: string,
    context?: ContextSnippet[],
  ): Promise<void> {
    await this.call<void>({ method: 'prefill', docId, languageId, prefix, suffix, context }).catch(() => undefined);
  }

  /** Throws InputError (the engine keeps its budget) for NaN, Infinity, negative or non-numeric `bytes`. */
  async setBudget(bytes: number): Promise<MemoryReport> {
    checkBudgetBytes(bytes);
    this.opts = { ...this.opts, kvBudgetBytes: bytes }; // a restarted engine keeps the new budget
    const r = await this.call<MemoryReport>({ method: 'setBudget', bytes });
    this.emit();
    return r;
  }

  /**
   * Stops an engine process gracefully: asks it to shut down (it cancels its current call at the next model step,
   * releases its ORT session and exits by itself) and waits for its exit; kills it if it has not exited after
   * `shutdownTimeoutMs` (safe for this process, unlike terminating a thread inside a native call).
   */
  private stopWorker(w: ChildProcess): Promise<void> {
    return new Promise<void>((resolve) => {
      let done = false;
      const finish = () => {
        if (!done) {
          done = true;
          clearTimeout(timer);
          resolve();
        }
      };
      w.once('exit', finish);
      const timer = setTimeout(() => {
        this.forced++;
        w.kill('SIGKILL');
      }, this.opts.shutdownTimeoutMs ?? 5000);
      this.send(w, { type: 'shutdown' });
      if (w.exitCode !== null || w.signalCode !== null) finish(); // exited before we listened
    });
  }

  /** Runs lifecycle operations (device switch, dispose) one at a time, in call order. */
  private serial<T>(op: () => Promise<T>): Promise<T> {
    const r = this.lifecycle.then(op, op);
    this.lifecycle = r.catch(() => undefined);
    return r;
  }

  /** Restarts the engine process on the new device (the caches are dropped: the KV dtype may differ). */
  setDevice(device: DeviceSetting): Promise<EngineState> {
    this.opts = { ...this.opts, device };
    return this.respawn('the engine is switching device');
  }

  /** Stops the engine process gracefully and starts a fresh one (one lifecycle operation at a time). */
  private respawn(why: string): Promise<EngineState> {
    return this.serial(async () => {
      if (this.disposed) return this._state;
      const old = this.worker;
      this.worker = undefined;
      clearTimeout(this.restartTimer);
      this.attempts = 0;
      this.failPending(why);
      this.setState({ kind: 'loading' });
      if (old) await this.stopWorker(old);
      if (this.disposed) return this._state;
      await this.spawn();
      return this._state;
    });
  }

  async closeDocument(docId: string): Promise<void> {
    if (this.lastRequest?.docId === docId) this.lastRequest = undefined; // not prefilled again after a restart
    await this.call({ method: 'closeDocument', docId }).catch(() => undefined);
    this.emit();
  }
  /**
   * Drops every cache by starting a fresh engine process (about a second without suggestions): everything the old
   * one held goes back to the system — KV arrays, ORT's arena and what glibc's heap kept after freeing. Clearing
   * inside the process left 45–65 MB above idle (docs/soak.md).
   */
  async clearCaches(): Promise<void> {
    await this.respawn('the caches are being cleared');
    this.emit();
  }
  async memory(): Promise<MemoryReport> {
    const r = await this.call<MemoryReport>({ method: 'memory' });
    return this.rssCap ? { ...r, rssCap: this.rssCap.report() } : r;
  }
  lastTrace(): RequestTrace | undefined {
    return this.last;
  }

  /** Resolves when the engine is ready again (tests, CLI). */
  whenReady(timeoutMs = 30_000): Promise<boolean> {
    if (this._state.kind === 'ready') return Promise.resolve(true);
    return new Promise((resolve) => {
      const t = setTimeout(() => resolve(false), timeoutMs);
      this.readyWaiters.push(() => {
        clearTimeout(t);
        resolve(true);
      });
    });
  }

  /** Calls answered by their deadline instead of the engine (tests, diagnostics). */
  get expiredCalls(): number {
    return this.expired;
  }

  /** Engine processes that did not stop gracefully in time and were killed (tests, diagnostics). */
  get forcedTerminations(): number {
    return this.forced;
  }

  /** Test hook: makes the engine process exit, throw, hang or abort (honoured only with testHooks). */
  testCrash(how: TestCrash): void {
    this.send(this.worker, { type: 'testCrash', how });
  }

  /** The engine process's id (diagnostics, the soak's RSS sampling). */
  get pid(): number | undefined {
    return this.worker?.pid;
  }

  private emit(): void {
    for (const l of [...this.listeners]) {
      try {
        l(this._state);
      } catch {
        /* ignore */
      }
    }
  }

  async dispose(): Promise<void> {
    this.disposed = true;
    this.rssCap?.dispose();
    clearTimeout(this.restartTimer);
    this.failPending('the engine was disposed');
    // Stop the current worker now (a device switch in progress sees `disposed` and spawns no other one).
    const w = this.worker;
    this.worker = undefined;
    const stops: Promise<unknown>[] = [
      this.serial(async () => {
        /* waits for a running setDevice() */
      }),
    ];
    if (w) stops.push(this.stopWorker(w));
    await Promise.all(stops);
    // A worker spawned by a setDevice() that was past its disposed check when we were called.
    const late = this.worker as ChildProcess | undefined;
    this.worker = undefined;
    if (late) await this.stopWorker(late);
  }
}
