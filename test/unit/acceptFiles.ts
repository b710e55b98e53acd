// Real files for the accept property: the examples, test fixtures' text and the repository's own sources, with the
// language id an editor would give them.
import * as fs from 'node:fs';
import * as path from 'node:path';

const ROOT = path.resolve(__dirname, '../../..');
const LANG: Record<string, string> = {
  '.py': 'python',
  '.ts': 'typescript',
  '.mjs': 'javascript',
  '.js': 'javascript',
  '.json': 'json',
  '.sh': 'shellscript',
  '.md': 'markdown',
};

export interface RealFile {
  path: string;
  languageId: string;
  text: string;
}

export function realFiles(maxChars = 30_000): RealFile[] {
  const dirs = [
    'examples',
    'test/e2e',
    'test/vscode-suite',
    'src/engine',
    'src/engine/postprocess',
    'src/vscode',
    'src/shared',
    'scripts',
    'toolchain/mixsga',
  ];
  const out: RealFile[] = [];
  for (const d of dirs) {
    const abs = path.join(ROOT, d);
    if (!fs.existsSync(abs)) continue;
    for (const f of fs.readdirSync(abs).sort()) {
      const languageId = LANG[path.extname(f)];
      const p = path.join(abs, f);
      if (!languageId || !fs.statSync(p).isFile()) continue;
      const text = fs.readFileSync(p, 'utf8');
      if (text.length <= maxChars) out.push({ path: path.join(d, f), languageId, text });
    }
  }
  return out;
}
