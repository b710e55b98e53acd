// `npm run lint` step: the README's Layout table names every top-level folder and every folder of src/ that git
// tracks, so a newcomer finds each one explained.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

const readme = readFileSync('README.md', 'utf8');
const layout = readme.split(/^## Layout$/m)[1]?.split(/^## /m)[0];
if (!layout) {
  console.error('README.md: no "## Layout" section');
  process.exit(1);
}
const folders = new Set();
for (const f of execFileSync('git', ['ls-files', '-z'], { encoding: 'utf8' }).split('\0')) {
  const parts = f.split('/');
  if (parts.length > 1) folders.add(`${parts[0]}/`);
  if (parts[0] === 'src' && parts.length > 2) folders.add(`src/${parts[1]}/`);
}
const missing = [...folders].filter((d) => !layout.includes(`\`${d}`) && !layout.includes(`${d.slice(0, -1)}\``));
for (const d of missing) console.error(`README.md Layout: no row for ${d}`);
if (missing.length) process.exit(1);
