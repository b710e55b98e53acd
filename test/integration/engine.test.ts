// Real ORT, real tokenizer, real fixture model (test/fixtures/fixture-tiny, docs/model-format.md).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { loadManifest } from '../../src/engine/manifest';
import { createSession } from '../../src/engine/session';
import { ModelRunner } from '../../src/engine/runner';
import { DocCache, KvShape } from '../../src/engine/kvStore';
import { EngineClient } from '../../src/engine/client';
import {
  FIXTURE,
  WORKER,
  fixtureRequest as req,
  fullBytesPerToken,
  haveFixture,
  skip,
  startOnFixture,
} from './fixtureEngine';

process.env.MIXSGA_DEBUG = '1'; // the worker asserts the budget invariant after every operation

async function setup() {
  const { dir, manifest } = loadManifest(FIXTURE);
  const s = await createSession(dir, manifest, 'cpu');
  const runner = new ModelRunner(s.ort, s.session, manifest, s.variant.kv_dtype);
  const a = manifest.architecture;
  const shape: KvShape = {
    layers: a.num_layers,
    heads: manifest.experts.map((e) => e.kv_heads),
    headDim: a.head_dim,
    dtype: s.variant.kv_dtype,
  };
  return { manifest, runner, shape };
}
const sum = (x: ArrayLike<number>) => {
  let s = 0;
  for (let i = 0; i < x.length; i++) s += x[i];
  return s;
};

/** Masks for a run of the fixture's vocabulary. */
function masks(V: number, stop: number[] = [], first?: number[]) {
  const stopMask = new Uint8Array(V);
  for (const id of stop) stopMask[id] = 1;
  let firstMask: Float32Array | undefined;
  if (first) {
    firstMask = new Float32Array(V).fill(-Infinity);
    for (const id of first) firstMask[id] = 0;
  }
  return { stopMask, firstMask };
}

test('(a) vectors.json replays through ORT with the KV store feeding the past caches', { skip }, async () => {
  const { runner, shape, manifest } = await setup();
  const V = manifest.architecture.vocab_size;
  const vectors = JSON.parse(fs.readFileSync(path.join(FIXTURE, 'vectors.json'), 'utf8'));
  const atol: number = vectors.atol,
    sumAtol: number = vectors.sum_atol;
  const near = (got: number, want: number, tol: number, what = '') =>
    assert.ok(Math.abs(got - want) <= tol, `${what}: ${got} vs ${want} (tol ${tol})`);
  let generated = 0;
  for (const c of vectors.cases) {
    const doc = new DocCache(shape);
    const bias = Float32Array.from(c.route_bias);
    for (const [i, run] of c.runs.entries()) {
      const exp = c.expected[i];
      const what = `${c.name} run ${i}`;
      assert.equal(run.position_ids[0], doc.nIds, `${what}: cache carried over, positions as given`);
      const out = await runner.run(
        {
          ids: run.input_ids,
          startPos: run.position_ids[0],
          routeBias: bias,
          genSteps: run.gen_steps,
          ...masks(V, run.stop_ids, run.first_allowed),
        },
        doc,
      );
      for (const [id, v] of exp.logits_top) near(out.logits[id], v, atol, `${what} logit ${id}`);
      const top = Array.from(out.logits.keys())
        .sort((x, y) => out.logits[y] - out.logits[x])
        .slice(0, exp.logits_top.length);
      assert.deepEqual(new Set(top), new Set(exp.logits_top.map((t: number[]) => t[0])), `${what} top-10 ids`);
      near(sum(out.logits), exp.logits_sum, atol * out.logits.length, `${what} logits_sum`);
      near(Math.max(...Array.from(out.logits, Math.abs)), exp.logits_absmax, atol, `${what} absmax`);
      assert.deepEqual(out.tokens, exp.tokens, `${what} tokens (greedy, in-graph loop)`);
      assert.equal(out.kv.n, run.input_ids.length + exp.tokens.length - 1, `${what} processed tokens`);
      for (let l = 0; l < shape.layers; l++) {
        assert.deepEqual(
          Array.from(out.kv.route.subarray(l * out.kv.n, (l + 1) * out.kv.n)),
          exp.route[l],
          `${what} route.${l}`,
        );
        near(
          sum(out.kv.scores.subarray(l * out.kv.n * 3, (l + 1) * out.kv.n * 3)),
          exp.scores_sum[l],
          sumAtol,
          `${what} scores.${l}`,
        );
      }
      exp.kv_sum.forEach((want: number, e: number) => {
        assert.equal(out.kv.kv[e].length, exp.kv_rows[e] * 2 * shape.heads[e] * shape.headDim, `${what} kv.${e} rows`);
        near(sum(out.kv.kv[e]), want, sumAtol, `${what} kv.${e} sum`);
      });
      doc.append(out.processed, out.kv);
      generated += exp.tokens.length - 1;
    }
  }
  assert.ok(generated >= 20, `the vectors exercise the decode loop (${generated} tokens generated in-graph)`);
});

