// The engine inside the engine process (worker.ts): model, tokenizer, KV budget and the request pipeline
// (prompt → reuse cached prefix → chunked prefill under the budget → generate → truncate back to the prompt).
// Layout "psm" (docs/cache-layout.md): each document's cache holds the document in document order; a request
// opens a prefix view of it up to the cursor line (spotView.ts) and computes only its own tokens on top.
import type {
  CompletionRequest,
  CompletionResult,
  ContextSnippet,
  MemoryReport,
  PromptLayout,
  RequestTrace,
  StopReason,
} from './api';
import { newTrace } from './api';
import { loadManifest, Manifest } from './manifest';
import { ModelTokenizer } from './tokenizer';
import { createSession, LoadedSession } from './session';
import { worstCaseFeeds, worstCaseRun } from './warmup';
import { ModelRunner, RunResult } from './runner';
import { KvBudget, BudgetError } from './budget';
import { KvShape, fullTokenBytes } from './kvStore';
import { memoryReport } from './memoryReport';
import { parseCascade } from './kvCascade';
import { demotedBand } from './bandRecompute';
import { buildPrompt, defaultLimits } from './prompt';
import { PostProcessor } from './postprocess';
import { generate, CancelToken } from './generate';
import { StopMasks } from './stopMasks';
import { buildSpotPrompt, spotBase, spotLimits, SpotPrompt, SPOT_SUFFIX_TOKENS } from './spotPrompt';
import { closeView, openView, Rope, viewLength, viewOf } from './spotView';
import { InputError, requestProblem } from './validate';

export interface CoreOptions {
  modelDir: string;
  device: 'auto' | 'cuda' | 'cpu';
  kvBudgetBytes: number;
  threads?: number;
  layout?: PromptLayout;
  /** EngineOptions.kvPolicy. */
  kvPolicy?: string;
  /** Age cascade on an fp32 graph: store the band, sinks and request tokens fp16 (default FP16_BAND; bench A/B). */
  fp16Band?: boolean;
}

/** Taken because it pays: half the bytes of the full rows, which then hold ~40 % more old tokens at 25 %, and no
 * slower (fp32/fp16 1.12× CPU) — `--suite cascade`, docs/cache-layout.md "Band storage". */
export const FP16_BAND = true;

/** Largest chunk fed to the model in one call during prefill: the GPU takes a whole prompt at once; on the CPU
 * smaller chunks let a superseded request stop sooner. */
const PREFILL_CHUNK = { cpu: 256, cuda: 2048 };
/** Decode steps per model call. The graph's loop keeps the KV cache on the device between steps; each return to
 * the host costs one copy of the cache in, and is where cancellation and the time budget are checked. */
const DECODE_STEPS = { cpu: 16, cuda: 64 };
/** Layout psm: text typed since a spot was opened stays in the request's middle up to this many characters. */
const MAX_MIDDLE_CHARS = 384;

/** Options of the run that ends a chunk: decode steps and the masks for the graph's greedy loop. */
interface GenSpec {
  steps: number;
  stopMask: Uint8Array;
  firstMask?: Float32Array;
}

export class EngineCore {
  readonly budget: KvBudget;
  readonly shape: KvShape;
  private readonly masks: StopMasks;
  readonly layout: PromptLayout;
  /** Layout psm: suffix tokens a new spot computes (the bench's suffix suite varies it). */
  spotSuffixTokens = SPOT_SUFFIX_TOKENS;
  /** Age cascade: recompute a demoted band before a new cursor (bandRecompute.ts); off only for the bench's A/B. */
  bandRecompute = true;
  private readonly rope: Rope;
  /** The context snippets of each document's last request: a background prefill builds the same base. */
  private readonly lastContext = new Map<string, ContextSnippet[]>();
  /** Layout psm: each document's last middle start (the text before it, and the suffix it was opened with). */
  private readonly anchors = new Map<string, { text: string; suffix: string }>();
  private constructor(
    readonly dir: string,
    readonly manifest: Manifest,
    readonly tok: ModelTokenizer,
    readonly loaded: LoadedSession,
    readonly runner: ModelRunner,
    budgetBytes: number,
    layout: PromptLayout,
    kvPolicy?: string,
    fp16Band = FP16_BAND,
  ) {
    const a = manifest.architecture;
    this.layout = manifest.fim ? layout : 'spm'; // without FIM tokens both are the same left-to-right prompt
    this.rope = { theta: a.rope_theta ?? 10000, headDim: a.head_dim };
    this.shape = {
      layers: a.num_layers,
      heads: manifest.experts.map((e) => e.kv_heads),
      headDim: a.head_dim,
      dtype: loaded.variant.kv_dtype,
    };
    const policy = kvPolicy ?? manifest.kv_policy;
    if (policy && policy !== 'router') this.shape.cascade = parseCascade(policy, this.shape.heads, this.rope);
    if (this.shape.cascade && fp16Band && this.shape.dtype === 'float32') {
      this.shape.feedDtype = 'float32'; // the full rows are widened into each run's feed (kvCascade.ts feeds)
      this.shape.dtype = 'float16';
    }
    this.budget = new KvBudget(this.shape, budgetBytes);
    this.masks = new StopMasks(tok);
  }

