// The fixture model (test/fixtures/fixture-tiny) and the engine process the integration tests start on it. Bundled
// into each test file, so __dirname is that test's folder in out/test/integration/ (the worker is copied there).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { EngineClient, type EngineStartOptions } from '../../src/engine/client';
import type { CompletionRequest } from '../../src/engine/api';

export const FIXTURE = path.resolve(__dirname, '../../../test/fixtures/fixture-tiny');
export const WORKER = path.join(__dirname, 'worker.js');
export const haveFixture = fs.existsSync(path.join(FIXTURE, 'manifest.json'));
export const skip = haveFixture ? false : `fixture not found at ${FIXTURE}`;

/** A TypeScript request of up to 8 tokens, on one line, with a minute to run; `o` overrides any field. */
export const fixtureRequest = (
  docId: string,
  prefix: string,
  suffix: string,
  o: Partial<CompletionRequest> = {},
): CompletionRequest => ({
  docId,
  languageId: 'typescript',
  prefix,
  suffix,
  context: [],
  maxTokens: 8,
  multiline: false,
  timeBudgetMs: 60_000,
  ...o,
});

/** An engine process on the fixture model, on the CPU, with this KV budget; `o` adds or overrides start options. */
export const startOnFixture = (kvBudgetBytes: number, o: Partial<EngineStartOptions> = {}): Promise<EngineClient> =>
  EngineClient.start({ modelDir: FIXTURE, device: 'cpu', kvBudgetBytes, workerPath: WORKER, ...o });

/** Bytes one token of KV takes at full precision, asked of a short-lived engine (budgets are set in tokens). */
export async function fullBytesPerToken(): Promise<number> {
  const probe = await startOnFixture(1 << 30);
  try {
    return (await probe.memory()).fullBytesPerToken;
  } finally {
    await probe.dispose();
  }
}
