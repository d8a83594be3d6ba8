/**
 * PostgreSQL for tests: each test database is created fresh on the server at
 * REBILL_TEST_POSTGRES_URL (default the machine's 127.0.0.1:5432, trust auth)
 * under a unique name, and dropped by its owner, so parallel workers and runs
 * never see each other's rows.
 *
 * A server that cannot be reached fails the suite with a message saying how
 * to start it: the PostgreSQL suites are never skipped silently.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';

/** The server's maintenance database; test databases are created and dropped through it. */
export const POSTGRES_ADMIN_URL = process.env.REBILL_TEST_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

export interface TestPostgres {
  /** URL of the new, empty database. */
  readonly url: string;
  readonly name: string;
  /** Drops the database (closing whatever connections are still open on it). */
  drop(): Promise<void>;
}

async function admin<T>(fn: (client: pg.Client) => Promise<T>, adminUrl = POSTGRES_ADMIN_URL, hint = 'REBILL_TEST_POSTGRES_URL'): Promise<T> {
  const client = new pg.Client({ connectionString: adminUrl });
  try {
    await client.connect();
  } catch (err) {
    throw new Error(
      `PostgreSQL is not reachable at ${adminUrl} (${(err as Error).message}); start it with ` +
        `"pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start" or set ${hint}`,
      { cause: err },
    );
  }
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

/** Creates an empty database `rebill_<label>_<pid>_<random>` and returns its URL. */
/** Runs `fn` on one connection to `url`, closed afterwards. */
export async function withClient<T>(url: string, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

export function createTestPostgres(label = 't'): Promise<TestPostgres> {
  return createPostgresDatabase(POSTGRES_ADMIN_URL, label, 'REBILL_TEST_POSTGRES_URL');
}

/**
 * The same on the server of `adminUrl` (the bench passes its own); `hint`
 * names the variable that points elsewhere, for the unreachable-server message.
 */
export async function createPostgresDatabase(adminUrl: string, label: string, hint: string): Promise<TestPostgres> {
  const name = `rebill_${label.replace(/[^a-z0-9]/gi, '').toLowerCase().slice(0, 20)}_${process.pid}_${randomBytes(4).toString('hex')}`;
  await admin((c) => c.query(`create database "${name}"`), adminUrl, hint);
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    name,
    drop: () => admin((c) => c.query(`drop database if exists "${name}" with (force)`), adminUrl, hint).then(() => undefined),
  };
}
