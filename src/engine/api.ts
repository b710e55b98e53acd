// The engine's public surface. Everything the VS Code layer (src/vscode/) may use from src/engine/ is
// declared here; nothing in src/engine/ imports 'vscode'.

export type DeviceSetting = 'auto' | 'cuda' | 'cpu';

export interface EngineOptions {
  /** Folder with manifest.json (docs/model-format.md). */
  modelDir: string;
  device: DeviceSetting;
  /** Budget for the KV cache of all documents together, in bytes. */
  kvBudgetBytes: number;
  /** ORT intra-op threads; 0 = ORT default. */
  threads?: number;
  /** Prompt/cache layout (docs/cache-layout.md): "psm" (default) reuses a document's cache at any cursor, "spm" is
   *  the earlier suffix-first layout, kept for A/B benchmarks. */
  layout?: PromptLayout;
  /** KV cache policy (issue 19): undefined = the manifest's `kv_policy`; "router" = router-score demotion between
   * experts even when the manifest names a cascade; else a cascade spec, e.g. "band=32,order=age,stores=g1-int8|g1-int4c|g2-int4c". */
  kvPolicy?: string;
}

export type PromptLayout = 'psm' | 'spm';

/** Checks a `kvPolicy` value before it reaches an engine (settings). */
export { kvPolicyProblem } from './kvCascade';

/** A snippet of another open file, offered as extra context. */
export interface ContextSnippet {
  path: string;
  text: string;
}

export interface CompletionRequest {
  /** Stable id of the document (its URI string). The KV cache is kept per docId. */
  docId: string;
  languageId: string;
  /** Text before the cursor (the engine may keep only its tail). */
  prefix: string;
  /** Text after the cursor (the engine may keep only its head). */
  suffix: string;
  context: ContextSnippet[];
  maxTokens: number;
  /** false: stop at the end of the line. */
  multiline: boolean;
  /** Wall-clock budget for the whole request; the engine returns what it has when it runs out. */
  timeBudgetMs: number;
  /** The document's line break: a multi-line completion's lines are joined with it (default '\n'). */
  eol?: '\n' | '\r\n';
}

export type StopReason =
  | 'eos'
  | 'newline'
  | 'max-tokens'
  | 'time-budget'
  | 'indent'
  | 'bracket'
  | 'suffix-overlap'
  | 'repetition'
  | 'cancelled'
  | 'error'
  | 'empty';

export interface RequestTrace {
  requestId: number;
  docId: string;
  /** Tokens of the prompt found already in the document's cache. */
  reusedTokens: number;
  /** Prompt tokens that had to be computed for this request. */
  prefillTokens: number;
  generatedTokens: number;
  /** Tokens the graph's decode loop picked, kept or not (≥ generatedTokens: the loop stops only at stop ids and,
   *  in single-line mode, newline tokens; the host's other rules stop later picks from being used). */
  modelTokens: number;
  /** Until the first generated tokens were available (the run over the prompt's last chunk also picks them). */
  prefillMs: number;
  /** The rest of generation (further runs of the graph's decode loop). */
  decodeMs: number;
  totalMs: number;
  stopReason: StopReason;
  /** Why there is no suggestion, in words for the user, when text is empty. */
  noSuggestionReason?: string;
  /** Budget actions taken to admit this request's tokens. */
  budgetActions: string[];
  /** Age cascade: tokens of the band before a new cursor computed again at full precision (bandRecompute.ts). */
  bandRecomputed: number;
}

/** A trace of a request that has done nothing yet: every counter 0, no budget actions. */
export function newTrace(requestId: number, docId: string, stopReason: StopReason): RequestTrace {
  return {
    requestId,
    docId,
    reusedTokens: 0,
    prefillTokens: 0,
    generatedTokens: 0,
    modelTokens: 0,
    prefillMs: 0,
    decodeMs: 0,
    totalMs: 0,
    stopReason,
    budgetActions: [],
    bandRecomputed: 0,
  };
}

