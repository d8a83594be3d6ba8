/**
 * `rebill migrate-to postgres://...`: copies a SQLite database into an empty
 * PostgreSQL database, all or nothing.
 *
 * Why it is safe to switch billing over to the copy:
 * - One snapshot. Every table is read inside ONE SQLite read transaction, so
 *   the copy is the database as of one commit: an attempt and the event it
 *   wrote are both copied or neither is. (The CLI also holds the daemon lock,
 *   so no daemon runs on the file meanwhile.)
 * - One target transaction. Every row is inserted, every sequence is moved
 *   and every table is verified inside ONE PostgreSQL transaction that holds
 *   an EXCLUSIVE lock on every table: a failure anywhere rolls everything
 *   back, and a daemon started on the target meanwhile waits for the commit
 *   instead of seeding or collecting beside the copy.
 * - An empty target only. Rows are never merged into a database that already
 *   holds rebill data: merged outboxes, ledgers or leases could charge twice.
 * - The same schema. Source and target must both be at exactly this build's
 *   migrations; the table and column lists are read from the two catalogues
 *   (never a hand-written list that a new migration would leave behind), and
 *   a table or column the target lacks, or a column type this copy does not
 *   know how to convert, stops the copy before anything is written.
 * - Ids carry on. Every serial/identity sequence is set past the largest id
 *   copied (and past SQLite's AUTOINCREMENT high-water mark), so outbox event
 *   ids keep increasing and webhook cursors stay valid.
 * - Verified. Before committing, each table's row count and an
 *   order-independent digest of its rows' text (md5 per row, summed) are
 *   computed by PostgreSQL over what it stored and compared with the same
 *   figures computed while reading SQLite.
 */
import { createHash } from 'node:crypto';
import type SQLite from 'better-sqlite3';
import { sql, type Transaction } from 'kysely';
import { migrations } from '../../migrations/index.js';
import { RebillError } from '../errors.js';
import { redactUrlPasswords } from '../logger.js';
import { pendingMigrations } from './admin-queries.js';
import { migrateToLatest, openDatabase, openDatabaseReadOnly, refuseNewerSchema, sqliteConnectionOf, type Db } from './db.js';
import { MOVED_TABLE, movedMark, movedMessage, reopenCommand } from './moved.js';
import type { Database } from './schema.js';

/**
 * Tables never copied: kysely's migrator's (each side keeps its own, written
 * by its own migrations) and the moved mark (moved.ts), which only a SQLite
 * file that was moved away holds.
 */
const NOT_COPIED = new Set(['kysely_migration', 'kysely_migration_lock', MOVED_TABLE]);

/**
 * PostgreSQL column types (`udt_name`) the copy converts, and how. Every type
 * the migrations create today: instants are ISO text, JSON is text, booleans
 * are 0/1 integers in both dialects (migrations/0001_initial.ts), so only the
 * integer representation changes. A migration that adds another type makes
 * the copy refuse until a conversion is added here.
 */
const CONVERSIONS: Record<string, 'text' | 'integer'> = {
  text: 'text',
  varchar: 'text',
  int2: 'integer',
  int4: 'integer',
  int8: 'integer',
};

/** Rows per INSERT (one array per column, so the statement has one parameter per column whatever the count). */
const BATCH_ROWS = 2_000;
/** ...or fewer, once the batch holds this many characters of text. */
const BATCH_CHARS = 4_000_000;

export interface CopiedTable {
  readonly name: string;
  readonly rows: number;
  /** The digest both sides agreed on (sum of the first 60 bits of each row's md5, decimal). */
  readonly digest: string;
}

export interface MovedSequence {
  readonly table: string;
  readonly column: string;
  /** The id the target hands out next. */
  readonly next: number;
}

export interface CopyReport {
  /** In the order they were copied (referenced tables first). */
  readonly tables: readonly CopiedTable[];
  readonly rows: number;
  readonly sequences: readonly MovedSequence[];
}

export interface CopyOptions {
  /** Called once the snapshot is open, with the rows to copy per table. */
  onPlan?(tables: ReadonlyArray<{ name: string; rows: number }>): void;
  /** Called after every batch with the rows copied so far in `table` and in total. */
  onProgress?(table: string, tableRows: number, totalRows: number): void;
  /**
   * Called once everything is copied and verified, the SQLite snapshot closed,
   * and just before the PostgreSQL transaction commits (the CLI marks the
   * source moved there). Throwing rolls the copy back.
   */
  beforeCommit?(report: CopyReport): void | Promise<void>;
}

