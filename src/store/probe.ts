/**
 * The readiness probe of the database (`/readyz` check database:responseTime).
 * better-sqlite3 is synchronous, so "does not answer" cannot be a timer around
 * a query; it means one of:
 * - the file at the configured path is gone or is another file now (removed,
 *   replaced by a directory, restored over): SQLite keeps working on the
 *   unlinked inode, so queries still succeed while nothing is durable where
 *   operators look. The probe compares the file's identity with the one opened.
 * - another process holds the write lock (`BEGIN EXCLUSIVE`, a stuck tool):
 *   in WAL mode reads still work, but no attempt can be recorded. The probe
 *   asks for the write lock (BEGIN IMMEDIATE, then ROLLBACK: nothing written)
 *   with a short busy timeout, so it blocks the event loop for at most that.
 */
import { statSync, type Stats } from 'node:fs';
import { sql } from 'kysely';
import type { Db } from './db.js';
import { dialectOf, sqliteFile } from './db.js';

/** How long the probe waits for a lock held elsewhere (the daemon's own busy_timeout is 5 s). */
export const PROBE_BUSY_TIMEOUT_MS = 250;

/** One probe's result: how long it took, and why it failed (a sentence for operators; no SQL text). */
export interface DatabaseProbeResult {
  readonly ok: boolean;
  readonly ms: number;
  readonly error: string | null;
}

/** Returns a probe bound to `db`, opened from `url`; the file's identity is taken now. */
export function databaseProbe(db: Db, url: string, monotonic: () => number = () => performance.now()): () => Promise<DatabaseProbeResult> {
  const file = sqliteFile(url);
  const identity = file ? identityOf(file) : undefined;
  return async () => {
    const started = monotonic();
    const done = (error: string | null): DatabaseProbeResult => ({ ok: error === null, ms: Math.round((monotonic() - started) * 1000) / 1000, error });
    if (file && identity) {
      const now = identityOf(file);
      if (!now) return done(`database file ${file} was removed while the daemon runs`);
      if (now.isDirectory()) return done(`database file ${file} was replaced by a directory`);
      if (now.ino !== identity.ino || now.dev !== identity.dev) return done(`database file ${file} was replaced by another file`);
    }
    try {
      if (dialectOf(db) === 'postgres') await withTimeout(sql`select 1`.execute(db), POSTGRES_PROBE_TIMEOUT_MS);
      else await sql`select count(*) as n from sqlite_master`.execute(db);
      if (file) await writeLockProbe(db);
      return done(null);
    } catch (err) {
      return done(describe(err));
    }
  };
}

/** Takes and drops the write lock on one connection with the short busy timeout (kysely's mutex keeps other work off it meanwhile). */
async function writeLockProbe(db: Db): Promise<void> {
  await db.connection().execute(async (conn) => {
    const before = (await sql<{ timeout: number }>`pragma busy_timeout`.execute(conn)).rows[0]?.timeout ?? 5000;
    await sql.raw(`pragma busy_timeout = ${PROBE_BUSY_TIMEOUT_MS}`).execute(conn);
    try {
      await sql`begin immediate`.execute(conn);
      await sql`rollback`.execute(conn);
    } finally {
      await sql.raw(`pragma busy_timeout = ${Math.trunc(Number(before))}`).execute(conn);
    }
  });
}

function identityOf(file: string): Stats | undefined {
  try {
    return statSync(file);
  } catch {
    return undefined;
  }
}

/** PostgreSQL: a server that does not answer a trivial query within this long is down for readiness. */
export const POSTGRES_PROBE_TIMEOUT_MS = 2000;

function withTimeout<T>(work: Promise<T>, ms: number): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(Object.assign(new Error('no answer'), { code: 'PROBE_TIMEOUT' })), ms);
  });
  return Promise.race([work, late]).finally(() => clearTimeout(timer));
}

function describe(err: unknown): string {
  const code = (err as { code?: unknown }).code;
  if (code === 'PROBE_TIMEOUT') return `database did not answer within ${POSTGRES_PROBE_TIMEOUT_MS} ms`;
  if (code === 'SQLITE_BUSY') return `database is locked by another process (no write lock within ${PROBE_BUSY_TIMEOUT_MS} ms)`;
  return `database query failed${typeof code === 'string' ? ` (${code})` : ''}`;
}
