// Messages between EngineClient (extension host) and the engine process (worker.ts), over the fork IPC channel.
import type { CompletionRequest, ContextSnippet, EngineOptions } from './api';

/** The engine's options as the client was started with them. */
export interface InitData extends EngineOptions {
  /** Enables the crash hook used by the integration tests. */
  testHooks?: boolean;
}

export type Call =
  | { method: 'complete'; req: CompletionRequest }
  | { method: 'prefill'; docId: string; languageId: string; prefix: string; suffix: string; context?: ContextSnippet[] }
  | { method: 'setBudget'; bytes: number }
  | { method: 'closeDocument'; docId: string }
  | { method: 'memory' };

export type ToWorker =
  | { type: 'init'; init: InitData }
  | { type: 'call'; id: number; call: Call }
  | { type: 'cancel'; id: number }
  | { type: 'testCrash'; how: TestCrash }
  /** Graceful stop: cancel at the next step boundary, release the ORT sessions, exit by itself. */
  | { type: 'shutdown' };

/** Test hooks: exit, an uncaught exception, a stuck event loop, a native abort (SIGABRT, as a runtime fault). */
export type TestCrash = 'exit' | 'throw' | 'hang' | 'abort';

export type FromWorker =
  /** rssMB: the fresh process's resident memory after its warm-up run (warmup.ts), the base of the RSS cap
   *  (rssCap.ts); coldRssMB: before it. */
  | {
      type: 'ready';
      device: 'cuda' | 'cpu';
      deviceNote?: string;
      rssMB?: number;
      coldRssMB?: number;
      warmupMs?: number;
    }
  | { type: 'initError'; reason: string }
  | { type: 'result'; id: number; ok: true; value: unknown }
  | { type: 'result'; id: number; ok: false; error: string };
