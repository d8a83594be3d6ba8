/**
 * What only PostgreSQL has to show (run by the `postgres` vitest project, on
 * databases of their own): daemons starting together migrate once, under
 * kysely's advisory lock; numbers come back as numbers; the URL's password
 * never reaches an error message; the clock guard compares this host's
 * clock with the database's, at start and while running; a NOTIFY wakes the
 * other daemons' engines.
 */
import { sql } from 'kysely';
import { afterEach, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import type { Clock } from '../../src/clock.js';
import { hostname } from 'node:os';
import { GatewayUnavailableError, type Gateway, type GatewayResult } from '../../src/gateways/index.js';
import {
  createSubscription,
  dialectOf,
  ensureWebhookEndpoint,
  lastEventId,
  migrateToLatest,
  openDatabase,
  openWakeBus,
  notifyWake,
  processAlive,
  recordAndClaim,
  scanOutbox,
  type Db,
} from '../../src/store/index.js';
import { addSubscription, daemonEngine } from '../support/engine-harness.js';
import { waitFor } from '../e2e/support/processes.js';
import { goldSubscription as input } from '../support/plans.js';
import { createTestPostgres, type TestPostgres } from '../support/postgres.js';

const NOW = Date.parse('2025-01-15T08:00:00Z');
const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function fresh(): Promise<TestPostgres> {
  const server = await createTestPostgres('pgonly');
  cleanups.push(() => server.drop());
  return server;
}

function open(url: string): Db {
  const db = openDatabase(url, { poolSize: 4 });
  cleanups.push(() => db.destroy());
  return db;
}

/** A gateway whose charges never answer (`calledOnce` resolves at the first); status says not_found. */
function hangingGateway(): { gateway: Gateway; calledOnce: Promise<void> } {
  let called: () => void = () => undefined;
  const calledOnce = new Promise<void>((resolve) => (called = resolve));
  const gateway: Gateway = {
    name: 'sim',
    charge: () => (called(), new Promise<GatewayResult>(() => undefined)),
    sendLink: () => Promise.reject(new Error('no links')),
    status: async () => ({ kind: 'not_found' }),
  };
  return { gateway, calledOnce };
}

/** A fresh database, migrated, opened once. */
async function migrated(): Promise<Db> {
  const db = open((await fresh()).url);
  await migrateToLatest(db);
  return db;
}

/** Adds a charge-mode subscription `id` (customer `customerId`, tok_ok) started 2020-01-01, so a cycle is due now. */
function addDue(db: Db, id: string, customerId: string): Promise<unknown> {
  return addSubscription(db, Date.now(), { id, customer: { id: customerId }, paymentToken: 'tok_ok', startDate: '2020-01-01' });
}

describe('PostgreSQL', () => {
  it('four daemons migrating one fresh database at once apply each migration exactly once', async () => {
    const server = await fresh();
    const dbs = [0, 1, 2, 3].map(() => open(server.url));
    const results = await Promise.all(dbs.map((db) => migrateToLatest(db)));
    const applied = results.flatMap((r) => (r.results ?? []).filter((m) => m.status === 'Success').map((m) => m.migrationName));
    const names = (await sql<{ name: string }>`select name from kysely_migration order by name`.execute(dbs[0]!)).rows.map((r) => r.name);
    // Each migration was applied by exactly one of them; the others found it done.
    expect([...applied].sort()).toEqual(names);
    expect(new Set(applied).size).toBe(applied.length);
    expect(names[0]).toBe('0001_initial');
    expect(dialectOf(dbs[0]!)).toBe('postgres');
  });

  it('bigint columns and counts come back as numbers, as they do from SQLite', async () => {
    const db = await migrated();
    await createSubscription(db, input({ id: 'big' }, { amountMinor: 900_719_925_474_099, currency: 'USD' }), NOW);
    const row = await db.selectFrom('subscriptions').select(['amount_minor']).executeTakeFirstOrThrow();
    expect(row.amount_minor).toBe(900_719_925_474_099);
    const n = await db.selectFrom('events').select((eb) => eb.fn.countAll().as('n')).executeTakeFirstOrThrow();
    expect(n.n).toBe(1);
    expect(await lastEventId(db)).toBe(1);
  });

  it('an unreachable server fails without the password in the message', async () => {
    // Port 9 (discard) on loopback: nothing listens there.
    const db = open('postgres://rebill:s3cret-pw@127.0.0.1:9/billing');
    const err = await migrateToLatest(db).then(
      () => null,
      (e: unknown) => e as Error,
    );
    expect(err).not.toBeNull();
    expect(String(err?.message)).not.toContain('s3cret-pw');
  });
});

/** This host's clock, off from the real one (and so from the database's) by `offset.ms`; wall and monotonic move together. */
function offsetClock(offset: { ms: number }): Clock {
  return {
    now: () => Date.now() + offset.ms,
    monotonic: () => performance.now() + offset.ms,
    sleepUntil: (at, signal) => new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, Math.max(0, at - Date.now() - offset.ms));
      signal?.addEventListener('abort', () => (clearTimeout(timer), resolve()), { once: true });
    }),
  };
}