test('(b) one chunk vs token by token vs the decode loop: same routes, cache and tokens', { skip }, async () => {
  const { runner, shape, manifest } = await setup();
  const V = manifest.architecture.vocab_size;
  const ids = Array.from({ length: 40 }, (_, i) => 100 + ((i * 37) % 900));
  const bias = new Float32Array(shape.heads.length);
  const { stopMask } = masks(V);
  const a = new DocCache(shape),
    b = new DocCache(shape),
    c = new DocCache(shape);
  // a: the whole prompt in one run, then 12 tokens generated inside the graph
  const one = await runner.run({ ids, startPos: 0, routeBias: bias, genSteps: 12, stopMask }, a);
  a.append(one.processed, one.kv);
  // b: token by token, every pick on the host (argmax of the returned logits), no in-graph steps
  let last!: Float32Array;
  for (let t = 0; t < ids.length; t++) {
    const r = await runner.run({ ids: [ids[t]], startPos: t, routeBias: bias, genSteps: 0, stopMask }, b);
    b.append(r.processed, r.kv);
    last = r.logits;
  }
  for (let i = 0; i < last.length; i++) assert.ok(Math.abs(last[i] - one.logits[i]) < 1e-3, `logit ${i}`);
  const picked = [one.tokens[0]];
  for (let k = 0; k < 12; k++) {
    const r = await runner.run(
      { ids: [picked[k]], startPos: ids.length + k, routeBias: bias, genSteps: 0, stopMask },
      b,
    );
    b.append(r.processed, r.kv);
    picked.push(r.tokens[0]);
  }
  assert.deepEqual(picked, one.tokens, 'in-graph greedy loop = host-driven greedy decoding');
  // c: the prompt, then generation continued over several runs of 3 steps (what the engine does)
  const p = await runner.run({ ids, startPos: 0, routeBias: bias, genSteps: 2, stopMask }, c);
  c.append(p.processed, p.kv);
  const cont = [...p.tokens];
  while (cont.length < one.tokens.length) {
    const r = await runner.run(
      {
        ids: [cont[cont.length - 1]],
        startPos: c.nIds,
        routeBias: bias,
        genSteps: Math.min(2, one.tokens.length - cont.length - 1),
        stopMask,
      },
      c,
    );
    c.append(r.processed, r.kv);
    cont.push(...r.tokens);
  }
  assert.deepEqual(cont, one.tokens, 'continuing over several runs');
  for (const d of [b, c]) {
    assert.deepEqual(d.expertEntries(), a.expertEntries());
    assert.deepEqual(Array.from(d.tokenIds), Array.from(a.tokenIds));
    for (let l = 0; l < shape.layers; l++)
      for (let e = 0; e < shape.heads.length; e++) {
        const x = a.segs[l][e].feed(),
          y = d.segs[l][e].feed();
        for (let i = 0; i < x.length; i++) assert.ok(Math.abs(x[i] - y[i]) < 1e-4, `cache ${l}.${e}[${i}]`);
      }
  }
  // stop mask: generation ends at the first stop token, which is still returned (the host's rules see it)
  const stopAt = one.tokens[4];
  const s = await runner.run(
    { ids, startPos: 0, routeBias: bias, genSteps: 12, ...masks(V, [stopAt]) },
    new DocCache(shape),
  );
  assert.deepEqual(s.tokens, one.tokens.slice(0, one.tokens.indexOf(stopAt) + 1));
  // first mask (token healing): the first pick is restricted, the rest follows greedily
  const alt = one.tokens[0] === 5 ? 6 : 5;
  const h = await runner.run(
    { ids, startPos: 0, routeBias: bias, genSteps: 0, ...masks(V, [], [alt, 7]) },
    new DocCache(shape),
  );
  assert.equal(h.tokens[0], one.logits[alt] >= one.logits[7] ? alt : 7);
});

