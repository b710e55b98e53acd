// Runs the same in-host suite in desktop VS Code via @vscode/test-electron, for developers' machines.
// It cannot run on our CI machines: test-electron downloads VS Code from Microsoft's update server, which is
// unreachable there (see /work/shared/docs/vscode-e2e.md §2); test/e2e/run.mjs runs the suite in code-server.
import { runTests } from '@vscode/test-electron';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
try {
  await runTests({
    version: '1.90.0',
    extensionDevelopmentPath: root,
    extensionTestsPath: path.join(root, 'out/test/vscode-suite/index.js'), // built by esbuild.mjs
    launchArgs: ['--disable-extensions', '--disable-workspace-trust'],
  });
} catch (e) {
  console.error(e);
  process.exit(1);
}
