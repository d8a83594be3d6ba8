/**
 * The wake-up loop (DESIGN.md "Waking on time"): sweep, then sleep until the
 * earliest instant some row becomes claimable (capped at maxSleepMs); a kick
 * (a finished job, the node-cron safety net, an API change) wakes it at once.
 * A failing sweep backs off exponentially and is logged once per interval; a
 * holding clock guard is re-checked about once a second with no database work.
 */
import type { Logger } from 'pino';
import type { Clock } from '../clock.js';
import { iso } from '../domain/index.js';
import type { Holdings } from './holdings.js';
import type { SweepReport } from './sweep.js';
import { CANCELLED, nextTurn } from './time-slice.js';

/** Failing sweeps wait this long after the first failure, doubling up to SWEEP_BACKOFF_MAX_MS. */
const SWEEP_BACKOFF_MIN_MS = 100;
const SWEEP_BACKOFF_MAX_MS = 30_000;
/** A failure already logged is logged again (with how often it recurred) at most once per this interval. */
const FAILURE_LOG_INTERVAL_MS = 60_000;
/** While the clock guard holds, the loop re-checks the clocks this often (no database work meanwhile). */
const CLOCK_RECHECK_MS = 1_000;

/**
 * Logs a failure once per distinct message per FAILURE_LOG_INTERVAL_MS: the
 * first time with its stack, then one line saying how often it recurred.
 */
export class FailureLog {
  /** Last time each distinct failure was logged, and how often it happened since. */
  private readonly seen = new Map<string, { at: number; suppressed: number }>();

  constructor(
    private readonly logger: Logger,
    private readonly now: () => number,
  ) {}

  report(what: string, err: unknown, fields: Record<string, unknown> = {}): void {
    const message = err instanceof Error ? `${(err as { code?: string }).code ?? err.name}: ${err.message}` : String(err);
    const key = `${what}\u0000${message}`;
    const at = this.now();
    const seen = this.seen.get(key);
    if (seen && at - seen.at < FAILURE_LOG_INTERVAL_MS && at >= seen.at) {
      seen.suppressed++;
      return;
    }
    this.seen.set(key, { at, suppressed: 0 });
    if (seen) this.logger.error({ error: message, repeated: seen.suppressed + 1, ...fields }, `${what} (still failing)`);
    else this.logger.error({ err, ...fields }, what);
  }

  clear(): void {
    this.seen.clear();
  }
}

export interface WakeUpLoopDeps {
  readonly clock: Clock;
  readonly logger: Logger;
  readonly holdings: Holdings;
  readonly failures: FailureLog;
  /** Longest sleep between sweeps. */
  readonly maxSleepMs: number;
  readonly sweep: () => Promise<SweepReport>;
  /** The earliest instant some row becomes claimable, or null. */
  readonly nextWakeAt: () => Promise<number | null>;
}

export class WakeUpLoop {
  /** Sweeps failed in a row (0: the last one worked). */
  sweepFailures = 0;
  sweepError: string | null = null;
  private kicked = false;
  private stopping = false;
  private sleeper: AbortController | null = null;
  /** The instant the current sleep ends (meaningful while `sleeper` is set). */
  private sleepingUntil = 0;
  /** Aborted by stop: cuts short the sleeps that kicks must not (backoff, clock hold). */
  private readonly stopSignal = new AbortController();
  private done: Promise<void> | null = null;

  constructor(private readonly deps: WakeUpLoopDeps) {}

  get running(): boolean {
    return this.done !== null;
  }

  start(): void {
    this.done ??= this.loop();
  }

