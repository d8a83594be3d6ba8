/**
 * The billing engine (SPEC sections 6 and 7, DESIGN.md), composed of small
 * parts with one job each:
 * - sweep.ts: claim and intent. A sweep leases due rows (never more than the
 *   dispatch queue has room for) and, in the SAME transaction, writes their
 *   attempt rows (state in_flight, idempotency key
 *   `<subscriptionId>:<cycle>:<attempt>`) and pointers `reconcile`; it is
 *   committed before any gateway is called.
 * - dispatch.ts: each attempt goes through p-queue (concurrency + rate limit)
 *   to its gateway with that key.
 * - writer.ts: recording. A group-commit writer records attempt state, the
 *   subscription's next step and the events in one transaction per batch,
 *   each write conditional on the lease and the row's version (re-read only
 *   when that fails). Nothing that depends on an outcome happens before its flush.
 * - recovery.ts, loop.ts: dead daemons' leases, the start clock check, and
 *   the wake-up loop; holdings.ts: the one count of rows held in memory.
 * A process that dies between intent and outcome leaves rows whose pointer
 * says `reconcile` and whose lease expires: the next sweep asks the gateway
 * about the same key (captured -> recorded, declined -> recorded, never seen
 * -> re-sent with the same key). A new key is made only for a new attempt number.
 */
import { hostname } from 'node:os';
import type { Logger } from 'pino';
import type { Clock } from '../clock.js';
import { iso, type CollectionPolicy } from '../domain/index.js';
import type { Gateway } from '../gateways/gateway.js';
import { databaseNow, dueWorkNow, hotPathStore, nextWakeAt, skippedCyclesSince, usesDatabaseClock, type Db } from '../store/index.js';
import { CircuitBreakers, type CircuitOptions, type CircuitView } from './circuit.js';
import { ClockGuard, type ClockGuardState } from './clock-guard.js';
import { Dispatcher } from './dispatch.js';
import { Holdings } from './holdings.js';
import { FailureLog, WakeUpLoop } from './loop.js';
import { safeObserver, type EngineObserver } from './observer.js';
import { checkStartClock, recoverDeadOwners } from './recovery.js';
import { Sweeper } from './sweep.js';
import { GroupCommitWriter } from './writer.js';

/** PostgreSQL: how often the clock guard compares this host's clock with the database's while they agree. */
const DATABASE_CLOCK_CHECK_MS = 10_000;