test(
  '(c) long typed session: bytes ≤ budget after every step, cache reused per keystroke burst',
  { skip },
  async () => {
    const full = await fullBytesPerToken();
    const budget = 300 * full; // far below the ~1.5k-token prompt: demotion, eviction and windowing all happen
    const eng = await startOnFixture(budget);
    try {
      assert.equal(eng.state.kind, 'ready');
      const suffix = '\n}\nexport default main;\n';
      let text = 'function main() {\n';
      const chunk = '  const value = compute(alpha, beta) + 1;\n';
      // A fast typist: BURST keystrokes of 3 characters land between two completion requests (the debounce
      // swallows the ones in between). Every request is still checked against the budget, ≥ 2,000 tokens are typed
      // in total, and the edit / file-switch cadence per typed character is the same as one request per keystroke.
      const BURST = 4,
        EDIT_EVERY = 24,
        SWITCH_EVERY = 12;
      let typedTokens = 0,
        keystrokes = 0;
      const recompute: number[] = [];
      const actions = new Set<string>();
      for (let i = 0; typedTokens < 2000; i++) {
        let add = '';
        for (let k = 0; k < BURST; k++, keystrokes++) {
          const o = (keystrokes * 3) % chunk.length;
          add += chunk.slice(o, o + 3);
        }
        text += add;
        const edited = i % EDIT_EVERY === EDIT_EVERY - 1;
        if (edited) text = text.slice(0, -40); // an edit: delete back over a line
        const r = await eng.complete(req('doc:a', text, suffix, { maxTokens: 1 }));
        const m = await eng.memory();
        assert.ok(m.usedBytes <= budget, `step ${i}: ${m.usedBytes} > ${budget}`);
        assert.notEqual(r.trace.stopReason, 'error', JSON.stringify(r.trace));
        r.trace.budgetActions.forEach((a) => actions.add(a.split(' ')[0]));
        // steps after an edit or after switching files (which evicts this document at this budget) start cold
        if (i > 0 && !edited && i % EDIT_EVERY !== 0 && i % SWITCH_EVERY !== 1) recompute.push(r.trace.prefillTokens);
        typedTokens += Math.max(1, Math.round(add.length / 3)); // one token per 3-character keystroke, as before
        if (i % SWITCH_EVERY === 0)
          await eng.complete(req(`doc:other${i % 3}`, 'let x = 1;\n'.repeat(30), '', { maxTokens: 1 })); // switch files
      }
      // Typical request: the burst's typed tokens (≤ BURST + 1 for 4×3 characters of this code), a re-merged/healed
      // last token and <fim_middle>. The prefix window moves once per 512 typed characters (a full recompute), so
      // judge the median and the 90th percentile. Per keystroke this was median ≤ 4, p90 ≤ 8 (1 typed + 3 / + 7).
      recompute.sort((x, y) => x - y);
      const med = recompute[recompute.length >> 1],
        p90 = recompute[Math.floor(recompute.length * 0.9)];
      assert.ok(
        med <= BURST + 4 && p90 <= BURST + 8,
        `recomputed prompt tokens per request (burst of ${BURST} keystrokes): median ${med}, p90 ${p90}`,
      );
      assert.ok(actions.has('demoted') || actions.has('windowed'), [...actions].join(','));
    } finally {
      await eng.dispose();
    }
  },
);

test(
  '(d) crashed worker: detected, request during outage resolves empty with a reason, restarted',
  { skip },
  async () => {
    const eng = await startOnFixture(64 << 20, { testHooks: true, restartBackoffMs: [300, 300] });
    try {
      assert.equal(eng.state.kind, 'ready');
      const states: string[] = [];
      eng.onDidChange((s) => states.push(s.kind));
      // Wait for the exit to be noticed (not a fixed delay: on a loaded machine the exit event can take a while).
      const sawRestarting = () =>
        new Promise<void>((resolve, reject) => {
          const t = setTimeout(
            () => reject(new Error('no restarting state within 10 s; states: ' + states.join(','))),
            10_000,
          );
          const sub = eng.onDidChange((s) => {
            if (s.kind === 'restarting') {
              clearTimeout(t);
              sub.dispose();
              resolve();
            }
          });
        });
      let restarting = sawRestarting();
      eng.testCrash('exit');
      await restarting;
      assert.equal((eng.state as { kind: string }).kind, 'restarting');
      const r = await eng.complete(req('d', 'const a = ', ';'));
      assert.equal(r.text, '');
      assert.match(r.trace.noSuggestionReason ?? '', /restarting/);
      assert.ok(await eng.whenReady(20_000));
      const ok = await eng.complete(req('d', 'const a = ', ';'));
      assert.equal(ok.trace.stopReason === 'error', false, JSON.stringify(ok.trace));
      restarting = sawRestarting();
      eng.testCrash('throw');
      await restarting;
      assert.ok(await eng.whenReady(20_000));
      assert.ok(states.includes('restarting') && states.includes('ready'));
    } finally {
      await eng.dispose();
    }
  },
);

