/**
 * The database steps of the commands' start-up (open, lock, verify, the
 * removed-but-in-use check), each printing one line that says why instead of
 * a stack trace, and returning the exit code when it fails.
 */
import { readFileSync } from 'node:fs';
import { LineCounter, parseDocument, isMap, isScalar } from 'yaml';
import { formatProblems, type Config } from '../config/index.js';
import { removedButInUse, type RemovedInUse } from '../engine/index.js';
import { EXIT_CONFIG, RebillError } from '../errors.js';
import { redactUrlPasswords } from '../logger.js';
import {
  acquireDaemonLock,
  hasSubscriptionsTable,
  isPostgresUrl,
  movedMark,
  movedMessage,
  openDatabase,
  openDatabaseReadOnly,
  refuseNewerSchema,
  reopenCommand,
  sqliteFile,
  verifyDatabase,
  type DaemonLock,
  type Db,
  type OpenOptions,
} from '../store/index.js';

/** The URL as it may be printed: a PostgreSQL password is masked (the logger's rule). */
export function printableUrl(url: string): string {
  return redactUrlPasswords(url);
}

function reason(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** How `config.database` is opened (SQLite's synchronous, PostgreSQL's pool size). */
export function openOptions(config: Config): OpenOptions {
  return { synchronous: config.database.synchronous, poolSize: config.database.poolSize };
}

/** Opens `config.database`, or prints why not and returns exit code 1. */
export function openDatabaseOrReport(config: Config): Db | 1 {
  try {
    return openDatabase(config.database.url, openOptions(config));
  } catch (err) {
    // Our own errors already name the file and the cause.
    const message = err instanceof RebillError ? reason(err) : `cannot open database ${printableUrl(config.database.url)}: ${reason(err)}`;
    process.stderr.write(`${message}\n`);
    return 1;
  }
}

/**
 * Takes the one-daemon lock of a SQLite database (SPEC section 4), or prints
 * who holds it and returns 1. Nothing to lock for `:memory:`.
 */
export function lockDatabaseOrReport(config: Config, startedAt: string): DaemonLock | undefined | 1 {
  const file = sqliteFile(config.database.url);
  if (file === undefined) return undefined;
  try {
    return acquireDaemonLock(file, startedAt);
  } catch (err) {
    process.stderr.write(`${reason(err)}\n`);
    return 1;
  }
}

/** PRAGMA quick_check before anything runs on the file; prints the damage and returns 1. */
export async function verifyDatabaseOrReport(db: Db, config: Config): Promise<0 | 1> {
  const file = sqliteFile(config.database.url);
  if (file === undefined) return 0;
  try {
    await verifyDatabase(db, file);
    return 0;
  } catch (err) {
    process.stderr.write(`${reason(err)}\n`);
    return 1;
  }
}

/**
 * The check for a SQLite file that `rebill migrate-to` moved to PostgreSQL
 * (store/moved.ts). `run` (and `check-config`) refuse it: a daemon on it would
 * collect again the cycles the PostgreSQL daemons collect. Commands that write
 * (`subscriptions import`, webhook changes) refuse it too: what they wrote
 * would never reach PostgreSQL. The read-only commands read it as the archive
 * it is, after a note on stderr. One line; 1 when refused, else 0.
 */
export async function checkMovedOrReport(db: Db, config: Config, use: 'run' | 'write' | 'read'): Promise<0 | 1> {
  const file = sqliteFile(config.database.url);
  if (file === undefined) return 0;
  const mark = await movedMark(db);
  if (!mark) return 0;
  const moved = movedMessage(file, mark);
  const there = 'point database.url (or REBILL_DATABASE_URL) there';
  if (use === 'read') {
    process.stderr.write(`note: ${moved}; this file is the archive as of then: ${there} for the live data\n`);
    return 0;
  }
  const why =
    use === 'run'
      ? 'rebill will not run on this file: it would collect again the cycles collected on PostgreSQL'
      : 'nothing is written to this file: it would never reach PostgreSQL';
  process.stderr.write(`${moved}; ${there}; ${why} (to roll the move back instead: ${reopenCommand(file)})\n`);
  return 1;
}

/**
 * The removed-but-in-use check of `run` and `check-config`: prints one
 * compiler-style line per plan or gateway (at its section in `file` when it
 * can be found) and returns 78, or 0 when nothing is missing.
 */
export async function checkRemovedInUse(db: Db, config: Config, file: string): Promise<0 | typeof EXIT_CONFIG> {
  const problems = await removedButInUse(db, config);
  if (problems.length === 0) return 0;
  reportRemovedInUse(problems, file);
  return EXIT_CONFIG;
}

function reportRemovedInUse(problems: readonly RemovedInUse[], file: string): void {
  const lines = formatProblems(
    problems.map((p) => {
      const at = sectionPosition(file, p.section);
      return { file, line: at?.line ?? 0, column: at?.col ?? 0, path: p.section, message: p.message };
    }),
  );
  process.stderr.write(`${lines.join('\n')}\n${lines.length} problem${lines.length === 1 ? '' : 's'} in ${file}\n`);
}

/** Line and column of a top-level key in a YAML file; undefined when absent or unreadable. */
function sectionPosition(file: string, key: string): { line: number; col: number } | undefined {
  try {
    const counter = new LineCounter();
    const doc = parseDocument(readFileSync(file, 'utf8'), { lineCounter: counter });
    if (!isMap(doc.contents)) return undefined;
    const pair = doc.contents.items.find((item) => isScalar(item.key) && item.key.value === key);
    const offset = pair && isScalar(pair.key) ? pair.key.range?.[0] : undefined;
    return offset === undefined ? undefined : counter.linePos(offset);
  } catch {
    return undefined;
  }
}

/**
 * check-config's database step: when the configured SQLite file exists, open
 * it read-only and run the same removed-but-in-use check as `run`. Never
 * creates or migrates a database. Returns the exit code (0, 1 or 78).
 */
export async function checkExistingDatabase(config: Config, file: string): Promise<0 | 1 | typeof EXIT_CONFIG> {
  let db: Db | undefined;
  try {
    db = openDatabaseReadOnly(config.database.url);
    if (!db || !(await hasSubscriptionsTable(db))) return 0;
    await refuseNewerSchema(db); // `run` refuses a downgrade: say so before a deploy
    if ((await checkMovedOrReport(db, config, 'run')) !== 0) return 1; // ...and a file moved to PostgreSQL
    return await checkRemovedInUse(db, config, file);
  } catch (err) {
    // A PostgreSQL server that does not answer is not a config problem (the SQLite equivalent, a
    // file not created yet, passes too): say what was not checked, and judge the file alone.
    if (isPostgresUrl(config.database.url) && !(err instanceof RebillError)) {
      process.stderr.write(`${file}: warning: database ${printableUrl(config.database.url)} not reachable (${reason(err)}); plans and gateways in use there were not checked\n`);
      return 0;
    }
    process.stderr.write(`${reason(err)}\n`);
    return 1;
  } finally {
    await db?.destroy();
  }
}
