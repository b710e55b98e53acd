// The e2e workspace: a TypeScript file, a Python file and a long file, plus settings that make the fixture
// model's (random-weight) output show up reliably and keep the editor's own widgets out of the way.
import fs from 'node:fs';
import path from 'node:path';

export const WORKSPACE_SETTINGS = {
  // Junk text from a random model may start with a newline; multi-line keeps it visible as ghost text.
  'mixsga.multiline': 'always',
  'mixsga.maxTokens': 12,
  'mixsga.debounceMs': 60,
  'mixsga.kvBudgetMB': 64,
  // The suggest widget would take Tab/Enter; auto-closing/indent would alter the typed text.
  'editor.quickSuggestions': { other: 'off', comments: 'off', strings: 'off' },
  'editor.suggestOnTriggerCharacters': false,
  'editor.autoClosingBrackets': 'never',
  'editor.autoClosingQuotes': 'never',
  'editor.autoIndent': 'none',
  'editor.formatOnType': false,
  'editor.inlineSuggest.enabled': true,
  'files.autoSave': 'off',
};

export function createWorkspace(dir, settings = WORKSPACE_SETTINGS) {
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(path.join(dir, '.vscode'), { recursive: true });
  fs.writeFileSync(path.join(dir, '.vscode', 'settings.json'), JSON.stringify(settings, null, 1));
  fs.writeFileSync(
    path.join(dir, 'main.ts'),
    [
      'export interface User { id: number; name: string }',
      '',
      'export function findUser(users: User[], id: number): User | undefined {',
      '  return users.find((u) => u.id === id);',
      '}',
      '',
    ].join('\n'),
  );
  fs.writeFileSync(
    path.join(dir, 'app.py'),
    ['import os', '', 'def read_config(path):', '    with open(path) as f:', '        return f.read()', ''].join('\n'),
  );
  const long = [];
  for (let i = 0; i < 3000; i++)
    long.push(`export const item${i} = { id: ${i}, label: "item ${i}", weight: ${(i * 7) % 13} };`);
  fs.writeFileSync(path.join(dir, 'long.ts'), long.join('\n') + '\n');
  return { ts: path.join(dir, 'main.ts'), py: path.join(dir, 'app.py'), long: path.join(dir, 'long.ts') };
}

/** Code typed into the long file: many distinct lines so the KV cache keeps growing. */
export function typingChunks(count, linesPerChunk) {
  const chunks = [];
  let n = 0;
  for (let c = 0; c < count; c++) {
    const lines = [];
    for (let l = 0; l < linesPerChunk; l++, n++) {
      lines.push(
        `export function step${n}(x: number, y: number): number { const z = x * ${n % 97} + y; return z - ${n % 31}; }`,
      );
    }
    chunks.push('\n' + lines.join('\n'));
  }
  return chunks;
}
