/**
 * A table that refuses every insert with a given message, in either dialect:
 * a write the database fails half-way (a 5xx) without stopping the process.
 */
import { sql } from 'kysely';
import { dialectOf, type Db } from '../../src/store/index.js';

/** Makes inserts into `table` fail with `message`; the returned function lifts it. */
export async function refuseInserts(db: Db, table: string, message: string): Promise<() => Promise<void>> {
  const trigger = sql.id(`refuse_${table}`);
  if (dialectOf(db) === 'postgres') {
    await sql`create function ${trigger}() returns trigger language plpgsql as ${sql.lit(`begin raise exception '%', ${quote(message)}; end`)}`.execute(db);
    await sql`create trigger ${trigger} before insert on ${sql.table(table)} for each row execute function ${trigger}()`.execute(db);
    return async () => {
      await sql`drop trigger ${trigger} on ${sql.table(table)}`.execute(db);
      await sql`drop function ${trigger}()`.execute(db);
    };
  }
  await sql`create trigger ${trigger} before insert on ${sql.table(table)} begin select raise(abort, ${sql.lit(message)}); end`.execute(db);
  return async () => {
    await sql`drop trigger ${trigger}`.execute(db);
  };
}

/** A PL/pgSQL string literal. */
function quote(text: string): string {
  return `'${text.replaceAll("'", "''")}'`;
}
