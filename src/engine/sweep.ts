/**
 * Claim and intent: one sweep leases due rows and writes what each needs in
 * the same transaction (HotPathStore.claim), committed before any gateway is
 * called, then hands the calls to the dispatcher.
 *
 * - collect: the attempt row (in_flight, key `<subscriptionId>:<cycle>:<attempt>`)
 *   and the pointer `reconcile` at the lease's end, so a process that dies
 *   with the call out leaves a row the next sweep settles by asking the gateway;
 * - reconcile / poll: the attempt row is read; its status query is made;
 * - pause / resume / end: the lifecycle step is written and the lease given back;
 * - a gateway whose circuit breaker is open gets no intent: the row is given
 *   back due when the breaker lets a probe through, so the loop sleeps until then.
 *
 * Never more rows than the dispatch queue has room for (Holdings). One `now`
 * for the whole batch: the due check, the intents and their events.
 */
import type { Logger } from 'pino';
import type { Clock } from '../clock.js';
import {
  applyEnd,
  applyScheduledPause,
  beginAttempt,
  cycleDueAt,
  dueStep,
  idempotencyKey,
  resume,
  type Step,
  type Subscription,
  type Transition,
} from '../domain/index.js';
import type { Claimed, ClaimDecision, HotPathStore, OutcomeBatch, OutcomeWritten } from '../store/index.js';
import type { CircuitBreakers } from './circuit.js';
import type { Dispatcher } from './dispatch.js';
import type { Holdings } from './holdings.js';
import { logSkipped, logSubscription, moneyFields } from './log-lines.js';
import type { EngineObserver } from './observer.js';
import { nextTurn } from './time-slice.js';

/** What one sweep did (logged as one line when it did anything). */
export interface SweepReport {
  readonly claimed: number;
  readonly started: number;
  readonly reconciling: number;
  readonly lifecycle: number;
  readonly skippedCycles: number;
  readonly released: number;
  /** true: the clock guard held the sweep (nothing claimed). */
  readonly held: boolean;
}

const NOTHING: SweepReport = { claimed: 0, started: 0, reconciling: 0, lifecycle: 0, skippedCycles: 0, released: 0, held: false };

export interface SweeperDeps {
  readonly store: HotPathStore;
  /** The batch instant. */
  readonly clock: Clock;
  /** The clock guard's trusted instant, the circuit breakers' clock (how long an open one stays open). */
  readonly trustedNow: () => number;
  /** Durations: elapsed time, not the wall clock. */
  readonly elapsedMs: () => number;
  readonly holdings: Holdings;
  readonly circuits: CircuitBreakers;
  readonly dispatcher: Dispatcher;
  readonly logger: Logger;
  readonly observe: Required<EngineObserver>;
  /** Lease owner prefix of this engine: claims are `<owner>/<n>`. */
  readonly owner: string;
  readonly leaseMs: number;
  readonly stopping: () => boolean;
  /** Checks the clock guard (logging each change once); true: it holds, claim nothing. */
  readonly clockHeld: () => boolean | Promise<boolean>;
}

/** Outcomes a sweep's claim records in its transaction (claimAlong), and what recording them did. */
interface Along {
  readonly outcomes: OutcomeBatch;
  /** Rows those outcomes finish: the room they make. */
  readonly finishing: number;
  /** Set once they are committed. */
  written: OutcomeWritten[] | undefined;
}

/** A row the calendar or the lifecycle refused inside the claim: logged once the claim committed. */
interface Refusal {
  readonly subscriptionId: string;
  readonly step: Step;
  readonly err: unknown;
}

export class Sweeper {
  sweeps = 0;
  lastSweepAt: number | null = null;
  attemptsStarted = 0;
  private claimSeq = 0;
  private inProgress: Promise<SweepReport> | null = null;
  /** The last claim took all the room it asked for: due rows may be waiting (claimAlong is worth it). */
  private moreDue = false;
  /** The sweep in progress, if any; never rejects (stop waits for it). */
  running: Promise<void> | null = null;

  constructor(private readonly deps: SweeperDeps) {}

  /** One sweep; a call while one runs joins it (sweeps never overlap). */
  sweep(): Promise<SweepReport> {
    return this.inProgress ?? this.track(this.sweepOnce());
  }

