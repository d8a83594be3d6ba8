/**
 * The billing engine: sweep, claim with leases, bounded dispatch, attempt
 * recording and reconciliation (SPEC sections 6 and 7, DESIGN.md).
 *
 * How money stays safe:
 * 1. A sweep claims due subscriptions by writing a lease (owner + expiry) on
 *    their rows, never more than the dispatch queue has room for; the rest
 *    waits in the database.
 * 2. Intent: for the whole claimed batch, the attempt rows (state in_flight,
 *    idempotency key `<subscriptionId>:<cycle>:<attempt>`) and the
 *    subscriptions' pointer `reconcile` are committed in ONE transaction
 *    before any gateway is called.
 * 3. Call: each attempt goes through p-queue (concurrency + rate limit) to its
 *    gateway with that key.
 * 4. Outcome: a group-commit writer records attempt state, the subscription's
 *    next step and the events in one transaction per batch, re-reading each
 *    row and checking the lease inside it. Nothing that depends on an outcome
 *    happens before its flush.
 * A process that dies between 2 and 4 leaves rows whose pointer says
 * `reconcile` and whose lease expires: the next sweep asks the gateway about
 * the same key (captured -> recorded, declined -> recorded, never seen ->
 * re-sent with the same key). A new key is made only for a new attempt number.
 */
import { hostname } from 'node:os';
import PQueue from 'p-queue';
import type { Logger } from 'pino';
import type { Clock } from '../clock.js';
import {
  applyEnd,
  applyScheduledPause,
  beginAttempt,
  cycleDueAt,
  dueStep,
  idempotencyKey,
  iso,
  resume,
  skippedSummary,
  type AttemptInfo,
  type DomainEvent,
  type CollectionPolicy,
  type Outcome,
  type Step,
  type Subscription,
  type Transition,
} from '../domain/index.js';
import { RebillError } from '../errors.js';
import { formatAmount } from '../money/index.js';
import { GatewayUnavailableError, type CollectRequest, type Gateway, type GatewayResult, type StatusResult } from '../gateways/gateway.js';
import {
  claimDue,
  getAttempt,
  getRows,
  inTransaction,
  insertAttempts,
  latestChangeAt,
  nextWakeAt,
  processAlive,
  releaseLeases,
  extendLeases,
  expireLeases,
  leaseOwners,
  skippedCyclesSince,
  writeTransitions,
  type AttemptIntent,
  type Db,
} from '../store/index.js';
import { CircuitBreakers, type CircuitOptions, type CircuitView } from './circuit.js';
import { ClockGuard, type ClockGuardState } from './clock-guard.js';
import { safeObserver, type EngineObserver } from './observer.js';
import { GroupCommitWriter } from './writer.js';

export type { ClockGuardState } from './clock-guard.js';

/** Failing sweeps wait this long after the first failure, doubling up to SWEEP_BACKOFF_MAX_MS. */
const SWEEP_BACKOFF_MIN_MS = 100;
const SWEEP_BACKOFF_MAX_MS = 30_000;
/** A failure already logged is logged again (with how often it recurred) at most once per this interval. */
const FAILURE_LOG_INTERVAL_MS = 60_000;
/** While the clock guard holds, the loop re-reads the clocks this often (no database work meanwhile). */
const CLOCK_RECHECK_MS = 1_000;

export interface EngineOptions {
  /** Parallel gateway calls (scheduler.concurrency). */
  readonly concurrency: number;
  /** Gateway calls started per second (scheduler.ratePerSecond); null: unlimited (simulate). */
  readonly ratePerSecond: number | null;
  /** Lease length in ms; must exceed every gateway timeout. */
  readonly leaseMs: number;
  /** Most subscriptions held in memory at once (claimed, queued, in flight, awaiting flush). */
  readonly queueBound: number;
  /** Longest sleep between sweeps when nothing is due (the node-cron sweep also wakes the loop). */
  readonly maxSleepMs: number;
  /** Wall vs monotonic clock disagreement between sweeps beyond which no attempt starts (scheduler.maxClockJumpSeconds). */
  readonly maxClockJumpMs: number;
  readonly policy: CollectionPolicy;
  /** Per-gateway circuit breaker; default 10 failures in a row, 30 s open (SPEC section 6). */
  readonly circuit?: Partial<CircuitOptions>;
}

export interface EngineDeps {
  readonly db: Db;
  readonly clock: Clock;
  readonly gateways: ReadonlyMap<string, Gateway>;
  readonly logger: Logger;
  readonly options: EngineOptions;
  /** Lease owner prefix; default host:pid:random. */
  readonly owner?: string;
  /** Told about gateway calls, sweeps and skipped cycles (metrics); its errors never reach the engine. */
  readonly observer?: EngineObserver;
}

