import { existsSync } from 'node:fs';
import cliProgress from 'cli-progress';
import type { Command } from 'commander';
import { systemClock } from '../clock.js';
import { RebillError } from '../errors.js';
import {
  acquireDaemonLock,
  copySqliteToPostgres,
  isPostgresUrl,
  markMoved,
  reopenCommand,
  sqliteFile,
  toDbTime,
  unmarkMoved,
  type CopyReport,
  type DaemonLock,
} from '../store/index.js';
import { printableUrl } from './database.js';
import { UsageError, type CommandContext } from './index.js';
import { configPath, loadConfigOrReport } from './config-file.js';
import { table } from './table.js';

interface MigrateToFlags {
  config?: string;
  from?: string;
  json?: boolean;
  reopenSource?: boolean;
}

const HELP = `
The source is the SQLite file of --config's database.url (or --from FILE); the
target is an EMPTY PostgreSQL database (create one with createdb). Leave the
password out of the URL to keep it out of the process list and shell history:
pg reads PGPASSWORD or ~/.pgpass. Passwords are never printed.

It takes the daemon lock of the SQLite file (so stop the daemon first: it
refuses while one runs, and no daemon can start on the file meanwhile), reads
every table in one read transaction (one consistent snapshot), applies the
migrations to the target, copies every table in ONE PostgreSQL transaction,
moves every id sequence past the copied ids (event ids keep increasing), and
verifies each table's row count and a digest of its rows before committing.
Anything wrong rolls the whole copy back.

Just before committing, it marks the SQLite file as moved (a table
rebill_moved: the target with its password masked, the instant, the counts;
its only write to the file, once the copy is verified; a copy refused or
failed before then leaves the file unmarked; if the commit itself fails, the
file stays marked, since the commit may have happened: it says so).
From then on \`rebill run\` and \`check-config\` refuse the file (exit 1,
naming where it went): a daemon on it would collect the same cycles a second
time. \`status\`, \`subscriptions list|show\` and \`backup\` still read it
(the archive); \`subscriptions import\` and webhook changes refuse it; and
migrate-to does not copy it again.

The source must be at this rebill's schema (run \`rebill migrate\` on an older
one first). Then point database.url (or REBILL_DATABASE_URL) at PostgreSQL and
start the daemons; keep the SQLite file as a backup.

Rolling the move back: \`rebill migrate-to --reopen-source\` (with --config
or --from, no URL) removes the mark, so daemons may run on the SQLite file
again. Do it only with the PostgreSQL daemons stopped for good: that copy must
not be used afterwards (two databases would collect the same cycles), and
what it collected since the move is not in the SQLite file.

Exit codes: 0 copied and verified (or reopened); 1 refused or failed (a daemon
holds the file, file already moved, target not empty or unreachable, schema
mismatch, verification failed: nothing committed); 2 bad arguments; 78
invalid config.`;

/** `rebill migrate-to postgres://...`: the SQLite-to-PostgreSQL move (README, "Scaling out on PostgreSQL"). */
export function registerMigrateTo(program: Command, ctx: CommandContext): void {
  program
    .command('migrate-to')
    .description('copy the SQLite database into an empty PostgreSQL database (one snapshot, one transaction, verified)')
    .argument('[url]', 'the target: postgres://[user@]host[:port]/database')
    .option('--config <file>', 'config file whose database.url is the SQLite source (default: $REBILL_CONFIG or config/rebill.yaml)')
    .option('--from <file>', 'the SQLite source file (or sqlite:<file>) instead of the config\'s database.url')
    .option('--json', 'print the summary as one JSON object (no progress bar)')
    .option('--reopen-source', 'roll a move back: remove the moved mark from the SQLite source (no URL); its PostgreSQL copy must not be used afterwards')
    .addHelpText('after', HELP)
    .action(async (url: string | undefined, flags: MigrateToFlags) => {
      if (flags.reopenSource) {
        if (url !== undefined) throw new UsageError('--reopen-source takes no URL: it only removes the moved mark from the SQLite source (--config or --from)');
        ctx.exitCode = reopenSource(flags);
        return;
      }
      if (url === undefined) throw new UsageError('missing the target URL (postgres://...)');
      ctx.exitCode = await migrateTo(url, flags);
    });
}

