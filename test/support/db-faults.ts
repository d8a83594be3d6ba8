/**
 * A table that refuses every insert with a given message, in either dialect:
 * a write the database fails half-way (a 5xx) without stopping the process.
 */
import { sql } from 'kysely';
import { dialectOf, type Db } from '../../src/store/index.js';

/**
 * Makes inserts into `table` fail with `message` (only rows whose `when.column`
 * is `when.value`, if given); the returned function lifts it.
 */
export async function refuseInserts(db: Db, table: string, message: string, when?: { column: string; value: string }): Promise<() => Promise<void>> {
  const trigger = sql.id(`refuse_${table}`);
  if (dialectOf(db) === 'postgres') {
    const raise = `raise exception '%', ${quote(message)};`;
    const body = when ? `begin if new.${when.column} = ${quote(when.value)} then ${raise} end if; return new; end` : `begin ${raise} end`;
    await sql`create function ${trigger}() returns trigger language plpgsql as ${sql.lit(body)}`.execute(db);
    await sql`create trigger ${trigger} before insert on ${sql.table(table)} for each row execute function ${trigger}()`.execute(db);
    return async () => {
      await sql`drop trigger ${trigger} on ${sql.table(table)}`.execute(db);
      await sql`drop function ${trigger}()`.execute(db);
    };
  }
  const condition = when ? sql` when new.${sql.id(when.column)} = ${sql.lit(when.value)}` : sql``;
  await sql`create trigger ${trigger} before insert on ${sql.table(table)}${condition} begin select raise(abort, ${sql.lit(message)}); end`.execute(db);
  return async () => {
    await sql`drop trigger ${trigger}`.execute(db);
  };
}

/** A PL/pgSQL string literal. */
function quote(text: string): string {
  return `'${text.replaceAll("'", "''")}'`;
}
