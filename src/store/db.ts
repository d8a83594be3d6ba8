/**
 * Dialect set-up: the only place that knows which database is underneath.
 */
import { accessSync, constants, existsSync, mkdirSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import SQLite from 'better-sqlite3';
import pg from 'pg';
import {
  CompiledQuery,
  Kysely,
  Migrator,
  PostgresAdapter,
  PostgresDialect,
  sql,
  SqliteAdapter,
  SqliteDialect,
  SqliteDriver,
  type DatabaseConnection,
  type DialectAdapter,
  type Driver,
  type MigrationResultSet,
  type RawBuilder,
  type SqliteDialectConfig,
  type Transaction,
} from 'kysely';
import { migrations } from '../../migrations/index.js';
import { RebillError } from '../errors.js';
import { redactUrlPasswords } from '../logger.js';
import type { Database } from './schema.js';

export type Db = Kysely<Database>;

/** SQLite page cache per connection, KiB (the daemon's: its hot B-tree pages are read again and again). */
const PAGE_CACHE_KIB = 65_536;

/**
 * SQLite page cache for a process that streams rows in once (`subscriptions
 * import`): its pages are rarely read again, and a 64 MiB cache only grew its
 * memory with the file (peak RSS at 100,000 lines 291 MB against 152 MB at
 * 10,000; 220 MB with this).
 */
export const STREAMING_PAGE_CACHE_KIB = 8_192;

/**
 * Runs `load`, a bulk write whose rows are not read again soon (the config's
 * seed subscriptions at start), with the SQLite page cache at
 * STREAMING_PAGE_CACHE_KIB, then gives the connection its own cache size back.
 * The daemon's 64 MiB cache filled with the seeds' pages as they were written:
 * 100,000 seeds raised its peak RSS by about 60 MB that no later read used.
 * Shrinking the cache frees the pages above the new size at once; the engine's
 * working set fills the restored cache again as it reads. PostgreSQL: `load`
 * as it is (its buffers are the server's).
 */
export async function withStreamingPageCache<T>(db: Db, load: () => Promise<T>): Promise<T> {
  if (dialectOf(db) !== 'sqlite') return load();
  const { rows } = await sql<{ cache_size: number }>`pragma cache_size`.execute(db);
  const own = rows[0]!.cache_size;
  await sql.raw(`pragma cache_size = -${STREAMING_PAGE_CACHE_KIB}`).execute(db);
  try {
    return await load();
  } finally {
    await sql.raw(`pragma cache_size = ${Number(own)}`).execute(db);
  }
}

export interface OpenOptions {
  /** SQLite: `full` (default) fsyncs every commit: a money ledger must not lose an acknowledged write. */
  readonly synchronous?: 'full' | 'normal';
  /** PostgreSQL: most connections this process opens (default 10). */
  readonly poolSize?: number;
  /**
   * PostgreSQL: whose clock judges due work, leases and the engine's
   * timestamps. `database` (default): the server's, which every daemon on it
   * shares. `caller`: the instant the engine passes in, for tests and
   * simulations that run on a virtual clock (the server's clock means nothing
   * to them). SQLite always uses the caller's: one daemon per file.
   */
  readonly time?: 'database' | 'caller';
  /** SQLite: the page cache, KiB (default 64 MiB, for the daemon). */
  readonly pageCacheKib?: number;
}

/** Which database is underneath a Db. */
export type Dialect = 'sqlite' | 'postgres';

/** The dialect of an open database (from kysely's adapter: the one thing both dialects answer the same way). */
export function dialectOf(db: Db): Dialect {
  return db.getExecutor().adapter instanceof PostgresAdapter ? 'postgres' : 'sqlite';
}

/** True for a `postgres://` or `postgresql://` URL. */
export function isPostgresUrl(url: string): boolean {
  return /^postgres(ql)?:\/\//.test(url);
}


/**
 * Opens `sqlite:<path>` (`sqlite::memory:` for tests). SQLite runs in WAL
 * mode with foreign keys on and a busy timeout so a second process (the CLI
 * next to a running daemon) waits instead of failing. A file that cannot be
 * opened throws DATABASE_OPEN_FAILED saying why (is a directory, directory
 * not writable, parent missing, ...), not SQLite's bare "unable to open".
 */
export function openDatabase(url: string, options: OpenOptions = {}): Db {
  if (isPostgresUrl(url)) return openPostgres(url, options);
  const path = sqlitePath(url);
  if (path !== ':memory:') checkDatabasePath(path);
  let sqlite: SQLite.Database;
  try {
    sqlite = new SQLite(path);
    // Before anything that may need a lock (switching a fresh file to WAL does).
    sqlite.pragma('busy_timeout = 5000');
    sqlite.pragma('journal_mode = WAL');
  } catch (err) {
    throw openError(path, err);
  }
  sqlite.pragma(`synchronous = ${options.synchronous === 'normal' ? 'NORMAL' : 'FULL'}`);
  sqlite.pragma('foreign_keys = ON');
  // SQLite's default page cache is 2 MiB: past a few thousand subscriptions every claim, outcome
  // and ledger lookup went to the OS for its pages again. 64 MiB keeps the hot B-tree pages.
  sqlite.pragma(`cache_size = -${options.pageCacheKib ?? PAGE_CACHE_KIB}`);
  // Every API write runs in a savepoint of its group commit (write-batcher.ts), and a savepoint
  // journals the original of each page it changes (about ten per create) in a statement journal.
  // Past 64 KiB SQLite spills that journal to a temp file under /var/tmp: a file created, written
  // (15 pwrites per create) and deleted per batch, a third of a create's system CPU. That journal
  // only ever rolls back a savepoint (WAL recovers a crash), so it lives in memory.
  sqlite.pragma('temp_store = MEMORY');
  return kyselyOver(sqlite);
}

/**
 * Opens an existing SQLite database read-only (`check-config`): never creates,
 * migrates or writes the file. Undefined when the file does not exist.
 */
export function openDatabaseReadOnly(url: string): Db | undefined {
  // PostgreSQL: every transaction of this pool is read-only (the server refuses writes).
  if (isPostgresUrl(url)) return openPostgres(url, { poolSize: 2, readOnly: true });
  const path = sqlitePath(url);
  if (path === ':memory:' || !existsSync(path)) return undefined;
  let sqlite: SQLite.Database;
  try {
    sqlite = new SQLite(path, { readonly: true, fileMustExist: true });
    sqlite.pragma('busy_timeout = 5000');
  } catch (err) {
    throw openError(path, err);
  }
  return kyselyOver(sqlite);
}

function kyselyOver(sqlite: SQLite.Database): Db {
  const cached = withStatementCache(sqlite);
  const db = new Kysely<Database>({ dialect: new TransactionalSqliteDialect({ database: cached }, sqlite) });
  connections.set(db, sqlite);
  // A Db's transactions share its adapter (kysely hands them the same executor settings).
  transactionConnections.set(db.getExecutor().adapter, cached);
  return db;
}

/** The better-sqlite3 connection (with its statement cache) under each SQLite Db's transactions, by their adapter. */
const transactionConnections = new WeakMap<object, SQLite.Database>();

/** The better-sqlite3 connection under each Db opened here. */
const connections = new WeakMap<Db, SQLite.Database>();

/**
 * The better-sqlite3 connection under a Db opened by this module, for the
 * engine's hot path (sqlite-hot-path.ts), which runs prepared statements in
 * synchronous transactions on the SAME connection (never a second one to the
 * same file: SQLite would make the two wait on each other's write lock).
 * It must hold kysely's connection while it does (`db.connection()`), so no
 * kysely transaction is ever open underneath it. Store modules only.
 */
export function sqliteConnectionOf(db: Db): SQLite.Database | undefined {
  return connections.get(db);
}

/**
 * Runs `work` in one `begin immediate` transaction on `sqlite`, the Db's own
 * connection (sqliteConnectionOf), while holding kysely's connection, so no
 * kysely transaction is ever open underneath it; `afterCommit` runs once it
 * committed, still holding it. A failed `work` rolls back and skips it.
 */
export function sqliteImmediate<T>(db: Db, sqlite: SQLite.Database, work: () => T, afterCommit?: () => void): Promise<T> {
  return db.connection().execute(async () => {
    if (sqlite.inTransaction) throw new RebillError('STORE_INVARIANT', 'a transaction is already open on the connection');
    const result = sqlite.transaction(work).immediate();
    afterCommit?.();
    return result;
  });
}

/**
 * Opens a pooled PostgreSQL database. Nothing connects until the first query.
 * `bigint` columns (int8: amounts in minor units, outbox ids, counts) come back
 * as JavaScript numbers, as they do from SQLite: every value rebill stores in
 * one is far below 2^53. Instants stay fixed-width UTC ISO text in both
 * dialects (see migrations/0001_initial.ts), so every query reads the same.
 */
function openPostgres(url: string, options: OpenOptions & { readOnly?: boolean }): Db {
  const pool = new pg.Pool({
    connectionString: url,
    max: options.poolSize ?? 10,
    ...(options.readOnly ? { options: '-c default_transaction_read_only=on' } : {}),
    types: { getTypeParser: (oid: number, format?: string) => (oid === INT8_OID ? parseInt8 : pg.types.getTypeParser(oid, format as 'text')) } as pg.CustomTypesConfig,
  });
  // An idle client that loses its server (a restart) must not crash the process; the next query reconnects.
  pool.on('error', () => {});
  const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
  if (options.time === 'caller') callerTime.add(db);
  postgresUrls.set(db, url);
  return db;
}

const postgresUrls = new WeakMap<Db, string>();

/**
 * A PostgreSQL connection of its own, outside the Db's pool, for a session
 * that lasts as long as some work does (an advisory lock held by the e-mail
 * sender): held from the pool, such sessions would leave
 * too few connections for the engine and the API. The caller ends it.
 */
export async function sessionConnection(db: Db): Promise<pg.Client> {
  const url = postgresUrls.get(db);
  if (url === undefined) throw new RebillError('DATABASE_UNSUPPORTED', 'a session connection needs a PostgreSQL database opened by openDatabase');
  const client = new pg.Client({ connectionString: url });
  // A server that goes away ends the session (and its locks); the error is the caller's next query's.
  client.on('error', () => {});
  await client.connect();
  return client;
}

const callerTime = new WeakSet<Db>();

/** Whether the engine's instants on this Db are the database's clock (PostgreSQL opened with the default `time`). */
export function usesDatabaseClock(db: Db): boolean {
  return dialectOf(db) === 'postgres' && !callerTime.has(db);
}

const INT8_OID = 20;
const parseInt8 = (text: string): number => Number(text);

/** The file path of a `sqlite:` URL; anything else is refused (the config schema refuses it first). */
function sqlitePath(url: string): string {
  if (url.startsWith('sqlite:')) return url.slice('sqlite:'.length);
  throw new RebillError('DATABASE_URL_INVALID', `database.url must be sqlite:<path> or postgres://...; got "${redactUrlPasswords(url)}"`);
}

/**
 * Makes sure a database file can be opened at `path`: creates its directory
 * if needed, or throws DATABASE_OPEN_FAILED saying why it cannot be, and
 * refuses a path that is a directory.
 */
export function checkDatabasePath(path: string): void {
  const dir = dirname(resolve(path));
  try {
    mkdirSync(dir, { recursive: true });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why =
      code === 'ENOTDIR' || code === 'EEXIST'
        ? 'a component of that path is a file, not a directory'
        : code === 'EACCES' || code === 'EPERM'
          ? 'permission denied'
          : code === 'EROFS'
            ? 'read-only file system'
            : (err as Error).message;
    throw new RebillError('DATABASE_OPEN_FAILED', `cannot open database file ${path}: its directory ${dir} is missing and cannot be created (${why})`, { cause: err });
  }
  if (statOrUndefined(path)?.isDirectory()) throw new RebillError('DATABASE_OPEN_FAILED', `cannot open database file ${path}: it is a directory, not a file`);
}

/**
 * Turns SQLite's "unable to open database file" into the reason, found by
 * looking at the path the way SQLite would use it (the file, and its directory
 * where the -wal and -shm files go).
 */
export function openError(path: string, err: unknown): RebillError {
  const message = err instanceof Error ? err.message : String(err);
  const code = (err as { code?: unknown }).code;
  if (code === 'SQLITE_NOTADB' || code === 'SQLITE_CORRUPT') return corruptError(path, message, err);
  const dir = dirname(resolve(path));
  let why = message;
  const stat = statOrUndefined(path);
  if (stat?.isDirectory()) why = 'it is a directory, not a file';
  else if (!writable(dir)) why = `directory ${dir} is not writable (SQLite also creates ${path}-wal and ${path}-shm there)`;
  else if (stat && !writable(path)) why = 'permission denied: the file is not writable';
  else if (stat && !readable(path)) why = 'permission denied: the file is not readable';
  return new RebillError('DATABASE_OPEN_FAILED', `cannot open database file ${path}: ${why}`, { cause: err });
}

function statOrUndefined(path: string): ReturnType<typeof statSync> | undefined {
  try {
    return statSync(path);
  } catch {
    return undefined;
  }
}

function hasAccess(path: string, mode: number): boolean {
  try {
    accessSync(path, mode);
    return true;
  } catch {
    return false;
  }
}

const writable = (path: string): boolean => hasAccess(path, constants.W_OK);
const readable = (path: string): boolean => hasAccess(path, constants.R_OK);

function corruptError(path: string, detail: string, cause?: unknown): RebillError {
  return new RebillError(
    'DATABASE_CORRUPT',
    `database file ${path} is damaged (${detail}); rebill will not run on it: restore it from a backup`,
    cause === undefined ? undefined : { cause },
  );
}

/**
 * `PRAGMA quick_check` at start (`run`, `migrate`): a damaged page would
 * otherwise be found only when some sweep touches it, in the middle of
 * billing. Throws DATABASE_CORRUPT naming the file and the first problems.
 */
export async function verifyDatabase(db: Db, path: string): Promise<void> {
  let rows: Array<Record<string, unknown>>;
  try {
    rows = (await sql<Record<string, unknown>>`pragma quick_check(5)`.execute(db)).rows;
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    if (code === 'SQLITE_CORRUPT' || code === 'SQLITE_NOTADB') throw corruptError(path, (err as Error).message, err);
    throw err;
  }
  const problems = rows.map((r) => String(Object.values(r)[0])).filter((text) => text !== 'ok');
  if (problems.length) throw corruptError(path, `PRAGMA quick_check: ${problems.join('; ')}`);
}

/** The file of a `sqlite:` URL, or undefined for `:memory:` and other backends. */
export function sqliteFile(url: string): string | undefined {
  if (!url.startsWith('sqlite:')) return undefined;
  const path = url.slice('sqlite:'.length);
  return path === ':memory:' ? undefined : path;
}

/**
 * SQLite DDL is transactional, but kysely's SQLite adapter says otherwise, so
 * its migrator would apply a migration statement by statement: a daemon killed
 * half-way through its first migration would leave a half-built schema that no
 * later start can migrate. Each migration runs in one transaction instead.
 */
class TransactionalSqliteAdapter extends SqliteAdapter {
  override get supportsTransactionalDdl(): boolean {
    return true;
  }
}

class TransactionalSqliteDialect extends SqliteDialect {
  readonly #config: SqliteDialectConfig;
  readonly #sqlite: SQLite.Database;

  constructor(config: SqliteDialectConfig, sqlite: SQLite.Database) {
    super(config);
    this.#config = config;
    this.#sqlite = sqlite;
  }

  override createAdapter(): DialectAdapter {
    return new TransactionalSqliteAdapter();
  }

  override createDriver(): Driver {
    return new ImmediateSqliteDriver(this.#config, this.#sqlite);
  }
}

/**
 * kysely's driver begins with a deferred `begin`: a transaction that reads and
 * then writes while another connection writes gets SQLITE_BUSY at once (SQLite
 * does not wait on busy_timeout for that upgrade, it would risk a deadlock).
 * `begin immediate` takes the write lock first, so a CLI writer beside the
 * daemon waits its busy_timeout instead of failing.
 *
 * Rollback: some errors (SQLITE_FULL, SQLITE_IOERR, SQLITE_NOMEM) make SQLite
 * roll the transaction back by itself; kysely's `rollback` would then throw
 * "cannot rollback - no transaction is active" and that error would replace
 * the real one. Only a transaction that is still open is rolled back.
 */
class ImmediateSqliteDriver extends SqliteDriver {
  readonly #sqlite: SQLite.Database;

  constructor(config: SqliteDialectConfig, sqlite: SQLite.Database) {
    super(config);
    this.#sqlite = sqlite;
  }

  override async beginTransaction(connection: DatabaseConnection): Promise<void> {
    await connection.executeQuery(CompiledQuery.raw(this.#sqlite.readonly ? 'begin' : 'begin immediate'));
  }

  override async rollbackTransaction(connection: DatabaseConnection): Promise<void> {
    if (this.#sqlite.inTransaction) await connection.executeQuery(CompiledQuery.raw('rollback'));
  }
}

/**
 * kysely's SQLite driver prepares every query anew; preparing costs more than
 * running most of ours. The engine issues the same few statements thousands of
 * times, so prepared statements are kept by SQL text (bounded, oldest out).
 * better-sqlite3 runs each statement to completion synchronously, so one
 * statement object is never used by two queries at once.
 */
function withStatementCache(sqlite: SQLite.Database, size = 500): SQLite.Database {
  const cache = new Map<string, SQLite.Statement>();
  const prepare = (source: string): SQLite.Statement => {
    let statement = cache.get(source);
    if (statement) {
      cache.delete(source);
    } else {
      statement = sqlite.prepare(source);
      if (cache.size >= size) cache.delete(cache.keys().next().value!);
    }
    cache.set(source, statement);
    return statement;
  };
  return new Proxy(sqlite, {
    get(target, property, receiver) {
      if (property === 'prepare') return prepare;
      const value = Reflect.get(target, property, receiver) as unknown;
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
}

/**
 * Migrations the database has applied that this build does not know: it was
 * migrated by a newer rebill. Empty for a database never migrated.
 */
export async function unknownMigrations(db: Db): Promise<string[]> {
  if (!(await tableExists(db, 'kysely_migration'))) return [];
  const applied = await sql<{ name: string }>`select name from kysely_migration order by name`.execute(db);
  return applied.rows.map((r) => r.name).filter((name) => !Object.hasOwn(migrations, name));
}

/**
 * Throws DATABASE_TOO_NEW when a newer rebill migrated the database: this
 * build would run on a schema it does not know (a downgrade). kysely's own
 * refusal ("corrupted migrations: previously executed migration ... is
 * missing") says neither what happened nor what to do.
 */
export async function refuseNewerSchema(db: Db): Promise<void> {
  const unknown = await unknownMigrations(db);
  if (unknown.length === 0) return;
  throw new RebillError(
    'DATABASE_TOO_NEW',
    `database was migrated by a newer rebill (unknown migrations: ${unknown.join(', ')}); upgrade rebill or restore a backup`,
  );
}

/** Applies pending migrations; idempotent. Throws with the failing migration's name, or DATABASE_TOO_NEW on a downgrade. */
export async function migrateToLatest(db: Db): Promise<MigrationResultSet> {
  await refuseNewerSchema(db);
  const migrator = new Migrator({ db, provider: { getMigrations: async () => migrations } });
  const result = await migrator.migrateToLatest();
  if (result.error) {
    const failed = result.results?.find((r) => r.status === 'Error')?.migrationName ?? 'unknown';
    throw new RebillError('MIGRATION_FAILED', `migration ${failed} failed: ${String((result.error as Error).message ?? result.error)}`, {
      cause: result.error,
    });
  }
  return result;
}

/**
 * A read of rows the transaction will write back. In a PostgreSQL
 * transaction the rows are locked (`FOR UPDATE`) until it commits: a
 * concurrent writer (another request, a callback, another daemon's outcome)
 * waits, then reads what this one wrote, instead of overwriting it with what
 * it read before. SQLite needs no lock: `begin immediate` already runs one
 * writing transaction at a time.
 */
export function forWrite<Q extends { forUpdate(): Q }>(conn: Kysely<Database> | Transaction<Database>, query: Q): Q {
  return conn.isTransaction && dialectOf(conn) === 'postgres' ? query.forUpdate() : query;
}

/** Whether a table exists (in PostgreSQL: in the connection's search path). Reads only the catalogue. */
export async function tableExists(db: Db, name: string): Promise<boolean> {
  const query =
    dialectOf(db) === 'postgres'
      ? sql<{ n: number }>`select count(*) as n from pg_catalog.pg_tables where tablename = ${name} and schemaname = any (current_schemas(false))`
      : sql<{ n: number }>`select count(*) as n from sqlite_master where type = 'table' and name = ${name}`;
  const rows = (await query.execute(db)).rows;
  return Number(rows[0]?.n ?? 0) > 0;
}

/** A text field of a JSON text column (`payload`), as either dialect reads it: `json_extract` or `->>`. */
export function jsonField(db: Kysely<Database> | Transaction<Database>, column: string, key: string): RawBuilder<string> {
  return dialectOf(db) === 'postgres' ? sql<string>`(${sql.ref(column)}::jsonb ->> ${sql.lit(key)})` : sql<string>`json_extract(${sql.ref(column)}, ${sql.lit(`$.${key}`)})`;
}

/** Whether a table has a column (a database read before it was migrated). Reads only the catalogue. */
export async function columnExists(db: Kysely<Database> | Transaction<Database>, table: string, column: string): Promise<boolean> {
  const query =
    dialectOf(db) === 'postgres'
      ? sql<{ n: number }>`select count(*) as n from information_schema.columns where table_name = ${table} and column_name = ${column} and table_schema = any (current_schemas(false))`
      : sql<{ n: number }>`select count(*) as n from pragma_table_info(${table}) where name = ${column}`;
  return Number((await query.execute(db)).rows[0]?.n ?? 0) > 0;
}

/** Fixed-width UTC ISO text for an epoch-ms instant: the stored form of every timestamp. */
export function toDbTime(ms: number): string {
  // A batch stamps thousands of rows with a few instants (its `now`, the lease end, due dates),
  // interleaved: the last few are remembered, so each is formatted once per batch.
  for (let i = 0; i < DB_TIME_SLOTS; i++) if (dbTimeMs[i] === ms) return dbTimeText[i]!;
  const text = new Date(ms).toISOString();
  dbTimeMs[dbTimeNext] = ms;
  dbTimeText[dbTimeNext] = text;
  dbTimeNext = (dbTimeNext + 1) % DB_TIME_SLOTS;
  return text;
}

const DB_TIME_SLOTS = 8;
const dbTimeMs = new Array<number>(DB_TIME_SLOTS).fill(NaN);
const dbTimeText = new Array<string>(DB_TIME_SLOTS).fill('');
let dbTimeNext = 0;

/** The inverse of toDbTime. */
export function fromDbTime(text: string): number {
  return Date.parse(text);
}

/** `?` placeholders as PostgreSQL numbers them ($1, $2, ...); SQLite takes `?`. */
export function numbered(text: string): string {
  let n = 0;
  return text.replace(/\?/g, () => `$${++n}`);
}

/**
 * SQLite, outside a transaction: the rows of `table` whose `key` column is
 * one of `keys`, read as arrays of `columns` (in that order) and built by
 * `rowOf`, from one statement prepared once (the keys are one JSON array
 * parameter, whatever their count). Rendering a batch of events (a page, or
 * the webhook relay's claimed heads) reads a few hundred rows by key: kysely
 * compiling an IN list of that many parameters, and better-sqlite3 building
 * each row's object key by key (8 us for a subscription's 34 columns, 4 us
 * as an array, 0.1 us more for a literal built from it), cost more than
 * SQLite's lookups. Undefined on PostgreSQL or in a transaction: the caller
 * runs its kysely query. Store modules only.
 */
export function sqliteRowsByKeys<R>(
  db: Kysely<Database> | Transaction<Database>,
  table: keyof Database,
  columns: readonly string[],
  key: string,
  keys: readonly (string | number)[],
  rowOf: (values: unknown[]) => R,
): Promise<R[]> | undefined {
  const sqlite = db.isTransaction ? undefined : sqliteConnectionOf(db as Db);
  if (!sqlite) return undefined;
  let statements = rowsByKeysStatements.get(sqlite);
  if (!statements) rowsByKeysStatements.set(sqlite, (statements = new Map()));
  const source = `select ${columns.map((c) => `"${c}"`).join(', ')} from "${table}" where "${key}" in (select value from json_each(?))`;
  let statement = statements.get(source);
  if (!statement) statements.set(source, (statement = sqlite.prepare(source).raw()));
  const prepared = statement;
  // Holding kysely's connection: never inside a kysely transaction open between two awaits.
  return (db as Db).connection().execute(async () => (prepared.all(JSON.stringify(keys)) as unknown[][]).map(rowOf));
}

const rowsByKeysStatements = new WeakMap<SQLite.Database, Map<string, SQLite.Statement>>();

/**
 * A statement of fixed SQL text with `?` placeholders, run as it is (its
 * PostgreSQL text numbered once): for the statements of every API create,
 * which kysely otherwise builds and compiles anew each time. Store modules only.
 */
export class Statement {
  readonly postgres: string;
  constructor(readonly sqlite: string) {
    this.postgres = numbered(sqlite);
  }
  async rows<R>(conn: Kysely<Database> | Transaction<Database>, params: readonly unknown[]): Promise<R[]> {
    const sqlite = inSqliteTransaction(conn);
    if (sqlite) {
      const statement = sqlite.prepare(this.sqlite);
      if (statement.reader) return statement.all(params) as R[];
      statement.run(params);
      return [];
    }
    return (await conn.executeQuery<R>(CompiledQuery.raw(dialectOf(conn) === 'postgres' ? this.postgres : this.sqlite, params as unknown[]))).rows;
  }
  async first<R>(conn: Kysely<Database> | Transaction<Database>, params: readonly unknown[]): Promise<R | undefined> {
    return (await this.rows<R>(conn, params))[0];
  }
  /** Runs an insert, update or delete; the number of rows it changed. */
  async run(conn: Kysely<Database> | Transaction<Database>, params: readonly unknown[]): Promise<number> {
    const sqlite = inSqliteTransaction(conn);
    if (sqlite) return sqlite.prepare(this.sqlite).run(params).changes;
    const result = await conn.executeQuery(CompiledQuery.raw(dialectOf(conn) === 'postgres' ? this.postgres : this.sqlite, params as unknown[]));
    return Number(result.numAffectedRows ?? 0);
  }
}

/**
 * The SQLite connection under `conn` when `conn` is a transaction: it holds
 * that connection until it ends, so its statements can run on it directly, as
 * kysely's driver would run them, without the executor's promise chain per
 * statement. Outside a
 * transaction every statement goes through kysely, which queues it behind a
 * transaction open on the connection. (Measured in a transaction: 1.7 us per
 * statement through kysely, 0.5 us run directly.)
 */
function inSqliteTransaction(conn: Kysely<Database> | Transaction<Database>): SQLite.Database | undefined {
  return conn.isTransaction ? transactionConnections.get(conn.getExecutor().adapter) : undefined;
}
