// Median wall time of session.run for each graph of lab/gpu/ort-overhead-graphs.py on the CUDA EP, at n = 1
// and n = 65 loop trips (15 timed runs after 5 warm-ups, twice over); perIterMs = (t65 - t1) / 64. Needs
// onnxruntime-node with the CUDA provider (lab/gpu/unpack.sh); run it from a folder whose node_modules has it.
const ort = require('onnxruntime-node');
const path = require('path');
(async () => {
  const dir = process.argv[2];
  const names = ['loop_k0', 'loop_k0_cpucond', 'loop_k400', 'loop_k400_implicit', 'flat_k400', 'flat_k400_implicit'];
  const res = {};
  for (let rep = 0; rep < 2; rep++) for (const n of names) {
    const s = await ort.InferenceSession.create(path.join(dir, n + '.onnx'), { executionProviders: [{ name: 'cuda', deviceId: 0 }], logSeverityLevel: 3 });
    const x = new ort.Tensor('float16', new Uint16Array(2048), [2048]);
    const t = {};
    for (const trips of [1, 65]) {
      const feeds = { x, n: new ort.Tensor('int64', BigInt64Array.from([BigInt(trips)]), []) };
      for (let i = 0; i < 5; i++) await s.run(feeds);
      const ms = [];
      for (let i = 0; i < 15; i++) { const t0 = performance.now(); await s.run(feeds); ms.push(performance.now() - t0); }
      ms.sort((a, b) => a - b); t[trips] = ms[7];
    }
    const perIter = (t[65] - t[1]) / 64;
    (res[n] ??= []).push({ run1: +t[1].toFixed(3), run65: +t[65].toFixed(3), perIterMs: +perIter.toFixed(4) });
    await s.release();
  }
  console.log(JSON.stringify(res, null, 1));
})();
