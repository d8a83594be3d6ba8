/**
 * Every row of every table of a SQLite test database, in a stable order: take
 * one before and one after a request to show that a refused request changed
 * nothing at all (not only the table it was aimed at).
 */
import { sql } from 'kysely';
import type { Db } from '../../src/store/index.js';

/** Table name -> its rows, in rowid order. */
export type TableDump = Record<string, unknown[]>;

/** Dumps every table but those in `except` (e.g. `idempotency_keys` for a request sent with a key). */
export async function dumpTables(db: Db, options: { except?: readonly string[] } = {}): Promise<TableDump> {
  const except = new Set(options.except ?? []);
  const tables = await sql<{ name: string }>`select name from sqlite_master where type = 'table' and name not like 'sqlite_%' order by name`.execute(db);
  const dump: TableDump = {};
  for (const { name } of tables.rows) {
    if (except.has(name)) continue;
    const rows = await sql`select * from ${sql.table(name)} order by rowid`.execute(db);
    dump[name] = rows.rows;
  }
  return dump;
}
