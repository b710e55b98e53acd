// Times the graphs of lab/gpu/fusion-graphs.py on the CUDA EP (median of 15 runs after 5 warm-ups, at 1 and 65
// loop trips): perLayerUs = (t65 - t1) / 64 / 22. Pairs (mlp5/moe1, pool/gnd) compute the same function: their
// one-trip outputs are compared (max |diff| relative to max |value|).
const ort = require('onnxruntime-node');
const path = require('path');
const f16 = (u) => { const s = u & 0x8000 ? -1 : 1, e = (u >> 10) & 31, m = u & 1023;
  return e === 0 ? s * m * 2 ** -24 : e === 31 ? (m ? NaN : s * Infinity) : s * (1 + m / 1024) * 2 ** (e - 15); };
(async () => {
  const dir = process.argv[2];
  const names = (process.argv[3] || 'mlp5,moe1,pool,gnd').split(',');
  const ep = process.env.FUSION_EP || 'cuda', hidden = +(process.env.FUSION_HIDDEN || 2048);
  const x = new Uint16Array(hidden); for (let i = 0; i < x.length; i++) x[i] = 0x3c00 ^ ((i * 7919) % 3 === 0 ? 0x8000 : 0) ^ (i % 5);
  const res = {}; const outs = {};
  for (let rep = 0; rep < 2; rep++) for (const n of names) {
    let s;
    try { s = await ort.InferenceSession.create(path.join(dir, n + '.onnx'), { executionProviders: [ep === 'cuda' ? { name: 'cuda', deviceId: 0 } : { name: ep }], logSeverityLevel: 3 }); }
    catch (e) { res[n] = { error: String(e.message).slice(0, 400) }; continue; }
    const t = {};
    try {
      for (const trips of [1, 65]) {
        const feeds = { x: new ort.Tensor('float16', x, [1, 1, hidden]), n: new ort.Tensor('int64', BigInt64Array.from([BigInt(trips)]), []) };
        for (let i = 0; i < 5; i++) { const r = await s.run(feeds); if (trips === 1) outs[n] = Array.from(r.scan.data.slice(0, hidden), f16); }
        const ms = [];
        for (let i = 0; i < 15; i++) { const t0 = performance.now(); await s.run(feeds); ms.push(performance.now() - t0); }
        ms.sort((a, b) => a - b); t[trips] = ms[7];
      }
      (res[n] ??= []).push({ run1: +t[1].toFixed(3), run65: +t[65].toFixed(3), perLayerUs: +((t[65] - t[1]) / 64 / 22 * 1000).toFixed(2) });
    } catch (e) { res[n] = { error: String(e.message).slice(0, 400) }; }
    await s.release();
  }
  const cmp = (a, b) => { if (!outs[a] || !outs[b]) return null; let d = 0, m = 0;
    for (let i = 0; i < hidden; i++) { d = Math.max(d, Math.abs(outs[a][i] - outs[b][i])); m = Math.max(m, Math.abs(outs[a][i])); } return { maxAbsDiff: d, maxAbs: m }; };
  res.compare = { 'mlp5~moe1': cmp('mlp5', 'moe1'), 'pool~gnd': cmp('pool', 'gnd') };
  console.log(JSON.stringify(res, null, 1));
})();
