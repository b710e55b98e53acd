// Quantised K/V groups, the engine's side of toolchain/mixsga/kv_quant.fake_quant (issue 19's cache policy).
// A group is `len` ≤ `group` numbers read from a source with a stride (a token's head vector in token mode; one
// key channel of up to KIVI_GROUP consecutive tokens in channel mode). It is stored as `group` codes of `bits`
// bits, packed low nibble first for 4 bits (a partial group pads with the code of its last element, as
// fake_quant pads with the last element), plus one fp16 (scale, min) pair: 4 bytes.
//
// Codes are computed as PyTorch does (float32 arithmetic, round half to even, scale clamped at 1e-8) from the
// float32 scale and min, so they are the codes fake_quant rounds to; only the stored scale and min are rounded to
// fp16, so a dequantised value differs from fake_quant's by at most code·|Δscale| + |Δmin| (test/unit/kvQuant).
import { f16ToF32, f32ToF16 } from './fp16';

export type Bits = 4 | 8;
/** Tokens per key scale in channel mode (KIVI's group size; kv_policy.KIVI_GROUP). */
export const KIVI_GROUP = 32;
/** Bytes of one group's fp16 (scale, min) pair (kv_quant.SCALE_BYTES). */
export const SCALE_BYTES = 4;
const SCALE_FLOOR = Math.fround(1e-8);

/** Bytes of a group's packed codes. */
export const codeBytes = (group: number, bits: Bits) => (group * bits) / 8;

/** IEEE round half to even (torch.round), for the float32 quotients below. */
export function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return r - x === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** Where a group lives: `src[off + j·stride]` for j < len. */
export interface GroupRead {
  src: ArrayLike<number>;
  off: number;
  stride: number;
  len: number;
}

/**
 * Quantises one group into `codes` at byte `codeOff` (codeBytes(group, bits) bytes) and its fp16 (scale, min)
 * into `scales[2·pair]`, `scales[2·pair + 1]`.
 */
export function quantiseGroup(
  g: GroupRead,
  group: number,
  bits: Bits,
  codes: Uint8Array,
  codeOff: number,
  scales: Uint16Array,
  pair: number,
): void {
  const { src, off, stride, len } = g;
  if (len < 1 || len > group) throw new Error(`quantiseGroup: ${len} numbers for a group of ${group}`);
  let lo = Infinity,
    hi = -Infinity;
  for (let j = 0; j < len; j++) {
    const x = src[off + j * stride];
    if (x < lo) lo = x;
    if (x > hi) hi = x;
  }
  lo = Math.fround(lo);
  hi = Math.fround(hi);
  const levels = 2 ** bits - 1;
  let scale = Math.fround(Math.fround(hi - lo) / levels);
  if (!(scale >= SCALE_FLOOR)) scale = SCALE_FLOOR;
  scales[2 * pair] = f32ToF16(scale);
  scales[2 * pair + 1] = f32ToF16(lo);
  let last = 0;
  for (let j = 0; j < group; j++) {
    let q = last;
    if (j < len) {
      q = roundHalfEven(Math.fround(Math.fround(Math.fround(src[off + j * stride]) - lo) / scale));
      q = q < 0 ? 0 : q > levels ? levels : q;
      last = q;
    }
    if (bits === 8) codes[codeOff + j] = q;
    else if (j & 1) codes[codeOff + (j >> 1)] |= q << 4;
    else codes[codeOff + (j >> 1)] = q;
  }
}

/** The stored (scale, min) of a group as float32 numbers. */
export function groupScale(scales: Uint16Array, pair: number): [number, number] {
  return [f16ToF32(scales[2 * pair]), f16ToF32(scales[2 * pair + 1])];
}

const code = (codes: Uint8Array, codeOff: number, j: number, bits: Bits) =>
  bits === 8 ? codes[codeOff + j] : (codes[codeOff + (j >> 1)] >> ((j & 1) * 4)) & 15;

/** Dequantises the first `len` numbers of a group into `dst[off + j·stride]`. */
export function dequantiseGroup(
  codes: Uint8Array,
  codeOff: number,
  bits: Bits,
  scales: Uint16Array,
  pair: number,
  dst: Float32Array,
  off: number,
  stride: number,
  len: number,
): void {
  const [scale, lo] = groupScale(scales, pair);
  for (let j = 0; j < len; j++) dst[off + j * stride] = Math.fround(code(codes, codeOff, j, bits) * scale) + lo;
}

/** Number j of a group, dequantised. */
export function dequantiseOne(
  codes: Uint8Array,
  codeOff: number,
  j: number,
  bits: Bits,
  scales: Uint16Array,
  pair: number,
): number {
  const [scale, lo] = groupScale(scales, pair);
  return Math.fround(Math.fround(code(codes, codeOff, j, bits) * scale) + lo);
}

/** Stored bytes of one token's key (or value) for one head with scales, as kv_quant.bytes_per_head counts them
 * (in channel mode a key's share of its channel scales: SCALE_BYTES·D/KIVI_GROUP). */
export function bytesPerHead(headDim: number, bits: Bits | 16, group: number): number {
  return bits >= 16 ? 2 * headDim : (headDim * bits) / 8 + (SCALE_BYTES * headDim) / group;
}