interface SourceTable {
  readonly name: string;
  readonly columns: readonly string[];
  readonly references: readonly string[];
}

interface TargetColumn {
  readonly name: string;
  readonly udt: string;
  readonly conversion: 'text' | 'integer';
}

/**
 * Copies the SQLite database `sourceFile` into the PostgreSQL database at
 * `targetUrl` (see the module comment). The caller holds the source's daemon
 * lock. Migrates the target first (in its own transactions: a failed copy
 * leaves it migrated and empty, so the command can simply be run again).
 * Throws RebillError: SOURCE_MOVED (the source was moved already: moved.ts),
 * SOURCE_SCHEMA (source not at this build's schema),
 * TARGET_UNREACHABLE, TARGET_NOT_EMPTY, SCHEMA_MISMATCH, COPY_FAILED (a row
 * PostgreSQL refused), COPY_VERIFY_FAILED; nothing is committed then.
 */
export async function copySqliteToPostgres(sourceFile: string, targetUrl: string, options: CopyOptions = {}): Promise<CopyReport> {
  const source = openDatabaseReadOnly(`sqlite:${sourceFile}`);
  if (!source) throw new RebillError('SOURCE_SCHEMA', `no database at ${sourceFile}: nothing to copy (check database.url / REBILL_DATABASE_URL, or --from)`);
  try {
    await checkSourceSchema(source, sourceFile);
    const target = openDatabase(targetUrl, { poolSize: 2 });
    try {
      await prepareTarget(target, targetUrl);
      return await copy(sqliteConnectionOf(source)!, target, targetUrl, options);
    } finally {
      await target.destroy();
    }
  } finally {
    await source.destroy();
  }
}

/** The source must be at exactly this build's schema (migrate-to never migrates the file it copies), and not moved already. */
async function checkSourceSchema(source: Db, file: string): Promise<void> {
  // A second copy of a moved file would make two databases that both collect its cycles.
  const mark = await movedMark(source);
  if (mark) {
    throw new RebillError(
      'SOURCE_MOVED',
      `${movedMessage(file, mark)}; it is not copied again: the daemons belong on that database. To copy it elsewhere after all, roll the move back first (\`${reopenCommand(file)}\`, after which that PostgreSQL copy must not be used)`,
    );
  }
  try {
    await refuseNewerSchema(source);
  } catch (err) {
    throw new RebillError('SOURCE_SCHEMA', `source ${file}: ${(err as Error).message}`, { cause: err });
  }
  const pending = await pendingMigrations(source);
  if (pending.length === Object.keys(migrations).length) throw new RebillError('SOURCE_SCHEMA', `source ${file} is not a rebill database (no migrations applied)`);
  if (pending.length > 0) {
    throw new RebillError(
      'SOURCE_SCHEMA',
      `source ${file} has an older schema (missing ${pending.join(', ')}): run \`rebill migrate\` on it with this rebill first, then migrate-to again`,
    );
  }
}

/** Connects, refuses a server that is not UTF-8 or a newer schema, and applies the migrations. */
async function prepareTarget(target: Db, url: string): Promise<void> {
  const printable = redactUrlPasswords(url);
  let encoding: string;
  try {
    encoding = (await sql<{ e: string }>`select current_setting('server_encoding') as e`.execute(target)).rows[0]!.e;
  } catch (err) {
    throw new RebillError('TARGET_UNREACHABLE', `cannot connect to PostgreSQL at ${printable}: ${redactUrlPasswords(describe(err))}`, { cause: err });
  }
  // Text is copied as it is and verified by md5 of its bytes: both sides must be UTF-8.
  if (encoding !== 'UTF8') throw new RebillError('SCHEMA_MISMATCH', `target ${printable} has server_encoding ${encoding}; rebill needs a UTF8 database (createdb --encoding=UTF8)`);
  try {
    await migrateToLatest(target);
  } catch (err) {
    // Say which of the two databases it is about (the source was checked already).
    if (err instanceof RebillError) throw new RebillError(err.code, `target ${printable}: ${err.message}`, { cause: err });
    throw err;
  }
}