  /**
   * The group-commit writer's hook (GroupCommitWriter.claimAlong): while the
   * last claim left due work behind, the next claim rides in the transaction
   * that records `finishing` outcomes, whose rows make the room it takes.
   * Zero latency alternated a claim commit and an outcome commit; now one
   * commit ends a batch and starts the next. The intent rule holds: the new
   * attempt rows are committed before any of their calls is made, as
   * afterCommit runs after that commit. Null (no sweep worth making now, or
   * one under way): the writer records the outcomes alone.
   */
  claimAlong(finishing: number): ((outcomes: OutcomeBatch) => Promise<OutcomeWritten[]>) | null {
    if (this.inProgress || !this.moreDue || this.deps.stopping() || !this.deps.holdings.wantsWorkAfter(finishing)) return null;
    return async (outcomes) => {
      const along: Along = { outcomes, finishing, written: undefined };
      try {
        // The event loop turns first, as the loop lets it after each claim: batch after batch answered in
        // microtasks and committed synchronously (SQLite) would otherwise hold timers, signals and the
        // HTTP server until the whole backlog is collected.
        const { held: _held, ...counts } = await this.track(nextTurn(this.deps.clock).then(() => this.sweepOnce(along)));
        // The rows whose outcomes it recorded finish a few microtasks later: not counted as held.
        if (counts.claimed > 0) this.deps.logger.info({ ...counts, active: this.deps.holdings.active - finishing, withOutcomes: outcomes.items.length }, 'sweep');
        // sweepOnce records the outcomes on every path that returns.
        return along.written!;
      } catch (err) {
        // Failed before its commit: the writer records the outcomes on their own, and the loop sweeps again.
        if (along.written === undefined) throw err;
        // Failed after it (giving back rows whose attempt row is missing): the outcomes are recorded.
        this.deps.logger.error({ err }, 'sweep failed after its commit; the leases left will expire');
        return along.written;
      }
    };
  }

  /** Makes `sweeping` the sweep in progress (joined by sweep(), awaited by stop) and observes it. */
  private track(sweeping: Promise<SweepReport>): Promise<SweepReport> {
    const { elapsedMs, observe } = this.deps;
    const startedAt = elapsedMs();
    const seconds = () => Math.max(0, elapsedMs() - startedAt) / 1000;
    this.inProgress = sweeping
      .then(
        (report) => {
          observe.sweepFinished({ seconds: seconds(), claimed: report.claimed, ok: true, held: report.held });
          return report;
        },
        (err: unknown) => {
          observe.sweepFinished({ seconds: seconds(), claimed: 0, ok: false, held: false });
          throw err;
        },
      )
      .finally(() => {
        this.inProgress = null;
        this.running = null;
      });
    this.running = this.inProgress.then(
      () => undefined,
      () => undefined,
    );
    return this.inProgress;
  }

  /** One sweep; `along`: outcomes its claim records first (claimAlong), recorded alone when nothing is claimed. */
  private async sweepOnce(along?: Along): Promise<SweepReport> {
    const { store, clock, holdings, leaseMs, owner } = this.deps;
    const alone = async (report: SweepReport): Promise<SweepReport> => {
      if (along) along.written = await store.recordOutcomes(along.outcomes.now, along.outcomes.items);
      return report;
    };
    if (this.deps.stopping()) return alone(NOTHING);
    // A stepped wall clock must not drive billing: no claims at all (no catch-up skipping either).
    if (await this.deps.clockHeld()) return alone({ ...NOTHING, held: true });
    const now = clock.now();
    this.sweeps++;
    this.lastSweepAt = now;
    // Sweeps never overlap and completions only lower the holdings, so this room still holds at the claim.
    const finishing = along?.finishing ?? 0;
    const room = holdings.room + finishing;
    if (room <= 0) return alone(NOTHING);
    const token = `${owner}/${++this.claimSeq}`;
    const refusals: Refusal[] = [];
    const steps = new Map<string, Step>();
    // A claim that fails writes nothing (not even the leases): the loop backs off and retries.
    // The batch's instant is the store's: this clock on SQLite, the database's clock on PostgreSQL.
    const {
      now: at,
      claimed,
      written,
    } = await store.claim(
      { token, now, limit: room, leaseMs },
      (rows, batchNow) => rows.map((row) => this.decide(row.subscription, batchNow, refusals, steps)),
      along?.outcomes,
    );
    if (along) along.written = written;
    // A claim that took all the room it asked for may have left due rows behind.
    this.moreDue = claimed.length >= room;
    holdings.hold(claimed.length, finishing);
    if (claimed.length === 0) return NOTHING;
    return this.afterCommit(claimed, token, at, refusals, steps);
  }

  /** What one claimed row needs; runs inside the claim's transaction, so it is pure and synchronous. */
  private decide(sub: Subscription, now: number, refusals: Refusal[], steps: Map<string, Step>): ClaimDecision {
    const step = dueStep(sub, now);
    switch (step) {
      case 'pause':
      case 'resume':
      case 'end':
        steps.set(sub.id, step);
        try {
          const transition: Transition = step === 'pause' ? applyScheduledPause(sub, now) : step === 'resume' ? resume(sub, now) : applyEnd(sub, now);
          return { kind: 'settle', transition };
        } catch (err) {
          // One row's refused transition must not hold back the batch: its lease runs out and it is tried again.
          refusals.push({ subscriptionId: sub.id, step, err });
          return { kind: 'keep' };
        }
      case 'collect': {
        // No intent for a call known to fail: the row waits, due when the breaker lets a probe through.
        // The breaker counts on this host's clock, the row's work instant on the batch's (PostgreSQL: the
        // database's): what is carried over is how long the breaker stays open. Its instant as such put
        // the row in the database's past from a host behind it (claimed and given back at once, again
        // and again while the breaker stayed open) and held it back as much from a host ahead.
        const { circuits } = this.deps;
        if (!circuits.allowAttempt(sub.gateway)) {
          const retryAt = circuits.retryAt(sub.gateway);
          return { kind: 'release', dueAt: retryAt === null ? now : now + Math.max(0, retryAt - this.deps.trustedNow()) };
        }
        try {
          const begun = beginAttempt(sub, now, now + this.deps.leaseMs);
          return { kind: 'begin', transition: begun, attempt: { key: begun.key, cycle: begun.cycle, attempt: begun.attempt } };
        } catch (err) {
          // A row the calendar refuses (say a time zone this runtime no longer knows) must not hold
          // back the batch: it keeps its lease, so it is retried (and logged) once per lease period.
          refusals.push({ subscriptionId: sub.id, step, err });
          return { kind: 'keep' };
        }
      }
      case 'reconcile':
      case 'poll':
        return { kind: 'query', key: idempotencyKey(sub.id, sub.nextCycle, sub.nextAttempt) };
      case 'none':
        return { kind: 'release' };
    }
  }

