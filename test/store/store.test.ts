/**
 * The SQLite store against a real database file in a fresh temp dir per test:
 * migrations, pragmas, idempotent creation, the constraints that make a double
 * charge impossible, transactional writes, leases and the outbox.
 */
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { sql } from 'kysely';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { cancel, pause, type Transition } from '../../src/domain/index.js';
import {
  claimDue,
  countByStatus,
  createSubscription,
  dueBacklog,
  getSubscription,
  insertAttempts,
  inTransaction,
  listEvents,
  migrateToLatest,
  nextWakeAt,
  openDatabase,
  releaseLeases,
  updateSubscription,
  type Db,
} from '../../src/store/index.js';
import { requireBuild, runCli, type CliRun } from '../support/cli.js';
import { goldSubscription as input } from '../support/plans.js';
import { openTempDb, TEST_DIALECT, type TempDb } from '../support/temp.js';

const at = (text: string): number => Date.parse(text);
/** A unique index or key refused the row, as either dialect words it. */
const UNIQUE = /UNIQUE constraint failed|duplicate key value violates unique constraint/;
/** What only a SQLite file has (pragmas, the file itself) is skipped in the PostgreSQL run. */
const notSqlite = TEST_DIALECT !== 'sqlite';
const NOW = at('2025-01-15T08:00:00Z');
const LEASE = 60_000;

let temp: TempDb;
let dir: string;
let db: Db;
let file: string;

beforeEach(async () => {
  temp = await openTempDb({}, { name: 'store', file: join('data', 'rebill.db') });
  ({ dir, db, file } = temp);
});

afterEach(() => temp.close());

async function count(table: 'customers' | 'subscriptions' | 'cycles' | 'attempts' | 'events'): Promise<number> {
  const row = await db.selectFrom(table).select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow();
  return Number(row.n);
}

describe('migrations', () => {
  it('migrateToLatest is idempotent: the second run applies nothing and keeps the data', async () => {
    // beforeEach already migrated this file once.
    await createSubscription(db, input(), NOW);
    const again = await migrateToLatest(db);
    expect(again.error).toBeUndefined();
    expect(again.results ?? []).toEqual([]);
    expect(await count('subscriptions')).toBe(1);
  });

  it.skipIf(notSqlite)('a fresh file reports the initial migration as applied', async () => {
    const other = openDatabase(`sqlite:${join(dir, 'other', 'fresh.db')}`);
    try {
      const first = await migrateToLatest(other);
      expect(first.results?.map((r) => [r.migrationName, r.status])).toEqual([
        ['0001_initial', 'Success'],
        ['0002_attempt_outage', 'Success'],
        ['0003_idempotency_keys', 'Success'],
        ['0004_webhook_deliveries', 'Success'],
        ['0005_link_emails', 'Success'],
        ['0006_hot_path', 'Success'],
        ['0007_webhook_leases', 'Success'],
      ]);
    } finally {
      await other.destroy();
    }
  });

  describe.skipIf(notSqlite)('`rebill migrate` as a child process', () => {
    beforeAll(requireBuild);

    function migrate(config: string): Promise<CliRun> {
      // REBILL_* variables of the calling shell would override the config's database; drop them.
      return runCli(['migrate', '--config', config], { cleanRebillEnv: true });
    }

    it('exits 0 twice; the first run applies 0001_initial, the second says the database is up to date', async () => {
      const dbFile = join(dir, 'cli', 'rebill.db');
      const config = join(dir, 'rebill.yaml');
      writeFileSync(
        config,
        [
          `database: { url: ${JSON.stringify(`sqlite:${dbFile}`)} }`,
          'plans:',
          '  - { id: gold-monthly, amount: "9.99", currency: USD, every: MONTH }',
          'gateways: { sim: { type: simulator } }',
          '',
        ].join('\n'),
      );
      const first = await migrate(config);
      expect(first).toMatchObject({ code: 0, stderr: '' });
      expect(first.stdout).toMatch(/applied: 0001_initial/);
      expect(existsSync(dbFile)).toBe(true);
      const second = await migrate(config);
      expect(second).toMatchObject({ code: 0, stderr: '' });
      expect(second.stdout).toMatch(/up to date/);
    });
  });
});

