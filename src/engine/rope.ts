// RoPE rotations of cached keys (rotate-half layout, as GroupQueryAttention's): a key computed at position p moves
// to p + delta by one more rotation of each pair (i, i + D/2) by delta·θ_i, θ_i = base^(−2i/D). A pooled head (the
// mean of adjacent heads) and a dequantised key rotate exactly the same way.
import { f16ToF32, f32ToF16 } from './fp16';
import type { KvArray } from './kvStore';

/** RoPE of the model. */
export interface Rope {
  theta: number;
  headDim: number;
}

/** cos/sin of delta·θ_i for i < D/2. */
export function ropeTables(delta: number, rope: Rope, D: number): { cos: Float64Array; sin: Float64Array } {
  const half = D >> 1,
    cos = new Float64Array(half),
    sin = new Float64Array(half);
  for (let i = 0; i < half; i++) {
    const a = delta * Math.pow(rope.theta, (-2 * i) / D);
    cos[i] = Math.cos(a);
    sin[i] = Math.sin(a);
  }
  return { cos, sin };
}

/** Rotates `heads` consecutive head vectors of D numbers at d[o …] (fp16 bits when f16). */
export function rotateHeads(
  d: KvArray,
  o: number,
  heads: number,
  D: number,
  t: { cos: Float64Array; sin: Float64Array },
  f16: boolean,
): void {
  const half = D >> 1,
    { cos, sin } = t;
  for (let h = 0; h < heads; h++, o += D) {
    if (f16) {
      for (let i = 0; i < half; i++) {
        const x1 = f16ToF32(d[o + i]),
          x2 = f16ToF32(d[o + i + half]);
        d[o + i] = f32ToF16(x1 * cos[i] - x2 * sin[i]);
        d[o + i + half] = f32ToF16(x2 * cos[i] + x1 * sin[i]);
      }
    } else {
      for (let i = 0; i < half; i++) {
        const x1 = d[o + i],
          x2 = d[o + i + half];
        d[o + i] = x1 * cos[i] - x2 * sin[i];
        d[o + i + half] = x2 * cos[i] + x1 * sin[i];
      }
    }
  }
}