  static async create(o: CoreOptions): Promise<EngineCore> {
    const { dir, manifest } = loadManifest(o.modelDir);
    const tok = ModelTokenizer.load(dir, manifest);
    const loaded = await createSession(dir, manifest, o.device, o.threads ?? 0);
    const runner = new ModelRunner(loaded.ort, loaded.session, manifest, loaded.variant.kv_dtype);
    return new EngineCore(
      dir,
      manifest,
      tok,
      loaded,
      runner,
      o.kvBudgetBytes,
      o.layout ?? 'psm',
      o.kvPolicy,
      o.fp16Band,
    );
  }

  private trace(requestId: number, docId: string): RequestTrace {
    return newTrace(requestId, docId, 'empty');
  }

  /** Runs one chunk (+ decode steps) under the budget: steer, reserve worst case, run, append actual, release. */
  private async runChunk(
    docId: string,
    ids: number[],
    startPos: number,
    trace: RequestTrace,
    gen?: GenSpec,
  ): Promise<RunResult> {
    const steps = Math.max(
      0,
      Math.min(
        gen?.steps ?? 0,
        this.budget.maxChunk(docId) - ids.length,
        this.manifest.architecture.max_position_embeddings - 1 - (startPos + ids.length),
      ),
    );
    const n = ids.length + steps; // tokens this run may append
    const bias = this.budget.routeBias(n);
    const { reserved, actions } = this.budget.admit(docId, n);
    trace.budgetActions.push(...actions);
    let out: RunResult;
    try {
      out = await this.runner.run(
        {
          ids,
          startPos,
          routeBias: bias,
          genSteps: steps,
          stopMask: gen?.stopMask ?? this.masks.none,
          firstMask: gen?.firstMask,
        },
        this.budget.peek(docId)!,
      );
    } catch (e) {
      this.budget.release(reserved);
      throw e;
    }
    this.budget.commit(docId, reserved, out.processed, out.kv);
    return out;
  }

  /** Why nothing fits: the budget vs. the bytes every document holds before its first prompt token. */
  private budgetTooSmall(): string {
    const b = this.budget,
      full = fullTokenBytes(this.shape),
      kb = (x: number) => `${(x / 1024).toFixed(1)} KB`;
    return (
      `KV budget of ${kb(b.budgetBytes)} cannot hold even one token: a document needs ${kb(b.fixedBytes)} before it ` +
      `(${b.sink} always-kept attention-sink tokens at ${kb(full)} each, plus ${kb(b.fixedBytes - b.sink * full)} of bookkeeping) ` +
      `and ${kb(full)} per token; raise it to at least ${kb(b.fixedBytes + full)}`
    );
  }

  private get prefillChunk(): number {
    return Number(process.env.MIXSGA_PREFILL_CHUNK) || PREFILL_CHUNK[this.loaded.device];
  }
  private get decodeSteps(): number {
    return DECODE_STEPS[this.loaded.device];
  }

