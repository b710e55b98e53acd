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