  /** After the claim's commit: log, account, and queue the gateway calls (open attempts first, as claimed). */
  private async afterCommit(claimed: Claimed[], token: string, now: number, refusals: Refusal[], steps: Map<string, Step>): Promise<SweepReport> {
    const { holdings, dispatcher, logger, observe } = this.deps;
    for (const r of refusals) {
      if (r.step === 'collect') logger.error({ err: r.err, subscriptionId: r.subscriptionId }, 'cannot start an attempt; will retry when the lease expires');
      else logger.error({ err: r.err, subscriptionId: r.subscriptionId, step: r.step }, 'lifecycle step refused; will retry when the lease expires');
    }
    let started = 0;
    let reconciling = 0;
    let lifecycle = 0;
    let released = 0;
    let heldByCircuit = 0;
    let skippedCycles = 0;
    const missing: string[] = [];
    for (const c of claimed) {
      const d = c.decision;
      switch (d.kind) {
        case 'begin': {
          const sub = d.transition.subscription;
          started++;
          skippedCycles += logSkipped(logger, observe, sub.id, d.transition.events);
          if (logger.isLevelEnabled('debug')) logger.debug({ subscriptionId: sub.id, key: d.attempt.key, ...moneyFields(sub, d.attempt.cycle) }, 'attempt started');
          dispatcher.enqueue({
            kind: 'send',
            subscription: sub,
            version: c.version,
            token,
            attempt: { key: d.attempt.key, cycle: d.attempt.cycle, attempt: d.attempt.attempt, mode: sub.mode, state: 'in_flight', sends: 1, createdAt: now },
            dueAt: dueInstant(c.subscription, d.attempt.cycle, now),
          });
          break;
        }
        case 'settle': {
          const sub = d.transition.subscription;
          const step = steps.get(sub.id);
          lifecycle++;
          logSubscription(logger, sub, { step, status: sub.status, terminationType: sub.terminationType }, `subscription ${step}`);
          skippedCycles += logSkipped(logger, observe, sub.id, d.transition.events);
          break;
        }
        case 'query':
          if (c.attempt === undefined) {
            logger.error({ subscriptionId: c.subscription.id, key: d.key }, 'attempt row missing; releasing');
            missing.push(c.subscription.id);
            break;
          }
          reconciling++;
          dispatcher.enqueue({ kind: 'status', subscription: c.subscription, version: c.version, token, attempt: c.attempt });
          break;
        case 'release':
          if (d.dueAt === undefined) released++;
          else heldByCircuit++;
          break;
        case 'keep':
          break;
      }
    }
    this.attemptsStarted += started;
    // Rows given back not due (nothing to do, an open circuit) or refused wait for a later instant:
    // no wake-up. Lifecycle steps done free room for due work that may be waiting: wake up.
    holdings.drop(released + heldByCircuit + refusals.length);
    holdings.finish(lifecycle);
    if (heldByCircuit && logger.isLevelEnabled('debug')) {
      logger.debug({ held: heldByCircuit, circuits: this.deps.circuits.views().filter((v) => v.state !== 'closed') }, 'circuit open; collections held');
    }
    if (missing.length) {
      try {
        await this.deps.store.release(token, missing);
      } finally {
        // Released or not (their leases then run out), these rows are no longer this engine's.
        holdings.finish(missing.length);
      }
    }
    return { claimed: claimed.length, started, reconciling, lifecycle, skippedCycles, released, held: false };
  }
}

/**
 * When the attempt about to start became due, for the scheduling lag: the
 * retry's action instant, or the due instant of the cycle collected (a
 * catch-up collects a later cycle than the one the row pointed at).
 */
function dueInstant(row: Subscription, cycle: number, now: number): number {
  let due = row.actionAt ?? now;
  try {
    due = Math.max(due, cycleDueAt(row, cycle));
  } catch {
    // beginAttempt already accepted this schedule; a refusal here only loses the refinement.
  }
  return due;
}