export interface EngineStats {
  /** Subscriptions currently held in memory by this engine. */
  readonly active: number;
  /** Highest `active` ever seen: never above options.queueBound. */
  readonly highWater: number;
  /** Highest p-queue size + pending ever seen. */
  readonly queueHighWater: number;
  readonly sweeps: number;
  readonly lastSweepAt: number | null;
  readonly attemptsStarted: number;
  /** Gateway calls that were actually made (sends and status queries). */
  readonly gatewayCalls: number;
  readonly outcomesRecorded: number;
  /** Per-gateway circuit breakers (the same as `circuits()`). */
  readonly circuits: readonly CircuitView[];
  readonly clockGuard: ClockGuardState;
  /** Sweeps failed in a row (0: the last one worked). */
  readonly sweepFailures: number;
}

/** What readiness (`/readyz`) needs from the engine. */
export interface EngineHealth {
  /** false: the engine is not collecting (clock guard holding, or sweeps failing). */
  readonly ok: boolean;
  readonly clockGuard: ClockGuardState;
  readonly sweep: { readonly ok: boolean; readonly failures: number; readonly error: string | null };
}

/** What `stop` did, told truthfully: every committed attempt is either recorded or left for reconciliation. */
export interface StopReport {
  /** true: nothing is left for the next start to reconcile. */
  readonly drained: boolean;
  /** Attempt intents committed by this daemon (in_flight rows written before a gateway call). */
  readonly attemptsStarted: number;
  /** Gateway calls made (sends and status queries). */
  readonly gatewayCalls: number;
  /** Outcomes recorded. */
  readonly outcomesRecorded: number;
  /** Queued calls never made: their rows were given back due now, for the next start to settle with the same key. */
  readonly unsent: number;
  /** Calls still waiting on the gateway after drainSeconds: their attempts stay in_flight until reconciled. */
  readonly abandonedInFlight: number;
  /** unsent + abandonedInFlight. */
  readonly leftForReconciliation: number;
}

/** What one sweep did (logged as one line when it did anything). */
interface SweepReport {
  readonly claimed: number;
  readonly started: number;
  readonly reconciling: number;
  readonly lifecycle: number;
  readonly skippedCycles: number;
  readonly released: number;
  readonly held: boolean;
}

/** A gateway call to make; `attempt` is known for a fresh send (the intent just wrote it), read from the row otherwise. */
interface Job {
  readonly kind: 'send' | 'status';
  readonly sub: Subscription;
  readonly key: string;
  readonly token: string;
  readonly attempt?: AttemptInfo;
  /** Fresh sends: the instant the attempt became due, for the scheduling lag. */
  readonly dueAt?: number;
}

/** The engine's public surface: `run` uses start/stop, `simulate` uses sweepUntilIdle. */
export interface Engine {
  /** Claims due work and starts it; resolves once claimed work is queued (not finished). Returns how many rows it claimed. */
  sweep(): Promise<number>;
  /** Sweeps and waits until no due work is left and every outcome is recorded. */
  sweepUntilIdle(): Promise<void>;
  /** Starts the wake-up loop (timer for the earliest due instant). */
  start(): void;
  /**
   * Expires leases held by dead processes on this host (a daemon killed with
   * SIGKILL, or this container's previous run), so their in-flight attempts are
   * reconciled now instead of after leaseSeconds. Returns how many rows.
   */
  recoverDeadOwners(): Promise<number>;
  /** Wakes the loop now (node-cron sweep, a new subscription, an API change). */
  kick(): void;
  /** Stops claiming, lets in-flight calls finish up to `drainMs`, releases unstarted claims, and says what is left. */
  stop(drainMs: number): Promise<StopReport>;
  stats(): EngineStats;
  /** Circuit breaker of every configured gateway: state, since, consecutive failures (for /readyz and metrics). */
  circuits(): CircuitView[];
  /** Readiness: clock guard and sweep state. */
  health(): EngineHealth;
  /**
   * Start check (SPEC section 6): throws CLOCK_BEHIND_STORE when the clock
   * reads earlier than the latest change stored (by more than the clock-jump
   * limit): the clock went back, or another host with a clock ahead wrote last.
   */
  checkStartClock(): Promise<void>;
}

