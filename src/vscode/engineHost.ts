// Owns the engine's lifecycle for the extension: starts it (with a progress notification), restarts it when the
// model folder changes, forwards budget/device settings, and reports a failure once instead of on every keystroke.
import * as vscode from 'vscode';
import type { DeviceSetting, Engine, EngineOptions, EngineState } from '../engine/api';
import { budgetAdvice, MB } from '../shared/format';
import { modelFolderProblem, resolveModelDir } from '../shared/modelPath';
import type { Settings } from './settings';

export type HostState = EngineState | { kind: 'stopped' };

export type EngineFactory = (opts: EngineOptions) => Promise<Engine>;

export class EngineHost implements vscode.Disposable {
  private engine: Engine | undefined;
  private engineSub: { dispose(): void } | undefined;
  private failure: string | undefined;
  private reportedFailure: string | undefined;
  private generation = 0;
  /** What 'auto' resolved to when the engine last became ready with device 'auto'. */
  private autoResolved: 'cuda' | 'cpu' | undefined;
  private requestedDevice: DeviceSetting = 'auto';
  /** A start is under way (the model is loading): the state is 'loading', not 'stopped'. */
  private starting = true; // created to be started (activate() starts it right away)
  /** Budget (MB) last warned about as too small, so one setting gets one warning. */
  private warnedBudgetMb: number | undefined;
  /** The last too-small-budget warning (for tests and Why No Suggestion?). */
  budgetWarning: string | undefined;
  private readonly emitter = new vscode.EventEmitter<HostState>();
  /** Engine state changes and "memory may have changed" after requests. */
  readonly onDidChange = this.emitter.event;
  private readonly disposables: vscode.Disposable[] = [];

  constructor(
    private readonly extensionPath: string,
    private readonly settings: Settings,
    private readonly log: vscode.LogOutputChannel,
    private readonly factory: EngineFactory,
  ) {
    this.disposables.push(
      settings.onDidChange(({ changed }) => {
        if (changed.includes('modelPath')) void this.restart('model path changed');
        else if (changed.includes('kvPolicy')) void this.restart('KV policy changed (the caches are rebuilt)');
        else {
          if (changed.includes('kvBudgetMB')) void this.applyBudget();
          if (changed.includes('device')) void this.applyDevice();
        }
      }),
    );
  }

  get current(): Engine | undefined {
    return this.engine;
  }

  get state(): HostState {
    if (this.engine) return this.engine.state;
    if (this.failure) return { kind: 'failed', reason: this.failure };
    return this.starting ? { kind: 'loading' } : { kind: 'stopped' };
  }

  get ready(): boolean {
    return this.engine?.state.kind === 'ready';
  }

  async start(): Promise<void> {
    const gen = ++this.generation;
    const s = this.settings.current;
    const folder = vscode.workspace.workspaceFolders?.[0]?.uri.fsPath;
    const model = resolveModelDir(this.extensionPath, s.modelPath, folder);
    this.failure = undefined;
    const problem = modelFolderProblem(model.dir);
    if (problem) return this.fail(gen, problem);
    this.starting = true;
    this.emitter.fire({ kind: 'loading' });
    this.log.info(`loading model (${model.source}) from ${model.dir}, device ${s.device}, budget ${s.kvBudgetMB} MB`);
    const t0 = Date.now();
    await vscode.window.withProgress(
      { location: vscode.ProgressLocation.Notification, title: 'mixSGA: loading the completion model…' },
      async () => {
        try {
          const engine = await this.factory({
            modelDir: model.dir,
            device: s.device,
            kvBudgetBytes: s.kvBudgetMB * MB,
            kvPolicy: s.kvPolicy || undefined,
          });
          if (gen !== this.generation) {
            await engine.dispose(); // superseded by a newer start while loading
            return;
          }
          this.engine = engine;
          this.requestedDevice = s.device;
          if (engine.state.kind === 'ready' && s.device === 'auto') this.autoResolved = engine.state.device;
          this.engineSub = engine.onDidChange((st) => {
            if (st.kind === 'failed') this.reportOnce(st.reason);
            this.emitter.fire(st);
          });
          this.log.info(`engine ${engine.state.kind} in ${Date.now() - t0} ms`);
          if (engine.state.kind === 'ready' && engine.state.deviceNote)
            this.log.info(`device: ${engine.state.deviceNote}`);
          if (engine.state.kind === 'failed') this.reportOnce(engine.state.reason);
          this.emitter.fire(engine.state);
        } catch (e) {
          this.fail(gen, e instanceof Error ? e.message : String(e));
        } finally {
          if (gen === this.generation) this.starting = false;
        }
      },
    );
    if (this.engine?.state.kind === 'ready') void this.adviseOnBudget();
  }