  /**
   * Brings the document's cache to `ids` (reusing the longest cached prefix). The run over the last chunk also
   * starts generating when `gen` is given. Returns that run, or a stop reason when cancelled / out of time.
   */
  private async prefill(
    docId: string,
    ids: number[],
    trace: RequestTrace,
    cancel: CancelToken,
    deadline: number,
    gen?: GenSpec,
  ): Promise<RunResult | StopReason> {
    if (this.budget.maxChunk() <= 0) throw new BudgetError(this.budgetTooSmall());
    const doc = this.budget.touch(docId);
    // At least the last prompt token is recomputed: its logits are needed.
    const reuse = Math.min(doc.commonPrefix(ids), ids.length - 1);
    this.budget.truncate(docId, reuse);
    trace.reusedTokens = reuse;
    let pos = reuse;
    for (;;) {
      if (cancel.cancelled) return 'cancelled';
      if (Date.now() >= deadline) return 'time-budget';
      // A chunk reserves its worst case; at a small budget, half of what fits at all keeps the other half for
      // the document's history instead of windowing it away before every chunk.
      const fit = this.budget.maxChunk(docId);
      const n = Math.min(this.prefillChunk, ids.length - pos, fit, Math.max(32, Math.floor(fit / 2)));
      if (n <= 0) throw new BudgetError(this.budgetTooSmall());
      const last = pos + n >= ids.length;
      const out = await this.runChunk(docId, ids.slice(pos, pos + n), pos, trace, last ? gen : undefined);
      pos += n;
      trace.prefillTokens += n;
      if (last) return out;
    }
  }

  /**
   * Layout psm: makes the document's cache a view whose prefix is the prompt's text before the cursor line. Keeps
   * an open view of the same spot (typing on the line); else restores the base, computes the base up to the
   * cursor line where it is not cached (edits, never-seen text) and opens the view there.
   */
  private async placeView(
    docId: string,
    sp: SpotPrompt,
    trace: RequestTrace,
    cancel: CancelToken,
    deadline: number,
  ): Promise<StopReason | undefined> {
    const doc = this.budget.touch(docId);
    const v = viewOf(doc);
    if (v && v.head === sp.head && v.from === sp.from && v.at === sp.at && doc.commonPrefix(sp.ids) >= viewLength(sp))
      return;
    if (v) {
      closeView(doc, this.rope);
      trace.budgetActions.push(...this.budget.enforce());
    }
    if (doc.commonPrefix(sp.base) < sp.at) {
      const r = await this.prefill(docId, sp.base, trace, cancel, deadline);
      if (typeof r === 'string') return r;
    }
    openView(this.budget.touch(docId), sp, this.rope);
    trace.budgetActions.push(...this.budget.enforce());
    if (!viewOf(this.budget.touch(docId))) return 'error'; // the budget could not hold the view (document evicted)
    if (sp.from > sp.head)
      trace.budgetActions.push(
        `view: positions ${sp.head}..${sp.from - 1} hidden, ${sp.at - sp.from} tokens moved down by ${sp.from - sp.head}`,
      );
    if (this.bandRecompute) await this.recomputeBand(docId, trace);
    return undefined;
  }

  /** Age cascade: the band before the view's cursor line at full precision again where it was demoted. */
  private async recomputeBand(docId: string, trace: RequestTrace): Promise<void> {
    const doc = this.budget.touch(docId);
    const span = demotedBand(doc, this.budget.maxChunk(docId));
    if (!span) return;
    if (!span.fits) {
      trace.budgetActions.push(`band not recomputed: ${span.end - span.start} tokens exceed the budget's share`);
      return;
    }
    const ids = Array.from(doc.tokenIds.subarray(span.start, span.end));
    this.budget.truncate(docId, span.start);
    await this.runChunk(docId, ids, span.start, trace);
    trace.bandRecomputed += ids.length;
    trace.budgetActions.push(`band recomputed: ${ids.length} tokens`);
  }

  /** Keeps the document's middle start while the user types on from it (same suffix, the text before unchanged). */
  private anchorFor(req: { docId: string; prefix: string; suffix: string }): number | undefined {
    const a = this.anchors.get(req.docId);
    if (!a || a.suffix !== req.suffix || !req.prefix.startsWith(a.text)) return undefined;
    return req.prefix.length - a.text.length <= MAX_MIDDLE_CHARS ? a.text.length : undefined;
  }

