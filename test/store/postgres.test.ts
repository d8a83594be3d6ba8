/**
 * What only PostgreSQL has to show (run by the `postgres` vitest project, on
 * databases of their own): daemons starting together migrate once, under
 * kysely's advisory lock; numbers come back as numbers; the URL's password
 * never reaches an error message.
 */
import { sql } from 'kysely';
import { afterEach, describe, expect, it } from 'vitest';
import { createSubscription, dialectOf, lastEventId, migrateToLatest, openDatabase, type Db } from '../../src/store/index.js';
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
    const server = await fresh();
    const db = open(server.url);
    await migrateToLatest(db);
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
