// One model call (docs/model-format.md, format version 2): a chunk of tokens on top of the document's cache, then
// up to `genSteps` greedy decode steps inside the graph. Builds the feeds (the cache is passed as zero-copy views)
// and unwraps the outputs. The document is not modified here; budget.commit() appends the result.
import type * as ortTypes from 'onnxruntime-node';
import type { Manifest } from './manifest';
import type { DocCache, KvArray, RunKv } from './kvStore';

export interface RunRequest {
  ids: ArrayLike<number>;
  /** Position of ids[0]; the rest follow consecutively, then the generated tokens. */
  startPos: number;
  routeBias: Float32Array;
  /** Decode steps after the chunk (0 = prefill only). */
  genSteps: number;
  /** [V] 1 = generation stops after this token (EOS, FIM tokens, newline tokens in single-line mode). */
  stopMask: Uint8Array;
  /** [V] added to the chunk's last logits before the first pick (token healing: -Infinity = not allowed). */
  firstMask?: Float32Array;
}

export interface RunResult {
  /** Logits after the chunk's last position. */
  logits: Float32Array;
  /** t_0 (picked after the chunk) … t_N; the K/V of t_N is not computed yet. */
  tokens: number[];
  /** Ids of the processed tokens (the chunk, then t_0 … t_{N-1}): what append() stores. */
  processed: number[];
  kv: RunKv;
}

export class ModelRunner {
  readonly layers: number;
  readonly experts: number;
  private readonly zeroMask: Float32Array;
  constructor(
    private readonly ort: typeof ortTypes,
    private readonly session: ortTypes.InferenceSession,
    manifest: Manifest,
    private readonly kvType: 'float32' | 'float16',
  ) {
    this.layers = manifest.architecture.num_layers;
    this.experts = manifest.experts.length;
    this.zeroMask = new Float32Array(manifest.architecture.vocab_size);
  }

  async run(r: RunRequest, doc: Pick<DocCache, 'feeds'>): Promise<RunResult> {
    return this.unwrap(r, await this.session.run(this.feeds(r, doc)));
  }

  /** The graph inputs of a run (the cache as views: nothing is copied). */
  feeds(r: RunRequest, doc: Pick<DocCache, 'feeds'>): Record<string, ortTypes.Tensor> {
    const { Tensor } = this.ort;
    const S = r.ids.length;
    const feeds: Record<string, ortTypes.Tensor> = {
      input_ids: new Tensor('int64', BigInt64Array.from(Array.from(r.ids, BigInt)), [1, S]),
      position_ids: new Tensor(
        'int64',
        BigInt64Array.from({ length: S }, (_, i) => BigInt(r.startPos + i)),
        [1, S],
      ),
      route_bias: new Tensor('float32', r.routeBias, [r.routeBias.length]),
      gen_steps: new Tensor('int64', BigInt64Array.of(BigInt(Math.max(0, r.genSteps))), []),
      stop_mask: new Tensor('bool', r.stopMask, [r.stopMask.length]),
      first_mask: new Tensor('float32', r.firstMask ?? this.zeroMask, [this.zeroMask.length]),
    };
    for (const f of doc.feeds()) feeds[f.name] = new Tensor(this.kvType, f.data, f.dims);
    return feeds;
  }

  /** The graph outputs of a run, in the engine's terms. */
  unwrap(r: RunRequest, out: ortTypes.InferenceSession.OnnxValueMapType): RunResult {
    const tokens = Array.from(out.tokens.data as BigInt64Array, Number);
    const route = out.route.data as Int32Array;
    const n = route.length / this.layers;
    const kv: RunKv = { n, route, scores: out.scores.data as Float32Array, kv: [] };
    for (let e = 0; e < this.experts; e++) kv.kv.push(out[`kv.${e}`].data as KvArray);
    const processed = [...Array.from(r.ids), ...tokens.slice(0, n - r.ids.length)];
    return { logits: out.logits.data as Float32Array, tokens, processed, kv };
  }
}