/** Builds the engine from one dependency object (no singletons, no DI container). */
export function createEngine(deps: EngineDeps): Engine {
  const { db, clock, gateways, logger, options } = deps;
  const observe = safeObserver(deps.observer, logger);
  /** Durations for the observer: elapsed time, not the wall clock (which the clock guard watches for jumps). */
  const elapsedMs = () => clock.monotonic?.() ?? clock.now();
  const owner = deps.owner ?? `${hostname()}:${process.pid}:${Math.random().toString(36).slice(2, 8)}`;

  async function recoverDeadOwners(): Promise<number> {
    const host = `${hostname()}:`;
    const dead = new Set<string>();
    for (const claim of await leaseOwners(db, host)) {
      const daemon = claim.split('/')[0]!;
      if (daemon === owner) continue;
      const pid = Number(daemon.slice(host.length).split(':')[0]);
      // Our own pid under another name is a previous run of this process slot (pid 1 in a container).
      if (Number.isInteger(pid) && (pid === process.pid || !processAlive(pid))) dead.add(daemon);
    }
    let expired = 0;
    for (const daemon of dead) expired += await expireLeases(db, `${daemon}/`, clock.now());
    if (expired) logger.warn({ expired, owners: [...dead] }, 'expired the leases of dead daemons; their in-flight attempts will be reconciled');
    return expired;
  }
  const queue = new PQueue({
    concurrency: options.concurrency,
    ...(options.ratePerSecond ? { intervalCap: Math.max(1, Math.floor(options.ratePerSecond)), interval: 1000, carryoverIntervalCount: true } : {}),
  });
  const guard = new ClockGuard(clock, options.maxClockJumpMs);
  // Outcomes and leases are stamped with the trusted instant: a wall clock that jumped must not
  // settle a capture a year ahead (and skip the cycles in between).
  const trusted: Clock = { now: () => guard.trustedNow(), sleepUntil: (at, signal) => clock.sleepUntil(at, signal) };
  const writer = new GroupCommitWriter(db, trusted, logger);
  const circuits = new CircuitBreakers(trusted, options.circuit);
  for (const name of gateways.keys()) circuits.track(name);
  let active = 0;
  let highWater = 0;
  let queueHighWater = 0;
  let sweeps = 0;
  let lastSweepAt: number | null = null;
  let attemptsStarted = 0;
  let gatewayCalls = 0;
  let outcomesRecorded = 0;
  let sweepFailures = 0;
  let sweepError: string | null = null;
  /** Last time each distinct failure was logged, and how often it happened since. */
  const failureLog = new Map<string, { at: number; suppressed: number }>();
  /** Aborted by stop: cuts short the sleeps that kicks must not (backoff, clock hold). */
  const stopSignal = new AbortController();
  let claimSeq = 0;
  let stopping = false;
  let sweeping: Promise<number> | null = null;
  let kicked = false;
  let sleeper: AbortController | null = null;
  let loopDone: Promise<void> | null = null;
  let heartbeat: ReturnType<typeof setInterval> | null = null;
  /** Claims whose job has not started yet, by subscription id: released on shutdown. */
  const unstarted = new Map<string, string>();
  /** Jobs between claim and recorded outcome, by subscription id. */
  const jobs = new Map<string, Promise<void>>();

  const log = (sub: Subscription, fields: Record<string, unknown>, msg: string) =>
    logger.info({ subscriptionId: sub.id, cycle: sub.nextCycle, attempt: sub.nextAttempt, ...fields }, msg);

  /** One line per subscription per transition that skipped cycles (the events are already written). Returns how many. */
  function logSkipped(subscriptionId: string, events: readonly DomainEvent[]): number {
    const summary = skippedSummary(events);
    if (!summary) return 0;
    const byReason = new Map<string, number>();
    for (const e of events) if (e.type === 'cycle.skipped') byReason.set(String(e.data.reason), (byReason.get(String(e.data.reason)) ?? 0) + 1);
    for (const [reason, count] of byReason) observe.cyclesSkipped({ reason, count });
    logger.warn({ subscriptionId, ...summary }, `cycle${summary.count > 1 ? 's' : ''} ${summary.cycles} skipped (${summary.reason})`);
    return summary.count;
  }

  /**
   * Logs a failure once per distinct message per FAILURE_LOG_INTERVAL_MS: the
   * first time with its stack, then one line saying how often it recurred.
   */
  function reportFailure(what: string, err: unknown, fields: Record<string, unknown> = {}) {
    const message = err instanceof Error ? `${(err as { code?: string }).code ?? err.name}: ${err.message}` : String(err);
    const key = `${what}\u0000${message}`;
    const at = guard.trustedNow();
    const seen = failureLog.get(key);
    if (seen && at - seen.at < FAILURE_LOG_INTERVAL_MS && at >= seen.at) {
      seen.suppressed++;
      return;
    }
    failureLog.set(key, { at, suppressed: 0 });
    if (seen) logger.error({ error: message, repeated: seen.suppressed + 1, ...fields }, `${what} (still failing)`);
    else logger.error({ err, ...fields }, what);
  }

  function hold(n: number) {
    active += n;
    if (active > highWater) highWater = active;
  }

  function release(n: number) {
    active -= n;
    // Room in the queue again: due work waiting in the database can be claimed.
    if (!stopping) kick();
  }

  let sweepingReport: Promise<SweepReport> | null = null;

  async function sweep(): Promise<number> {
    return (await sweepWithReport()).claimed;
  }

  function sweepWithReport(): Promise<SweepReport> {
    if (sweepingReport) return sweepingReport;
    const startedAt = elapsedMs();
    const seconds = () => Math.max(0, elapsedMs() - startedAt) / 1000;
    sweepingReport = sweepOnce()
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
        sweepingReport = null;
        sweeping = null;
      });
    // Never rejects (stop awaits it); the error reaches whoever awaits sweepingReport.
    sweeping = sweepingReport.then((r) => r.claimed, () => 0);
    return sweepingReport;
  }

  /** Logs each change of the clock guard once, and says whether it holds now. */
  function clockHeld(): boolean {
    const change = guard.check();
    if (change === 'held') {
      logger.error({ clockGuard: guard.state(), skewMs: guard.skewMs(), maxClockJumpSeconds: options.maxClockJumpMs / 1000 }, 'clock jump: no attempt starts until the wall clock is back in line (or rebill is restarted); readiness fails');
    } else if (change === 'released') {
      logger.warn({ now: iso(clock.now()) }, 'clock back in line with elapsed time: collecting again');
    }
    return !guard.state().ok;
  }

  async function sweepOnce(): Promise<SweepReport> {
    const nothing: SweepReport = { claimed: 0, started: 0, reconciling: 0, lifecycle: 0, skippedCycles: 0, released: 0, held: false };
    if (stopping) return nothing;
    // A stepped wall clock must not drive billing: no claims at all (no catch-up skipping either).
    if (clockHeld()) return { ...nothing, held: true };
    const now = clock.now();
    sweeps++;
    lastSweepAt = now;
    const capacity = options.queueBound - active;
    if (capacity <= 0) return nothing;
    const token = `${owner}/${++claimSeq}`;
    // Sweeps never overlap and completions only lower `active`, so the capacity read above still holds.
    const claimed = await claimDue(db, token, now, capacity, options.leaseMs);
    hold(claimed.length);
    if (claimed.length === 0) return nothing;

    const lifecycle: Subscription[] = [];
    const collect: Subscription[] = [];
    const queries: Subscription[] = [];
    const idle: Subscription[] = [];
    for (const sub of claimed) {
      const step = dueStep(sub, now);
      if (step === 'pause' || step === 'resume' || step === 'end') lifecycle.push(sub);
      else if (step === 'collect') collect.push(sub);
      else if (step === 'reconcile' || step === 'poll') queries.push(sub);
      else idle.push(sub);
    }
    if (idle.length) {
      await releaseLeases(db, token, idle.map((s) => s.id));
      active -= idle.length;
    }
    // Open attempts go to the gateway queue before new collections (claimDue claimed them first too).
    for (const sub of queries) enqueue({ kind: 'status', sub, key: idempotencyKey(sub.id, sub.nextCycle, sub.nextAttempt), token });
    let skippedCycles = 0;
    try {
      if (lifecycle.length) skippedCycles += await applyLifecycle(lifecycle, token, now);
    } catch (err) {
      // The collect rows of this claim were never started: they keep their lease (retried when it
      // runs out) but leave this engine's count, then the sweep fails so the loop backs off.
      active -= collect.length;
      throw err;
    }
    const begun = collect.length ? await startAttempts(collect, token, now) : { started: 0, skippedCycles: 0 };
    skippedCycles += begun.skippedCycles;
    return { claimed: claimed.length, started: begun.started, reconciling: queries.length, lifecycle: lifecycle.length, skippedCycles, released: idle.length, held: false };
  }

  /** Scheduled pauses, resumes and ends: one transaction for the batch, leases released. Returns the cycles skipped. */
  async function applyLifecycle(subs: Subscription[], token: string, now: number): Promise<number> {
    const written: Array<[Subscription, Step, Transition]> = [];
    const failed = new Set<string>();
    try {
      await inTransaction(db, async (trx) => {
        const rows = await getRows(trx, subs.map((s) => s.id));
        for (const claimed of subs) {
          const row = rows.get(claimed.id);
          if (row?.leaseOwner !== token) continue; // lease lost: the new owner handles it
          const sub = row.subscription;
          const step = dueStep(sub, now);
          try {
            const t: Transition | null =
              step === 'pause' ? applyScheduledPause(sub, now) : step === 'resume' ? resume(sub, now) : step === 'end' ? applyEnd(sub, now) : null;
            if (t) written.push([t.subscription, step, t]);
          } catch (err) {
            // One row's refused transition must not hold back the batch; its lease runs out and it is tried again.
            logger.error({ err, subscriptionId: sub.id, step }, 'lifecycle step refused; will retry when the lease expires');
            failed.add(sub.id);
          }
        }
        await writeTransitions(trx, written.map(([, , t]) => t), now, 'release');
      });
    } catch (err) {
      // The leases run out by themselves, so the batch is retried after leaseMs. The sweep fails
      // too, so the loop backs off (a full disk must not spin) and logs it once.
      active -= subs.length;
      throw err;
    }
    const done = subs.filter((s) => !failed.has(s.id));
    await releaseLeases(db, token, done.map((s) => s.id));
    let skipped = 0;
    for (const [sub, step, t] of written) {
      log(sub, { step, status: sub.status, terminationType: sub.terminationType }, `subscription ${step}`);
      skipped += logSkipped(sub.id, t.events);
    }
    active -= failed.size;
    release(done.length);
    return skipped;
  }

  /**
   * Rows whose gateway's circuit breaker is open are not started: no intent is
   * written for a call known to fail. They are released due at the instant
   * the breaker lets a probe through, so the wake-up loop sleeps until then
   * instead of claiming them again at once. Returns the rows to start.
   */
  async function holdForOpenCircuits(subs: Subscription[], token: string): Promise<Subscription[]> {
    const held = new Map<number, string[]>();
    const go: Subscription[] = [];
    for (const sub of subs) {
      if (circuits.allowAttempt(sub.gateway)) {
        go.push(sub);
        continue;
      }
      const at = circuits.retryAt(sub.gateway) ?? trusted.now();
      held.set(at, [...(held.get(at) ?? []), sub.id]);
    }
    for (const [at, ids] of held) {
      try {
        await releaseLeases(db, token, ids, at);
      } catch (err) {
        logger.error({ err, subscriptions: ids }, 'could not release rows held by an open circuit breaker; their leases will expire');
      }
      // Not release(): a kick would only find these rows not yet due.
      active -= ids.length;
    }
    if (held.size) logger.debug({ held: subs.length - go.length, circuits: circuits.views().filter((c) => c.state !== 'closed') }, 'circuit open; collections held');
    return go;
  }

  /** Intent: commit every attempt row of the batch, then queue the gateway calls. */
  async function startAttempts(claimedSubs: Subscription[], token: string, now: number): Promise<{ started: number; skippedCycles: number }> {
    const subs = await holdForOpenCircuits(claimedSubs, token);
    if (subs.length === 0) return { started: 0, skippedCycles: 0 };
    const started: Array<{ sub: Subscription; key: string; attempt: AttemptInfo; events: readonly DomainEvent[]; dueAt: number }> = [];
    const refused = new Set<string>();
    try {
      await inTransaction(db, async (trx) => {
        const intents: AttemptIntent[] = [];
        const transitions: Transition[] = [];
        const rows = await getRows(trx, subs.map((s) => s.id));
        for (const claimed of subs) {
          const row = rows.get(claimed.id);
          if (row?.leaseOwner !== token) continue;
          const sub = row.subscription;
          if (dueStep(sub, now) !== 'collect') continue;
          let begun: ReturnType<typeof beginAttempt>;
          try {
            begun = beginAttempt(sub, now, now + options.leaseMs);
          } catch (err) {
            // A row the calendar refuses (say a time zone this runtime no longer knows) must not hold
            // back the batch: it keeps its lease, so it is retried (and logged) once per lease period.
            logger.error({ err, subscriptionId: sub.id }, 'cannot start an attempt; will retry when the lease expires');
            refused.add(sub.id);
            continue;
          }
          intents.push({ key: begun.key, subscription: sub, cycle: begun.cycle, attempt: begun.attempt });
          transitions.push(begun);
          const attempt: AttemptInfo = { key: begun.key, cycle: begun.cycle, attempt: begun.attempt, mode: sub.mode, state: 'in_flight', sends: 1, createdAt: now };
          started.push({ sub: begun.subscription, key: begun.key, attempt, events: begun.events, dueAt: dueInstant(sub, begun.cycle, now) });
        }
        await insertAttempts(trx, intents, now);
        await writeTransitions(trx, transitions, now, 'keep');
      });
    } catch (err) {
      // Nothing was sent. The leases run out by themselves and the rows are retried then; the sweep
      // fails so the loop backs off and logs the error once (not once per batch).
      active -= subs.length;
      throw err;
    }
    const startedIds = new Set(started.map((s) => s.sub.id));
    const skipped = subs.filter((s) => !startedIds.has(s.id) && !refused.has(s.id));
    active -= refused.size;
    if (skipped.length) {
      await releaseLeases(db, token, skipped.map((s) => s.id));
      release(skipped.length);
    }
    attemptsStarted += started.length;
    let skippedCycles = 0;
    for (const { sub, events } of started) skippedCycles += logSkipped(sub.id, events);
    for (const { sub, key, attempt, dueAt } of started) {
      if (logger.isLevelEnabled('debug')) logger.debug({ subscriptionId: sub.id, key, ...moneyFields(sub, attempt.cycle) }, 'attempt started');
      enqueue({ kind: 'send', sub, key, token, attempt, dueAt });
    }
    return { started: started.length, skippedCycles };
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

  /** What an operator needs to recognise a charge: amount as a decimal string, currency, the cycle's due instant. */
  function moneyFields(sub: Subscription, cycle: number): Record<string, unknown> {
    let dueAt: string | null = null;
    try {
      dueAt = iso(cycleDueAt(sub, cycle));
    } catch {
      // A schedule the calendar refuses is logged where it is refused; the line still goes out.
    }
    return { amount: formatAmount(sub.amount), currency: sub.amount.currency, dueAt };
  }

  /**
   * Runs a job: the gateway call goes through the bounded, rate-limited queue;
   * recording the outcome does not hold a gateway slot (it waits for the group
   * commit instead), so the queue's concurrency is spent on gateway calls only.
   */
  function enqueue(job: Job) {
    unstarted.set(job.sub.id, job.token);
    const running = runJob(job)
      .catch((err: unknown) => {
        logger.error({ err, subscriptionId: job.sub.id }, 'dispatch job failed; the lease will expire and the row be reconciled');
        active--;
      })
      .finally(() => {
        if (jobs.get(job.sub.id) === running) jobs.delete(job.sub.id);
      });
    jobs.set(job.sub.id, running);
  }

  /** One gateway call through the queue; resolves to what was learned. */
  function dispatch(sub: Subscription, attempt: AttemptInfo, kind: Job['kind'], dueAt?: number): Promise<Outcome> {
    const call = queue.add(async () => {
      unstarted.delete(sub.id);
      gatewayCalls++;
      return callGateway(sub, attempt, kind, dueAt);
    }) as Promise<Outcome>;
    const depth = queue.size + queue.pending;
    if (depth > queueHighWater) queueHighWater = depth;
    return call;
  }

  function requestOf(sub: Subscription, attempt: AttemptInfo): CollectRequest {
    return {
      idempotencyKey: attempt.key,
      subscriptionId: sub.id,
      cycle: attempt.cycle,
      attempt: attempt.attempt,
      amount: sub.amount,
      description: sub.description ?? sub.planId ?? sub.id,
      paymentToken: sub.paymentToken,
      customer: {},
    };
  }

  async function callGateway(sub: Subscription, attempt: AttemptInfo, kind: Job['kind'], dueAt?: number): Promise<Outcome> {
    const gateway = gateways.get(sub.gateway);
    if (!gateway) return { kind: 'unavailable', error: `gateway "${sub.gateway}" is not configured` };
    const request = requestOf(sub, attempt);
    const key = attempt.key;
    observe.gatewayCallStarted({ gateway: sub.gateway, kind, lagSeconds: dueAt === undefined ? null : Math.max(0, clock.now() - dueAt) / 1000 });
    const startedAt = elapsedMs();
    const finished = (outcome: Outcome): Outcome => {
      observe.attemptFinished({ gateway: sub.gateway, kind, outcome: outcome.kind, seconds: Math.max(0, elapsedMs() - startedAt) / 1000 });
      return outcome;
    };
    try {
      const outcome = kind === 'status' ? fromStatus(await gateway.status(key, request)) : outcomeOfResult(attempt.mode === 'link' ? await gateway.sendLink(request) : await gateway.charge(request));
      if (circuits.recordAnswer(sub.gateway)) logger.info({ gateway: sub.gateway }, 'circuit closed: the gateway answers again');
      return finished(outcome);
    } catch (err) {
      if (circuits.recordFailure(sub.gateway)) {
        const view = circuits.views().find((c) => c.gateway === sub.gateway);
        logger.error(
          { gateway: sub.gateway, consecutiveFailures: view?.consecutiveFailures, reopenAt: view?.reopenAt == null ? null : iso(view.reopenAt) },
          'circuit open: the gateway failed its last calls in a row; no new attempts on it until the probe',
        );
      }
      if (!(err instanceof GatewayUnavailableError)) logger.warn({ err, subscriptionId: sub.id, key }, 'gateway call failed unexpectedly; outcome unknown');
      return finished({ kind: 'unavailable', error: err instanceof Error ? `${(err as { code?: string }).code ?? 'ERROR'}: ${err.message}` : String(err) });
    }
  }

  async function runJob(job: Job): Promise<void> {
    let kind: Job['kind'] = job.kind;
    let dueAt = job.dueAt;
    let attempt = job.attempt ?? (await getAttempt(db, job.key));
    // A re-send after "not found" goes round this loop once more with the same key.
    for (;;) {
      if (!attempt) {
        unstarted.delete(job.sub.id);
        logger.error({ subscriptionId: job.sub.id, key: job.key }, 'attempt row missing; releasing');
        await releaseLeases(db, job.token, [job.sub.id]);
        release(1);
        return;
      }
      const outcome = await dispatch(job.sub, attempt, kind, dueAt);
      const result = await writer.record({ subscriptionId: job.sub.id, token: job.token, attempt, outcome, policy: options.policy });
      outcomesRecorded++;
      if (result.kind === 'resend') {
        kind = 'send';
        dueAt = undefined; // a re-send after reconciliation: its lag is the outage's, not the scheduler's
        attempt = { ...attempt, sends: attempt.sends + 1 };
        continue;
      }
      if (result.kind === 'already_settled') {
        // A gateway callback recorded this attempt while the call was out: its answer is not recorded twice.
        logger.info({ subscriptionId: job.sub.id, key: job.key, state: result.state, outcome: outcome.kind }, 'attempt already settled (by a gateway callback); answer not recorded again');
      }
      if (result.kind === 'written') {
        const s = result.subscription;
        logSkipped(s.id, result.events);
        const detail =
          outcome.kind === 'declined'
            ? { declineCode: outcome.code, hardDecline: outcome.hard }
            : outcome.kind === 'unavailable'
              ? { error: outcome.error }
              : outcome.kind === 'captured' || outcome.kind === 'pending'
                ? { externalId: outcome.externalId }
                : {};
        log(
          s,
          {
            cycle: result.cycle,
            attempt: result.attempt,
            outcome: outcome.kind,
            state: result.state,
            ...moneyFields(s, result.cycle),
            ...detail,
            key: job.key,
            status: s.status,
            next: s.nextAction,
            nextAt: s.actionAt === null ? null : iso(s.actionAt),
          },
          `attempt ${result.state}`,
        );
      }
      release(1);
      return;
    }
  }

  /** Waits until every job started so far has recorded its outcome. */
  async function settled(): Promise<void> {
    while (jobs.size) {
      await writer.flush();
      await Promise.race([Promise.all(jobs.values()), new Promise((resolve) => setImmediate(resolve))]);
    }
    await writer.flush();
  }

  async function sweepUntilIdle(): Promise<void> {
    for (;;) {
      const claimed = await sweep();
      await settled();
      if (claimed === 0 && active === 0) return;
    }
  }

  /** Sleeps `ms` (from now); only stop cuts it short, kicks do not (a backoff must hold). */
  async function pause(ms: number): Promise<void> {
    await clock.sleepUntil(clock.now() + ms, stopSignal.signal);
  }

  async function loop(): Promise<void> {
    while (!stopping) {
      kicked = false;
      let report: SweepReport;
      try {
        report = await sweepWithReport();
      } catch (err) {
        // A failing sweep (disk full, database gone) backs off exponentially, capped, and logs each
        // distinct error once per interval: retrying at once only burns CPU and floods the log.
        sweepFailures++;
        sweepError = err instanceof Error ? err.message : String(err);
        const waitMs = Math.min(SWEEP_BACKOFF_MAX_MS, SWEEP_BACKOFF_MIN_MS * 2 ** Math.min(sweepFailures - 1, 20));
        reportFailure('sweep failed; backing off', err, { failures: sweepFailures, retryInMs: waitMs });
        await pause(waitMs);
        continue;
      }
      if (sweepFailures) {
        logger.warn({ failures: sweepFailures }, 'sweeps work again');
        sweepFailures = 0;
        sweepError = null;
        failureLog.clear();
      }
      if (stopping) break;
      if (report.held) {
        // Nothing is claimed while the clock guard holds: re-check the clocks now and then.
        await pause(Math.min(CLOCK_RECHECK_MS, options.maxSleepMs));
        continue;
      }
      const now = clock.now();
      let wakeAt = now + options.maxSleepMs;
      if (!kicked && active < options.queueBound) {
        try {
          const next = await nextWakeAt(db);
          if (next !== null) wakeAt = Math.min(wakeAt, Math.max(next, now + 1));
        } catch (err) {
          reportFailure('could not read the next due instant', err);
        }
      }
      if (report.claimed > 0) {
        const { held: _held, ...counts } = report;
        logger.info({ ...counts, active, nextWakeAt: iso(kicked ? now : wakeAt) }, 'sweep');
      }
      if (kicked) {
        // More work is waiting; yield to timers and signals first (the store settles in microtasks,
        // so a loop that never yields would starve SIGTERM).
        await new Promise((resolve) => setImmediate(resolve));
        continue;
      }
      sleeper = new AbortController();
      await clock.sleepUntil(wakeAt, sleeper.signal);
      sleeper = null;
    }
  }

  function kick() {
    kicked = true;
    sleeper?.abort();
  }

  function start() {
    if (loopDone) return;
    loopDone = loop();
    // Heartbeat: long queues and slow gateways must not let a held lease expire under us.
    heartbeat = setInterval(() => {
      if (active > 0) {
        extendLeases(db, `${owner}/`, guard.trustedNow() + options.leaseMs).catch((err: unknown) => reportFailure('lease heartbeat failed', err));
      }
    }, Math.max(1000, Math.floor(options.leaseMs / 3)));
    heartbeat.unref?.();
  }

  async function stop(drainMs: number): Promise<StopReport> {
    stopping = true;
    sleeper?.abort();
    stopSignal.abort();
    if (heartbeat) clearInterval(heartbeat);
    await loopDone;
    await sweeping;
    // Queued jobs that never started: their attempt rows say in_flight and the row says reconcile,
    // so releasing the lease lets the next daemon ask the gateway (it will say "not found" and re-send).
    queue.clear();
    const unsent = unstarted.size;
    const byToken = new Map<string, string[]>();
    for (const [id, token] of unstarted) {
      byToken.set(token, [...(byToken.get(token) ?? []), id]);
      jobs.delete(id); // its queued call was cleared and will never settle
      active--;
    }
    unstarted.clear();
    for (const [token, ids] of byToken) {
      for (let i = 0; i < ids.length; i += 500) await releaseLeases(db, token, ids.slice(i, i + 500), guard.trustedNow());
    }
    let timer: ReturnType<typeof setTimeout> | undefined;
    const pending = new Set(jobs.values());
    for (const job of pending) void job.finally(() => pending.delete(job));
    await Promise.race([
      Promise.all(jobs.values()),
      new Promise<void>((resolve) => {
        timer = setTimeout(resolve, drainMs);
      }),
    ]);
    clearTimeout(timer);
    await writer.flush();
    const abandonedInFlight = pending.size;
    return {
      drained: unsent + abandonedInFlight === 0,
      attemptsStarted,
      gatewayCalls,
      outcomesRecorded,
      unsent,
      abandonedInFlight,
      leftForReconciliation: unsent + abandonedInFlight,
    };
  }

  async function checkStartClock(): Promise<void> {
    const latest = await latestChangeAt(db);
    const now = clock.now();
    if (latest !== null && now + options.maxClockJumpMs < latest) {
      throw new RebillError(
        'CLOCK_BEHIND_STORE',
        `refusing to collect: the clock reads ${iso(now)}, earlier than the latest change stored in the database (${iso(latest)}) by more than scheduler.maxClockJumpSeconds (${options.maxClockJumpMs / 1000} s); fix the clock (or wait until it passes that instant) and start again`,
      );
    }
  }

  function health(): EngineHealth {
    const clockGuard = guard.state();
    return { ok: clockGuard.ok && sweepFailures === 0, clockGuard, sweep: { ok: sweepFailures === 0, failures: sweepFailures, error: sweepError } };
  }

  return {
    recoverDeadOwners,
    sweep,
    sweepUntilIdle,
    start,
    kick,
    stop,
    health,
    checkStartClock,
    stats: () => ({ active, highWater, queueHighWater, sweeps, lastSweepAt, attemptsStarted, gatewayCalls, outcomesRecorded, clockGuard: guard.state(), sweepFailures, circuits: circuits.views() }),
    circuits: () => circuits.views(),
  };
}

