// Owns the engine's lifecycle for the extension: starts it (with a progress notification), picks the model (the
// setting, else by device and cores among the shipped ones), restarts it when the model changes, forwards
// budget/device settings, and reports a failure once instead of on every keystroke.
import * as os from 'os';
import * as vscode from 'vscode';
import type { DeviceSetting, Engine, EngineOptions, EngineState } from '../engine/api';
import { budgetAdvice, MB } from '../shared/format';
import { modelFolderProblem, resolveActiveModel, type ActiveModel } from '../shared/modelPath';
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
  /** The model of the last start (what the gauge and the panel name) and why it was chosen. */
  private active: ActiveModel | undefined;
  /** The model was already switched once to follow the device the engine ended up on: never again until a
   *  setting changes (a big model that falls back to the CPU and a small one that gets CUDA must not alternate). */
  private followedDevice = false;
  /** The last mixsga.model problem shown, so one unknown name gets one warning. */
  private reportedModelProblem: string | undefined;
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
        if (changed.includes('modelPath') || changed.includes('model')) {
          this.followedDevice = false;
          void this.applyModel(changed.includes('modelPath'));
        } else if (changed.includes('kvPolicy')) void this.restart('KV policy changed (the caches are rebuilt)');
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

  /** The model the engine runs (or is loading) and why it was chosen. */
  get model(): ActiveModel | undefined {
    return this.active;
  }

  /** The device a start will most likely end on: the setting, or what 'auto' resolved to last (else the CPU: a
   *  small model loads fast, and a GPU found then brings the bigger model once, see followDevice). */
  private expectedDevice(): 'cuda' | 'cpu' {
    const d = this.settings.current.device;
    return d !== 'auto' ? d : (this.autoResolved ?? 'cpu');
  }

  private pickModel(device: 'cuda' | 'cpu'): ActiveModel {
    const folder = vscode.workspace.workspaceFolders?.[0]?.uri.fsPath;
    return resolveActiveModel(this.extensionPath, this.settings.current, device, os.availableParallelism(), folder);
  }

  get ready(): boolean {
    return this.engine?.state.kind === 'ready';
  }

  /** `device`: the device to pick the model for (default: the expected one). */
  async start(device?: 'cuda' | 'cpu'): Promise<void> {
    const gen = ++this.generation;
    const s = this.settings.current;
    const model = this.pickModel(device ?? this.expectedDevice());
    this.active = model;
    this.reportModelProblem(model.problem);
    this.failure = undefined;
    const problem = modelFolderProblem(model.dir);
    if (problem) return this.fail(gen, problem);
    this.starting = true;
    this.emitter.fire({ kind: 'loading' });
    this.log.info(
      `loading model (${model.source}: ${model.reason}) from ${model.dir}, device ${s.device}, budget ${s.kvBudgetMB} MB`,
    );
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
    if (this.engine?.state.kind === 'ready' && gen === this.generation) {
      void this.adviseOnBudget();
      await this.followDevice();
    }
  }

  /**
   * The model is picked before the engine knows its device ('auto', or CUDA that fails to start); once it runs,
   * the model for the device it runs on may be another one: restart with that one, once (followedDevice).
   */
  private async followDevice(): Promise<void> {
    const st = this.engine?.state;
    if (st?.kind !== 'ready' || !this.active) return;
    const want = this.pickModel(st.device);
    if (want.dir === this.active.dir) {
      this.active = want; // the same folder, with the reason for the device it really runs on
      this.emitter.fire(this.state);
      return;
    }
    if (this.followedDevice) {
      this.log.info(
        `running on ${st.device}; ${want.folder ?? want.dir} would fit it better, but the model was already switched once`,
      );
      return;
    }
    this.followedDevice = true;
    await this.restart(
      `running on ${st.device}: switching to model ${want.folder ?? want.dir} (${want.reason})`,
      st.device,
    );
  }

  /** mixsga.model or mixsga.modelPath changed. A new model path always restarts (the folder's files may differ);
   *  mixsga.model only when it names another folder than the one running (the new reason is shown either way). */
  private async applyModel(pathChanged: boolean): Promise<void> {
    const why = pathChanged ? 'model path changed' : 'mixsga.model changed';
    const st = this.engine?.state;
    const want = this.pickModel(st?.kind === 'ready' ? st.device : this.expectedDevice());
    if (!pathChanged && this.active && want.dir === this.active.dir && st?.kind === 'ready') {
      this.active = want;
      this.reportModelProblem(want.problem);
      this.log.info(`${why}: still ${want.folder ?? want.dir} (${want.reason}), no restart`);
      this.emitter.fire(this.state);
      return;
    }
    await this.restart(why, st?.kind === 'ready' ? st.device : undefined);
  }

  /** An unknown mixsga.model name: said once per name (the choice falls back to auto). */
  private reportModelProblem(problem: string | undefined): void {
    if (!problem) {
      this.reportedModelProblem = undefined;
      return;
    }
    if (problem === this.reportedModelProblem) return;
    this.reportedModelProblem = problem;
    this.log.warn(`invalid setting: ${problem}`);
    void vscode.window.showWarningMessage(`mixSGA: ${problem}.`);
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

  /** `device`: pick the model for this device (the one the engine ran on) instead of the expected one. */
  async restart(why: string, device?: 'cuda' | 'cpu'): Promise<void> {
    this.log.info(`restarting engine: ${why}`);
    this.starting = true; // the gauge shows loading, not "stopped", in between
    await this.stop();
    await this.start(device);
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
    const st = this.engine?.state;
    const device = st?.kind === 'ready' ? st.device : s.device;
    const modelDir = this.active?.dir ?? this.pickModel(this.expectedDevice()).dir;
    return this.factory({ modelDir, device, kvBudgetBytes, kvPolicy: s.kvPolicy || undefined });
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
    // Another device may call for another model: then a full restart with it instead of a device switch.
    this.followedDevice = false;
    const want = this.pickModel(this.expectedDevice());
    if (this.active && want.dir !== this.active.dir) {
      await this.restart(`device setting ${prev} → ${d}: model ${want.folder ?? want.dir} (${want.reason})`);
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
    await this.followDevice();
  }

  dispose(): void {
    void this.stop();
    for (const d of this.disposables) d.dispose();
    this.emitter.dispose();
  }
}