describe.skipIf(notSqlite)('pragmas', () => {
  async function pragma(conn: Db, name: string): Promise<unknown> {
    const { rows } = await sql<Record<string, unknown>>`${sql.raw(`pragma ${name}`)}`.execute(conn);
    return Object.values(rows[0]!)[0];
  }

  it('WAL journal, synchronous FULL (2) by default, foreign keys on', async () => {
    expect(await pragma(db, 'journal_mode')).toBe('wal');
    expect(await pragma(db, 'synchronous')).toBe(2);
    expect(await pragma(db, 'foreign_keys')).toBe(1);
  });

  it('synchronous NORMAL (1) when asked for', async () => {
    const normal = openDatabase(`sqlite:${file}`, { synchronous: 'normal' });
    try {
      expect(await pragma(normal, 'synchronous')).toBe(1);
      expect(await pragma(normal, 'journal_mode')).toBe('wal');
    } finally {
      await normal.destroy();
    }
  });

});

describe('foreign keys', () => {
  it('are enforced: an attempt for an unknown subscription is refused', async () => {
    const ghost = (await createSubscription(db, input(), NOW)).subscription;
    await expect(
      inTransaction(db, (trx) => insertAttempts(trx, [{ key: 'nope:1:1', subscription: { ...ghost, id: 'nope' }, cycle: 1, attempt: 1 }], NOW)),
    ).rejects.toThrow(/FOREIGN KEY|violates foreign key constraint/);
  });
});