export interface CompletionResult {
  text: string;
  trace: RequestTrace;
}

export interface DocumentMemory {
  docId: string;
  tokens: number;
  /** Bytes the document's cache allocates (capacity and fixed bookkeeping: what the budget counts). */
  bytes: number;
  /** Tokens held by each expert (index = expert id). */
  expertTokens: number[];
  lastUsed: number;
}

export interface MemoryReport {
  /** Bytes all caches allocate plus any open reservation; never above budgetBytes. */
  usedBytes: number;
  budgetBytes: number;
  device: 'cuda' | 'cpu' | 'none';
  /** Why the requested device is not in use (e.g. the CUDA provider failed to load), if so. */
  deviceNote?: string;
  modelName: string;
  docs: DocumentMemory[];
  /** Share of cached tokens per expert over all documents and layers. */
  expertShares: number[];
  /** perLayerShares[l][e]: share of layer l's cached tokens held by expert e. */
  perLayerShares: number[][];
  /** Bytes one token takes at full KV (all layers, expert 0), for context. */
  fullBytesPerToken: number;
  /** With an age cascade (issue 19): its spec, band and, over all documents, each tier's tokens (per layer) and
   * allocated bytes (all layers); tier "full" = sinks, band and the request's own tokens at full precision. */
  cascade?: { spec: string; band: number; sinks: number; tiers: { name: string; tokens: number; bytes: number }[] };
  /** The engine process's memory (MB): resident, JS heap, external and array buffers (absent while not running). */
  process?: { rssMB: number; heapUsedMB: number; externalMB: number; arrayBuffersMB: number };
  /** Collections the engine started for dropped run outputs, and their total time (docs/soak.md). */
  gc?: { count: number; ms: number };
  /** The engine process's RSS cap (src/engine/rssCap.ts): the cap now, and the idle restarts it caused, the last
   *  with its time, the RSS that passed the cap and how long the fresh process took to be ready. */
  rssCap?: {
    capMB?: number;
    /** What the fresh process's warm-up run added to its RSS (ORT's working memory for the largest run,
     *  src/engine/warmup.ts): part of the cap's base, not of the headroom. */
    workingSetMB?: number;
    idleMs: number;
    headroomMB: number;
    restarts: { count: number; last?: { at: string; rssMB: number; capMB: number; restartMs: number } };
  };
}

export type EngineState =
  | { kind: 'loading' }
  | { kind: 'ready'; device: 'cuda' | 'cpu'; deviceNote?: string }
  | { kind: 'failed'; reason: string }
  | { kind: 'restarting'; reason: string };

/**
 * What src/engine/client.ts's `EngineClient` implements: a handle on the engine running in a child process of the
 * extension host (a native fault cannot take the host down), restarted when it crashes or stops answering. Every
 * method is safe to call in any state and resolves by a deadline; while the engine is not ready, complete()
 * resolves to an empty result whose trace says why. Invalid numbers are refused (validate.ts).
 */
export interface Engine {
  readonly state: EngineState;
  /** Fires on every state change and after every request (memory may have changed). */
  onDidChange(listener: (state: EngineState) => void): { dispose(): void };
  complete(req: CompletionRequest, signal?: AbortSignal): Promise<CompletionResult>;
  /** Fill the document's cache in the background (file opened or focused); cancels on a newer request. `context`:
   *  the snippets the next request will send (the cache starts with them). */
  prefill(docId: string, languageId: string, prefix: string, suffix: string, context?: ContextSnippet[]): Promise<void>;
  setBudget(bytes: number): Promise<MemoryReport>;
  setDevice(device: DeviceSetting): Promise<EngineState>;
  closeDocument(docId: string): Promise<void>;
  clearCaches(): Promise<void>;
  memory(): Promise<MemoryReport>;
  /** Last request's trace (for "Why No Suggestion?"). */
  lastTrace(): RequestTrace | undefined;
  dispose(): Promise<void>;
}
