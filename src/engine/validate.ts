// Checks every number (and the shape of every request) that enters the engine, at each boundary: the client API,
// the worker protocol and the core. A bad value is refused with a message naming the field and the value; the
// engine keeps its previous valid state (NaN would otherwise poison the budget arithmetic for good, and a NaN
// token limit would loop the prompt builder forever).
import type { CompletionRequest } from './api';

export class InputError extends RangeError {
  constructor(message: string) {
    super(message);
    this.name = 'InputError';
  }
}

/** Largest budget accepted: 1 TiB (well beyond any machine; keeps the byte arithmetic exact). */
export const MAX_BUDGET_BYTES = 2 ** 40;

const show = (v: unknown) => (typeof v === 'string' ? JSON.stringify(v) : typeof v === 'number' ? String(v) : typeof v);

/** A finite number in [min, max] (whole when `integer`), else InputError naming `what`. */
export function checkNumber(v: unknown, what: string, min: number, max: number, integer = false): number {
  if (typeof v !== 'number' || !Number.isFinite(v))
    throw new InputError(`${what} must be a finite number (got ${show(v)})`);
  if (integer && !Number.isInteger(v)) throw new InputError(`${what} must be a whole number (got ${show(v)})`);
  if (v < min || v > max) throw new InputError(`${what} must be between ${min} and ${max} (got ${show(v)})`);
  return v;
}

/** A KV budget in bytes: finite, ≥ 0, ≤ 1 TiB; returned as whole bytes. */
export const checkBudgetBytes = (v: unknown): number =>
  Math.floor(checkNumber(v, 'KV budget (bytes)', 0, MAX_BUDGET_BYTES));

/** Why a completion request cannot be served, or undefined when it is well-formed. */
export function requestProblem(req: unknown): string | undefined {
  if (typeof req !== 'object' || req === null) return 'the request must be an object';
  const r = req as Partial<Record<keyof CompletionRequest, unknown>>;
  for (const k of ['docId', 'languageId', 'prefix', 'suffix'] as const) {
    if (typeof r[k] !== 'string') return `request.${k} must be a string (got ${show(r[k])})`;
  }
  if (
    !Array.isArray(r.context) ||
    !r.context.every((c) => typeof c?.path === 'string' && typeof c?.text === 'string')
  ) {
    return 'request.context must be a list of {path, text} strings';
  }
  if (typeof r.multiline !== 'boolean') return `request.multiline must be true or false (got ${show(r.multiline)})`;
  try {
    checkNumber(r.maxTokens, 'request.maxTokens', 1, 1e6, true);
    checkNumber(r.timeBudgetMs, 'request.timeBudgetMs', 0, 3_600_000);
  } catch (e) {
    return (e as Error).message;
  }
  return undefined;
}