describe('createSubscription', () => {
  it('writes the row, its subscription.created event and returns created: true', async () => {
    const result = await createSubscription(db, input(), NOW);
    expect(result.created).toBe(true);
    expect(result.subscription).toMatchObject({ id: 'sub-1', status: 'active', nextAction: 'collect', nextCycle: 1 });
    expect(await getSubscription(db, 'sub-1')).toEqual(result.subscription);
    const events = await listEvents(db);
    expect(events.map((e) => [e.type, e.subscriptionId])).toEqual([['subscription.created', 'sub-1']]);
  });

  it('is idempotent on id: the second call returns the stored row with created: false and writes nothing', async () => {
    const first = await createSubscription(db, input(), NOW);
    const second = await createSubscription(db, input({ paymentToken: 'tok_other' }, { amountMinor: 5000 }), NOW + 1_000);
    expect(second.created).toBe(false);
    expect(second.subscription).toEqual(first.subscription);
    expect(await count('subscriptions')).toBe(1);
    expect(await count('events')).toBe(1);
  });

  it('is idempotent on (source, externalId) while the first is not terminated', async () => {
    const first = await createSubscription(db, input({ id: 'a', source: 'shop', externalId: 'order-7' }), NOW);
    const dup = await createSubscription(db, input({ id: 'b', source: 'shop', externalId: 'order-7' }), NOW);
    expect(dup.created).toBe(false);
    expect(dup.subscription).toEqual(first.subscription);
    // Another source with the same external id is another subscription.
    const other = await createSubscription(db, input({ id: 'c', source: 'app', externalId: 'order-7' }), NOW);
    expect(other.created).toBe(true);
    // No source at all is its own namespace too, and is deduplicated within it.
    expect((await createSubscription(db, input({ id: 'd', externalId: 'order-7' }), NOW)).created).toBe(true);
    expect((await createSubscription(db, input({ id: 'e', externalId: 'order-7' }), NOW)).subscription.id).toBe('d');
    expect(await count('subscriptions')).toBe(3);
  });

  it('allows a new subscription with the same (source, externalId) once the first is terminated', async () => {
    await createSubscription(db, input({ id: 'a', source: 'shop', externalId: 'order-7' }), NOW);
    await updateSubscription(db, 'a', NOW + 1_000, (sub) => cancel(sub, {}, NOW + 1_000));
    const again = await createSubscription(db, input({ id: 'b', source: 'shop', externalId: 'order-7' }), NOW + 2_000);
    expect(again.created).toBe(true);
    expect(again.subscription.id).toBe('b');
    // And that one is now the live one the key resolves to.
    expect((await createSubscription(db, input({ id: 'c', source: 'shop', externalId: 'order-7' }), NOW + 3_000)).subscription.id).toBe('b');
  });

  it('the database itself refuses a second live subscription with the same (source, externalId)', async () => {
    await createSubscription(db, input({ id: 'a', source: 'shop', externalId: 'order-7' }), NOW);
    const row = await db.selectFrom('subscriptions').selectAll().where('id', '=', 'a').executeTakeFirstOrThrow();
    await expect(db.insertInto('subscriptions').values({ ...row, id: 'sneaky' }).execute()).rejects.toThrow(UNIQUE);
  });

  it('matches the customer by email, then by phone, and creates one otherwise', async () => {
    const a = await createSubscription(db, input({ id: 'a', customer: { email: 'ann@example.com', phone: '+4512345678', firstName: 'Ann' } }), NOW);
    const byEmail = await createSubscription(db, input({ id: 'b', customer: { email: 'ann@example.com', phone: '+4500000000' } }), NOW);
    const byPhone = await createSubscription(db, input({ id: 'c', customer: { phone: '+4512345678' } }), NOW);
    const someoneElse = await createSubscription(db, input({ id: 'd', customer: { email: 'bob@example.com' } }), NOW);
    const given = await createSubscription(db, input({ id: 'e', customerId: a.subscription.customerId }), NOW);
    const none = await createSubscription(db, input({ id: 'f' }), NOW);
    expect(a.subscription.customerId).toMatch(/\S/);
    expect(byEmail.subscription.customerId).toBe(a.subscription.customerId);
    expect(byPhone.subscription.customerId).toBe(a.subscription.customerId);
    expect(someoneElse.subscription.customerId).not.toBe(a.subscription.customerId);
    expect(given.subscription.customerId).toBe(a.subscription.customerId);
    expect(none.subscription.customerId).toBeNull();
    expect(await count('customers')).toBe(2);
    const ann = await db.selectFrom('customers').selectAll().where('id', '=', a.subscription.customerId!).executeTakeFirstOrThrow();
    expect(ann).toMatchObject({ email: 'ann@example.com', phone: '+4512345678', first_name: 'Ann' });
  });

  it('a past start date stores the skipped cycles with the subscription', async () => {
    await createSubscription(db, input(), at('2025-04-15T12:00:00Z'));
    const cycles = await db.selectFrom('cycles').select(['cycle', 'status', 'due_at']).orderBy('cycle').execute();
    expect(cycles).toEqual([
      { cycle: 1, status: 'skipped', due_at: '2025-01-31T10:00:00.000Z' },
      { cycle: 2, status: 'skipped', due_at: '2025-02-28T10:00:00.000Z' },
    ]);
  });
});

describe('constraints that make a double charge impossible', () => {
  async function attemptRow(key: string, cycle: number, attempt: number, state: string) {
    return db
      .insertInto('attempts')
      .values({
        idempotency_key: key,
        subscription_id: 'sub-1',
        cycle,
        attempt,
        gateway: 'sim',
        mode: 'charge',
        state,
        amount_minor: 999,
        currency: 'USD',
        decline_code: null,
        hard_decline: null,
        external_id: null,
        link_url: null,
        error: null,
        sends: 1,
        created_at: '2025-01-31T10:00:00.000Z',
        updated_at: '2025-01-31T10:00:00.000Z',
      })
      .execute();
  }

  beforeEach(async () => {
    await createSubscription(db, input(), NOW);
  });

  it('refuses a second captured attempt for the same (subscription, cycle)', async () => {
    await attemptRow('sub-1:1:1', 1, 1, 'captured');
    await expect(attemptRow('sub-1:1:2', 1, 2, 'captured')).rejects.toThrow(UNIQUE);
    // Failed attempts beside the capture, and a capture of another cycle, are fine.
    await attemptRow('sub-1:1:3', 1, 3, 'rejected');
    await attemptRow('sub-1:2:1', 2, 1, 'captured');
    expect(await count('attempts')).toBe(3);
  });

  it('refuses to turn a second attempt of a paid cycle into a capture', async () => {
    await attemptRow('sub-1:1:1', 1, 1, 'rejected');
    await attemptRow('sub-1:1:2', 1, 2, 'captured');
    await expect(db.updateTable('attempts').set({ state: 'captured' }).where('idempotency_key', '=', 'sub-1:1:1').execute()).rejects.toThrow(UNIQUE);
  });

  it('refuses a duplicate idempotency key', async () => {
    await attemptRow('sub-1:1:1', 1, 1, 'in_flight');
    await expect(attemptRow('sub-1:1:1', 1, 9, 'in_flight')).rejects.toThrow(/UNIQUE constraint failed: attempts.idempotency_key|duplicate key value violates unique constraint "attempts_pkey"/);
  });

  it('refuses the same attempt number of a cycle twice under another key', async () => {
    await attemptRow('sub-1:1:1', 1, 1, 'rejected');
    await expect(attemptRow('other-key', 1, 1, 'in_flight')).rejects.toThrow(UNIQUE);
  });
});

