// `node dist/ipc-cost.js [--n 400] [--out FILE]`: what moving the engine from a worker thread into a child process
// costs per request. Round trips of realistic messages (a completion request with a 6/20/60 KB prefix out, a result
// with its trace back) through a forked echo process (the engine's transport: IPC, 'advanced' serialization) and a
// worker-thread echo, interleaved A/B; plus the real engine's memory() round trip through EngineClient. JSON out.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fork } from 'node:child_process';
import { Worker } from 'node:worker_threads';
import { EngineClient } from '../engine/client';
import { defaultModelDir, machineFacts, parseArgs, r2, stats, int, writeResult } from './common';

const ECHO_CHILD = `process.on('message', (m) => process.send(m.reply));`;
const ECHO_THREAD = `const { parentPort } = require('node:worker_threads'); parentPort.on('message', (m) => parentPort.postMessage(m.reply));`;

/** Milliseconds to the microsecond. */
const ms3 = (x: number) => Math.round(x * 1000) / 1000;
const snippet = fs.readFileSync(__filename, 'utf8');
const text = (n: number) => snippet.repeat(Math.ceil(n / snippet.length)).slice(0, n);
const reply = {
  type: 'result',
  id: 1,
  ok: true,
  value: {
    text: '  return a + b;',
    trace: {
      requestId: 1,
      docId: 'file:///a.ts',
      reusedTokens: 1400,
      prefillTokens: 6,
      generatedTokens: 8,
      modelTokens: 9,
      prefillMs: 40,
      decodeMs: 80,
      totalMs: 121,
      stopReason: 'newline',
      budgetActions: ['demoted 120 token-layers (90000 B)'],
    },
  },
};

async function main(): Promise<void> {
  const a = parseArgs(process.argv.slice(2));
  const n = Math.max(10, int(a, 'n', 400));
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mixsga-ipc-'));
  fs.writeFileSync(path.join(dir, 'child.js'), ECHO_CHILD);
  const child = fork(path.join(dir, 'child.js'), [], {
    serialization: 'advanced',
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const thread = new Worker(ECHO_THREAD, { eval: true });
  const viaChild = (m: unknown) =>
    new Promise<void>((res) => {
      child.once('message', () => res());
      child.send(m as object);
    });
  const viaThread = (m: unknown) =>
    new Promise<void>((res) => {
      thread.once('message', () => res());
      thread.postMessage(m);
    });
  const results: Record<string, unknown>[] = [];
  for (const kb of [6, 20, 60]) {
    const msg = {
      type: 'call',
      id: 1,
      call: {
        method: 'complete',
        req: {
          docId: 'file:///a.ts',
          languageId: 'typescript',
          prefix: text(kb * 1024),
          suffix: text(2048),
          context: [],
          maxTokens: 64,
          multiline: false,
          timeBudgetMs: 2000,
        },
      },
      reply,
    };
    for (let i = 0; i < 20; i++) {
      await viaChild(msg);
      await viaThread(msg);
    } // warm-up
    const c: number[] = [],
      t: number[] = [];
    for (let i = 0; i < n; i++) {
      // interleaved A/B
      let s = process.hrtime.bigint();
      await viaChild(msg);
      c.push(Number(process.hrtime.bigint() - s) / 1e6);
      s = process.hrtime.bigint();
      await viaThread(msg);
      t.push(Number(process.hrtime.bigint() - s) / 1e6);
    }
    const sc = stats(c),
      st = stats(t);
    results.push({
      prefixKB: kb,
      childProcessMs: { p50: ms3(sc.p50), p95: ms3(sc.p95) },
      workerThreadMs: { p50: ms3(st.p50), p95: ms3(st.p95) },
      extraPerRequestMs: ms3(sc.p50 - st.p50),
    });
  }
  child.kill();
  await thread.terminate();

  const eng = await EngineClient.start({
    modelDir: path.resolve(typeof a.model === 'string' ? a.model : defaultModelDir()),
    device: 'cpu',
    kvBudgetBytes: 64 * 2 ** 20,
  });
  const mem: number[] = [];
  for (let i = 0; i < n; i++) {
    const s = process.hrtime.bigint();
    await eng.memory();
    mem.push(Number(process.hrtime.bigint() - s) / 1e6);
  }
  await eng.dispose();
  const data = {
    tool: 'ipc-cost',
    machine: machineFacts(),
    loadavgAtEnd: os.loadavg().map(r2),
    n,
    echo: results,
    engineMemoryRoundTripMs: { p50: ms3(stats(mem).p50), p95: ms3(stats(mem).p95) },
  };
  const file = writeResult(typeof a.out === 'string' ? a.out : undefined, 'cpu', 'ipc-cost', '', data);
  console.log(JSON.stringify(data.echo), JSON.stringify(data.engineMemoryRoundTripMs));
  console.log(`ipc-cost: wrote ${file}`);
}

main().catch((e) => {
  console.error(`ipc-cost: ${(e as Error).message}`);
  process.exitCode = 1;
});
