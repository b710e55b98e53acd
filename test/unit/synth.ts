// Synthetic model runs of the right shapes, for tests that need no ORT.
import type { KvArray, KvShape, RunKv } from '../../src/engine/kvStore';
import { f16ToF32, f32ToF16 } from '../../src/engine/fp16';

// the benchmarks' deterministic generator, so tests and benchmarks draw alike
export { rng } from '../../src/bench/common';

/** Full-resolution K/V of a synthetic run: full[l][t] = { k: [H][D], v: [H][D] } (as floats). */
export type FullKv = { k: number[][]; v: number[][] }[][];

/** Mean of adjacent groups: [H][D] -> [heads][D]. */
export function poolRef(full: number[][], heads: number): number[][] {
  const g = full.length / heads;
  return Array.from({ length: heads }, (_, j) =>
    full[0].map((_, d) => {
      let s = 0;
      for (let h = j * g; h < (j + 1) * g; h++) s += full[h][d];
      return s / g;
    }),
  );
}

/**
 * A run that processed S tokens: random full-res K/V per layer and token, routes (random or `route(t, l)`),
 * scores, and the graph's outputs built from them the way docs/model-format.md specifies (each token's K/V
 * pooled to its expert, kv[e] rows ordered by layer, then token).
 */
export function synthChunk(
  shape: KvShape,
  S: number,
  r: () => number,
  route?: (t: number, l: number) => number,
): { ids: number[]; kv: RunKv; full: FullKv } {
  const H = shape.heads[0],
    D = shape.headDim,
    E = shape.heads.length,
    L = shape.layers;
  const f16 = shape.dtype === 'float16';
  const q = (x: number) => (f16 ? f16ToF32(f32ToF16(x)) : Math.fround(x)); // values as the dtype holds them
  const mat = () => Array.from({ length: H }, () => Array.from({ length: D }, () => q(r() * 2 - 1)));
  const full: FullKv = Array.from({ length: L }, () => Array.from({ length: S }, () => ({ k: mat(), v: mat() })));
  const routes = new Int32Array(L * S);
  for (let l = 0; l < L; l++) for (let t = 0; t < S; t++) routes[l * S + t] = route ? route(t, l) : Math.floor(r() * E);
  const rows: number[][] = shape.heads.map(() => []);
  for (let l = 0; l < L; l++)
    for (let t = 0; t < S; t++) {
      const e = routes[l * S + t],
        he = shape.heads[e];
      rows[e].push(...poolRef(full[l][t].k, he).flat(), ...poolRef(full[l][t].v, he).flat());
    }
  const kvArr = (xs: number[]): KvArray => (f16 ? Uint16Array.from(xs.map(f32ToF16)) : Float32Array.from(xs));
  const kv: RunKv = {
    n: S,
    route: routes,
    scores: Float32Array.from({ length: L * S * E }, () => r()),
    kv: rows.map(kvArr),
  };
  return { ids: Array.from({ length: S }, () => Math.floor(r() * 32000)), kv, full };
}

/** A manifest.json object for the documented fixture-tiny shapes. */
export function tinyManifest(files: Record<string, string>): any {
  return {
    format: 'mixsga-onnx',
    format_version: 2,
    name: 't',
    architecture: {
      type: 'llama',
      vocab_size: 32008,
      hidden_size: 64,
      intermediate_size: 128,
      num_layers: 2,
      num_attention_heads: 8,
      num_kv_heads: 4,
      head_dim: 8,
      rope_theta: 1e4,
      rms_norm_eps: 1e-5,
      max_position_embeddings: 2048,
      tie_word_embeddings: false,
    },
    experts: [
      { group_size: 1, kv_heads: 4 },
      { group_size: 2, kv_heads: 2 },
      { group_size: 4, kv_heads: 1 },
    ],
    tokenizer: { file: 'tokenizer.json', config: 'tokenizer_config.json', bos_id: 1, eos_id: 2, add_bos: true },
    fim: {
      prefix: '<fim_prefix>',
      middle: '<fim_middle>',
      suffix: '<fim_suffix>',
      pad: '<fim_pad>',
      file_sep: '<file_sep>',
      prefix_id: 32000,
      middle_id: 32001,
      suffix_id: 32002,
      pad_id: 32003,
      file_sep_id: 32004,
      orderings: ['psm', 'spm'],
    },
    variants: { cpu: { file: 'model.cpu.onnx', kv_dtype: 'float32' } },
    files,
  };
}
