// Synthetic K/V chunks of the right shapes, for tests that need no ORT.
import type { ChunkKv, KvShape } from '../../src/engine/kvStore';
import { f32ToF16 } from '../../src/engine/fp16';

export function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => { s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0; return s / 2 ** 32; };
}

export function synthChunk(shape: KvShape, S: number, r: () => number, route?: (t: number, l: number) => number):
  { ids: number[]; kv: ChunkKv } {
  const H = shape.heads[0], D = shape.headDim, E = shape.heads.length;
  const mk = () => {
    const a = Array.from({ length: H * S * D }, () => r() * 2 - 1);
    return shape.dtype === 'float32' ? Float32Array.from(a) : Uint16Array.from(a.map(f32ToF16));
  };
  const kv: ChunkKv = { keys: [], values: [], routes: [], scores: [] };
  for (let l = 0; l < shape.layers; l++) {
    kv.keys.push(mk()); kv.values.push(mk());
    kv.routes.push(Array.from({ length: S }, (_, t) => (route ? route(t, l) : Math.floor(r() * E))));
    kv.scores.push(Float32Array.from({ length: S * E }, () => r()));
  }
  return { ids: Array.from({ length: S }, () => Math.floor(r() * 32000)), kv };
}

/** A manifest.json object for the documented fixture-tiny shapes. */
export function tinyManifest(files: Record<string, string>): any {
  return {
    format: 'mixsga-onnx', format_version: 1, name: 't',
    architecture: { type: 'llama', vocab_size: 32008, hidden_size: 64, intermediate_size: 128, num_layers: 2,
      num_attention_heads: 8, num_kv_heads: 4, head_dim: 8, rope_theta: 1e4, rms_norm_eps: 1e-5,
      max_position_embeddings: 2048, tie_word_embeddings: false },
    experts: [{ group_size: 1, kv_heads: 4 }, { group_size: 2, kv_heads: 2 }, { group_size: 4, kv_heads: 1 }],
    tokenizer: { file: 'tokenizer.json', config: 'tokenizer_config.json', bos_id: 1, eos_id: 2, add_bos: true },
    fim: { prefix: '<fim_prefix>', middle: '<fim_middle>', suffix: '<fim_suffix>', pad: '<fim_pad>', file_sep: '<file_sep>',
      prefix_id: 32000, middle_id: 32001, suffix_id: 32002, pad_id: 32003, file_sep_id: 32004, orderings: ['psm', 'spm'] },
    variants: { cpu: { file: 'model.cpu.onnx', kv_dtype: 'float32' } },
    files,
  };
}

