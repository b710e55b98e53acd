// One model call: builds the ORT feeds (chunk ids, positions, route_bias, every past cache from the document's
// KvStore) and unwraps the outputs. The document is not modified here; budget.commit() appends the result.
import type * as ortTypes from 'onnxruntime-node';
import type { Manifest } from './manifest';
import type { ChunkKv, DocCache, KvArray } from './kvStore';

export interface RunResult { logits: Float32Array; kv: ChunkKv }

export class ModelRunner {
  readonly layers: number;
  constructor(private readonly ort: typeof ortTypes, private readonly session: ortTypes.InferenceSession,
    manifest: Manifest, private readonly kvType: 'float32' | 'float16') {
    this.layers = manifest.architecture.num_layers;
  }

  async run(ids: ArrayLike<number>, startPos: number, routeBias: Float32Array, doc: DocCache): Promise<RunResult> {
    const { Tensor } = this.ort;
    const S = ids.length;
    const feeds: Record<string, ortTypes.Tensor> = {
      input_ids: new Tensor('int64', BigInt64Array.from(Array.from(ids, BigInt)), [1, S]),
      position_ids: new Tensor('int64', BigInt64Array.from({ length: S }, (_, i) => BigInt(startPos + i)), [1, S]),
      route_bias: new Tensor('float32', routeBias, [routeBias.length]),
    };
    for (const f of doc.feeds()) feeds[f.name] = new Tensor(this.kvType, f.data, f.dims);
    const out = await this.session.run(feeds);
    const kv: ChunkKv = { keys: [], values: [], routes: [], scores: [] };
    for (let l = 0; l < this.layers; l++) {
      kv.keys.push(out[`new_key.${l}`].data as KvArray);
      kv.values.push(out[`new_value.${l}`].data as KvArray);
      kv.routes.push(Int32Array.from(out[`route.${l}`].data as BigInt64Array, Number));
      kv.scores.push(out[`scores.${l}`].data as Float32Array);
    }
    return { logits: out.logits.data as Float32Array, kv };
  }
}
