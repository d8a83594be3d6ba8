/**
 * Every row of every table of a test database, in a stable order: take
 * one before and one after a request to show that a refused request changed
 * nothing at all (not only the table it was aimed at).
 */
import { sql } from 'kysely';
import { dialectOf, type Db } from '../../src/store/index.js';

/** Table name -> its rows, in rowid order (PostgreSQL, which has no rowid: in the order of their JSON text). */
export type TableDump = Record<string, unknown[]>;

/** Dumps every table but those in `except` (e.g. `idempotency_keys` for a request sent with a key). */
export async function dumpTables(db: Db, options: { except?: readonly string[] } = {}): Promise<TableDump> {
  const except = new Set(options.except ?? []);
  const postgres = dialectOf(db) === 'postgres';
  const tables = postgres
    ? await sql<{ name: string }>`select tablename as name from pg_catalog.pg_tables where schemaname = any (current_schemas(false)) order by tablename`.execute(db)
    : await sql<{ name: string }>`select name from sqlite_master where type = 'table' and name not like 'sqlite_%' order by name`.execute(db);
  const dump: TableDump = {};
  for (const { name } of tables.rows) {
    if (except.has(name)) continue;
    if (postgres) {
      const rows = (await sql`select * from ${sql.table(name)}`.execute(db)).rows.map((row) => [JSON.stringify(row), row] as const);
      dump[name] = rows.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, row]) => row);
    } else {
      dump[name] = (await sql`select * from ${sql.table(name)} order by rowid`.execute(db)).rows;
    }
  }
  return dump;
}
