/**
 * Temp directories and temp SQLite databases for tests: each one fresh under
 * the OS temp dir, named `rebill-<name>-XXXXXX`, and removed by its owner.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll } from 'vitest';
import { migrateToLatest, openDatabase, type Db, type Dialect, type OpenOptions } from '../../src/store/index.js';
import { createTestPostgres } from './postgres.js';

/** Both dialects, for `describe.each(DIALECTS)`: one suite, two databases. */
export const DIALECTS: readonly Dialect[] = ['sqlite', 'postgres'];

/**
 * The dialect of this test run: vitest's `postgres` project (vitest.config.ts)
 * runs the portable suites again with REBILL_TEST_DIALECT=postgres, so one
 * suite serves both databases without a line of its own changing.
 */
export const TEST_DIALECT: Dialect = process.env.REBILL_TEST_DIALECT === 'postgres' ? 'postgres' : 'sqlite';

/** A fresh directory `rebill-<name>-XXXXXX` under the OS temp dir; the caller removes it. */
export function tempDir(name: string): string {
  return mkdtempSync(join(tmpdir(), `rebill-${name}-`));
}

export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

/** One temp directory for the whole test file, made now and removed after all its tests. */
export function fileTempDir(name: string): string {
  const dir = tempDir(name);
  afterAll(() => removeDir(dir));
  return dir;
}

export interface TempDb {
  readonly db: Db;
  readonly dialect: Dialect;
  /** The database's URL (`sqlite:<file>` or `postgres://.../<fresh database>`). */
  readonly url: string;
  readonly dir: string;
  /** Path of the SQLite file inside `dir` (PostgreSQL: unused, but inside `dir` too). */
  readonly file: string;
  close(): Promise<void>;
  /** Closes this connection and opens the same database again (a restart); the new handle's close removes it all. */
  reopen(): Promise<TempDb>;
  /** A second connection to the same database, opened the same way (another daemon); the caller destroys it. */
  connect(): Db;
}

/**
 * A migrated SQLite database at `<dir>/<file>` (default `x.db`) in a fresh temp directory
 * `rebill-<name>-` (default `engine`); `close` destroys it and removes the directory.
 */
export async function openTempDb(options: OpenOptions = {}, where: { name?: string; file?: string; dialect?: Dialect } = {}): Promise<TempDb> {
  const dialect = where.dialect ?? TEST_DIALECT;
  const dir = tempDir(where.name ?? 'engine');
  const file = join(dir, where.file ?? 'x.db');
  const server = dialect === 'postgres' ? await createTestPostgres(where.name ?? 'engine') : null;
  const url = server ? server.url : `sqlite:${file}`;
  // Tests run the engine on virtual clocks: on PostgreSQL, the instants they pass in judge due work
  // (the server's own clock is tested where real time runs: test/store/postgres.test.ts, e2e).
  if (dialect === 'postgres' && options.time === undefined) options = { ...options, time: 'caller' };
  const db = openDatabase(url, options);
  try {
    await migrateToLatest(db);
  } catch (err) {
    await db.destroy();
    await server?.drop();
    removeDir(dir);
    throw err;
  }
  return handle(db, dialect, url, dir, file, options, async () => {
    await server?.drop();
    removeDir(dir);
  });
}

function handle(db: Db, dialect: Dialect, url: string, dir: string, file: string, options: OpenOptions, remove: () => Promise<void>): TempDb {
  return {
    db,
    dialect,
    url,
    dir,
    file,
    async close() {
      await db.destroy();
      await remove();
    },
    connect: () => openDatabase(url, options),
    async reopen() {
      await db.destroy();
      const again = openDatabase(url, options);
      await migrateToLatest(again);
      return handle(again, dialect, url, dir, file, options, remove);
    },
  };
}