describe('updateSubscription', () => {
  beforeEach(async () => {
    await createSubscription(db, input(), NOW);
  });

  it('writes the transition and its events in one transaction', async () => {
    const now = at('2025-02-10T00:00:00Z');
    const paused = await updateSubscription(db, 'sub-1', now, (sub) => pause(sub, {}, now));
    expect(paused.status).toBe('paused');
    expect(await getSubscription(db, 'sub-1')).toEqual(paused);
    const row = await db.selectFrom('subscriptions').select(['status', 'paused_at', 'work_at']).executeTakeFirstOrThrow();
    expect(row).toEqual({ status: 'paused', paused_at: '2025-02-10T00:00:00.000Z', work_at: null });
    const events = await listEvents(db);
    expect(events.map((e) => e.type)).toEqual(['subscription.created', 'subscription.paused']);
    expect(events[1]).toMatchObject({ subscriptionId: 'sub-1', at: now, data: { resumeAt: null } });
  });

  it('an exception inside the change function writes nothing', async () => {
    const before = await getSubscription(db, 'sub-1');
    await expect(
      updateSubscription(db, 'sub-1', NOW + 1_000, () => {
        throw new Error('boom');
      }),
    ).rejects.toThrow('boom');
    expect(await getSubscription(db, 'sub-1')).toEqual(before);
    expect(await count('events')).toBe(1);
  });

  it('a failure half-way through the write rolls back the state change and the events', async () => {
    const before = await getSubscription(db, 'sub-1');
    const now = at('2025-02-10T00:00:00Z');
    // The subscription row and events are fine; a cycle row with an impossible instant fails after the UPDATE ran.
    const poisoned = (sub: typeof before): Transition => {
      const t = pause(sub, {}, now);
      return { ...t, cycles: [{ cycle: 1, dueAt: Number.NaN, status: 'skipped' }] };
    };
    await expect(updateSubscription(db, 'sub-1', now, poisoned)).rejects.toThrow();
    expect(await getSubscription(db, 'sub-1')).toEqual(before);
    expect(await count('events')).toBe(1);
    expect(await count('cycles')).toBe(0);
  });

  it('a lifecycle error from the domain reaches the caller and changes nothing', async () => {
    await expect(updateSubscription(db, 'sub-1', NOW, (sub) => pause(sub, { resumeAt: NOW - 1 }, NOW))).rejects.toMatchObject({ code: 'PAUSE_INVALID' });
    await expect(updateSubscription(db, 'missing', NOW, (sub) => pause(sub, {}, NOW))).rejects.toMatchObject({ code: 'SUBSCRIPTION_NOT_FOUND' });
    expect(await count('events')).toBe(1);
  });
});

