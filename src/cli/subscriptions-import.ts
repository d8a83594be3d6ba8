import { createReadStream, createWriteStream, statSync, type WriteStream } from 'node:fs';
import { once } from 'node:events';
import cliProgress from 'cli-progress';
import type { Command } from 'commander';
import { systemClock } from '../clock.js';
import { catalogOf, importSubscriptions, ImportFileError, type RejectedLine } from '../service/index.js';
import type { CommandContext } from './index.js';
import { lineOutput } from './output.js';
import { configPath, loadConfigOrReport } from './config-file.js';
import { openForReading, openForWriting } from './read-database.js';
import { notifyWake, STREAMING_PAGE_CACHE_KIB } from '../store/index.js';

interface ImportFlags {
  config?: string;
  dryRun?: boolean;
  report?: string;
  json?: boolean;
}

/** Without a TTY, a plain progress line every this many lines. */
const PLAIN_PROGRESS_EVERY = 10_000;

/**
 * `rebill subscriptions import FILE.csv [--dry-run] [--report F] [--json]`
 * (SPEC sections 10 and 11): valid lines are imported in batched
 * transactions beside a running daemon (no daemon lock), rejected ones are
 * printed on stderr (`line 7: customer.email: ...`) and, with --report,
 * written as CSV with their columns plus `line` and `errors`. Exit 0 when
 * every line was imported (or already was), 1 when some were rejected or the
 * file could not be read.
 */
export function registerSubscriptionsImport(group: Command, ctx: CommandContext): void {
  group
    .command('import')
    .description('bulk-create subscriptions from a CSV file (beside a running daemon)')
    .argument('<file>', 'CSV file: a header row of field names, one subscription a line')
    .option('--config <file>', 'configuration file (default: $REBILL_CONFIG, else config/rebill.yaml)')
    .option('--dry-run', 'validate only: nothing is written')
    .option('--report <file>', 'write the rejected lines, with their line number and errors, as CSV')
    .option('--json', 'print the summary as one JSON object (no progress bar)')
    .action(async (file: string, flags: ImportFlags) => {
      ctx.exitCode = await runImport(file, flags);
    });
}

async function runImport(file: string, flags: ImportFlags): Promise<number> {
  const config = loadConfigOrReport(configPath(flags.config));
  if (typeof config === 'number') return config;
  let size: number;
  try {
    const stat = statSync(file);
    if (!stat.isFile()) throw new Error(`${file} is not a file`);
    size = stat.size;
  } catch (err) {
    process.stderr.write(`cannot read ${file}: ${(err as Error).message}\n`);
    return 1;
  }
  const db = flags.dryRun ? await openForReading(config) : await openForWriting(config, { pageCacheKib: STREAMING_PAGE_CACHE_KIB });
  if (typeof db === 'number') return db;

  const input = createReadStream(file);
  const progress = progressReporter(size, input, !flags.json && process.stderr.isTTY === true);
  let report: CsvWriter | undefined;
  try {
    const summary = await importSubscriptions(db, catalogOf(config), input, {
      now: systemClock.now(),
      dryRun: flags.dryRun === true,
      onHeader: async (columns) => {
        if (flags.report !== undefined) {
          report = new CsvWriter(createWriteStream(flags.report));
          await report.row([...columns, 'line', 'errors']);
        }
      },
      onRejected: async (rejected: RejectedLine) => {
        for (const p of rejected.problems) progress.log(`line ${rejected.line}: ${p.field}: ${p.message}`);
        await report?.row([...rejected.cells, String(rejected.line), rejected.problems.map((p) => `${p.field}: ${p.message}`).join('; ')]);
      },
      onProgress: (lines) => progress.lines(lines),
    });
    progress.stop();
    await report?.close();
    // Daemons on the same PostgreSQL database collect what is due among these now, not at their next sweep.
    if (summary.imported > 0 && flags.dryRun !== true) await notifyWake(db, 'import').catch(() => undefined);
    const out = lineOutput();
    if (flags.json) await out.line(JSON.stringify({ ...summary, dryRun: flags.dryRun === true }));
    else if (flags.dryRun) await out.line(`dry run: ${summary.imported} valid, ${summary.rejected} rejected (${summary.lines} lines); nothing written`);
    else await out.line(`imported ${summary.imported}, existing ${summary.existing}, rejected ${summary.rejected} (${summary.lines} lines)`);
    return summary.rejected > 0 ? 1 : 0;
  } catch (err) {
    progress.stop();
    await report?.close();
    if (err instanceof ImportFileError) {
      process.stderr.write(`${file}: ${err.message}\n`);
      return 1;
    }
    if (err instanceof Error && 'code' in err && typeof err.code === 'string' && /^E[A-Z]+$/.test(err.code)) {
      process.stderr.write(`cannot read ${file}: ${err.message}\n`);
      return 1;
    }
    throw err;
  } finally {
    await db.destroy();
  }
}

interface Progress {
  lines(count: number): void;
  /** A line on stderr that does not break the bar. */
  log(text: string): void;
  stop(): void;
}

/** A bar over the bytes read on a TTY; otherwise a plain line every PLAIN_PROGRESS_EVERY lines. */
function progressReporter(size: number, input: NodeJS.ReadableStream, tty: boolean): Progress {
  if (!tty) {
    let shown = 0;
    return {
      lines(count) {
        const step = Math.floor(count / PLAIN_PROGRESS_EVERY);
        if (step > shown) {
          shown = step;
          process.stderr.write(`read ${step * PLAIN_PROGRESS_EVERY} lines\n`);
        }
      },
      log: (text) => process.stderr.write(`${text}\n`),
      stop() {},
    };
  }
  const bars = new cliProgress.MultiBar(
    { format: 'importing [{bar}] {percentage}% | {lines} lines', hideCursor: true, clearOnComplete: false, stream: process.stderr },
    cliProgress.Presets.shades_classic,
  );
  const bar = bars.create(Math.max(size, 1), 0, { lines: 0 });
  let read = 0;
  let lines = 0;
  input.on('data', (chunk: Buffer | string) => {
    read += chunk.length;
    bar.update(read, { lines });
  });
  let stopped = false;
  return {
    lines(count) {
      lines = count;
      bar.update(read, { lines });
    },
    log: (text) => bars.log(`${text}\n`),
    stop() {
      if (stopped) return;
      stopped = true;
      bar.update(read, { lines });
      bars.stop();
    },
  };
}

/** RFC 4180 rows to a file: fields quoted when they hold a comma, quote or line break. */
class CsvWriter {
  constructor(private readonly stream: WriteStream) {}

  async row(fields: readonly string[]): Promise<void> {
    const text = fields.map((f) => (/[",\r\n]/.test(f) ? `"${f.replace(/"/g, '""')}"` : f)).join(',');
    if (!this.stream.write(`${text}\r\n`)) await once(this.stream, 'drain');
  }

  async close(): Promise<void> {
    if (this.stream.closed || this.stream.writableEnded) return;
    this.stream.end();
    await once(this.stream, 'close');
  }
}
