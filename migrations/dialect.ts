/**
 * The few column types the two dialects spell differently. Every migration
 * is portable SQL otherwise (see 0001_initial.ts). For SQLite these give
 * exactly the types the migrations were released with, so a SQLite database
 * migrated by an earlier build sees the same schema.
 */
import { sql, PostgresAdapter, type Kysely, type ColumnDataType, type Expression } from 'kysely';

export function isPostgres(db: Kysely<any>): boolean {
  return db.getExecutor().adapter instanceof PostgresAdapter;
}

/** An auto-incrementing primary key: `bigserial` in PostgreSQL, SQLite's `integer primary key` (the rowid). */
export function serialKeyType(db: Kysely<any>): Expression<unknown> {
  return isPostgres(db) ? sql`bigserial` : sql`integer`;
}

/** A column that holds an outbox event id: 64 bits in PostgreSQL (SQLite's integer already is). */
export function eventIdType(db: Kysely<any>): ColumnDataType {
  return isPostgres(db) ? 'bigint' : 'integer';
}