async function copy(source: SQLite.Database, target: Db, url: string, options: CopyOptions): Promise<CopyReport> {
  const tables = copyOrder(sourceTables(source));
  // The snapshot: a read transaction begun now and held until every table has been read.
  source.exec('begin');
  try {
    return await target.transaction().execute(async (trx) => {
      const targetColumns = await matchTargetSchema(trx, tables);
      // No other writer until commit; readers (a daemon's `status`) still read the empty tables.
      await sql`lock table ${sql.join(tables.map((t) => sql.table(t.name)))} in exclusive mode`.execute(trx);
      await refuseNonEmpty(trx, tables, url);

      const plan = tables.map((t) => ({ name: t.name, rows: countRows(source, t.name) }));
      options.onPlan?.(plan);
      const copied: CopiedTable[] = [];
      let total = 0;
      for (const table of tables) {
        const columns = table.columns.map((name) => targetColumns.get(table.name)!.get(name)!);
        const read = await copyTable(source, trx, table.name, columns, (tableRows) => options.onProgress?.(table.name, tableRows, total + tableRows));
        total += read.rows;
        const stored = await digestOf(trx, table.name, columns);
        const expected = plan.find((p) => p.name === table.name)!.rows;
        if (stored.rows !== read.rows || read.rows !== expected || stored.digest !== read.digest) {
          throw new RebillError(
            'COPY_VERIFY_FAILED',
            `table ${table.name}: SQLite has ${expected} rows (read ${read.rows}, digest ${read.digest}), PostgreSQL stored ${stored.rows} (digest ${stored.digest}); nothing was committed`,
          );
        }
        copied.push({ name: table.name, rows: read.rows, digest: read.digest });
      }
      const sequences = await moveSequences(source, trx, tables);
      const report = { tables: copied, rows: total, sequences };
      // Everything is read: the snapshot ends before beforeCommit writes to the file (a file in
      // rollback-journal mode would make that write wait on this read).
      source.exec('rollback');
      await options.beforeCommit?.(report);
      return report;
    });
  } finally {
    if (source.inTransaction) source.exec('rollback');
  }
}

/** The SQLite tables to copy, with their columns and the tables their foreign keys reference. */
function sourceTables(source: SQLite.Database): SourceTable[] {
  const names = (source.prepare("select name from sqlite_master where type = 'table' and name not like 'sqlite\\_%' escape '\\' order by name").all() as Array<{ name: string }>)
    .map((r) => r.name)
    .filter((name) => !NOT_COPIED.has(name));
  return names.map((name) => ({
    name,
    columns: (source.prepare('select name from pragma_table_info(?) order by cid').all(name) as Array<{ name: string }>).map((c) => c.name),
    references: [...new Set((source.prepare('select "table" from pragma_foreign_key_list(?)').all(name) as Array<{ table: string }>).map((r) => r.table))],
  }));
}

/** Referenced tables before the tables that reference them (PostgreSQL checks foreign keys row by row). */
function copyOrder(tables: readonly SourceTable[]): SourceTable[] {
  const byName = new Map(tables.map((t) => [t.name, t]));
  const ordered: SourceTable[] = [];
  const state = new Map<string, 'visiting' | 'done'>();
  const visit = (table: SourceTable): void => {
    if (state.get(table.name) === 'done') return;
    if (state.get(table.name) === 'visiting') throw new RebillError('SCHEMA_MISMATCH', `foreign keys form a cycle through table ${table.name}; migrate-to cannot order the copy`);
    state.set(table.name, 'visiting');
    for (const ref of table.references) {
      const referenced = byName.get(ref);
      if (referenced && ref !== table.name) visit(referenced);
    }
    state.set(table.name, 'done');
    ordered.push(table);
  };
  for (const table of tables) visit(table);
  return ordered;
}

/** The target's columns of every source table; throws SCHEMA_MISMATCH for anything missing or of a type not converted. */
async function matchTargetSchema(trx: Transaction<Database>, tables: readonly SourceTable[]): Promise<Map<string, Map<string, TargetColumn>>> {
  const rows = (
    await sql<{ table_name: string; column_name: string; udt_name: string }>`
      select table_name, column_name, udt_name from information_schema.columns
      where table_schema = current_schema() and table_name in (${sql.join(tables.map((t) => t.name))})`.execute(trx)
  ).rows;
  const found = new Map<string, Map<string, TargetColumn>>();
  for (const row of rows) {
    const conversion = CONVERSIONS[row.udt_name];
    if (!found.has(row.table_name)) found.set(row.table_name, new Map());
    found.get(row.table_name)!.set(row.column_name, { name: row.column_name, udt: row.udt_name, conversion: conversion ?? 'text' });
  }
  const problems: string[] = [];
  for (const table of tables) {
    const columns = found.get(table.name);
    if (!columns) {
      problems.push(`table ${table.name} is missing`);
      continue;
    }
    for (const name of table.columns) {
      const column = columns.get(name);
      if (!column) problems.push(`column ${table.name}.${name} is missing`);
      else if (!CONVERSIONS[column.udt]) problems.push(`column ${table.name}.${name} has type ${column.udt}, which migrate-to does not convert`);
    }
    for (const name of columns.keys()) if (!table.columns.includes(name)) problems.push(`column ${table.name}.${name} is not in the SQLite database`);
  }
  if (problems.length) throw new RebillError('SCHEMA_MISMATCH', `the PostgreSQL schema does not match the SQLite one: ${problems.join('; ')}`);
  return found;
}

