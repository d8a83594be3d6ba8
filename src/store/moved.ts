/**
 * The mark `rebill migrate-to` leaves in a SQLite file it has copied into
 * PostgreSQL: a one-row table, `rebill_moved`, saying where the database went
 * (the URL with its password masked: a password is never stored), when, and
 * how many rows. `rebill run` refuses a marked file (a daemon on it would
 * collect again the cycles the PostgreSQL daemons collect); the read-only
 * commands still read it, as the archive it is; `migrate-to --reopen-source`
 * removes the mark (rolls the move back).
 *
 * A table rather than `PRAGMA user_version`/`application_id`: it holds the
 * target, the instant and the counts the refusal prints, and no migration
 * creates it, so a file that was never moved has exactly the schema the
 * migrations make. The migrations and the migrator ignore it (`rebill
 * migrate` upgrades a marked file as any other), and migrate-to never copies
 * it (MOVED_TABLE is left out of the tables it copies).
 */
import SQLite from 'better-sqlite3';
import { sql } from 'kysely';
import { dialectOf, openError, tableExists, type Db } from './db.js';

/** The marker table: never created by a migration, never copied. */
export const MOVED_TABLE = 'rebill_moved';

export interface MovedMark {
  /** The target URL, password masked. */
  readonly target: string;
  /** When migrate-to wrote the mark (just before its PostgreSQL transaction committed). */
  readonly movedAt: string;
  /** Rows copied, in all tables. */
  readonly rows: number;
  /** Rows copied per table. */
  readonly tables: Readonly<Record<string, number>>;
}

/**
 * Marks the SQLite file `file` as moved (replacing an earlier mark). The
 * caller holds the file's daemon lock. One short write transaction on a
 * connection of its own; the file's journal mode is left as it is.
 */
export function markMoved(file: string, mark: MovedMark): void {
  const sqlite = openForMark(file);
  try {
    sqlite.transaction(() => {
      sqlite.exec(`create table if not exists ${MOVED_TABLE} (target text not null, moved_at text not null, row_count integer not null, table_counts text not null)`);
      sqlite.prepare(`delete from ${MOVED_TABLE}`).run();
      sqlite.prepare(`insert into ${MOVED_TABLE} (target, moved_at, row_count, table_counts) values (?, ?, ?, ?)`).run(mark.target, mark.movedAt, mark.rows, JSON.stringify(mark.tables));
    }).immediate();
  } finally {
    sqlite.close();
  }
}

/** Removes the mark of `file` (the caller holds its daemon lock); returns the mark removed, if any. */
export function unmarkMoved(file: string): MovedMark | undefined {
  const sqlite = openForMark(file);
  try {
    return sqlite.transaction(() => {
      const mark = readMark(sqlite);
      sqlite.exec(`drop table if exists ${MOVED_TABLE}`);
      return mark;
    }).immediate();
  } finally {
    sqlite.close();
  }
}

/** The mark of an open database, if it was moved away (PostgreSQL databases are never marked). */
export async function movedMark(db: Db): Promise<MovedMark | undefined> {
  if (dialectOf(db) !== 'sqlite' || !(await tableExists(db, MOVED_TABLE))) return undefined;
  const row = (await sql<MarkRow>`select target, moved_at, row_count, table_counts from ${sql.table(MOVED_TABLE)} limit 1`.execute(db)).rows[0];
  return row && fromRow(row);
}

interface MarkRow {
  target: string;
  moved_at: string;
  row_count: number;
  table_counts: string;
}

function fromRow(row: MarkRow): MovedMark {
  let tables: Record<string, number> = {};
  try {
    tables = JSON.parse(row.table_counts) as Record<string, number>;
  } catch {
    // The counts are information only: an unreadable list still marks the file as moved.
  }
  return { target: row.target, movedAt: row.moved_at, rows: Number(row.row_count), tables };
}

function readMark(sqlite: SQLite.Database): MovedMark | undefined {
  const exists = sqlite.prepare("select count(*) as n from sqlite_master where type = 'table' and name = ?").get(MOVED_TABLE) as { n: number };
  if (!exists.n) return undefined;
  const row = sqlite.prepare(`select target, moved_at, row_count, table_counts from ${MOVED_TABLE} limit 1`).get() as MarkRow | undefined;
  return row && fromRow(row);
}

function openForMark(file: string): SQLite.Database {
  let sqlite: SQLite.Database;
  try {
    sqlite = new SQLite(file, { fileMustExist: true });
  } catch (err) {
    throw openError(file, err);
  }
  sqlite.pragma('busy_timeout = 5000');
  return sqlite;
}

/** What happened to a moved file, for the messages that refuse or note it: `database F was moved to URL on T by rebill migrate-to (N rows)`. */
export function movedMessage(file: string, mark: MovedMark): string {
  return `database ${file} was moved to ${mark.target} on ${mark.movedAt} by rebill migrate-to (${mark.rows} rows)`;
}

/** The flag that rolls a move back, as the messages name it. */
export function reopenCommand(file: string): string {
  return `rebill migrate-to --reopen-source --from ${file}`;
}
