// `npm run bench [-- flags]`: runs the bundled benchmark dist/bench.js (built by esbuild.engine.mjs) with the same
// arguments. On a machine with only dist/ + production node_modules, run `node dist/bench.js ...` directly.
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const bundle = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'dist', 'bench.js');
if (!existsSync(bundle)) {
  console.error(`bench: ${bundle} not built (run: node esbuild.engine.mjs)`);
  process.exit(1);
}
createRequire(import.meta.url)(bundle);