describe('leases', () => {
  // a: due Jan 31 10:00, b: due Feb 28 10:00 (past start on Feb 28), c: due Jun 30 10:00 (future), d: terminated.
  beforeEach(async () => {
    await createSubscription(db, input({ id: 'a' }), NOW);
    await createSubscription(db, input({ id: 'b', startDate: '2025-02-28' }), NOW);
    await createSubscription(db, input({ id: 'c', startDate: '2025-06-30' }), NOW);
    await createSubscription(db, input({ id: 'd' }), NOW);
    await updateSubscription(db, 'd', NOW, (sub) => cancel(sub, {}, NOW));
  });

  const ids = (subs: ReadonlyArray<{ id: string }>) => subs.map((s) => s.id);
  const T = at('2025-03-01T00:00:00Z');

  it('claims only due rows, earliest first, and writes owner and expiry', async () => {
    expect(ids(await claimDue(db, 'w1/1', at('2025-01-31T09:59:59Z'), 10, LEASE))).toEqual([]);
    expect(ids(await claimDue(db, 'w1/2', T, 10, LEASE))).toEqual(['a', 'b']);
    const rows = await db.selectFrom('subscriptions').select(['id', 'lease_owner', 'lease_until']).orderBy('id').execute();
    expect(rows).toEqual([
      { id: 'a', lease_owner: 'w1/2', lease_until: '2025-03-01T00:01:00.000Z' },
      { id: 'b', lease_owner: 'w1/2', lease_until: '2025-03-01T00:01:00.000Z' },
      { id: 'c', lease_owner: null, lease_until: null },
      { id: 'd', lease_owner: null, lease_until: null },
    ]);
  });

  it('respects limit; the next claim gets the rest', async () => {
    expect(ids(await claimDue(db, 'w1/1', T, 1, LEASE))).toEqual(['a']);
    expect(ids(await claimDue(db, 'w1/2', T, 1, LEASE))).toEqual(['b']);
    expect(ids(await claimDue(db, 'w1/3', T, 1, LEASE))).toEqual([]);
    expect(await claimDue(db, 'w1/4', T, 0, LEASE)).toEqual([]);
  });

  it('returns only the rows leased by that call, even when an owner name is reused', async () => {
    expect(ids(await claimDue(db, 'w1', T, 1, LEASE))).toEqual(['a']);
    expect(ids(await claimDue(db, 'w1', T, 1, LEASE))).toEqual(['b']);
  });

  it('never gives a row with a live lease to a second claimant, and gives it again once the lease expires', async () => {
    expect(ids(await claimDue(db, 'w1/1', T, 10, LEASE))).toEqual(['a', 'b']);
    expect(await claimDue(db, 'w2/1', T + LEASE - 1, 10, LEASE)).toEqual([]);
    // At exactly lease_until the lease is still live (expired means lease_until < now).
    expect(await claimDue(db, 'w2/2', T + LEASE, 10, LEASE)).toEqual([]);
    expect(ids(await claimDue(db, 'w2/3', T + LEASE + 1, 10, LEASE))).toEqual(['a', 'b']);
    const owners = await db.selectFrom('subscriptions').select('lease_owner').where('id', 'in', ['a', 'b']).execute();
    expect(owners.map((o) => o.lease_owner)).toEqual(['w2/3', 'w2/3']);
  });

  it('two daemons on their own connections to the same database split the due rows without overlap', async () => {
    const second = temp.connect();
    try {
      const [x, y] = await Promise.all([claimDue(db, 'w1/1', T, 1, LEASE), claimDue(second, 'w2/1', T, 1, LEASE)]);
      expect([...ids(x), ...ids(y)].sort()).toEqual(['a', 'b']);
      expect(await claimDue(second, 'w2/2', T, 10, LEASE)).toEqual([]);
    } finally {
      await second.destroy();
    }
  });

  it('releaseLeases gives rows back at once (all of an owner, or only the given ids)', async () => {
    await claimDue(db, 'w1/1', T, 10, LEASE);
    await releaseLeases(db, 'w1/1', ['a']);
    expect(ids(await claimDue(db, 'w2/1', T, 10, LEASE))).toEqual(['a']);
    await releaseLeases(db, 'w1/1', []);
    expect(await claimDue(db, 'w3/1', T, 10, LEASE)).toEqual([]);
    await releaseLeases(db, 'w1/1');
    expect(ids(await claimDue(db, 'w3/2', T, 10, LEASE))).toEqual(['b']);
    // Releasing someone else's lease does nothing.
    await releaseLeases(db, 'w1/1');
    expect(await claimDue(db, 'w4/1', T, 10, LEASE)).toEqual([]);
  });

  it('releaseLeases with dueNow makes the pending step due at that instant', async () => {
    await claimDue(db, 'w1/1', T, 10, LEASE);
    await releaseLeases(db, 'w1/1', ['b'], T + 5_000);
    const b = await db.selectFrom('subscriptions').select(['action_at', 'work_at', 'lease_owner']).where('id', '=', 'b').executeTakeFirstOrThrow();
    expect(b).toEqual({ action_at: '2025-03-01T00:00:05.000Z', work_at: '2025-03-01T00:00:05.000Z', lease_owner: null });
  });

  it('nextWakeAt is the earliest work instant, or the lease expiry of a row leased past it', async () => {
    expect(await nextWakeAt(db)).toBe(at('2025-01-31T10:00:00Z'));
    await claimDue(db, 'w1/1', at('2025-01-31T10:00:00Z'), 1, LEASE);
    // a is in flight until its lease runs out; b is the next thing due after that.
    expect(await nextWakeAt(db)).toBe(at('2025-01-31T10:01:00Z'));
    await claimDue(db, 'w1/2', T, 10, LEASE);
    expect(await nextWakeAt(db)).toBe(T + LEASE);
  });

  it('nextWakeAt is null when nothing has work (terminated rows never do)', async () => {
    for (const id of ['a', 'b', 'c']) await updateSubscription(db, id, NOW, (sub) => cancel(sub, {}, NOW));
    expect(await nextWakeAt(db)).toBeNull();
    expect(await claimDue(db, 'w1/1', at('2030-01-01T00:00:00Z'), 10, LEASE)).toEqual([]);
  });

  it('a paused row without a resume date is never claimed; one with a resume date is claimed at the resume', async () => {
    await updateSubscription(db, 'a', NOW, (sub) => pause(sub, {}, NOW));
    await updateSubscription(db, 'b', NOW, (sub) => pause(sub, { resumeAt: at('2025-04-01T00:00:00Z') }, NOW));
    expect(await claimDue(db, 'w1/1', at('2025-03-31T23:59:59Z'), 10, LEASE)).toEqual([]);
    expect(ids(await claimDue(db, 'w1/2', at('2025-04-01T00:00:00Z'), 10, LEASE))).toEqual(['b']);
  });
});

