// The engine process's RSS cap (src/engine/rssCap.ts) on the shipped model: past the cap, the client restarts the
// engine at an idle moment, says so in the memory report, and requests go on; under the cap nothing happens.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { EngineClient } from '../../src/engine/client';
import type { CompletionRequest } from '../../src/engine/api';

const MODEL = path.resolve(__dirname, '../../../models/default');
const WORKER = path.join(__dirname, 'worker.js');
const skip = fs.existsSync(path.join(MODEL, 'manifest.json')) ? false : `no model at ${MODEL}`;
const body = Array.from({ length: 60 }, (_, i) => `  const v${i} = compute(alpha${i}, beta) + ${i};\n`).join('');
const req = (docId: string): CompletionRequest => ({
  docId,
  languageId: 'typescript',
  prefix: `function f() {\n${body}`,
  suffix: '\n}\n',
  context: [],
  maxTokens: 4,
  multiline: false,
  timeBudgetMs: 60_000,
});

const until = async (ok: () => boolean, ms: number) => {
  const t0 = Date.now();
  while (!ok() && Date.now() - t0 < ms) await new Promise((r) => setTimeout(r, 20));
  return ok();
};

test(
  'RSS over the cap: restarted while idle with the last document warm, said in the report; a request meanwhile waits',
  { skip, timeout: 180_000 },
  async () => {
    const eng = await EngineClient.start({
      modelDir: MODEL,
      device: 'cpu',
      kvBudgetBytes: 1 << 20,
      workerPath: WORKER,
      rssCap: { idleMs: 500, headroomMB: 0 }, // a run's outputs and heap alone pass fresh RSS + the 1 MB budget
    });
    try {
      assert.equal(eng.state.kind, 'ready');
      const fresh = await eng.memory();
      const cap = fresh.rssCap?.capMB ?? NaN;
      assert.ok(cap > (fresh.process?.rssMB ?? Infinity) - 1, `cap ${cap} from fresh RSS ${fresh.process?.rssMB}`);
      assert.equal(fresh.rssCap?.restarts.count, 0);
      // The fresh RSS is read after the warm-up run: ORT's working memory for the largest run is in the base.
      assert.ok((fresh.rssCap?.workingSetMB ?? 0) > 10, `warm-up working set ${fresh.rssCap?.workingSetMB} MB`);

      const pid = eng.pid;
      const first = await eng.complete(req('a'));
      assert.notEqual(first.trace.stopReason, 'error', JSON.stringify(first.trace));
      const used = await eng.memory();
      assert.ok((used.process?.rssMB ?? 0) > cap, `RSS ${used.process?.rssMB} MB after a run, cap ${cap} MB`);
      assert.equal(eng.pid, pid);

      // Idle for 0.5 s: restarted; the last completion's document is prefilled in the fresh process.
      assert.ok(await until(() => eng.pid !== pid && eng.state.kind === 'ready', 30_000), `state ${eng.state.kind}`);
      let m = await eng.memory();
      while (m.docs.length === 0) m = await eng.memory(); // the prefill after the restart is under way
      assert.equal(m.rssCap?.restarts.count, 1, JSON.stringify(m.rssCap));
      const r = m.rssCap!.restarts.last!;
      assert.ok(r.rssMB > r.capMB && r.restartMs > 0 && Date.parse(r.at) > 0, JSON.stringify(r));
      // That prefill is not work: left idle, the engine is not restarted again.
      await new Promise((res) => setTimeout(res, 2000));
      assert.equal((await eng.memory()).rssCap?.restarts.count, 1);
      const warm = await eng.complete({ ...req('a'), prefix: req('a').prefix + '  ret' });
      assert.ok(warm.trace.reusedTokens > 0, `the document was warm after the restart: ${JSON.stringify(warm.trace)}`);

      // That completion was work: the next idle restart begins; a request made meanwhile waits for it.
      const pid2 = eng.pid;
      if (!(await until(() => eng.state.kind === 'loading', 30_000))) {
        const m2 = await eng.memory();
        assert.fail(
          `no second restart: state ${eng.state.kind}, RSS ${m2.process?.rssMB}, ${JSON.stringify(m2.rssCap)}`,
        );
      }
      const during = await eng.complete(req('b'));
      assert.notEqual(during.trace.stopReason, 'error', JSON.stringify(during.trace));
      assert.notEqual(eng.pid, pid2);
      assert.equal((await eng.memory()).rssCap?.restarts.count, 2);
    } finally {
      await eng.dispose();
    }
  },
);

test('under the cap an idle engine is left alone', { skip, timeout: 120_000 }, async () => {
  const eng = await EngineClient.start({
    modelDir: MODEL,
    device: 'cpu',
    kvBudgetBytes: 1 << 20,
    workerPath: WORKER,
    rssCap: { idleMs: 300, headroomMB: 4096 },
  });
  try {
    const pid = eng.pid;
    const r = await eng.complete(req('a'));
    assert.notEqual(r.trace.stopReason, 'error', JSON.stringify(r.trace));
    await new Promise((res) => setTimeout(res, 1500));
    assert.equal(eng.pid, pid);
    const again = await eng.complete(req('a'));
    assert.ok(again.trace.reusedTokens > 0, 'the cache survived');
    assert.equal((await eng.memory()).rssCap?.restarts.count, 0);
  } finally {
    await eng.dispose();
  }
});
