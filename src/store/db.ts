/**
 * Dialect set-up: the only place that knows which database is underneath.
 */
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import SQLite from 'better-sqlite3';
import { Kysely, Migrator, SqliteAdapter, SqliteDialect, type DialectAdapter, type MigrationResultSet } from 'kysely';
import { migrations } from '../../migrations/index.js';
import { RebillError } from '../errors.js';
import type { Database } from './schema.js';

export type Db = Kysely<Database>;

export interface OpenOptions {
  /** `full` (default) fsyncs every commit: a money ledger must not lose an acknowledged write. */
  readonly synchronous?: 'full' | 'normal';
}

/**
 * Opens `sqlite:<path>` (`sqlite::memory:` for tests). SQLite runs in WAL
 * mode with foreign keys on and a busy timeout so a second process (the CLI
 * next to a running daemon) waits instead of failing.
 */
export function openDatabase(url: string, options: OpenOptions = {}): Db {
  if (url.startsWith('sqlite:')) {
    const path = url.slice('sqlite:'.length);
    if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
    const sqlite = new SQLite(path === ':memory:' ? ':memory:' : path);
    sqlite.pragma('journal_mode = WAL');
    sqlite.pragma(`synchronous = ${options.synchronous === 'normal' ? 'NORMAL' : 'FULL'}`);
    sqlite.pragma('foreign_keys = ON');
    sqlite.pragma('busy_timeout = 5000');
    return new Kysely<Database>({ dialect: new TransactionalSqliteDialect({ database: withStatementCache(sqlite) }) });
  }
  if (/^postgres(ql)?:\/\//.test(url)) {
    throw new RebillError('DATABASE_UNSUPPORTED', 'the PostgreSQL backend is not available in this version; use sqlite:<path>');
  }
  throw new RebillError('DATABASE_URL_INVALID', `database.url must be sqlite:<path> or postgres://...; got "${url}"`);
}

/**
 * SQLite DDL is transactional, but kysely's SQLite adapter says otherwise, so
 * its migrator would apply a migration statement by statement: a daemon killed
 * half-way through its first migration would leave a half-built schema that no
 * later start can migrate. Each migration runs in one transaction instead.
 */
class TransactionalSqliteAdapter extends SqliteAdapter {
  override get supportsTransactionalDdl(): boolean {
    return true;
  }
}

class TransactionalSqliteDialect extends SqliteDialect {
  override createAdapter(): DialectAdapter {
    return new TransactionalSqliteAdapter();
  }
}

/**
 * kysely's SQLite driver prepares every query anew; preparing costs more than
 * running most of ours. The engine issues the same few statements thousands of
 * times, so prepared statements are kept by SQL text (bounded, oldest out).
 * better-sqlite3 runs each statement to completion synchronously, so one
 * statement object is never used by two queries at once.
 */
function withStatementCache(sqlite: SQLite.Database, size = 500): SQLite.Database {
  const cache = new Map<string, SQLite.Statement>();
  const prepare = (source: string): SQLite.Statement => {
    let statement = cache.get(source);
    if (statement) {
      cache.delete(source);
    } else {
      statement = sqlite.prepare(source);
      if (cache.size >= size) cache.delete(cache.keys().next().value!);
    }
    cache.set(source, statement);
    return statement;
  };
  return new Proxy(sqlite, {
    get(target, property, receiver) {
      if (property === 'prepare') return prepare;
      const value = Reflect.get(target, property, receiver) as unknown;
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
}

/** Applies pending migrations; idempotent. Throws with the failing migration's name. */
export async function migrateToLatest(db: Db): Promise<MigrationResultSet> {
  const migrator = new Migrator({ db, provider: { getMigrations: async () => migrations } });
  const result = await migrator.migrateToLatest();
  if (result.error) {
    const failed = result.results?.find((r) => r.status === 'Error')?.migrationName ?? 'unknown';
    throw new RebillError('MIGRATION_FAILED', `migration ${failed} failed: ${String((result.error as Error).message ?? result.error)}`, {
      cause: result.error,
    });
  }
  return result;
}

/** Fixed-width UTC ISO text for an epoch-ms instant: the stored form of every timestamp. */
export function toDbTime(ms: number): string {
  return new Date(ms).toISOString();
}

/** The inverse of toDbTime. */
export function fromDbTime(text: string): number {
  return Date.parse(text);
}
