import type { Command } from 'commander';
import { backupDatabase, isPostgresUrl, sqliteFile } from '../store/index.js';
import type { CommandContext } from './index.js';
import { configPath, loadConfigOrReport } from './config-file.js';

/**
 * `rebill backup FILE [--force]`: a consistent copy of the configured SQLite
 * database, safe while the daemon runs (it takes no daemon lock and writes
 * nothing to the live file). Exit 0 with one line naming the copy, 1 when it
 * cannot be made (the target exists without --force, no database, disk
 * full), 78 for a bad config. Restore: stop the daemon, copy the file back
 * over database.url's file (removing its -wal and -shm), start the daemon.
 */
export function registerBackup(program: Command, ctx: CommandContext): void {
  program
    .command('backup')
    .description('copy the SQLite database consistently to FILE (safe while the daemon runs)')
    .argument('<file>', 'the backup file to write; must not exist unless --force')
    .option('--force', 'replace FILE if it exists')
    .option('--config <file>', 'config file (default: $REBILL_CONFIG or config/rebill.yaml)')
    .action((target: string, flags: { config?: string; force?: boolean }) => {
      const config = loadConfigOrReport(configPath(flags.config));
      if (typeof config === 'number') {
        ctx.exitCode = config;
        return;
      }
      const source = sqliteFile(config.database.url);
      if (source === undefined) {
        process.stderr.write(
          isPostgresUrl(config.database.url)
            ? 'backup: database.url is PostgreSQL: back it up with pg_dump (README, "Scaling out on PostgreSQL")\n'
            : 'backup: database.url is not a SQLite file (sqlite::memory: has nothing on disk to copy)\n',
        );
        ctx.exitCode = 1;
        return;
      }
      try {
        const result = backupDatabase(source, target, { overwrite: flags.force === true });
        process.stdout.write(`backup written: ${result.file} (${result.bytes} bytes, ${result.subscriptions} subscriptions) from ${source}\n`);
        ctx.exitCode = 0;
      } catch (err) {
        process.stderr.write(`backup failed: ${err instanceof Error ? err.message : String(err)}\n`);
        ctx.exitCode = 1;
      }
    });
}
