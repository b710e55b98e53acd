import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkBudgetBytes, requestProblem } from '../../src/engine/validate';

const good = {
  docId: 'd',
  languageId: 'ts',
  prefix: 'a',
  suffix: '',
  context: [],
  maxTokens: 8,
  multiline: false,
  timeBudgetMs: 100,
};

test('requests: every numeric field must be finite and in range, the message names the field and value', () => {
  assert.equal(requestProblem(good), undefined);
  assert.match(requestProblem({ ...good, maxTokens: NaN })!, /request\.maxTokens must be a finite number \(got NaN\)/);
  assert.match(
    requestProblem({ ...good, maxTokens: Infinity })!,
    /request\.maxTokens must be a finite number \(got Infinity\)/,
  );
  assert.match(requestProblem({ ...good, maxTokens: 0 })!, /request\.maxTokens must be between 1 and/);
  assert.match(requestProblem({ ...good, maxTokens: 2.5 })!, /request\.maxTokens must be a whole number/);
  assert.match(requestProblem({ ...good, maxTokens: '8' })!, /request\.maxTokens must be a finite number \(got "8"\)/);
  assert.match(requestProblem({ ...good, timeBudgetMs: -1 })!, /request\.timeBudgetMs must be between 0/);
  assert.match(requestProblem({ ...good, prefix: undefined })!, /request\.prefix must be a string/);
  assert.match(requestProblem({ ...good, context: [{ path: 1 }] })!, /request\.context/);
  assert.match(requestProblem(null)!, /must be an object/);
});

test('budgets: whole bytes from a finite non-negative number, else a clear error', () => {
  assert.equal(checkBudgetBytes(1000.7), 1000);
  assert.equal(checkBudgetBytes(0), 0);
  for (const bad of [NaN, Infinity, -1, '64', undefined, 2 ** 41])
    assert.throws(() => checkBudgetBytes(bad), /KV budget \(bytes\) must be/);
});
