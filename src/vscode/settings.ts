// Reads and validates the mixsga.* settings. An invalid value (settings.json is free text) is reported once per
// change and the previous valid value is kept, so one typo never stops completions or resets the budget.
import * as vscode from 'vscode';
import { kvPolicyProblem, type DeviceSetting } from '../engine/api';
import type { MultilineMode } from '../shared/multiline';

export interface MixsgaSettings {
  enabled: boolean;
  kvBudgetMB: number;
  device: DeviceSetting;
  modelPath: string;
  /** "auto" or the folder name of a shipped model (models/<name>); checked against models/ by the engine host. */
  model: string;
  maxTokens: number;
  enabledLanguages: string[];
  debounceMs: number;
  multiline: MultilineMode;
  contextFiles: number;
  /** "" = the model's manifest policy, "router", or an age-cascade spec (EngineOptions.kvPolicy). */
  kvPolicy: string;
}

export const DEFAULTS: MixsgaSettings = {
  enabled: true,
  kvBudgetMB: 64,
  device: 'auto',
  modelPath: '',
  model: 'auto',
  maxTokens: 64,
  enabledLanguages: [
    'typescript',
    'typescriptreact',
    'javascript',
    'javascriptreact',
    'python',
    'go',
    'rust',
    'java',
    'c',
    'cpp',
    'csharp',
    'php',
    'ruby',
    'shellscript',
    'lua',
    'kotlin',
    'swift',
    'scala',
    'json',
    'yaml',
    'html',
    'css',
    'markdown',
  ],
  debounceMs: 120,
  multiline: 'auto',
  contextFiles: 2,
  kvPolicy: '',
};

/** Small on purpose: tiny models need well under 1 MB per document. */
export const KV_BUDGET_MIN_MB = 0.25;
export const KV_BUDGET_MAX_MB = 16384;

const CASCADE_EXAMPLE = 'band=32,order=age,stores=g1-int8|g1-int4c|g2-int4c';

type Checked<T> = { ok: true; value: T } | { ok: false; error: string };
type Check<T> = (v: unknown) => Checked<T>;
const ok = <T>(value: T): Checked<T> => ({ ok: true, value });
const bad = <T>(error: string): Checked<T> => ({ ok: false, error });

const num =
  (min: number, max: number, integer: boolean): Check<number> =>
  (v) => {
    if (typeof v !== 'number' || !Number.isFinite(v)) return bad('must be a number');
    if (integer && !Number.isInteger(v)) return bad('must be a whole number');
    if (v < min || v > max) return bad(`must be between ${min} and ${max}`);
    return ok(v);
  };
const oneOf =
  <T extends string>(...values: T[]): Check<T> =>
  (v) =>
    typeof v === 'string' && (values as string[]).includes(v) ? ok(v as T) : bad(`must be one of ${values.join(', ')}`);

const CHECKS: { [K in keyof MixsgaSettings]: Check<MixsgaSettings[K]> } = {
  enabled: (v) => (typeof v === 'boolean' ? ok(v) : bad('must be true or false')),
  kvBudgetMB: num(KV_BUDGET_MIN_MB, KV_BUDGET_MAX_MB, false),
  device: oneOf<DeviceSetting>('auto', 'cuda', 'cpu'),
  modelPath: (v) => (typeof v === 'string' ? ok(v.trim()) : bad('must be a folder path (text)')),
  // Which names exist is known only at run time (the folders under models/): the engine host reports an unknown one.
  model: (v) =>
    typeof v === 'string' ? ok(v.trim() || 'auto') : bad('must be "auto" or the folder name of a shipped model'),
  maxTokens: num(1, 512, true),
  enabledLanguages: (v) =>
    Array.isArray(v) && v.every((x) => typeof x === 'string')
      ? ok([...(v as string[])])
      : bad('must be a list of language ids'),
  debounceMs: num(0, 2000, true),
  multiline: oneOf<MultilineMode>('auto', 'always', 'never'),
  contextFiles: num(0, 8, true),
  kvPolicy: (v) => {
    if (typeof v !== 'string') return bad('must be text');
    const why = kvPolicyProblem(v.trim());
    return why
      ? bad(`must be "" (the model's policy), "router" or an age-cascade spec like "${CASCADE_EXAMPLE}": ${why}`)
      : ok(v.trim());
  },
};

/** Validates one candidate value (also used by the Set KV Budget input box): undefined if valid, else why not. */
export function problemWith<K extends keyof MixsgaSettings>(key: K, value: unknown): string | undefined {
  const r = CHECKS[key](value);
  return r.ok ? undefined : r.error;
}

export class Settings implements vscode.Disposable {
  private value: MixsgaSettings = { ...DEFAULTS };
  private readonly emitter = new vscode.EventEmitter<{ changed: (keyof MixsgaSettings)[] }>();
  readonly onDidChange = this.emitter.event;
  private readonly sub: vscode.Disposable;
  /** Problems already shown, so an invalid value left in settings.json is reported once, not on every change. */
  private readonly reported = new Map<keyof MixsgaSettings, string>();

  constructor(private readonly log: vscode.LogOutputChannel) {
    this.reload(true);
    this.sub = vscode.workspace.onDidChangeConfiguration((e) => {
      if (e.affectsConfiguration('mixsga')) this.reload(false);
    });
  }

  get current(): Readonly<MixsgaSettings> {
    return this.value;
  }

  private reload(initial: boolean): void {
    const cfg = vscode.workspace.getConfiguration('mixsga');
    const before = this.value;
    const next = { ...this.value };
    const changed: (keyof MixsgaSettings)[] = [];
    const problems: string[] = [];
    for (const key of Object.keys(CHECKS) as (keyof MixsgaSettings)[]) {
      const raw = cfg.get<unknown>(key, DEFAULTS[key]);
      const checked = CHECKS[key](raw);
      if (!checked.ok) {
        const text = `mixsga.${key} ${checked.error} (got ${JSON.stringify(raw)}); keeping ${JSON.stringify(this.value[key])}`;
        if (this.reported.get(key) !== JSON.stringify(raw)) problems.push(text);
        this.reported.set(key, JSON.stringify(raw));
        continue;
      }
      this.reported.delete(key);
      if (JSON.stringify(checked.value) !== JSON.stringify(next[key])) {
        (next as Record<string, unknown>)[key] = checked.value;
        changed.push(key);
      }
    }
    this.value = next;
    for (const p of problems) {
      this.log.warn(`invalid setting: ${p}`);
      void vscode.window.showWarningMessage(`mixSGA: ${p}.`);
    }
    if (!initial && changed.length) {
      const show = (v: unknown): string => (Array.isArray(v) ? `[${v.length} items]` : JSON.stringify(v));
      this.log.info(`settings changed: ${changed.map((k) => `${k} ${show(before[k])} → ${show(next[k])}`).join(', ')}`);
      this.emitter.fire({ changed });
    }
  }

  dispose(): void {
    this.sub.dispose();
    this.emitter.dispose();
  }
}
