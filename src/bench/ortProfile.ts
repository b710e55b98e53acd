// ORT profile parsing for the gpu suite: which part of each profiled model run went to kernels, Memcpy nodes,
// the decode loop and the rest of model_run.
//
// The profile of a large model is big: every node of every profiled run is one event carrying its shapes and
// thread stats (~1 KB), so a 1.1B-parameter graph over ~100 profiled runs writes more than Node's maximum string
// length (~512 MiB) and `JSON.parse(readFileSync())` fails. The file is therefore read in 16 MiB blocks and
// scanned byte by byte for the top-level objects of its JSON array; each object is parsed on its own and only the
// fields used here are kept.
import * as fs from 'node:fs';

interface ProfEvent {
  cat: string;
  name: string;
  ts: number;
  dur: number;
  op: string;
  prov: string;
}

/** Top-level objects of a JSON array file, one at a time, without holding the file in memory. */
export function* jsonArrayObjects(file: string, blockBytes = 1 << 24): Generator<unknown> {
  const fd = fs.openSync(file, 'r');
  const buf = Buffer.allocUnsafe(blockBytes);
  let depth = 0,
    inStr = false,
    esc = false;
  let pending: Buffer[] = []; // start of an object that began in an earlier block (copied)
  try {
    for (;;) {
      const n = fs.readSync(fd, buf, 0, buf.length, null);
      if (n <= 0) break;
      let start = depth > 0 ? 0 : -1;
      for (let i = 0; i < n; i++) {
        const c = buf[i];
        if (inStr) {
          if (esc) esc = false;
          else if (c === 0x5c) esc = true;
          else if (c === 0x22) inStr = false;
          continue;
        }
        if (depth === 0) {
          if (c === 0x7b) {
            depth = 1;
            start = i;
          }
          continue;
        } // '[', ',', whitespace, ']'
        if (c === 0x22) inStr = true;
        else if (c === 0x7b) depth++;
        else if (c === 0x7d && --depth === 0) {
          const piece = buf.subarray(start, i + 1);
          const text = (pending.length ? Buffer.concat([...pending, piece]) : piece).toString('utf8');
          pending = [];
          start = -1;
          yield JSON.parse(text);
        }
      }
      if (depth > 0 && start >= 0) pending.push(Buffer.from(buf.subarray(start, n)));
    }
    if (depth > 0) throw new Error(`${file}: truncated JSON (an object is not closed)`);
  } finally {
    fs.closeSync(fd);
  }
}

function readProfileEvents(file: string): ProfEvent[] {
  const ev: ProfEvent[] = [];
  for (const o of jsonArrayObjects(file)) {
    const e = o as {
      cat?: string;
      name?: string;
      ts?: number;
      dur?: number;
      args?: { op_name?: string; provider?: string };
    };
    if (e.cat !== 'Session' && !(e.cat === 'Node' && e.name?.endsWith('_kernel_time'))) continue;
    ev.push({
      cat: e.cat,
      name: e.name ?? '',
      ts: e.ts ?? 0,
      dur: e.dur ?? 0,
      op: e.args?.op_name ?? '',
      prov: e.args?.provider ?? '?',
    });
  }
  return ev;
}

export function splitProfile(file: string, labels: (string | null)[]) {
  const ev = readProfileEvents(file);
  const runs = ev.filter((e) => e.cat === 'Session' && e.name === 'model_run').sort((a, b) => a.ts - b.ts);
  const out: Record<
    string,
    {
      modelRunMs: number;
      kernelMs: number;
      memcpyNodeMs: number;
      executorMs: number;
      outsideExecutorMs: number;
      byProvider: Record<string, number>;
      memcpyNodes: number;
      loopMs: number;
      stepNodeMs: number;
      stepNodes: number;
      stepByOp: Record<string, { n: number; ms: number }>;
    }[]
  > = {};
  if (runs.length !== labels.length)
    return { error: `profile has ${runs.length} model_run events, expected ${labels.length}`, perConfig: out };
  // Each event belongs to the last run that starts at or before it (runs do not overlap: one run at a time).
  const starts = runs.map((r) => r.ts);
  const runOf = (e: ProfEvent) => {
    let lo = 0,
      hi = starts.length - 1,
      k = -1;
    while (lo <= hi) {
      const m = (lo + hi) >> 1;
      if (starts[m] <= e.ts) {
        k = m;
        lo = m + 1;
      } else hi = m - 1;
    }
    return k >= 0 && e.ts + e.dur <= runs[k].ts + runs[k].dur + 1 ? k : -1;
  };
  const acc = runs.map(() => ({
    kernel: 0,
    memcpy: 0,
    nMem: 0,
    exec: 0,
    byProvider: {} as Record<string, number>,
    loop: 0,
    step: 0,
    nStep: 0,
    stepByOp: {} as Record<string, { n: number; ms: number }>,
  }));
  for (const e of ev) {
    if (e.cat === 'Session' && e.name === 'model_run') continue;
    const k = runOf(e);
    if (k < 0 || !labels[k]) continue;
    const a = acc[k];
    if (e.cat === 'Node') {
      // the Loop node's time encloses its body's nodes, which are recorded one by one
      if (e.op === 'Loop') {
        a.loop += e.dur;
        continue;
      }
      if (e.name.startsWith('step/')) {
        // a decode-step node (the Loop body's nodes are named step/...)
        a.step += e.dur;
        a.nStep++;
        const o = (a.stepByOp[e.op] ??= { n: 0, ms: 0 });
        o.n++;
        o.ms += e.dur / 1000;
      }
      if (e.op.startsWith('Memcpy')) {
        a.memcpy += e.dur;
        a.nMem++;
      } else {
        a.kernel += e.dur;
        a.byProvider[e.prov] = (a.byProvider[e.prov] ?? 0) + e.dur / 1000;
      }
    } else if (/Execute/.test(e.name)) a.exec = Math.max(a.exec, e.dur); // the outermost executor (the body's runs nest in it)
  }
  runs.forEach((r, i) => {
    const lab = labels[i];
    if (!lab) return;
    const a = acc[i];
    (out[lab] ??= []).push({
      modelRunMs: r.dur / 1000,
      kernelMs: a.kernel / 1000,
      memcpyNodeMs: a.memcpy / 1000,
      executorMs: a.exec / 1000,
      outsideExecutorMs: a.exec ? (r.dur - a.exec) / 1000 : NaN,
      byProvider: a.byProvider,
      memcpyNodes: a.nMem,
      loopMs: a.loop / 1000,
      stepNodeMs: a.step / 1000,
      stepNodes: a.nStep,
      stepByOp: a.stepByOp,
    });
  });
  return { perConfig: out };
}
