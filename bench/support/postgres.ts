/**
 * PostgreSQL for the bench's `pg-*` rows: each scenario works in databases of
 * its own on the server at REBILL_BENCH_POSTGRES_URL (default the machine's
 * 127.0.0.1:5432, trust auth, user postgres), created through the same helper
 * the tests use and dropped when the scenario ends, whether it succeeded or
 * not. A server that cannot be reached makes the scenario fail with a message
 * saying how to start it (its rows: value null, pass false); the other rows
 * still run.
 */
import pg from 'pg';
import { createPostgresDatabase, withClient, type TestPostgres } from '../../test/support/postgres.js';

export { withClient };
import type { AttemptRecords } from './daemon.js';

/** The server's maintenance database, where the bench creates and drops its own. */
export const BENCH_POSTGRES_ADMIN_URL = process.env.REBILL_BENCH_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

/**
 * Runs `work` with fresh databases created on demand (`create(label)`), and
 * drops every one of them afterwards, even when `work` throws.
 */
export async function withDatabases<T>(work: (create: (label: string) => Promise<TestPostgres>) => Promise<T>): Promise<T> {
  const created: TestPostgres[] = [];
  try {
    return await work(async (label) => {
      const db = await createPostgresDatabase(BENCH_POSTGRES_ADMIN_URL, `bench${label}`, 'REBILL_BENCH_POSTGRES_URL');
      created.push(db);
      return db;
    });
  } finally {
    for (const db of created) {
      try {
        await db.drop();
      } catch (err) {
        process.stderr.write(`  could not drop database ${db.name}: ${(err as Error).message}\n`);
      }
    }
  }
}

/** The daemon's attempt records in a PostgreSQL database, read over one connection of the bench's. */
export async function postgresRecords(url: string): Promise<AttemptRecords> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  let open = true;
  const count = async (text: string) => Number((await client.query<{ n: string }>(text)).rows[0]!.n);
  return {
    attempts: () => count('select count(*) as n from (select 1 from attempts limit 1) a'),
    captured: () => count("select count(*) as n from attempts where state = 'captured'"),
    async window() {
      const r = (await client.query<{ a: string | null; b: string | null; n: string }>('select min(created_at) as a, max(updated_at) as b, count(*) as n from attempts')).rows[0]!;
      return { from: r.a ? Date.parse(r.a) : NaN, to: r.b ? Date.parse(r.b) : NaN, count: Number(r.n) };
    },
    async close() {
      if (open) {
        open = false;
        await client.end();
      }
    },
  };
}

/** `vacuum analyze` of the tables a collection reads, as a database in service has (autovacuum would otherwise run in the middle of a measurement). */
export async function analyze(url: string): Promise<void> {
  await withClient(url, async (client) => {
    for (const table of ['subscriptions', 'cycles', 'attempts', 'events', 'simulator_ledger']) await client.query(`vacuum analyze ${table}`);
  });
}