export { outcomeOfResult } from './dispatch.js';
export type { ClockGuardState } from './clock-guard.js';

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
  /**
   * Wakes the loop now (node-cron sweep, a new subscription, an API change).
   * `dueAt`: the earliest instant the change made work due, when the caller
   * knows it: a loop asleep until no later than that is left asleep (it sweeps
   * then and finds the work); null: the change made no work due.
   */
  kick(dueAt?: number | null): void;
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
  const store = hotPathStore(db);
  const guard = new ClockGuard(clock, options.maxClockJumpMs);
  // Outcomes and leases are stamped with the trusted instant: a wall clock that jumped must not
  // settle a capture a year ahead (and skip the cycles in between).
  const trusted: Clock = { now: () => guard.trustedNow(), sleepUntil: (at, signal) => clock.sleepUntil(at, signal) };
  // One claim batch fits in one outcome commit.
  const writer = new GroupCommitWriter(store, trusted, logger, Math.max(200, options.queueBound));
  const circuits = new CircuitBreakers(trusted, options.circuit);
  for (const name of gateways.keys()) circuits.track(name);
  const failures = new FailureLog(logger, () => guard.trustedNow());
  let stopping = false;
  // Room in the queue again: due work waiting in the database can be claimed.
  const holdings = new Holdings(
    options.queueBound,
    () => {
      if (!stopping) loop.kick();
    },
    options.concurrency,
  );
  const dispatcher = new Dispatcher({
    gateways,
    circuits,
    writer,
    holdings,
    clock,
    elapsedMs,
    observe,
    logger,
    policy: options.policy,
    concurrency: options.concurrency,
    ratePerSecond: options.ratePerSecond,
  });
  const sweeper = new Sweeper({
    store,
    clock,
    trustedNow: () => guard.trustedNow(),
    elapsedMs,
    holdings,
    circuits,
    dispatcher,
    logger,
    observe,
    owner,
    leaseMs: options.leaseMs,
    stopping: () => stopping,
    clockHeld,
  });
  writer.claimAlong((finishing) => sweeper.claimAlong(finishing));
  // The loop sleeps on this host's clock; on PostgreSQL work_at is the database's. A host ahead of it (by
  // up to maxClockJumpSeconds, allowed) read a row due in the database's future as due already and swept
  // every millisecond until the database caught up (about 200 sweeps a second); one behind woke late.
  const wakeAt = async () => {
    const next = await nextWakeAt(db);
    return next === null ? null : next + guard.databaseOffsetMs();
  };
  const loop = new WakeUpLoop({ clock, logger, holdings, failures, maxSleepMs: options.maxSleepMs, sweep: () => sweeper.sweep(), nextWakeAt: wakeAt });
  let heartbeat: ReturnType<typeof setInterval> | null = null;

  /** Logs each change of the clock guard once, and says whether it holds now. */
  async function clockHeld(): Promise<boolean> {
    await compareWithDatabase();
    const change = guard.check();
    if (change === 'held') {
      logger.error({ clockGuard: guard.state(), skewMs: guard.skewMs(), maxClockJumpSeconds: options.maxClockJumpMs / 1000 }, 'clock jump: no attempt starts until the wall clock is back in line (or rebill is restarted); readiness fails');
    } else if (change === 'released') {
      logger.warn({ now: iso(clock.now()) }, 'clock back in line: collecting again');
    }
    return !guard.state().ok;
  }

  /**
   * PostgreSQL: reads the database's clock for the guard, every
   * DATABASE_CLOCK_CHECK_MS while they agree and at each check while they do
   * not. A failed read changes nothing (the sweep's own query says why).
   */
  let lastDatabaseCheck = -Infinity;
  async function compareWithDatabase(): Promise<void> {
    if (!usesDatabaseClock(db)) return;
    const at = elapsedMs();
    if (guard.state().ok && at - lastDatabaseCheck < DATABASE_CLOCK_CHECK_MS) return;
    lastDatabaseCheck = at;
    try {
      const before = clock.now();
      const databaseAt = await databaseNow(db);
      guard.compareWithDatabase(before, clock.now(), databaseAt);
    } catch {
      // The database is unreachable: the sweep fails and backs off, and says so.
    }
  }

  async function sweepUntilIdle(): Promise<void> {
    for (;;) {
      const { claimed } = await sweeper.sweep();
      await dispatcher.settled();
      if (claimed === 0 && holdings.active === 0) return;
    }
  }

  function start() {
    if (loop.running) return;
    loop.start();
    // Heartbeat: long queues and slow gateways must not let a held lease expire under us. Only the
    // rows a job still holds: one given up on (its outcome could not be recorded) keeps the lease of
    // its claim until that runs out and the row is reconciled; extending every lease of this daemon
    // kept such a row from everyone for as long as any other call was out.
    heartbeat = setInterval(() => {
      const held = dispatcher.heldLeases();
      if (held.length > 0) store.extendLeases(held, guard.trustedNow(), options.leaseMs).catch((err: unknown) => failures.report('lease heartbeat failed', err));
    }, Math.max(1000, Math.floor(options.leaseMs / 3)));
    heartbeat.unref?.();
  }

  async function stop(drainMs: number): Promise<StopReport> {
    stopping = true;
    if (heartbeat) clearInterval(heartbeat);
    await loop.stop();
    await sweeper.running;
    // Queued jobs that never started: their attempt rows say in_flight and the row says reconcile,
    // so giving the lease back due now lets the next daemon ask the gateway (it will say "not
    // found" and re-send the same key). "Now" by the clock that judges due work: on PostgreSQL the
    // database's (this host's may run ahead of it by up to maxClockJumpSeconds, which made these rows
    // due later than the lease they had would have).
    const { unsent, abandonedInFlight } = await dispatcher.stop(drainMs, async (token, ids) => store.release(token, ids, await dueWorkNow(db, guard.trustedNow())));
    return {
      drained: unsent + abandonedInFlight === 0,
      attemptsStarted: sweeper.attemptsStarted,
      gatewayCalls: dispatcher.gatewayCalls,
      outcomesRecorded: dispatcher.outcomesRecorded,
      unsent,
      abandonedInFlight,
      leftForReconciliation: unsent + abandonedInFlight,
    };
  }

  function health(): EngineHealth {
    const clockGuard = guard.state();
    const ok = loop.sweepFailures === 0;
    return { ok: clockGuard.ok && ok, clockGuard, sweep: { ok, failures: loop.sweepFailures, error: loop.sweepError } };
  }

  return {
    recoverDeadOwners: () => recoverDeadOwners(db, owner, clock.now(), logger),
    sweep: async () => (await sweeper.sweep()).claimed,
    sweepUntilIdle,
    start,
    kick: (dueAt) => loop.kick(dueAt),
    stop,
    health,
    checkStartClock: () => checkStartClock(db, clock, options.maxClockJumpMs),
    stats: () => ({
      active: holdings.active,
      highWater: holdings.highWater,
      queueHighWater: dispatcher.queueHighWater,
      sweeps: sweeper.sweeps,
      lastSweepAt: sweeper.lastSweepAt,
      attemptsStarted: sweeper.attemptsStarted,
      gatewayCalls: dispatcher.gatewayCalls,
      outcomesRecorded: dispatcher.outcomesRecorded,
      clockGuard: guard.state(),
      sweepFailures: loop.sweepFailures,
      circuits: circuits.views(),
    }),
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
