/**
 * Temp directories and temp SQLite databases for tests: each one fresh under
 * the OS temp dir, named `rebill-<name>-XXXXXX`, and removed by its owner.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll } from 'vitest';
import { migrateToLatest, openDatabase, type Db, type OpenOptions } from '../../src/store/index.js';

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
  readonly dir: string;
  /** Path of the SQLite file inside `dir`. */
  readonly file: string;
  close(): Promise<void>;
}

/**
 * A migrated SQLite database at `<dir>/<file>` (default `x.db`) in a fresh temp directory
 * `rebill-<name>-` (default `engine`); `close` destroys it and removes the directory.
 */
export async function openTempDb(options: OpenOptions = {}, where: { name?: string; file?: string } = {}): Promise<TempDb> {
  const dir = tempDir(where.name ?? 'engine');
  const file = join(dir, where.file ?? 'x.db');
  const db = openDatabase(`sqlite:${file}`, options);
  await migrateToLatest(db);
  return {
    db,
    dir,
    file,
    async close() {
      await db.destroy();
      removeDir(dir);
    },
  };
}
