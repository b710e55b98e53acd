// Debian's chromium driven by playwright-core (persistent context: launch() rejects --user-data-dir in args).
import path from 'node:path';
import { chromium } from 'playwright-core';
import { scratchEnv } from './codeServer.mjs';

const ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

export async function launchBrowser(work, executablePath = '/usr/bin/chromium') {
  return chromium.launchPersistentContext(path.join(work, 'chromium-profile'), {
    executablePath,
    headless: true,
    viewport: { width: 1400, height: 900 },
    args: ARGS,
    env: scratchEnv(work),
  });
}