test('(e) missing or corrupt model folder: failed state with a clear reason, no throw', async () => {
  const missing = await EngineClient.start({
    modelDir: '/nonexistent/model',
    device: 'cpu',
    kvBudgetBytes: 1 << 20,
    workerPath: WORKER,
  });
  assert.equal(missing.state.kind, 'failed');
  assert.match((missing.state as { reason: string }).reason, /model folder not found/);
  const r = await missing.complete(req('x', 'a', 'b'));
  assert.equal(r.text, '');
  assert.match(r.trace.noSuggestionReason ?? '', /failed/);
  await missing.dispose();
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'mixsga-bad-'));
  fs.writeFileSync(path.join(d, 'manifest.json'), '{ corrupt');
  const bad = await EngineClient.start({ modelDir: d, device: 'cpu', kvBudgetBytes: 1 << 20, workerPath: WORKER });
  assert.equal(bad.state.kind, 'failed');
  assert.match((bad.state as { reason: string }).reason, /not valid JSON/);
  await bad.dispose();
  if (haveFixture) {
    // a corrupted copy of the fixture: checksum error names the file
    const c = fs.mkdtempSync(path.join(os.tmpdir(), 'mixsga-sha-'));
    for (const f of fs.readdirSync(FIXTURE)) fs.copyFileSync(path.join(FIXTURE, f), path.join(c, f));
    fs.appendFileSync(path.join(c, 'tokenizer.json'), ' ');
    const e = await EngineClient.start({ modelDir: c, device: 'cpu', kvBudgetBytes: 1 << 20, workerPath: WORKER });
    assert.match((e.state as { reason: string }).reason, /tokenizer\.json: sha256 mismatch/);
    await e.dispose();
  }
});

test(
  '(f) setDevice()/dispose() while completions are in flight: graceful worker stops, process survives, right states',
  { skip },
  async () => {
    const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
    // Long prompts (several 256-token prefill chunks) and long multiline generations keep session.run() busy.
    const body = Array.from({ length: 120 }, (_, i) => `  const v${i} = compute(alpha${i}, beta) + ${i};\n`).join('');
    const long = (doc: string, n: number) =>
      req(doc, `function f${n}() {\n${body}`, '\n}\n', { maxTokens: 64, multiline: true });
    const checkResults = async (ps: Promise<{ text: string; trace: { stopReason: string } }>[]) => {
      for (const r of await Promise.all(ps)) assert.equal(typeof r.text, 'string');
    };
    for (let round = 0; round < 4; round++) {
      const eng = await startOnFixture(64 << 20, { shutdownTimeoutMs: 20_000 });
      assert.equal(eng.state.kind, 'ready');
      for (let k = 0; k < 3; k++) {
        const inflight = [eng.complete(long('a', k)), eng.complete(long('b', k + 1))];
        void eng.prefill('c', 'typescript', `// c\n${body}`, '');
        await sleep((round * 7 + k * 13) % 40);
        const st = await eng.setDevice('cpu');
        assert.equal(st.kind, 'ready', JSON.stringify(st));
        assert.equal(eng.state.kind, 'ready');
        await checkResults(inflight);
        const ok = await eng.complete(req('a', 'const a = ', ';'));
        assert.notEqual(ok.trace.stopReason, 'error', JSON.stringify(ok.trace));
      }
      // Overlapping device switches (the second while the first worker is still loading): one worker at the end.
      const s1 = eng.setDevice('cpu'),
        s2 = eng.setDevice('cpu');
      const inflight = [eng.complete(long('a', 9))];
      assert.equal((await s1).kind, 'ready');
      assert.equal((await s2).kind, 'ready');
      await checkResults(inflight);
      // Dispose mid-completion (odd rounds: also mid device switch).
      const last = [eng.complete(long('d', round)), eng.complete(long('e', round))];
      await sleep(5 + round * 10);
      if (round % 2 === 1) void eng.setDevice('cpu');
      await eng.dispose();
      await checkResults(last);
      const after = await eng.complete(req('a', 'const a = ', ';'));
      assert.equal(after.text, '');
      assert.equal(eng.forcedTerminations, 0, 'every worker stopped by itself');
    }
  },
);
