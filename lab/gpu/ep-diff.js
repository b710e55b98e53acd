// Runs one model file on two execution providers with the same feeds and compares every output: a prompt of real
// token ids over an empty cache, then `gen_steps` greedy steps in the graph's loop. With a debug copy of the graph
// whose intermediate tensors are extra outputs (lab/gpu/ep-diff-model.py), the first node whose output differs
// names the kernel that disagrees. A second run ("cached") feeds `ids2` on top of the cache the first run wrote
// (EP B's K/V, split per layer and expert as kvStore.append does), the same feeds on both EPs.
//
//   node lab/gpu/ep-diff.js MODEL.onnx CASE.json OUT.json [EP_A=cuda] [EP_B=cpu]
// CASE.json: {"ids": [...], "ids2": [...], "gen_steps": 8, "outputs": [[name, op_type], ...]} (outputs: node order).
// Needs onnxruntime-node (NODE_PATH or a node_modules above); fp16 is read as raw bits and converted here.
'use strict';
const fs = require('fs');
const ort = require('onnxruntime-node');

const [model, casePath, outPath, epA = 'cuda', epB = 'cpu'] = process.argv.slice(2);
const c = JSON.parse(fs.readFileSync(casePath, 'utf8'));

function f16(bits) { // IEEE half -> number
  const s = bits & 0x8000 ? -1 : 1, e = (bits >> 10) & 0x1f, m = bits & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}
function numbers(t) {
  if (t.type === 'float16') return Array.from(t.data, f16);
  if (t.type === 'bool') return Array.from(t.data, Number);
  if (t.type === 'int64') return Array.from(t.data, Number);
  return Array.from(t.data);
}

/** past.l.e feeds from a run's outputs: kv.e rows are grouped by layer, in token order within a layer. */
function pastFrom(out) {
  const route = out.route.data, L = out.route.dims[0], n = route.length / L, past = {};
  const offset = [0, 0, 0];
  for (let l = 0; l < L; l++) {
    for (let e = 0; e < 3; e++) {
      let cnt = 0;
      for (let t = 0; t < n; t++) if (route[l * n + t] === e) cnt++;
      const kv = out[`kv.${e}`], row = kv.dims.slice(1).reduce((x, y) => x * y, 1);
      const data = kv.data.slice(offset[e] * row, (offset[e] + cnt) * row);
      offset[e] += cnt;
      past[`past.${l}.${e}`] = new ort.Tensor(kv.type, data, [1, cnt, ...kv.dims.slice(1)]);
    }
  }
  return { past, n };
}

/** Appends a run's per-layer, per-expert rows to a past (both as past.l.e tensors [1, T, 2, H_e, D]). */
function mergePast(a, b) {
  const out = {};
  for (const k of Object.keys(b)) {
    const x = a[k], y = b[k];
    const data = new x.data.constructor(x.data.length + y.data.length);
    data.set(x.data); data.set(y.data, x.data.length);
    out[k] = new ort.Tensor(x.type, data, [1, x.dims[1] + y.dims[1], ...x.dims.slice(2)]);
  }
  return out;
}

async function runOn(sess, ids = c.ids, start = 0, past = {}, genSteps = c.gen_steps ?? 8) {
  const S = ids.length;
  const feeds = {
    ...past,
    input_ids: new ort.Tensor('int64', BigInt64Array.from(ids, BigInt), [1, S]),
    position_ids: new ort.Tensor('int64', BigInt64Array.from({ length: S }, (_, i) => BigInt(start + i)), [1, S]),
    route_bias: new ort.Tensor('float32', new Float32Array(3), [3]),
    gen_steps: new ort.Tensor('int64', BigInt64Array.of(BigInt(genSteps)), []),
  };
  for (const inp of sess.inputNames) {
    if (feeds[inp]) continue;
    const meta = sess.inputMetadata.find((m) => m.name === inp);
    if (inp === 'stop_mask') feeds[inp] = new ort.Tensor('bool', new Uint8Array(meta.shape[0]), meta.shape);
    else if (inp === 'first_mask') feeds[inp] = new ort.Tensor('float32', new Float32Array(meta.shape[0]), meta.shape);
    else if (inp.startsWith('past.')) { // [1, 0, 2, H_e, D]: empty cache
      const dims = [1, 0, ...meta.shape.slice(2)];
      feeds[inp] = meta.type === 'float16' ? new ort.Tensor('float16', new Uint16Array(0), dims) : new ort.Tensor('float32', new Float32Array(0), dims);
    }
  }
  return sess.run(feeds);
}