  /** Warns once per budget value when it is too small for useful suggestions (see budgetAdvice). */
  private async adviseOnBudget(): Promise<void> {
    const mb = this.settings.current.kvBudgetMB;
    const r = await this.engine?.memory().catch(() => undefined);
    const advice = r && budgetAdvice(r.budgetBytes, r.fullBytesPerToken);
    this.budgetWarning = advice?.warning;
    if (!advice || this.warnedBudgetMb === mb) return;
    this.warnedBudgetMb = mb;
    this.log.warn(`small budget: ${advice.warning}`);
    void vscode.window.showWarningMessage(`mixSGA: ${advice.warning}`, `Set ${advice.minMb} MB`).then((pick) => {
      if (pick) void vscode.commands.executeCommand('mixsga.setKvBudget', advice.minMb);
    });
  }

  async restart(why: string): Promise<void> {
    this.log.info(`restarting engine: ${why}`);
    this.starting = true; // the gauge shows loading, not "stopped", in between
    await this.stop();
    await this.start();
  }

  private async stop(): Promise<void> {
    this.generation++;
    const e = this.engine;
    this.engine = undefined;
    this.engineSub?.dispose();
    this.engineSub = undefined;
    if (e) await e.dispose().catch((err) => this.log.warn(`engine dispose: ${String(err)}`));
    this.emitter.fire({ kind: 'stopped' });
  }

  private fail(gen: number, reason: string): void {
    if (gen !== this.generation) return;
    this.failure = reason;
    this.log.error(`engine failed: ${reason}`);
    this.reportOnce(reason);
    this.emitter.fire({ kind: 'failed', reason });
  }

  /** One message per distinct failure: a broken model folder must not spam a toast per keystroke. */
  private reportOnce(reason: string): void {
    if (this.reportedFailure === reason) return;
    this.reportedFailure = reason;
    void vscode.window
      .showErrorMessage(`mixSGA: completions are off — ${reason}`, 'Open Settings', 'Show Log')
      .then((pick) => {
        if (pick === 'Open Settings')
          void vscode.commands.executeCommand('workbench.action.openSettings', 'mixsga.modelPath');
        if (pick === 'Show Log') this.log.show(true);
      });
  }

  /**
   * A separate engine on the same model and device, with its own caches and budget (the benchmark's): nothing it
   * does can evict or demote the user's documents. The caller disposes it.
   */
  async privateEngine(kvBudgetBytes: number): Promise<Engine> {
    const s = this.settings.current;
    const model = resolveModelDir(this.extensionPath, s.modelPath, vscode.workspace.workspaceFolders?.[0]?.uri.fsPath);
    const st = this.engine?.state;
    const device = st?.kind === 'ready' ? st.device : s.device;
    return this.factory({ modelDir: model.dir, device, kvBudgetBytes, kvPolicy: s.kvPolicy || undefined });
  }

  /** Tell listeners that memory may have changed (after a request or cache clear). */
  notifyChanged(): void {
    this.emitter.fire(this.state);
  }

  private async applyBudget(): Promise<void> {
    const mb = this.settings.current.kvBudgetMB;
    if (!this.engine) return;
    try {
      const r = await this.engine.setBudget(mb * MB);
      this.log.info(`KV budget set to ${mb} MB (used ${(r.usedBytes / MB).toFixed(2)} MB)`);
      void this.adviseOnBudget();
    } catch (e) {
      this.log.error(`setBudget failed: ${String(e)}`);
    }
    this.notifyChanged();
  }

  private async applyDevice(): Promise<void> {
    const d = this.settings.current.device;
    if (!this.engine) return;
    // A device switch restarts the engine worker and drops every cache: skip it when the result would be the
    // device already in use ('cpu' on CPU, or 'auto' where 'auto' already resolved to the current device).
    const st = this.engine.state;
    const prev = this.requestedDevice;
    this.requestedDevice = d;
    if (st.kind === 'ready' && (d === st.device || (d === 'auto' && this.autoResolved === st.device))) {
      this.log.info(`device setting ${prev} → ${d}: already running on ${st.device}, no restart`);
      return;
    }
    try {
      const next = await this.engine.setDevice(d);
      this.log.info(
        `device setting ${prev} → ${d}: ${next.kind === 'ready' ? `running on ${next.device}` : `engine ${next.kind}`}`,
      );
      if (next.kind === 'ready' && d === 'auto') this.autoResolved = next.device;
      if (next.kind === 'ready' && next.deviceNote) {
        this.log.warn(`device: ${next.deviceNote}`);
        // Asked for CUDA explicitly: say it did not work. With 'auto', the CPU is an expected outcome.
        if (d === 'cuda') void vscode.window.showWarningMessage(`mixSGA: ${next.deviceNote}`);
      }
    } catch (e) {
      this.log.error(`setDevice failed: ${String(e)}`);
    }
    this.notifyChanged();
  }

  dispose(): void {
    void this.stop();
    for (const d of this.disposables) d.dispose();
    this.emitter.dispose();
  }
}
