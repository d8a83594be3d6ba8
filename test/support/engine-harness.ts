/**
 * Shared set-up for the engine tests: a real SQLite file in a temp dir,
 * subscriptions made from plan terms through the store, and small readers
 * for the attempt, cycle, event and ledger rows the assertions look at.
 */
import { sql } from 'kysely';
import { pino, type Logger } from 'pino';
import type { Clock } from '../../src/clock.js';
import { subscriptionFromPlan, type CollectionPolicy, type FinalFailureAction, type PlanTerms, type SubscriptionRequest } from '../../src/domain/index.js';
import { createEngine, daemonGateways, type Engine, type EngineOptions, type StopReport } from '../../src/engine/index.js';
import type { Gateway } from '../../src/gateways/index.js';
import { createSubscription, dialectOf, type Db } from '../../src/store/index.js';
import { gold } from './plans.js';

export { openTempDb, type TempDb } from './temp.js';

/** The gold plan (monthly USD 9.99 on the `sim` gateway), sent at 00:00 UTC unless overridden. */
export function planTerms(overrides: Partial<PlanTerms> = {}): PlanTerms {
  return { ...gold, sendOnHour: 0, ...overrides };
}

/** Creates one subscription through the store, as the API or a seed would. */
export async function addSubscription(
  db: Db,
  now: number,
  request: SubscriptionRequest,
  plan: Partial<PlanTerms> = {},
): Promise<void> {
  await createSubscription(db, subscriptionFromPlan(planTerms(plan), request), now);
}

/** The default retry policy (3 attempts, P1D, P3D) with the given final action. */
export function policy(onFinalFailure: FinalFailureAction = 'terminate', overrides: Partial<Omit<CollectionPolicy, 'retry'>> = {}): CollectionPolicy {
  return {
    retry: { attempts: 3, delays: ['P1D', 'P3D'], onFinalFailure },
    pollMs: 300_000,
    reconcileMs: 30_000,
    unavailableMs: 72 * 3_600_000,
    ...overrides,
  };
}

/**
 * What fake-timer engine tests fake: performance too, because the clock guard
 * compares Date with performance.now(), and tickAsync moves them together.
 */