describe('PostgreSQL: this host against the database', () => {
  const HOUR = 3_600_000;

  it('refuses to start (CLOCK_SKEW) when this host is further from the database\'s clock than maxClockJumpSeconds', async () => {
    const db = await migrated();
    const ahead = await daemonEngine(db, offsetClock({ ms: HOUR }), { maxClockJumpMs: 300_000 }).checkStartClock().then(
      () => null,
      (e: unknown) => e as Error & { code?: string },
    );
    expect(ahead).toMatchObject({ code: 'CLOCK_SKEW', message: expect.stringContaining('300 s') });
    await expect(daemonEngine(db, offsetClock({ ms: 0 }), { maxClockJumpMs: 300_000 }).checkStartClock()).resolves.toBeUndefined();
  });

  it('while running, a host clock that drifts off the database\'s holds collection (readiness fails) until it is back in line', async () => {
    const db = await migrated();
    await addDue(db, 'due', 'c1');
    const offset = { ms: -2 * HOUR };
    const engine = daemonEngine(db, offsetClock(offset), { maxClockJumpMs: 300_000 });
    // Behind the database by two hours: nothing is claimed, and readiness says why.
    expect(await engine.sweep()).toBe(0);
    expect(engine.health().ok).toBe(false);
    expect(engine.health().clockGuard.reason).toMatch(/this host's clock is 7200 s behind the database's/);
    expect(engine.stats().clockGuard.ok).toBe(false);
    // NTP fixed it: the next sweep compares again and collects.
    offset.ms = 0;
    expect(await engine.sweep()).toBe(1);
    expect(engine.health().clockGuard).toEqual({ ok: true, reason: null, since: null });
    await engine.stop(5_000);
    const captured = await db.selectFrom('attempts').select('state').execute();
    expect(captured.map((a) => a.state)).toContain('captured');
  });
});

describe('PostgreSQL: waking for due work by the database\'s clock', () => {
  it('a daemon 5 s ahead of the database (allowed) sleeps until a row is due by the database\'s clock, instead of sweeping every millisecond until then', async () => {
    const db = await migrated();
    await addDue(db, 'soon', 'c1');
    // Due 3 s from now by the database's clock (which the test process shares).
    const due = new Date(Date.now() + 3_000).toISOString();
    await db.updateTable('subscriptions').set({ action_at: due, work_at: due }).where('id', '=', 'soon').execute();
    const engine = daemonEngine(db, offsetClock({ ms: 5_000 }), { maxClockJumpMs: 300_000 });
    engine.start();
    try {
      await waitFor(async () => ((await db.selectFrom('attempts').select('state').execute()).some((a) => a.state === 'captured') ? true : undefined), { timeoutMs: 20_000 });
      // A sweep at start, one when the row is due, and the few its outcome's commit wakes (about 600 before: one a millisecond).
      expect(engine.stats().sweeps).toBeLessThan(20);
    } finally {
      await engine.stop(5_000);
    }
  });
});