async function migrateTo(url: string, flags: MigrateToFlags): Promise<number> {
  if (!isPostgresUrl(url)) throw new UsageError(`the target must be a postgres:// or postgresql:// URL; got "${printableUrl(url)}"`);
  const locked = lockedSource(flags, 'copy');
  if (typeof locked === 'number') return locked;
  const { source, lock } = locked;
  const progress = progressBar(!flags.json && process.stderr.isTTY === true);
  const started = systemClock.now();
  // Whether the mark was written: from then on, a failure may be the commit's, whose outcome is unknown.
  let marked = false;
  try {
    const report = await copySqliteToPostgres(source, url, {
      onPlan: progress.plan,
      onProgress: progress.update,
      // Marked BEFORE the commit: a crash in between leaves a marked file and an empty target
      // (refused, and `--reopen-source` undoes it), never a live copy beside an unmarked file.
      beforeCommit: (copied) => {
        const tables = Object.fromEntries(copied.tables.map((t) => [t.name, t.rows]));
        markMoved(source, { target: printableUrl(url), movedAt: toDbTime(systemClock.now()), rows: copied.rows, tables });
        marked = true;
      },
    });
    progress.stop();
    const seconds = (systemClock.now() - started) / 1000;
    printReport(report, source, url, seconds, flags.json === true);
    return 0;
  } catch (err) {
    progress.stop();
    const why = err instanceof Error ? err.message : String(err);
    if (marked) {
      // The commit itself failed (the connection dropped?): PostgreSQL may or may not hold the copy,
      // so the file stays marked and no daemon starts on it until someone has looked.
      process.stderr.write(
        `migrate-to: ${printableUrl(`the copy was verified but its commit failed (${why}): it may or may not be in ${url}. ${source} stays marked as moved: if that database holds the rows, point database.url there; if it is empty, run \`${reopenCommand(source)}\` and migrate-to again`)}\n`,
      );
      return 1;
    }
    // Anything else (the server went away mid-copy, a lock wait cancelled) also rolled the whole copy back.
    const message = err instanceof RebillError ? err.message : `copy failed, nothing was committed: ${why}`;
    process.stderr.write(`migrate-to: ${printableUrl(message)}\n`);
    return 1;
  } finally {
    lock.release();
  }
}

/**
 * `--reopen-source`: removes the moved mark under the file's daemon lock, so
 * that daemons may run on the SQLite file again. The PostgreSQL copy must not
 * be used afterwards; this says so.
 */
function reopenSource(flags: MigrateToFlags): number {
  const locked = lockedSource(flags, 'reopen');
  if (typeof locked === 'number') return locked;
  const { source, lock } = locked;
  try {
    const mark = unmarkMoved(source);
    if (flags.json) {
      process.stdout.write(`${JSON.stringify({ source, reopened: mark !== undefined, movedTo: mark?.target ?? null, movedAt: mark?.movedAt ?? null })}\n`);
    } else if (!mark) {
      process.stdout.write(`${source} is not marked as moved: nothing to reopen (daemons may already run on it)\n`);
    } else {
      process.stdout.write(
        [
          `reopened ${source}: the move to ${mark.target} on ${mark.movedAt} is rolled back, and daemons may run on this file again.`,
          `The PostgreSQL database ${mark.target} must not be used from now on: stop its daemons for good and drop it (or empty it) before moving again; two databases would collect the same cycles twice.`,
          `Anything collected, created or changed there since ${mark.movedAt} is not in this file.`,
        ].join('\n') + '\n',
      );
    }
    return 0;
  } catch (err) {
    process.stderr.write(`migrate-to: ${err instanceof Error ? err.message : String(err)}\n`);
    return 1;
  } finally {
    lock.release();
  }
}

/** The SQLite source (as sourceFile), existing, with its daemon lock taken; or the exit code after one line. */
function lockedSource(flags: MigrateToFlags, purpose: 'copy' | 'reopen'): { source: string; lock: DaemonLock } | number {
  const source = sourceFile(flags);
  if (typeof source === 'number') return source;
  if (!existsSync(source)) {
    process.stderr.write(`migrate-to: no database at ${source}: nothing to ${purpose} (check database.url / REBILL_DATABASE_URL, or --from)\n`);
    return 1;
  }
  try {
    return { source, lock: acquireDaemonLock(source, toDbTime(systemClock.now())) };
  } catch (err) {
    process.stderr.write(`migrate-to: ${(err as Error).message}: stop it first\n`);
    return 1;
  }
}

/** The SQLite file to copy: --from, else the config's database.url (which must be a SQLite file). */
function sourceFile(flags: MigrateToFlags): string | number {
  if (flags.from !== undefined) {
    if (isPostgresUrl(flags.from)) throw new UsageError('--from must be a SQLite file (or sqlite:<file>), not a PostgreSQL URL');
    const file = flags.from.startsWith('sqlite:') ? sqliteFile(flags.from) : flags.from;
    if (file === undefined || file === '') throw new UsageError('--from must name a SQLite file; sqlite::memory: has nothing to copy');
    return file;
  }
  const config = loadConfigOrReport(configPath(flags.config));
  if (typeof config === 'number') return config;
  const file = sqliteFile(config.database.url);
  if (file === undefined) {
    process.stderr.write(
      isPostgresUrl(config.database.url)
        ? `migrate-to: database.url is already PostgreSQL (${printableUrl(config.database.url)}): name the SQLite file to copy with --from FILE\n`
        : 'migrate-to: database.url is sqlite::memory:, which has nothing on disk to copy\n',
    );
    return 1;
  }
  return file;
}

function printReport(report: CopyReport, source: string, url: string, seconds: number, json: boolean): void {
  const rowsPerSecond = seconds > 0 ? Math.round(report.rows / seconds) : null;
  if (json) {
    process.stdout.write(
      `${JSON.stringify({
        source,
        target: printableUrl(url),
        tables: report.tables.map((t) => ({ name: t.name, rows: t.rows, digest: t.digest })),
        rows: report.rows,
        sequences: report.sequences,
        seconds: Math.round(seconds * 1000) / 1000,
        rowsPerSecond,
        verified: true,
        sourceMarkedMoved: true,
      })}\n`,
    );
    return;
  }
  const lines = [
    `copied ${source} to ${printableUrl(url)}: ${report.rows} rows in ${report.tables.length} tables, ${seconds.toFixed(1)} s${rowsPerSecond === null ? '' : ` (${rowsPerSecond} rows/s)`}; counts and digests verified`,
    ...table(
      ['table', 'rows', 'verified'],
      report.tables.map((t) => [t.name, t.rows, 'yes']),
    ),
    ...report.sequences.map((s) => `next ${s.table}.${s.column}: ${s.next}`),
    `next: point database.url (or REBILL_DATABASE_URL) at the PostgreSQL URL and start the daemons; ${source} is marked as moved (rebill run refuses it; it stays readable as a backup)`,
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
}

interface ProgressBar {
  plan(tables: ReadonlyArray<{ name: string; rows: number }>): void;
  update(table: string, tableRows: number, totalRows: number): void;
  stop(): void;
}

/** A bar over every row to copy, on a TTY only (never with --json). */
function progressBar(tty: boolean): ProgressBar {
  if (!tty) return { plan() {}, update() {}, stop() {} };
  let bar: cliProgress.SingleBar | undefined;
  return {
    plan(tables) {
      bar = new cliProgress.SingleBar(
        { format: 'copying [{bar}] {percentage}% | {value}/{total} rows | {table}', hideCursor: true, clearOnComplete: true, stream: process.stderr },
        cliProgress.Presets.shades_classic,
      );
      bar.start(Math.max(1, tables.reduce((n, t) => n + t.rows, 0)), 0, { table: '' });
    },
    update(tableName, _tableRows, totalRows) {
      bar?.update(totalRows, { table: tableName });
    },
    stop() {
      bar?.stop();
      bar = undefined;
    },
  };
}