  /**
   * Wakes the loop now: more work may be claimable. `dueAt` (see Engine.kick):
   * work that becomes due at or after the end of the current sleep needs no
   * kick, since the sweep that ends it reads the rows committed before it, and
   * the next sleep is computed from them. Only a sleeping loop is left alone: a
   * sweep under way may have read before the change, so it sweeps again.
   */
  kick(dueAt?: number | null): void {
    if (dueAt === null) return;
    if (dueAt !== undefined && this.sleeper !== null && dueAt >= this.sleepingUntil) return;
    this.kicked = true;
    // Every finished job kicks: abort the sleep once (an abort is not free, even a no-op one).
    const sleeper = this.sleeper;
    this.sleeper = null;
    sleeper?.abort(CANCELLED);
  }

  /** Ends the loop after its current sweep. */
  async stop(): Promise<void> {
    this.stopping = true;
    const sleeper = this.sleeper;
    this.sleeper = null;
    sleeper?.abort();
    this.stopSignal.abort();
    await this.done;
  }

  /** Sleeps `ms` (from now); only stop cuts it short, kicks do not (a backoff must hold). */
  private async pause(ms: number): Promise<void> {
    const { clock } = this.deps;
    await clock.sleepUntil(clock.now() + ms, this.stopSignal.signal);
  }

  private async loop(): Promise<void> {
    const { clock, logger, holdings, failures, maxSleepMs } = this.deps;
    while (!this.stopping) {
      this.kicked = false;
      let report: SweepReport;
      try {
        report = await this.deps.sweep();
      } catch (err) {
        // A failing sweep (disk full, database gone) backs off exponentially, capped, and logs each
        // distinct error once per interval: retrying at once only burns CPU and floods the log.
        this.sweepFailures++;
        this.sweepError = err instanceof Error ? err.message : String(err);
        const waitMs = Math.min(SWEEP_BACKOFF_MAX_MS, SWEEP_BACKOFF_MIN_MS * 2 ** Math.min(this.sweepFailures - 1, 20));
        failures.report('sweep failed; backing off', err, { failures: this.sweepFailures, retryInMs: waitMs });
        await this.pause(waitMs);
        continue;
      }
      if (this.sweepFailures) {
        logger.warn({ failures: this.sweepFailures }, 'sweeps work again');
        this.sweepFailures = 0;
        this.sweepError = null;
        failures.clear();
      }
      if (this.stopping) break;
      if (report.held) {
        // Nothing is claimed while the clock guard holds: re-check the clocks now and then.
        await this.pause(Math.min(CLOCK_RECHECK_MS, maxSleepMs));
        continue;
      }
      const now = clock.now();
      let wakeAt = now + maxSleepMs;
      // With little room (the queue still full), due work waits for rows to finish: their kick comes when a claim is worth its commit.
      if (!this.kicked && holdings.wantsWork) {
        try {
          const next = await this.deps.nextWakeAt();
          if (next !== null) wakeAt = Math.min(wakeAt, Math.max(next, now + 1));
        } catch (err) {
          failures.report('could not read the next due instant', err);
        }
      }
      if (report.claimed > 0) {
        const { held: _held, ...counts } = report;
        logger.info({ ...counts, active: holdings.active, nextWakeAt: iso(this.kicked ? now : wakeAt) }, 'sweep');
      }
      if (this.kicked) {
        // More work is waiting. After a sweep that claimed work, yield to timers and signals first
        // (the store settles in microtasks, so a loop that never yields would starve SIGTERM). A
        // kick during a sweep that found nothing (a job finished, an API change) sweeps again at once.
        if (report.claimed > 0) await nextTurn(clock);
        continue;
      }
      // A stop during the awaits above found no sleeper to cut short: it must not find one started after it.
      if (this.stopping) break;
      const sleeper = new AbortController();
      this.sleeper = sleeper;
      this.sleepingUntil = wakeAt;
      await clock.sleepUntil(wakeAt, sleeper.signal);
      if (this.sleeper === sleeper) this.sleeper = null;
      // Cut short by a kick (rows finished in microtasks, as a zero-latency gateway's do): let timers,
      // I/O and signals run before the next sweep, or the HTTP server would wait for the whole backlog.
      if (sleeper.signal.aborted && report.claimed > 0) await nextTurn(clock);
    }
  }
}