describe('PostgreSQL: webhook deliveries due by the database\'s clock', () => {
  it('a relay whose host is ahead of the database (allowed) makes the deliveries it scans due now by the database\'s clock: they are claimed at once', async () => {
    const db = await migrated();
    const ahead = () => Date.now() + 200_000;
    await ensureWebhookEndpoint(db, 'we_ahead', 'http://127.0.0.1:9/hook', 0, ahead());
    await addDue(db, 'hooked', 'c1');
    expect(await scanOutbox(db, 'we_ahead', () => true, 500, ahead())).toBeGreaterThan(0);
    // Claims judge "due" by the database's clock: the new delivery is due now, not 200 s from now.
    const { claimed } = await recordAndClaim(db, 'we_ahead', 'relay-a', [], { now: ahead(), limit: 10, leaseMs: 60_000 });
    expect(claimed.length).toBeGreaterThan(0);
  });
});

describe('PostgreSQL: a row held back by an open circuit', () => {
  it('is made due when the breaker lets a probe through by the database\'s clock, also from a host behind it (allowed)', async () => {
    const db = await migrated();
    await addDue(db, 'first', 'c1');
    const down: Gateway = {
      name: 'sim',
      charge: () => Promise.reject(new GatewayUnavailableError('connection refused (test)')),
      sendLink: () => Promise.reject(new Error('no links')),
      status: async () => ({ kind: 'not_found' }),
    };
    // 200 s behind the database; one unavailable answer opens the breaker for 30 s.
    const behind = daemonEngine(db, offsetClock({ ms: -200_000 }), { maxClockJumpMs: 300_000, circuit: { failureThreshold: 1, openMs: 30_000 } }, { gateways: new Map([['sim', down]]) });
    expect(await behind.sweep()).toBe(1);
    await waitFor(() => (behind.circuits()[0]?.state === 'open' ? true : undefined), { timeoutMs: 10_000 });
    await addDue(db, 'second', 'c2');
    expect(await behind.sweep()).toBe(1);
    // Given back due in about 30 s by the database's clock (not 170 s ago, which every sweep would claim again at once).
    const { work_at: workAt, lease_owner: owner } = await db.selectFrom('subscriptions').select(['work_at', 'lease_owner']).where('id', '=', 'second').executeTakeFirstOrThrow();
    expect(owner).toBeNull();
    const inMs = Date.parse(workAt!) - Date.now();
    expect(inMs).toBeGreaterThan(20_000);
    expect(inMs).toBeLessThanOrEqual(30_000);
    expect(await behind.sweep()).toBe(0);
    await behind.stop(5_000);
  });
});

describe('PostgreSQL: recovering a dead daemon\'s leases', () => {
  it('a daemon whose clock is ahead of the database\'s (within maxClockJumpSeconds) expires a dead daemon\'s lease by the database\'s clock: the row is reconciled at once', async () => {
    const db = await migrated();
    await addDue(db, 'orphan', 'c1');
    // The dead daemon: this host's name, a pid no process can have (above the kernel's pid_max), a call out when it died.
    const deadPid = 2 ** 22 + 12_345;
    expect(processAlive(deadPid)).toBe(false);
    const dead = `${hostname()}:${deadPid}:dead`;
    const { gateway: hanging, calledOnce } = hangingGateway();
    const first = daemonEngine(db, offsetClock({ ms: 0 }), {}, { owner: dead, gateways: new Map([['sim', hanging]]) });
    expect(await first.sweep()).toBe(1);
    await calledOnce;

    // The next daemon on this host starts with its clock 200 s ahead of the database's (allowed: under 300 s).
    const ahead = daemonEngine(db, offsetClock({ ms: 200_000 }), { maxClockJumpMs: 300_000 }, { owner: `${hostname()}:${process.pid}:next` });
    await ahead.checkStartClock();
    expect(await ahead.recoverDeadOwners()).toBe(1);
    // The dead daemon's row is claimable now, not 200 s from now (beyond even the 120 s lease it had).
    expect(await ahead.sweep()).toBe(1);
    await ahead.stop(5_000);
    // The same key, sent again after the status query found nothing: one attempt, captured.
    expect((await db.selectFrom('attempts').select(['state', 'sends']).execute()).map((a) => [a.state, Number(a.sends)])).toEqual([['captured', 2]]);
  });
});

