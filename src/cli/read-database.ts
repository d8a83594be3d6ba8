/**
 * The operator commands' database access (`status`, `subscriptions list|show`):
 * read-only, beside a running daemon. They never take the daemon's lock,
 * never create a file and never migrate; each refusal is one line on stderr
 * and exit code 1.
 */
import { existsSync } from 'node:fs';
import type { Config } from '../config/index.js';
import { FilterError } from '../service/index.js';
import { openDatabase, openDatabaseReadOnly, pendingMigrations, refuseNewerSchema, sqliteFile, type Db, type OpenOptions } from '../store/index.js';
import { checkMovedOrReport, openOptions, printableUrl } from './database.js';
import { UsageError, type CommandContext } from './index.js';
import { configPath, loadConfigOrReport } from './config-file.js';

/**
 * The frame of every read-only command: loads the config (exit 78 on a bad
 * one), opens its database read-only (exit 1 when it cannot), runs `use`,
 * and closes the database whatever happened.
 */
export async function withReadDatabase(configFlag: string | undefined, ctx: CommandContext, use: (db: Db) => Promise<void>): Promise<void> {
  const config = loadConfigOrReport(configPath(configFlag));
  if (typeof config === 'number') {
    ctx.exitCode = config;
    return;
  }
  const db = await openForReading(config);
  if (typeof db === 'number') {
    ctx.exitCode = db;
    return;
  }
  try {
    await use(db);
  } finally {
    await db.destroy();
  }
}

/** Opens the configured database read-only, or prints why not and returns 1. */
export async function openForReading(config: Config): Promise<Db | 1> {
  return openExisting(config, 'read');
}

/**
 * Opens the configured database for writing beside a running daemon (`subscriptions
 * import`): the same checks as openForReading (an existing, migrated file), and
 * no daemon lock; writers wait on SQLite's own lock (busy timeout).
 */
export async function openForWriting(config: Config, options: Pick<OpenOptions, 'pageCacheKib'> = {}): Promise<Db | 1> {
  return openExisting(config, 'write', options);
}

async function openExisting(config: Config, purpose: 'read' | 'write', options: Pick<OpenOptions, 'pageCacheKib'> = {}): Promise<Db | 1> {
  const url = config.database.url;
  const file = sqliteFile(url);
  if (url.startsWith('sqlite:') && file === undefined) {
    process.stderr.write(`database.url is sqlite::memory:, which only the process that opened it can see: nothing to ${purpose}\n`);
    return 1;
  }
  if (file !== undefined && !existsSync(file)) {
    process.stderr.write(`no database at ${file}: start \`rebill run\` (or run \`rebill migrate\`) first, or check database.url / REBILL_DATABASE_URL\n`);
    return 1;
  }
  let db: Db | undefined;
  try {
    db = purpose === 'read' ? openDatabaseReadOnly(url) : openDatabase(url, { ...openOptions(config), ...options });
    if (!db) throw new Error(`cannot open database ${printableUrl(url)}`);
    await refuseNewerSchema(db);
    const pending = await pendingMigrations(db);
    if (pending.length > 0) {
      process.stderr.write(`database ${file ?? printableUrl(url)} has an older schema (missing ${pending.join(', ')}): run \`rebill migrate\`\n`);
      await db.destroy();
      return 1;
    }
    // A file migrate-to moved to PostgreSQL: read as the archive (with a note), never written.
    if ((await checkMovedOrReport(db, config, purpose)) !== 0) {
      await db.destroy();
      return 1;
    }
    return db;
  } catch (err) {
    process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
    await db?.destroy();
    return 1;
  }
}

/** The CLI flag of a service filter parameter, for messages. */
const FLAG_OF: Record<string, string> = { endpoint: '--endpoint', eventId: '--event', planId: '--plan', status: '--status', limit: '--limit', cursor: '--cursor', source: '--source', externalId: '--external-id', email: '--email', count: '--count' };

/** A FilterError as a usage error (exit 2) naming the flag instead of the API parameter. */
export function asUsageError(err: unknown): unknown {
  if (!(err instanceof FilterError)) return err;
  const flag = FLAG_OF[err.parameter] ?? err.parameter;
  return new UsageError(`${flag}${err.message.slice(err.parameter.length)}`);
}
