// The engine process's resident-memory cap, enforced at idle moments (docs/soak.md). Native memory that the process
// stops using is not always given back — ORT's arena keeps the largest run's working set, glibc's heap fragments and
// cannot be trimmed from Node — so RSS would drift with how much work a process happened to see. A bound that holds
// by design: when the engine has been idle for `idleMs` and its RSS is above
//   cap = RSS of the fresh process (after its warm-up run, warmup.ts) + the KV budget + headroom,
// the client starts a fresh engine process (as clearCaches does) and prefills the last completion's document again
// in it, so the next completion there is warm; other documents are prefilled again lazily, on their next request.
// Only work (a completion, a prefill) arms the next check: an idle editor is never restarted twice. The client owns
// the process; this file decides when, and keeps the record for the memory report.
import type { MemoryReport } from './api';

export interface RssCapOptions {
  /** Idle time before RSS is checked (default 10 s): a restart never delays a request that is in flight. */
  idleMs?: number;
  /** Allowance above fresh RSS + budget for what drifts: V8's heap and dropped run outputs (collected past 16 MB,
   *  worker.ts), glibc's fragmented heap (default 64 MB, docs/soak.md). ORT's arena is not in it: the fresh RSS
   *  is read after the warm-up run, which grows the arena to the largest run's working set. */
  headroomMB?: number;
}

export const RSS_CAP_DEFAULTS = { idleMs: 10_000, headroomMB: 64 };

/** What the client lets the cap see and do. */
export interface RssCapHost {
  /** True while no call is in flight and the engine is ready. */
  idle(): boolean;
  /** The engine process's RSS in MB (undefined when it could not be read). */
  rssMB(): Promise<number | undefined>;
  budgetBytes(): number;
  /** Starts a fresh engine process and prefills the last completion's document in it; resolves when it is ready. */
  restart(why: string): Promise<void>;
}

type Restarts = NonNullable<MemoryReport['rssCap']>['restarts'];

export class RssCap {
  private timer?: NodeJS.Timeout;
  private freshMB?: number;
  private workingSetMB?: number;
  private readonly idleMs: number;
  private readonly headroomMB: number;
  private readonly restarts: Restarts = { count: 0 };
  private checking = false;
  /** Work since the last restart: without it RSS cannot have grown, so an idle engine is left alone. */
  private worked = false;

  constructor(
    private readonly host: RssCapHost,
    opts: RssCapOptions = {},
  ) {
    this.idleMs = opts.idleMs ?? RSS_CAP_DEFAULTS.idleMs;
    this.headroomMB = opts.headroomMB ?? RSS_CAP_DEFAULTS.headroomMB;
  }

  /** A fresh engine process is ready with this RSS, measured after its warm-up run (warmup.ts) so that it holds
   * ORT's working memory for the largest run: the base of the cap (the same model gives the same figure).
   * coldMB: its RSS before the warm-up, for the report. */
  freshProcess(rssMB: number | undefined, coldMB?: number): void {
    if (!(rssMB && rssMB > 0)) return;
    this.freshMB = rssMB;
    this.workingSetMB = coldMB && coldMB > 0 ? Math.max(0, rssMB - coldMB) : undefined;
  }

  capMB(): number | undefined {
    return this.freshMB === undefined ? undefined : this.freshMB + this.host.budgetBytes() / 2 ** 20 + this.headroomMB;
  }

  /** A completion or prefill started or settled: the idle clock starts again. */
  activity(): void {
    this.worked = true;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.check(), this.idleMs);
    this.timer.unref?.();
  }

  private async check(): Promise<void> {
    const cap = this.capMB();
    if (this.checking || !this.worked || cap === undefined || !this.host.idle()) return;
    this.checking = true;
    try {
      const rss = await this.host.rssMB();
      if (rss === undefined || rss <= cap || !this.host.idle()) return;
      const t0 = Date.now();
      this.worked = false;
      await this.host.restart(
        `the engine process used ${rss.toFixed(0)} MB, over its cap of ${cap.toFixed(0)} MB; restarted while idle`,
      );
      this.restarts.count++;
      this.restarts.last = {
        at: new Date(t0).toISOString(),
        rssMB: Math.round(rss * 10) / 10,
        capMB: Math.round(cap * 10) / 10,
        restartMs: Date.now() - t0,
      };
    } finally {
      this.checking = false;
    }
  }

  /** The memory report's view: the cap now and the restarts it caused. */
  report(): NonNullable<MemoryReport['rssCap']> {
    const cap = this.capMB();
    return {
      ...(cap !== undefined ? { capMB: Math.round(cap * 10) / 10 } : {}),
      ...(this.workingSetMB !== undefined ? { workingSetMB: Math.round(this.workingSetMB * 10) / 10 } : {}),
      idleMs: this.idleMs,
      headroomMB: this.headroomMB,
      restarts: { ...this.restarts },
    };
  }

  dispose(): void {
    clearTimeout(this.timer);
  }
}
