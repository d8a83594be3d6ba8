/**
 * `rebill backup FILE`: a consistent copy of a SQLite database, taken beside
 * a running daemon. `VACUUM INTO` runs in one read transaction, so the copy
 * is the database as of one commit (WAL readers never block the daemon's
 * writer, nor it them), and, unlike the online backup API, it never restarts
 * when the daemon commits meanwhile. The copy is written to a temporary file
 * next to the target, checked (`PRAGMA integrity_check`), switched to a
 * rollback journal so it is one self-contained file, and renamed into place.
 */
import { existsSync, renameSync, rmSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import SQLite from 'better-sqlite3';
import { RebillError } from '../errors.js';
import { openError } from './db.js';

export interface BackupOptions {
  /** Replace an existing target file. */
  readonly overwrite?: boolean;
}

export interface BackupResult {
  readonly file: string;
  readonly bytes: number;
  readonly subscriptions: number;
}

/**
 * Copies the database at `source` to `target`. Throws BACKUP_FAILED (target
 * exists without `overwrite`, source missing, copy damaged, disk full, ...)
 * with a sentence naming the files; a failed copy leaves no file behind.
 */
export function backupDatabase(source: string, target: string, options: BackupOptions = {}): BackupResult {
  if (!existsSync(source)) throw new RebillError('BACKUP_FAILED', `no database at ${source}: nothing to back up (check database.url / REBILL_DATABASE_URL)`);
  if (resolve(source) === resolve(target)) throw new RebillError('BACKUP_FAILED', `backup file ${target} is the database itself`);
  if (existsSync(target) && !options.overwrite) throw new RebillError('BACKUP_FAILED', `backup file ${target} already exists: choose another name, or pass --force to replace it`);
  const temp = join(dirname(resolve(target)), `.${basename(target)}.${process.pid}.partial`);
  rmSync(temp, { force: true });
  let db: SQLite.Database;
  try {
    // Read-only: no lock of the daemon's is taken and nothing is written to the live file.
    db = new SQLite(source, { readonly: true, fileMustExist: true });
    db.pragma('busy_timeout = 5000');
  } catch (err) {
    throw openError(source, err);
  }
  try {
    db.prepare('vacuum into ?').run(temp);
  } catch (err) {
    rmSync(temp, { force: true });
    throw new RebillError('BACKUP_FAILED', `cannot write backup ${target}: ${(err as Error).message}`, { cause: err });
  } finally {
    db.close();
  }
  try {
    const result = checkCopy(temp, target);
    renameSync(temp, target);
    return result;
  } catch (err) {
    rmSync(temp, { force: true });
    if (err instanceof RebillError) throw err;
    throw new RebillError('BACKUP_FAILED', `cannot finish backup ${target}: ${(err as Error).message}`, { cause: err });
  }
}

/** Integrity-checks the fresh copy, makes it a single file (no -wal), and counts its subscriptions. */
function checkCopy(temp: string, target: string): BackupResult {
  const copy = new SQLite(temp, { fileMustExist: true });
  try {
    copy.pragma('journal_mode = DELETE');
    const problems = (copy.pragma('integrity_check') as Array<Record<string, unknown>>).map((r) => String(Object.values(r)[0])).filter((t) => t !== 'ok');
    if (problems.length) throw new RebillError('BACKUP_FAILED', `backup ${target} failed its integrity check (${problems.slice(0, 5).join('; ')}); the database itself may be damaged: run \`rebill migrate\` to check it`);
    const hasTable = copy.prepare("select count(*) as n from sqlite_master where type = 'table' and name = 'subscriptions'").get() as { n: number };
    const subscriptions = hasTable.n ? (copy.prepare('select count(*) as n from subscriptions').get() as { n: number }).n : 0;
    const pages = copy.pragma('page_count', { simple: true }) as number;
    const size = copy.pragma('page_size', { simple: true }) as number;
    return { file: target, bytes: pages * size, subscriptions };
  } finally {
    copy.close();
  }
}
