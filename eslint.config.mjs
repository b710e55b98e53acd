// `npm run lint`: the recommended JavaScript and TypeScript rules (syntax-only, no type information, so it stays
// fast), with the few exceptions this code base needs; formatting is prettier's job, not eslint's.
import js from '@eslint/js';
import globals from 'globals';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['test/fixtures/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: { ...globals.node } },
    rules: {
      // `any` marks JSON read from disk (manifests, benchmark results) before it is checked or printed.
      '@typescript-eslint/no-explicit-any': 'off',
      // `_`-prefixed names are deliberately unused (callback positions, destructuring).
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' }],
    },
  },
  {
    // Only src/vscode/ and src/extension.ts talk to the editor; the rest runs (and is unit-tested) in plain node.
    files: ['src/engine/**', 'src/shared/**', 'src/bench/**', 'src/cli.ts'],
    rules: {
      'no-restricted-imports': ['error', { paths: [{ name: 'vscode', message: 'only src/vscode/ may import vscode' }] }],
    },
  },
  {
    // The VS Code test suite and the e2e page scripts run inside the editor / browser.
    files: ['test/vscode-suite/**', 'test/e2e/**'],
    languageOptions: { globals: { ...globals.node, ...globals.browser } },
  },
  {
    // The network watcher patches the node modules themselves (`import x = require()`), not a bundler's copy.
    files: ['test/vscode-suite/netWatch.ts'],
    rules: { '@typescript-eslint/no-require-imports': 'off' },
  },
  {
    // Plain CommonJS scripts.
    files: ['**/*.js', '**/*.cjs'],
    rules: { '@typescript-eslint/no-require-imports': 'off' },
  },
);