/** Refuses a target where any rebill table already has a row: a copy never merges. */
async function refuseNonEmpty(trx: Transaction<Database>, tables: readonly SourceTable[], url: string): Promise<void> {
  const held: string[] = [];
  for (const table of tables) {
    const n = Number((await sql<{ n: number }>`select count(*) as n from ${sql.table(table.name)}`.execute(trx)).rows[0]!.n);
    if (n > 0) held.push(`${table.name}: ${n} row${n === 1 ? '' : 's'}`);
  }
  if (held.length) {
    throw new RebillError(
      'TARGET_NOT_EMPTY',
      `target ${redactUrlPasswords(url)} already holds rebill data (${held.join(', ')}); migrate-to copies only into an empty database and never merges: create a new database (createdb) and run it again`,
    );
  }
}

function countRows(source: SQLite.Database, table: string): number {
  return Number((source.prepare(`select count(*) as n from ${quoteIdent(table)}`).get() as { n: number }).n);
}

/**
 * Streams one table into the target in batches, one `insert ... select from
 * unnest($1::text[], $2::int8[], ...)` per batch: one array parameter per
 * column, whatever the number of rows. Returns the rows read and their digest.
 */
async function copyTable(
  source: SQLite.Database,
  trx: Transaction<Database>,
  table: string,
  columns: readonly TargetColumn[],
  onBatch: (rowsSoFar: number) => void,
): Promise<{ rows: number; digest: string }> {
  // Integers as BigInt: exact whatever their size; passed to PostgreSQL as decimal text.
  const statement = source.prepare(`select ${columns.map((c) => quoteIdent(c.name)).join(', ')} from ${quoteIdent(table)}`).safeIntegers(true).raw(true);
  const insert = (arrays: Array<Array<string | null>>) =>
    sql`insert into ${sql.table(table)} (${sql.join(columns.map((c) => sql.ref(c.name)))})
        select * from unnest(${sql.join(columns.map((c, i) => sql`${arrays[i]}::${sql.raw(c.udt)}[]`))})`.execute(trx);
  let arrays = columns.map(() => [] as Array<string | null>);
  let batchRows = 0;
  let batchChars = 0;
  let rows = 0;
  let digest = 0n;
  // One batch in flight while the next is read: PostgreSQL stores one while SQLite reads the other.
  let inFlight: Promise<void> | undefined;
  const send = async (batch: Array<Array<string | null>>) => {
    if (inFlight) await inFlight;
    inFlight = insertBatch(insert, batch, table);
    // Awaited before the next batch or at the end; this only keeps a failure from being "unhandled" meanwhile.
    inFlight.catch(() => {});
  };
  for (const raw of statement.iterate() as Iterable<unknown[]>) {
    rows++;
    const texts = raw.map((value, i) => toText(value, table, columns[i]!, rows));
    digest += rowDigest(texts);
    for (let i = 0; i < texts.length; i++) {
      arrays[i]!.push(texts[i]!);
      batchChars += texts[i]?.length ?? 0;
    }
    if (++batchRows >= BATCH_ROWS || batchChars >= BATCH_CHARS) {
      await send(arrays);
      onBatch(rows);
      arrays = columns.map(() => []);
      batchRows = 0;
      batchChars = 0;
    }
  }
  if (batchRows > 0) await send(arrays);
  await inFlight;
  onBatch(rows);
  return { rows, digest: digest.toString() };
}

async function insertBatch(insert: (arrays: Array<Array<string | null>>) => Promise<unknown>, arrays: Array<Array<string | null>>, table: string): Promise<void> {
  try {
    await insert(arrays);
  } catch (err) {
    throw new RebillError('COPY_FAILED', `PostgreSQL refused rows of table ${table}: ${describe(err)}; nothing was committed`, { cause: err });
  }
}