export const FAKED_TIMERS = ['Date', 'setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'performance'] as const;

/**
 * Stops an engine under fake timers: `stop` waits on timers (the drain, the
 * loop's sleep), so the fake clock is ticked until it resolves.
 */
export async function stopUnderFakeTimers(engine: Engine, clock: { tickAsync(ms: number): Promise<unknown> } | null, drainMs = 0): Promise<StopReport> {
  let done = false;
  const stopped = engine.stop(drainMs).finally(() => {
    done = true;
  });
  while (clock && !done) await clock.tickAsync(10);
  return stopped;
}

export const silentLogger: Logger = pino({ level: 'silent' });

export function engineOptions(overrides: Partial<EngineOptions> = {}): EngineOptions {
  return {
    concurrency: 4,
    ratePerSecond: null,
    leaseMs: 120_000,
    queueBound: 100,
    maxSleepMs: 60_000,
    maxClockJumpMs: 300_000,
    policy: policy(),
    ...overrides,
  };
}

/** An engine on `clock` whose `sim` gateway keeps its ledger in the same database (as `rebill run` does). */
export function daemonEngine(
  db: Db,
  clock: Clock,
  options: Partial<EngineOptions> = {},
  extra: { logger?: Logger; gateways?: ReadonlyMap<string, Gateway>; owner?: string } = {},
): Engine {
  return createEngine({
    db,
    clock,
    gateways: extra.gateways ?? daemonGateways(db, clock, { sim: { type: 'simulator' } }),
    logger: extra.logger ?? silentLogger,
    owner: extra.owner ?? 'test-engine',
    options: engineOptions(options),
  });
}

export const iso = (ms: number): string => new Date(ms).toISOString();
export const ms = (text: string): number => Date.parse(text);

export interface AttemptRow {
  key: string;
  cycle: number;
  attempt: number;
  state: string;
  declineCode: string | null;
  hard: boolean | null;
  sends: number;
  createdAt: number;
  updatedAt: number;
}

export async function attemptsOf(db: Db, subscriptionId: string): Promise<AttemptRow[]> {
  const rows = await db
    .selectFrom('attempts')
    .selectAll()
    .where('subscription_id', '=', subscriptionId)
    .orderBy('cycle')
    .orderBy('attempt')
    .execute();
  return rows.map((r) => ({
    key: r.idempotency_key,
    cycle: Number(r.cycle),
    attempt: Number(r.attempt),
    state: r.state,
    declineCode: r.decline_code,
    hard: r.hard_decline === null ? null : Boolean(r.hard_decline),
    sends: Number(r.sends),
    createdAt: Date.parse(r.created_at),
    updatedAt: Date.parse(r.updated_at),
  }));
}

export interface CycleRow {
  cycle: number;
  dueAt: string;
  status: string;
  attempts: number;
}

export async function cyclesOf(db: Db, subscriptionId: string): Promise<CycleRow[]> {
  const rows = await db.selectFrom('cycles').selectAll().where('subscription_id', '=', subscriptionId).orderBy('cycle').execute();
  return rows.map((r) => ({ cycle: Number(r.cycle), dueAt: r.due_at, status: r.status, attempts: Number(r.attempts) }));
}

export interface EventRow {
  type: string;
  at: string;
  atMs: number;
  cycle: number | null;
  attempt: number | null;
  data: Record<string, unknown>;
}

export async function eventsOf(db: Db, subscriptionId: string, type?: string): Promise<EventRow[]> {
  let q = db.selectFrom('events').selectAll().where('subscription_id', '=', subscriptionId);
  if (type) q = q.where('type', '=', type);
  const rows = await q.orderBy('id').execute();
  return rows.map((r) => ({
    type: r.type,
    at: r.occurred_at,
    atMs: Date.parse(r.occurred_at),
    cycle: r.cycle === null ? null : Number(r.cycle),
    attempt: r.attempt === null ? null : Number(r.attempt),
    data: JSON.parse(r.payload) as Record<string, unknown>,
  }));
}

/** The simulator ledger rows (one per idempotency key the gateway saw) of one subscription. */
export async function ledgerOf(db: Db, subscriptionId: string): Promise<Array<{ key: string; result: string }>> {
  // Keys are `<subscriptionId>:<cycle>:<attempt>`; ';' sorts right after ':' (no LIKE wildcards to trip on).
  const rows = await db
    .selectFrom('simulator_ledger')
    .select(['idempotency_key', 'entry'])
    .where('idempotency_key', '>', `${subscriptionId}:`)
    .where('idempotency_key', '<', `${subscriptionId};`)
    .orderBy('idempotency_key')
    .execute();
  return rows.map((r) => ({ key: r.idempotency_key, result: (JSON.parse(r.entry) as { result: { kind: string } }).result.kind }));
}

/**
 * Bulk set-up fast path: copies every row that belongs to subscription
 * `templateId` (the subscription itself, its cycles and its events) once per
 * new id, in one SQL statement per table. The template was made by the store's
 * own createSubscription, so each copy is the row the store would write, with
 * only the id changed. Columns are read from the live schema, so a new
 * migration does not break this. Ids are `${prefix}${n}` with n zero-padded to
 * five digits, for n in [from, to).
 */
export async function cloneSubscription(db: Db, templateId: string, prefix: string, from: number, to: number): Promise<void> {
  if (to <= from) return;
  const postgres = dialectOf(db) === 'postgres';
  const newId = postgres ? sql`${prefix}::text || lpad(seq.n::text, 5, '0')` : sql`printf('%s%05d', ${prefix}, seq.n)`;
  const seq = postgres
    ? sql`with seq(n) as (select generate_series(${from}::int, ${to - 1}::int))`
    : sql`with recursive seq(n) as (select ${from} union all select n + 1 from seq where n + 1 < ${to})`;
  await db.transaction().execute(async (trx) => {
    // Inside the transaction, every query must go through `trx`: SQLite has one connection, which the transaction holds.
    const columnsOf = async (table: string) =>
      (postgres
        ? await sql<{ name: string }>`select column_name as name from information_schema.columns where table_name = ${table} and table_schema = current_schema() order by ordinal_position`.execute(trx)
        : await sql<{ name: string }>`select name from pragma_table_info(${table})`.execute(trx)
      ).rows.map((r) => r.name);
    const plan: Array<[table: string, key: string, skip: string[]]> = [
      ['subscriptions', 'id', []],
      ['cycles', 'subscription_id', []],
      ['events', 'subscription_id', ['id']],
    ];
    for (const [table, key, skip] of plan) {
      const columns = (await columnsOf(table)).filter((c) => !skip.includes(c));
      const target = sql.join(columns.map((c) => sql.ref(c)));
      const values = sql.join(columns.map((c) => (c === key ? newId : sql.ref(`t.${c}`))));
      await sql`${seq} insert into ${sql.table(table)} (${target}) select ${values} from ${sql.table(table)} as t, seq where t.${sql.ref(key)} = ${templateId}`.execute(trx);
    }
  });
}

/**
 * The HTTP server dependencies every in-process server test shares: loopback
 * on a free port, the engine and database of the test, a 60 s sweep interval
 * for readiness, no webhooks.
 */
export function testServerDeps(tmp: { db: Db; url: string }, clock: Clock, engine: Engine) {
  return {
    config: { host: '127.0.0.1', port: 0 },
    engine,
    db: tmp.db,
    clock,
    logger: silentLogger,
    readiness: { databaseUrl: tmp.url, sweepIntervalMs: 60_000, queueBound: 100, webhookEndpoints: 0 },
  };
}