(async () => {
  const mk = (ep) => ort.InferenceSession.create(model, { executionProviders: ep === 'cuda' ? [{ name: 'cuda', deviceId: 0 }] : ['cpu'], graphOptimizationLevel: 'all' });
  const [sa, sb] = [await mk(epA), await mk(epB)];
  const order = [...(c.outputs ?? []).map((o) => o[0]), 'logits', 'tokens', 'route', 'scores', 'kv.0', 'kv.1', 'kv.2'];
  const opOf = Object.fromEntries((c.outputs ?? []).map((o) => [o[0], o[1]]));
  const compare = (oa, ob) => {
    const rows = [];
    for (const name of order) {
      if (!(name in oa) || !(name in ob)) continue;
      const a = numbers(oa[name]), b = numbers(ob[name]);
      let maxAbs = 0, maxRef = 0, nanA = 0, nanB = 0;
      for (let i = 0; i < Math.min(a.length, b.length); i++) {
        if (Number.isNaN(a[i])) nanA++;
        if (Number.isNaN(b[i])) nanB++;
        const d = Math.abs(a[i] - b[i]);
        if (d > maxAbs || Number.isNaN(d)) maxAbs = Number.isNaN(d) ? Infinity : d;
        maxRef = Math.max(maxRef, Math.abs(b[i]) || 0);
      }
      const row = { name, op: opOf[name] ?? 'output', type: oa[name].type, dims: oa[name].dims, sameShape: a.length === b.length,
        maxAbs, maxRef, rel: maxRef ? maxAbs / maxRef : maxAbs, nanA, nanB };
      if (name.startsWith('loop/dbg/')) row.values = { a: a.join(','), b: b.join(',') };
      if (name.startsWith('loop/') && row.sameShape) { // scan output: [steps, ...]; the first step that differs
        const steps = oa[name].dims[0], per = a.length / steps;
        row.perStep = [];
        for (let t = 0; t < steps; t++) {
          let d = 0, r = 0;
          for (let i = t * per; i < (t + 1) * per; i++) { d = Math.max(d, Math.abs(a[i] - b[i])); r = Math.max(r, Math.abs(b[i])); }
          row.perStep.push(+(r ? d / r : d).toFixed(4));
        }
      }
      rows.push(row);
    }
    return rows;
  };
  const result = { model, epA, epB, runs: {} };
  const [oa, ob] = [await runOn(sa), await runOn(sb)];
  const runs = [['prompt', oa, ob]];
  if (c.ids2) {
    const { past, n } = pastFrom(ob);
    runs.push(['cached', await runOn(sa, c.ids2, n, past), await runOn(sb, c.ids2, n, past)]);
  }
  // one token per run (gen_steps 0), each EP on its own cache: what the engine does without the graph's loop
  if (c.stepwise) {
    const walk = async (sess) => {
      const toks = [];
      let out = await runOn(sess, c.ids, 0, {}, 0), past = pastFrom(out).past;
      for (let pos = c.ids.length; toks.length < c.stepwise; pos++) {
        const t = Number(out.tokens.data[0]);
        toks.push(t);
        out = await runOn(sess, [t], pos, past, 0);
        past = mergePast(past, pastFrom(out).past);
      }
      return toks;
    };
    result.stepwise = { [epA]: await walk(sa), [epB]: await walk(sb) };
    console.log(`== one token per run: ${JSON.stringify(result.stepwise)}`);
  }
  for (const [what, xa, xb] of runs) {
    const rows = compare(xa, xb);
    const tokens = { [epA]: numbers(xa.tokens), [epB]: numbers(xb.tokens) };
    result.runs[what] = { tokens, rows };
    console.log(`== ${what}: tokens ${JSON.stringify(tokens)}`);
    const bad = rows.filter((r) => !r.sameShape || r.nanA !== r.nanB || r.rel > 0.05);
    console.log(`${rows.length} outputs compared; ${bad.length} differ (rel > 5%, NaN or shape); first ones:`);
    for (const r of bad.slice(0, 12)) console.log(JSON.stringify(r));
  }
  fs.writeFileSync(outPath, JSON.stringify(result, null, 1));
})().catch((e) => { console.error(e); process.exit(1); });
