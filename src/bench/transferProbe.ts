// Transfer probe of the gpu suite: host→device and device→host bandwidth through ONNX Runtime, measured with
// one-node ONNX graphs encoded by hand (protobuf), so no model file is needed.
import { performance } from 'node:perf_hooks';
import type * as ortTypes from 'onnxruntime-node';
import { r2, stats } from './common';

function varint(n: number): number[] {
  const b: number[] = [];
  while (n > 127) {
    b.push((n & 127) | 128);
    n = Math.floor(n / 128);
  }
  b.push(n);
  return b;
}
const fld = (f: number, payload: number[] | string): number[] => {
  const p = typeof payload === 'string' ? [...Buffer.from(payload, 'utf8')] : payload;
  return [...varint((f << 3) | 2), ...varint(p.length), ...p];
};
const vfld = (f: number, v: number): number[] => [...varint(f << 3), ...varint(v)];
function probeModel(op: 'Identity' | 'ReduceMax', elem: number): Uint8Array {
  const vi = (name: string, withShape: boolean) =>
    fld(1, name).concat(fld(2, fld(1, [...vfld(1, elem), ...(withShape ? fld(2, fld(1, fld(2, 'N'))) : [])])));
  const attr = op === 'ReduceMax' ? fld(5, [...fld(1, 'keepdims'), ...vfld(3, 0), ...vfld(20, 2)]) : [];
  const node = [...fld(1, 'X'), ...fld(2, 'Y'), ...fld(3, 'n0'), ...fld(4, op), ...attr];
  const graph = [
    ...fld(1, node),
    ...fld(2, 'probe'),
    ...fld(11, vi('X', true)),
    ...fld(12, vi('Y', op === 'Identity')),
  ];
  return Uint8Array.from([...vfld(1, 8), ...fld(8, vfld(2, 13)), ...fld(7, graph)]);
}

export async function transferProbe(
  ort: typeof ortTypes,
  opts: ortTypes.InferenceSession.SessionOptions,
  dtype: 'float16' | 'float32',
) {
  const elem = dtype === 'float16' ? 10 : 1,
    bpe = dtype === 'float16' ? 2 : 4;
  const sizesMB = [1, 8, 32];
  const res: Record<string, unknown> = {};
  try {
    const h2d = await ort.InferenceSession.create(probeModel('ReduceMax', elem), opts);
    const rt = await ort.InferenceSession.create(probeModel('Identity', elem), opts);
    const measure = async (s: ortTypes.InferenceSession, mb: number) => {
      const n = Math.floor((mb * 2 ** 20) / bpe);
      const data = dtype === 'float16' ? new Uint16Array(n) : new Float32Array(n);
      const feed = { X: new ort.Tensor(dtype, data, [n]) };
      for (let i = 0; i < 2; i++) await s.run(feed);
      const ts: number[] = [];
      for (let i = 0; i < 5; i++) {
        const t = performance.now();
        await s.run(feed);
        ts.push(performance.now() - t);
      }
      return stats(ts).p50;
    };
    const rows = [];
    for (const mb of sizesMB)
      rows.push({ MB: mb, h2dOnlyMs: r2(await measure(h2d, mb)), roundTripMs: r2(await measure(rt, mb)) });
    const a = rows[0],
      b = rows[rows.length - 1],
      dMB = ((b.MB - a.MB) * 2 ** 20) / 1e9; // GB
    const h2dGBs = dMB / ((b.h2dOnlyMs - a.h2dOnlyMs) / 1000);
    const rtGBs = dMB / ((b.roundTripMs - a.roundTripMs) / 1000);
    const d2hGBs = 1 / (1 / rtGBs - 1 / h2dGBs);
    Object.assign(res, {
      rows,
      h2dGBs: r2(h2dGBs),
      d2hGBs: r2(d2hGBs),
      roundTripGBs: r2(rtGBs),
      note: 'slope between the smallest and largest size; ReduceMax graph = host→device only, Identity = both ways (plus a device copy)',
    });
    await h2d.release();
    await rt.release();
  } catch (e) {
    res.error = (e as Error).message.split('\n')[0];
  }
  return res;
}