  async complete(requestId: number, req: CompletionRequest, cancel: CancelToken): Promise<CompletionResult> {
    const t0 = Date.now();
    const deadline = t0 + Math.max(1, req.timeBudgetMs);
    const trace = this.trace(requestId, req.docId);
    const done = (text: string, stop: StopReason, why?: string): CompletionResult => {
      trace.stopReason = stop;
      trace.totalMs = Date.now() - t0;
      if (!text) trace.noSuggestionReason = why ?? noSuggestionText(stop);
      return { text, trace };
    };
    const bad = requestProblem(req);
    if (bad) return done('', 'error', `invalid request: ${bad}`);
    const maxNew = Math.max(1, Math.min(req.maxTokens, 256));
    const maxPos = this.manifest.architecture.max_position_embeddings;
    const spot =
      this.layout === 'psm'
        ? buildSpotPrompt(this.tok, req, spotLimits(maxPos, maxNew, this.spotSuffixTokens), this.anchorFor(req))
        : undefined;
    const prompt = spot ?? buildPrompt(this.tok, req, defaultLimits(maxPos, maxNew));
    if (spot) {
      this.lastContext.set(req.docId, req.context);
      this.anchors.set(req.docId, { text: req.prefix.slice(0, spot.anchor), suffix: req.suffix });
    }
    let keepTruncate = true;
    try {
      const rules = new PostProcessor({
        multiline: req.multiline,
        prefix: req.prefix,
        suffix: req.suffix,
        maxTokens: maxNew,
        stopIds: this.masks.stopIds,
        languageId: req.languageId,
        eol: req.eol,
      });
      // The graph may stop early only where the host rules stop for sure: at stop ids and, in single-line mode,
      // at newline tokens (unless the healed text itself holds one). Not at closing brackets: whether one ends the
      // completion depends on what the completion itself opened and on the lexer state (strings, comments), which a
      // fixed per-token mask cannot know; the trace's modelTokens vs generatedTokens shows the picks past a stop.
      const stopMask = !req.multiline && !prompt.healed.includes('\n') ? this.masks.singleLine : this.masks.eos;
      const firstMask = prompt.healed ? this.masks.healing(prompt.healed) : undefined;
      const placed = spot ? await this.placeView(req.docId, spot, trace, cancel, deadline) : undefined;
      if (placed) {
        trace.prefillMs = Date.now() - t0;
        keepTruncate = false;
        return done('', placed);
      }
      const p = await this.prefill(req.docId, prompt.ids, trace, cancel, deadline, {
        steps: Math.min(maxNew, this.decodeSteps) - 1,
        stopMask,
        firstMask,
      });
      const tFirst = Date.now();
      trace.prefillMs = tFirst - t0; // until the first batch of tokens: the last prompt chunk's run picks them
      trace.reusedTokens = Math.max(0, prompt.ids.length - trace.prefillTokens);
      if (typeof p === 'string') {
        keepTruncate = p !== 'cancelled';
        return done('', p);
      }
      trace.modelTokens = p.tokens.length;
      let pos = prompt.ids.length + p.tokens.length - 1; // position of the pending (picked, not fed) token
      const g = await generate({
        first: p.tokens,
        rules,
        healed: prompt.healed,
        deadline,
        cancel,
        maxTokens: maxNew,
        decode: (ids) => this.tok.decodeFragment(ids),
        more: async (last, max) => {
          const out = await this.runChunk(req.docId, [last], pos, trace, {
            steps: Math.min(max, this.decodeSteps) - 1,
            stopMask,
          });
          pos += out.tokens.length;
          trace.modelTokens += out.tokens.length;
          return out.tokens;
        },
      });
      trace.decodeMs = Date.now() - tFirst;
      trace.generatedTokens = g.ids.length;
      return done(g.text, g.stop);
    } catch (e) {
      return done('', 'error', `engine error: ${(e as Error).message}`);
    } finally {
      // Keep the prompt (spm: up to <fim_middle>; psm: all of it, in the open view): the next keystroke appends.
      if (keepTruncate && this.budget.peek(req.docId)) this.budget.truncate(req.docId, prompt.keep);
    }
  }

