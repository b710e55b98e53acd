// The engine's quantised K/V (kvQuant.ts, kvTier.ts, kvCascade.poolRows) against PyTorch's kv_quant.fake_quant
// and kv_policy.Store views (test/fixtures/kv-quant, written by `python -m mixsga kv_quant_fixture`).
//
// Tolerance: the engine computes each group's codes from the float32 (scale, min) exactly as fake_quant does and
// stores the pair as fp16, so an element may differ from fake_quant's by at most
//   code·|scale16 − scale32| + |min16 − min32| ≤ levels·½ulp16(scale) + ½ulp16(min)   (+ float32 rounding)
// — well under one quantisation step, so a different code always fails the test.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Bits, bytesPerHead, codeBytes, dequantiseGroup, groupScale, quantiseGroup } from '../../src/engine/kvQuant';
import { QuantTier } from '../../src/engine/kvTier';
import { parseCascade, poolRows } from '../../src/engine/kvCascade';

const fx = JSON.parse(readFileSync(join(__dirname, '../../../test/fixtures/kv-quant/vectors.json'), 'utf8'));
const f32 = (b64: string) => {
  const b = Buffer.from(b64, 'base64');
  return new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4).slice();
};
const halfUlp16 = (x: number) => (Math.abs(x) < 2 ** -14 ? 2 ** -25 : 2 ** (Math.floor(Math.log2(Math.abs(x))) - 11));
const tol = (bits: Bits, scale: number, min: number, y: number) =>
  (2 ** bits - 1) * halfUlp16(scale) + halfUlp16(min) + 2 ** -22 * Math.abs(y);

test('quantise/dequantise groups = kv_quant.fake_quant (int8, int4 per token; int4 keys per channel, padded group; ties; constant group)', () => {
  for (const c of fx.cases) {
    const [H, S, D] = c.shape,
      x = f32(c.x),
      y = f32(c.y),
      bits = c.bits as Bits;
    const channel = c.mode === 'channel',
      group = channel ? fx.kivi_group : D;
    // groups: per (head, token) over D channels, or per (head, channel) over up to `group` tokens
    const groups: { off: number; stride: number; len: number }[] = [];
    for (let h = 0; h < H; h++) {
      if (channel)
        for (let d = 0; d < D; d++)
          for (let t0 = 0; t0 < S; t0 += group) {
            groups.push({ off: (h * S + t0) * D + d, stride: D, len: Math.min(group, S - t0) });
          }
      else for (let t = 0; t < S; t++) groups.push({ off: (h * S + t) * D, stride: 1, len: D });
    }
    const codes = new Uint8Array(codeBytes(group, bits)),
      scales = new Uint16Array(2),
      out = new Float32Array(x.length);
    let worst = 0;
    for (const g of groups) {
      quantiseGroup({ src: x, ...g }, group, bits, codes, 0, scales, 0);
      dequantiseGroup(codes, 0, bits, scales, 0, out, g.off, g.stride, g.len);
      const [scale, min] = groupScale(scales, 0);
      for (let j = 0; j < g.len; j++) {
        const i = g.off + j * g.stride,
          err = Math.abs(out[i] - y[i]);
        assert.ok(
          err <= tol(bits, scale, min, y[i]),
          `${c.name}: element ${i}: engine ${out[i]} vs torch ${y[i]} (scale ${scale})`,
        );
        worst = Math.max(worst, err / Math.max(scale, 1e-30));
      }
    }
    assert.ok(worst < 0.5, `${c.name}: worst error ${worst} steps`);
  }
});

test('tiers read back kv_policy.Store views (g1-int8, g1-int4c, g2-int4c with pooled heads) and count its bytes', () => {
  const H = fx.heads,
    S = fx.tokens,
    D = fx.head_dim;
  const k = f32(fx.cases[0].x),
    v = f32(fx.cases[1].x); // [H][S][D]: the inputs the views were computed from
  const cascade = parseCascade('band=32,order=age,stores=g1-int8|g1-int4c|g2-int4c', [4, 2, 1], {
    theta: 1e4,
    headDim: D,
  });
  for (const view of fx.views) {
    const spec = cascade.stores.find((s) => s.name === view.store)!;
    const T = view.tokens,
      heads = H / spec.group,
      row = 2 * H * D;
    const rows = new Float32Array(T * row); // [T][2][H][D], the engine's row layout
    for (let t = 0; t < T; t++)
      for (let h = 0; h < H; h++)
        for (let d = 0; d < D; d++) {
          rows[t * row + h * D + d] = k[(h * S + t) * D + d];
          rows[t * row + (H + h) * D + d] = v[(h * S + t) * D + d];
        }
    const tier = new QuantTier(spec, heads, D);
    tier.add(
      poolRows(rows, T, H, heads, D),
      Array.from({ length: T }, (_, t) => t),
    );
    const want = { k: f32(view.k), v: f32(view.v) }; // [heads][T][D]
    const got = new Float32Array(2 * heads * D);
    // the fp16-scale bound of each reference group (token mode: a token's head; channel keys: a channel)
    const bound = (w: 'k' | 'v', h: number, p: number, d: number) => {
      const at = (t: number, c: number) => want[w][(h * T + t) * D + c];
      const xs =
        w === 'k' && spec.keyChannel
          ? Array.from({ length: T }, (_, t) => at(t, d))
          : Array.from({ length: D }, (_, c) => at(p, c));
      const lo = Math.min(...xs),
        hi = Math.max(...xs);
      return tol(spec.bits, (hi - lo) / (2 ** spec.bits - 1), lo, at(p, d)) + 1e-5; // + pooling's float32 order
    };
    tier.forEach((r, s, p) => {
      tier.read(r, s, got, 0);
      for (let h = 0; h < heads; h++)
        for (let d = 0; d < D; d++)
          for (const [w, o] of [
            ['k', 0],
            ['v', heads * D],
          ] as const) {
            const y = want[w][(h * T + p) * D + d],
              x = got[o + h * D + d];
            assert.ok(
              Math.abs(x - y) <= bound(w, h, p, d),
              `${view.store} ${w} token ${p} head ${h} ch ${d}: ${x} vs ${y}`,
            );
          }
    });
    assert.equal(tier.count(), T);
    // bytes: per token (token mode) or per full KIVI group (channel mode) exactly Store.fraction of the fp16 cache,
    // plus 4 B of position per slot
    if (!spec.keyChannel || T === fx.kivi_group) {
      const fp16Full = T * 2 * H * D * 2;
      assert.equal(tier.allocatedBytes() - 4 * T, Math.round(view.fraction * fp16Full), view.store);
    }
  }
  for (const b of fx.bytes_per_head) assert.equal(bytesPerHead(fx.head_dim, b.bits, b.group), b.bytes);
});