/** One SQLite value as the text PostgreSQL parses for the column (and prints back with `::text`), or null. */
function toText(value: unknown, table: string, column: TargetColumn, row: number): string | null {
  if (value === null) return null;
  const where = () => `table ${table}, row ${row}, column ${column.name}`;
  if (column.conversion === 'integer') {
    if (typeof value === 'bigint') return value.toString();
    if (typeof value === 'number' && Number.isInteger(value)) return BigInt(value).toString();
    throw new RebillError('COPY_FAILED', `${where()}: expected an integer, found ${JSON.stringify(typeof value === 'string' ? value.slice(0, 40) : String(value))}; nothing was committed`);
  }
  if (typeof value === 'string') {
    if (value.includes('\u0000')) throw new RebillError('COPY_FAILED', `${where()}: the text holds a NUL character, which PostgreSQL text cannot store; nothing was committed`);
    return value;
  }
  if (typeof value === 'bigint' || typeof value === 'number') return String(value);
  throw new RebillError('COPY_FAILED', `${where()}: a binary value in a text column; nothing was committed`);
}

/** Field and null markers of the row text that is hashed; PostgreSQL's digestOf builds the same text. */
const FIELD_SEPARATOR = '\u001f';
const NULL_MARK = '\u001e';

/** The first 60 bits of the md5 of the row's text, as an integer (summed: order does not matter). */
function rowDigest(texts: ReadonlyArray<string | null>): bigint {
  const text = texts.map((t) => t ?? NULL_MARK).join(FIELD_SEPARATOR);
  return BigInt(`0x${createHash('md5').update(text, 'utf8').digest('hex').slice(0, 15)}`);
}

/** The same count and digest, computed by PostgreSQL over the rows it stored. */
async function digestOf(trx: Transaction<Database>, table: string, columns: readonly TargetColumn[]): Promise<{ rows: number; digest: string }> {
  const fields = sql.join(
    columns.map((c) => sql`coalesce(${sql.ref(c.name)}::text, ${NULL_MARK})`),
    sql`, `,
  );
  const row = (
    await sql<{ n: number; digest: string }>`
      select count(*) as n,
             coalesce(sum(('x' || substr(md5(concat_ws(${FIELD_SEPARATOR}, ${fields})), 1, 15))::bit(60)::bigint::numeric), 0)::text as digest
      from ${sql.table(table)}`.execute(trx)
  ).rows[0]!;
  return { rows: Number(row.n), digest: row.digest };
}

/**
 * Moves every sequence that feeds a column of a copied table (serial,
 * bigserial, identity) past the largest value copied, and past SQLite's
 * AUTOINCREMENT high-water mark where the table has one (ids handed out and
 * then deleted are never handed out again there, nor here).
 */
async function moveSequences(source: SQLite.Database, trx: Transaction<Database>, tables: readonly SourceTable[]): Promise<MovedSequence[]> {
  const hasSequenceTable = source.prepare("select count(*) as n from sqlite_master where type = 'table' and name = 'sqlite_sequence'").get() as { n: number };
  const highWater = new Map<string, number>(
    hasSequenceTable.n ? (source.prepare('select name, seq from sqlite_sequence').all() as Array<{ name: string; seq: number }>).map((r) => [r.name, Number(r.seq)]) : [],
  );
  const moved: MovedSequence[] = [];
  for (const table of tables) {
    for (const column of table.columns) {
      const seq = (await sql<{ seq: string | null }>`select pg_get_serial_sequence(${quoteIdent(table.name)}, ${column}) as seq`.execute(trx)).rows[0]!.seq;
      if (seq === null) continue;
      const max = Number((await sql<{ m: string | null }>`select max(${sql.ref(column)})::text as m from ${sql.table(table.name)}`.execute(trx)).rows[0]!.m ?? 0);
      const last = Math.max(max, highWater.get(table.name) ?? 0);
      // is_called = false: the next nextval() returns exactly `last + 1` (and 1 on an empty table).
      await sql`select setval(${seq}::regclass, ${last + 1}, false)`.execute(trx);
      moved.push({ table: table.name, column, next: last + 1 });
    }
  }
  return moved;
}

function quoteIdent(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message || String((err as { code?: unknown }).code ?? err) : String(err);
}
