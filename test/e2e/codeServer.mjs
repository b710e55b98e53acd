// Starts code-server 4.139.1 (VS Code 1.139.1 server + web workbench, Node 24) on 127.0.0.1 with throw-away
// dirs. HOME/XDG/TMPDIR point into the scratch dir: code-server, chromium and the TS server otherwise write
// into the real home and /tmp.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';

export function scratchEnv(work, extra = {}) {
  const home = path.join(work, 'home');
  const tmp = path.join(work, 'tmp');
  for (const d of [home, tmp]) fs.mkdirSync(d, { recursive: true });
  return {
    ...process.env,
    HOME: home,
    TMPDIR: tmp,
    XDG_CONFIG_HOME: path.join(home, '.config'),
    XDG_CACHE_HOME: path.join(home, '.cache'),
    XDG_DATA_HOME: path.join(home, '.local/share'),
    ...extra,
  };
}

function freePort() {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const p = s.address().port;
      s.close(() => resolve(p));
    });
  });
}

function waitHttp(url, ms) {
  const end = Date.now() + ms;
  return new Promise((resolve, reject) => {
    const attempt = () =>
      http
        .get(url, (r) => {
          r.resume();
          resolve();
        })
        .on('error', () =>
          Date.now() > end ? reject(new Error(`timeout waiting for ${url}`)) : setTimeout(attempt, 100),
        );
    attempt();
  });
}

const USER_SETTINGS = {
  'security.workspace.trust.enabled': false,
  'workbench.startupEditor': 'none',
  'telemetry.telemetryLevel': 'off',
  'extensions.autoCheckUpdates': false,
  'extensions.autoUpdate': false,
  'update.mode': 'none',
  'workbench.tips.enabled': false,
  'chat.disableAIFeatures': true,
  'workbench.enableExperiments': false,
  'git.enabled': false,
  'typescript.disableAutomaticTypeAcquisition': true,
};

export function baseArgs(tools, dirs) {
  return [
    tools.CS_ENTRY,
    '--config',
    dirs.config,
    '--auth',
    'none',
    '--disable-telemetry',
    '--disable-update-check',
    '--disable-workspace-trust',
    '--user-data-dir',
    dirs.userData,
    '--extensions-dir',
    dirs.extensions,
  ];
}

/** Prepares user-data for one run (extensions dir is shared so one VSIX install serves several runs). */
export function prepareDirs(work, extensionsDir) {
  const dirs = {
    work,
    userData: path.join(work, 'user-data'),
    extensions: extensionsDir,
    config: path.join(work, 'config.yaml'),
  };
  fs.rmSync(work, { recursive: true, force: true });
  fs.mkdirSync(path.join(dirs.userData, 'User'), { recursive: true });
  fs.mkdirSync(extensionsDir, { recursive: true });
  fs.writeFileSync(path.join(dirs.userData, 'User', 'settings.json'), JSON.stringify(USER_SETTINGS, null, 1));
  fs.writeFileSync(dirs.config, ''); // without --config code-server writes one with a password into $HOME
  return dirs;
}

export function installVsix(tools, dirs, vsix) {
  const r = spawnSync(tools.CS_NODE, [...baseArgs(tools, dirs), '--install-extension', vsix], {
    encoding: 'utf8',
    env: scratchEnv(dirs.work),
  });
  if (r.status !== 0) throw new Error(`--install-extension failed:\n${r.stdout}\n${r.stderr}`);
}

export async function startCodeServer(tools, dirs, { workspace, extraArgs = [], env = {} }) {
  const port = await freePort();
  const proc = spawn(
    tools.CS_NODE,
    [...baseArgs(tools, dirs), ...extraArgs, '--bind-addr', `127.0.0.1:${port}`, workspace],
    { stdio: ['ignore', 'pipe', 'pipe'], env: scratchEnv(dirs.work, env) },
  );
  const log = fs.createWriteStream(path.join(dirs.work, 'code-server.log'));
  proc.stdout.pipe(log);
  proc.stderr.pipe(log);
  await waitHttp(`http://127.0.0.1:${port}/healthz`, 60_000);
  const stop = () =>
    new Promise((resolve) => {
      if (proc.exitCode !== null) return resolve();
      const kill = setTimeout(() => {
        proc.kill('SIGKILL');
        resolve();
      }, 5_000);
      proc.on('exit', () => {
        clearTimeout(kill);
        resolve();
      });
      proc.kill('SIGTERM');
    });
  return { port, authority: `127.0.0.1:${port}`, proc, stop };
}