describe('events and stored values', () => {
  it('listEvents returns events in id order, after a cursor, up to a limit', async () => {
    await createSubscription(db, input({ id: 'a' }), NOW);
    await createSubscription(db, input({ id: 'b' }), NOW + 1);
    await updateSubscription(db, 'a', NOW + 2, (sub) => pause(sub, {}, NOW + 2));
    await updateSubscription(db, 'a', NOW + 3, (sub) => cancel(sub, {}, NOW + 3));
    const all = await listEvents(db);
    expect(all.map((e) => [e.type, e.subscriptionId])).toEqual([
      ['subscription.created', 'a'],
      ['subscription.created', 'b'],
      ['subscription.paused', 'a'],
      ['subscription.cancelled', 'a'],
    ]);
    const idsInOrder = all.map((e) => e.id);
    expect(idsInOrder).toEqual([...idsInOrder].sort((x, y) => x - y));
    expect(new Set(idsInOrder).size).toBe(4);
    expect(all.map((e) => e.at)).toEqual([NOW, NOW + 1, NOW + 2, NOW + 3]);
    expect((await listEvents(db, all[1]!.id)).map((e) => e.id)).toEqual(idsInOrder.slice(2));
    expect((await listEvents(db, 0, 2)).map((e) => e.id)).toEqual(idsInOrder.slice(0, 2));
    expect(await listEvents(db, all[3]!.id)).toEqual([]);
  });

  it('metadata round-trips exactly, through creation and through a later transition', async () => {
    const metadata = { orderId: '123', 'key with spaces': 'value: with "quotes"', unicode: 'æøå – 東京', empty: '' };
    await createSubscription(db, input({ metadata }), NOW);
    expect((await getSubscription(db, 'sub-1')).metadata).toEqual(metadata);
    await updateSubscription(db, 'sub-1', NOW + 1, (sub) => pause(sub, {}, NOW + 1));
    expect((await getSubscription(db, 'sub-1')).metadata).toEqual(metadata);
  });

  it('amounts stay integer minor units for every currency exponent', async () => {
    await createSubscription(db, input({ id: 'usd' }), NOW);
    await createSubscription(db, input({ id: 'jpy' }, { amountMinor: 1500, currency: 'JPY' }), NOW);
    await createSubscription(db, input({ id: 'kwd' }, { amountMinor: 12_345, currency: 'KWD' }), NOW);
    await createSubscription(db, input({ id: 'big' }, { amountMinor: 900_719_925_474_099, currency: 'USD' }), NOW);
    const rows = await db.selectFrom('subscriptions').select(['id', 'amount_minor', 'currency']).orderBy('id').execute();
    expect(rows).toEqual([
      { id: 'big', amount_minor: 900_719_925_474_099, currency: 'USD' },
      { id: 'jpy', amount_minor: 1500, currency: 'JPY' },
      { id: 'kwd', amount_minor: 12_345, currency: 'KWD' },
      { id: 'usd', amount_minor: 999, currency: 'USD' },
    ]);
    for (const row of rows) expect(Number.isInteger(row.amount_minor)).toBe(true);
    // The stored type: SQLite's integer storage class, PostgreSQL's bigint column.
    const typeOf = TEST_DIALECT === 'postgres' ? sql.raw('pg_typeof(amount_minor)::text') : sql.raw('typeof(amount_minor)');
    const integer = TEST_DIALECT === 'postgres' ? 'bigint' : 'integer';
    const { rows: types } = await sql<{ t: string }>`select ${typeOf} as t from subscriptions`.execute(db);
    expect(new Set(types.map((r) => r.t))).toEqual(new Set([integer]));
    expect((await getSubscription(db, 'kwd')).amount).toEqual({ amountMinor: 12_345, currency: 'KWD' });
    // Cycle rows carry the subscription's amount, also as integers.
    await createSubscription(db, input({ id: 'late' }, { amountMinor: 1500, currency: 'JPY' }), at('2025-04-15T00:00:00Z'));
    const { rows: cycleTypes } = await sql<{ t: string; a: number }>`select ${typeOf} as t, amount_minor as a from cycles where subscription_id = 'late' order by cycle`.execute(db);
    expect(cycleTypes).toEqual([
      { t: integer, a: 1500 },
      { t: integer, a: 1500 },
    ]);
  });

  it('instants are stored as fixed-width UTC text, so text order is time order', async () => {
    await createSubscription(db, input(), NOW);
    const row = await db.selectFrom('subscriptions').select(['created_at', 'action_at', 'work_at']).executeTakeFirstOrThrow();
    expect(row).toEqual({ created_at: '2025-01-15T08:00:00.000Z', action_at: '2025-01-31T10:00:00.000Z', work_at: '2025-01-31T10:00:00.000Z' });
  });
});

describe('backlog and status counts', () => {
  it('dueBacklog counts the rows whose work has come and names the oldest due instant; countByStatus lists every status', async () => {
    expect(await dueBacklog(db, NOW)).toEqual({ count: 0, oldestDueAt: null });
    // sub-1 starts 2025-01-31 (not due at NOW); sub-2 and sub-3 started earlier (10:00 UTC) and are due.
    await createSubscription(db, input(), NOW);
    await createSubscription(db, input({ id: 'sub-2', startDate: '2025-01-10' }), NOW);
    await createSubscription(db, input({ id: 'sub-3', startDate: '2025-01-12' }), NOW);
    await updateSubscription(db, 'sub-3', NOW, (sub) => cancel(sub, {}, NOW));
    expect(await dueBacklog(db, NOW)).toEqual({ count: 1, oldestDueAt: at('2025-01-10T10:00:00Z') });
    expect(await dueBacklog(db, at('2025-02-01T00:00:00Z'))).toEqual({ count: 2, oldestDueAt: at('2025-01-10T10:00:00Z') });
    expect(await countByStatus(db)).toEqual({ active: 2, paused: 0, stopped: 0, terminated: 1 });
  });
});