  /** Background fill of a document's cache (prompt without generating). */
  async prefillDoc(
    requestId: number,
    docId: string,
    prefix: string,
    suffix: string,
    cancel: CancelToken,
    context?: ContextSnippet[],
  ): Promise<void> {
    const bad = requestProblem({
      docId,
      languageId: '',
      prefix,
      suffix,
      context: [],
      maxTokens: 1,
      multiline: false,
      timeBudgetMs: 0,
    });
    if (bad) throw new InputError(`invalid prefill: ${bad}`);
    const trace = this.trace(requestId, docId);
    if (this.layout === 'psm') {
      // 1. The document in document order, as far as it fits: any later cursor's lines before it are a cache prefix.
      context ??= this.lastContext.get(docId) ?? [];
      const lim = spotLimits(this.manifest.architecture.max_position_embeddings, 64, this.spotSuffixTokens);
      const base = spotBase(this.tok, prefix + suffix, context, lim);
      const deadline = Date.now() + 60_000;
      const doc = this.budget.touch(docId);
      const v = viewOf(doc);
      if (!v || commonPrefixOf(v.baseIds, base) < base.length) {
        closeView(doc, this.rope);
        trace.budgetActions.push(...this.budget.enforce());
        if (
          doc.commonPrefix(base) < base.length &&
          typeof (await this.prefill(docId, base, trace, cancel, deadline)) === 'string'
        )
          return;
      }
      // 2. The spot at the cursor, so that the next keystroke there only appends.
      const req = { docId, prefix, suffix, context };
      const sp = buildSpotPrompt(this.tok, req, lim, this.anchorFor(req));
      if (await this.placeView(docId, sp, trace, cancel, deadline)) return;
      if (typeof (await this.prefill(docId, sp.ids, trace, cancel, deadline)) !== 'string') {
        this.anchors.set(docId, { text: prefix.slice(0, sp.anchor), suffix });
      }
      return;
    }
    const prompt = buildPrompt(
      this.tok,
      { prefix, suffix, context: context ?? [] },
      defaultLimits(this.manifest.architecture.max_position_embeddings, 64),
    );
    try {
      await this.prefill(docId, prompt.ids.slice(0, prompt.keep + 1), trace, cancel, Date.now() + 60_000);
    } finally {
      if (this.budget.peek(docId)) this.budget.truncate(docId, prompt.keep);
    }
  }

  /** CPU: makes the largest run once, so ORT's arena holds its working set before the RSS cap's base is read
   * (warmup.ts); returns its time in ms, or undefined where nothing was run. */
  async warmUp(): Promise<number | undefined> {
    if (this.loaded.device !== 'cpu' || process.env.MIXSGA_WARMUP_CHUNK === '0') return undefined;
    const t0 = performance.now();
    const chunk = Number(process.env.MIXSGA_WARMUP_CHUNK) || this.prefillChunk; // smaller: A/B only (mem-breakdown)
    const w = worstCaseRun(this.manifest.architecture.max_position_embeddings, chunk, this.decodeSteps);
    const { req, past } = worstCaseFeeds(this.manifest, w, this.loaded.variant.kv_dtype);
    await this.runner.run(req, { feeds: () => past });
    return performance.now() - t0;
  }

  /** Frees the ORT session (native memory, thread pools); call only when no run is in progress. */
  async release(): Promise<void> {
    this.budget.clear();
    await this.loaded.session.release();
  }

  setBudget(bytes: number): string[] {
    return this.budget.setBudget(bytes);
  }
  close(docId: string): void {
    this.budget.close(docId);
    this.anchors.delete(docId);
    this.lastContext.delete(docId);
  }
  clear(): void {
    this.budget.clear();
    this.anchors.clear();
  }

  memory(): MemoryReport {
    return memoryReport(this.budget, this.shape, {
      device: this.loaded.device,
      deviceNote: this.loaded.deviceNote,
      modelName: this.manifest.name,
    });
  }
}

function commonPrefixOf(a: ArrayLike<number>, b: ArrayLike<number>): number {
  const n = Math.min(a.length, b.length);
  let i = 0;
  while (i < n && a[i] === b[i]) i++;
  return i;
}

export function noSuggestionText(stop: StopReason): string {
  switch (stop) {
    case 'cancelled':
      return 'the request was superseded by a newer one';
    case 'time-budget':
      return 'the time budget ran out before the model produced text (the cache is kept, the next request resumes)';
    case 'newline':
      return 'the model ended the line right away';
    case 'eos':
      return 'the model proposed nothing here (end of text)';
    case 'suffix-overlap':
      return 'the model only repeated the text after the cursor';
    case 'bracket':
      return 'the model only closed a bracket that is already there';
    case 'indent':
      return 'the model left the current block right away';
    case 'repetition':
      return 'the model started repeating itself';
    default:
      return `no suggestion (${stop})`;
  }
}