/**
 * Logs the cycles skipped by writes made outside the engine since event
 * `afterEventId` (seeding a start date in the past): one line per subscription
 * and reason with the cycle range, at most `limit` lines plus one that counts
 * the rest. The cycle.skipped events themselves are already stored.
 */
export async function logSkippedCycles(db: Db, logger: Logger, afterEventId: number, limit = 100): Promise<void> {
  const { groups, total } = await skippedCyclesSince(db, afterEventId, limit);
  for (const g of groups) {
    const cycles = g.first === g.last ? String(g.first) : `${g.first}-${g.last}`;
    logger.warn(
      { subscriptionId: g.subscriptionId, reason: g.reason, cycles, count: g.count, firstDueAt: g.firstDueAt, lastDueAt: g.lastDueAt },
      `cycle${g.count > 1 ? 's' : ''} ${cycles} skipped (${g.reason})`,
    );
  }
  if (total > groups.length) logger.warn({ subscriptions: total - groups.length }, `cycles skipped for ${total - groups.length} more subscriptions (see the cycle.skipped events)`);
}

/** A gateway's answer as the Outcome the settlement logic takes (a send, a status query or a callback). */
export function outcomeOfResult(result: GatewayResult): Outcome {
  switch (result.kind) {
    case 'captured':
      return { kind: 'captured', externalId: result.externalId };
    case 'declined':
      return result.externalId === undefined
        ? { kind: 'declined', code: result.code, hard: result.hard }
        : { kind: 'declined', code: result.code, hard: result.hard, externalId: result.externalId };
    case 'pending':
      return result.linkUrl === undefined ? { kind: 'pending', externalId: result.externalId } : { kind: 'pending', externalId: result.externalId, linkUrl: result.linkUrl };
  }
}

function fromStatus(result: StatusResult): Outcome {
  return result.kind === 'not_found' ? { kind: 'not_found' } : outcomeOfResult(result);
}

