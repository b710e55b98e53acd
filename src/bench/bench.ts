// Benchmark entry, bundled to dist/bench.js (runs with dist/ + production node_modules only; docs/benchmarks.md).
//   node dist/bench.js [--suite completion,spots] [--model DIR] [--device auto|cpu|cuda] [--budgets 1,4,16,64] [--iterations 40] [--out FILE]
//   node dist/bench.js --suite spots [--spots 24] [--keystrokes 6] [--doc-tokens 2000] [--layouts psm,spm] [--seed 1]
//   node dist/bench.js --suite suffix [--suffix-sizes 32,64,96,128,256] [--spots 16]
//   node dist/bench.js --suite lines [--cases 40]   (psm vs spm: exact rest of a cut line)
//   node dist/bench.js --suite gpu --model DIR --device cuda|cpu [--variant cpu|cuda] [--budgets 100,75,50,25] [--quick]
//   node dist/bench.js --suite cascade [--fraction 0.25] [--spots 12] [--doc-tokens 4000] [--arms full,cascade,window] [--base window]
// Exit codes: 0 ok, 1 error, 2 the benchmark cannot run as asked here (e.g. CUDA unavailable; the reason is printed).
import '../engine/fp16Guard'; // before onnxruntime-common loads: Node ≥ 24 Float16Array pitfall (session.ts)
import * as os from 'node:os';
import { parseArgs, str, defaultModelDir, machineFacts, writeResult, UnavailableError } from './common';
import { runCompletionSuite, printCompletion } from './completion';
import { runGpuSuite, printGpu } from './gpu';
import { runSpotsSuite, printSpots } from './spots';
import { runSuffixSuite, printSuffix } from './suffixTrade';
import { runLinesSuite, printLines } from './lineQuality';
import { runCascadeSuite, printCascade } from './cascadeAB';

// Printed by --help (the bundle is minified, so the comment above does not survive in dist/bench.js).
const USAGE = `node dist/bench.js [--suite completion,spots] [--model DIR] [--device auto|cpu|cuda] [--budgets 1,4,16,64] [--iterations 40] [--out FILE]
node dist/bench.js --suite spots [--spots 24] [--keystrokes 6] [--doc-tokens 2000] [--layouts psm,spm] [--seed 1]
node dist/bench.js --suite suffix [--suffix-sizes 32,64,96,128,256] [--spots 16]
node dist/bench.js --suite lines [--cases 40]   (psm vs spm: exact rest of a cut line)
node dist/bench.js --suite gpu --model DIR --device cuda|cpu [--variant cpu|cuda] [--budgets 100,75,50,25] [--quick] [--profile-runs N] [--keep-profiles]
node dist/bench.js --suite cascade [--fraction 0.25] [--spots 12] [--doc-tokens 4000] [--policy SPEC] [--arms full,cascade,window] [--base window]   (issue 19: age cascade vs window at equal bytes; A/B arms cascade-stepwise, cascade-fp32band, cascade-norecompute)
Exit codes: 0 ok, 1 error, 2 the benchmark cannot run as asked here (e.g. CUDA unavailable; the reason is printed).`;

async function main(): Promise<number> {
  const a = parseArgs(process.argv.slice(2));
  if (a.help) {
    console.log(USAGE);
    return 0;
  }
  if (typeof a.model !== 'string') a.model = defaultModelDir();
  const suites = str(a, 'suite', 'completion,spots')
    .split(',')
    .map((s) => s.trim());
  const runs = {
    gpu: [runGpuSuite, printGpu],
    completion: [runCompletionSuite, printCompletion],
    spots: [runSpotsSuite, printSpots],
    suffix: [runSuffixSuite, printSuffix],
    lines: [runLinesSuite, printLines],
    cascade: [runCascadeSuite, printCascade],
  } as const;
  for (const suite of suites)
    if (!(suite in runs))
      throw new Error(`unknown --suite ${suite} (completion | spots | suffix | lines | gpu | cascade)`);
  if (typeof a.out === 'string' && suites.length > 1) throw new Error('--out needs a single --suite');
  for (const suite of suites as (keyof typeof runs)[]) {
    const machine = machineFacts();
    const [run, print] = runs[suite];
    const { result, device, model } = await run(a);
    const data = {
      ...result,
      machine,
      argv: process.argv.slice(2),
      note: 'timings are wall clock on this machine; see machine.loadavgAtStart for other load',
    };
    data.machine = { ...machine, loadavgAtEnd: os.loadavg() };
    print(data);
    const suffix =
      suite === 'gpu'
        ? 'gpu' + (a.quick ? '-quick' : '')
        : ['spots', 'suffix', 'lines', 'cascade'].includes(suite)
          ? suite
          : '';
    const file = writeResult(typeof a.out === 'string' ? a.out : undefined, device, model, suffix, data);
    console.log(`\nwrote ${file}`);
  }
  return 0;
}

main().then(
  (code) => process.exit(code),
  (e) => {
    if (e instanceof UnavailableError) {
      console.error(`bench: cannot run: ${e.message}`);
      process.exit(2);
    }
    console.error(`bench: failed: ${(e as Error).stack ?? e}`);
    process.exit(1);
  },
);