describe('PostgreSQL: a daemon stopping gives back its unsent calls', () => {
  it('due now by the database\'s clock, even with its own clock ahead (within maxClockJumpSeconds): another daemon settles them at once', async () => {
    const db = await migrated();
    for (const id of ['out', 'unsent']) await addDue(db, id, `c-${id}`);
    // One call at a time; the first hangs, so the other is still queued when the daemon stops.
    const { gateway: hanging, calledOnce } = hangingGateway();
    const ahead = daemonEngine(db, offsetClock({ ms: 200_000 }), { concurrency: 1, maxClockJumpMs: 300_000 }, { owner: 'ahead', gateways: new Map([['sim', hanging]]) });
    expect(await ahead.sweep()).toBe(2);
    await calledOnce;
    expect(await ahead.stop(0)).toMatchObject({ unsent: 1, abandonedInFlight: 1 });

    // The queued call's row was given back "due now": another daemon claims it at once (the hanging one keeps its lease).
    const other = daemonEngine(db, offsetClock({ ms: 0 }), { maxClockJumpMs: 300_000 }, { owner: 'other' });
    expect(await other.sweep()).toBe(1);
    await other.stop(5_000);
    const attempts = await db.selectFrom('attempts').select(['subscription_id', 'state']).orderBy('subscription_id').execute();
    expect(attempts.map((a) => [a.subscription_id, a.state])).toEqual([
      ['out', 'in_flight'],
      ['unsent', 'captured'],
    ]);
  });
});

describe('PostgreSQL: wake-ups between daemons', () => {
  it('a NOTIFY from one daemon wakes the others, not itself; a listener that lost its session comes back', async () => {
    const server = await fresh();
    const db = open(server.url);
    await migrateToLatest(db);
    const woken = { a: 0, b: 0 };
    const logger = pino({ level: 'silent' });
    const a = openWakeBus(db, { sender: 'a', onWake: () => woken.a++, logger });
    const b = openWakeBus(db, { sender: 'b', onWake: () => woken.b++, logger, reconnectMs: 50 });
    try {
      await Promise.all([a.listening, b.listening]);
      // Connecting counts as one wake (whatever was notified before it is found by a sweep).
      expect(woken).toEqual({ a: 1, b: 1 });
      a.notify();
      await waitFor(() => (woken.b === 2 ? true : undefined), { timeoutMs: 10_000, intervalMs: 10 });
      await notifyWake(db, 'import');
      await waitFor(() => (woken.a === 2 && woken.b === 3 ? true : undefined), { timeoutMs: 10_000, intervalMs: 10 });
      // a's own notification never woke a; a burst is coalesced into few notifications, at least one after the last call.
      for (let i = 0; i < 50; i++) a.notify();
      await waitFor(() => (woken.b > 3 ? true : undefined), { timeoutMs: 10_000, intervalMs: 10 });
      await a.close();
      expect(woken.a).toBe(2);
      expect(woken.b).toBeLessThan(3 + 50);
      // The server ends b's session: b connects again (one wake) and hears the next notification.
      const before = woken.b;
      await sql`select pg_terminate_backend(pid) from pg_stat_activity where datname = current_database() and query = 'listen rebill_wake'`.execute(db);
      await waitFor(() => (woken.b >= before + 1 ? true : undefined), { timeoutMs: 10_000, intervalMs: 10 });
      const afterReconnect = woken.b;
      await notifyWake(db, 'c');
      await waitFor(() => (woken.b === afterReconnect + 1 ? true : undefined), { timeoutMs: 10_000, intervalMs: 10 });
    } finally {
      await a.close();
      await b.close();
    }
  });
});

