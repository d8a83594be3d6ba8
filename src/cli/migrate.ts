import type { Command } from 'commander';
import { migrateToLatest } from '../store/index.js';
import { openDatabaseOrReport, verifyDatabaseOrReport } from './database.js';
import type { CommandContext } from './index.js';
import { configPath, loadConfigOrReport } from './config-file.js';

/** `rebill migrate`: apply pending migrations (idempotent). */
export function registerMigrate(program: Command, ctx: CommandContext): void {
  program
    .command('migrate')
    .description('apply pending database migrations')
    .option('--config <file>', 'config file (default: $REBILL_CONFIG or config/rebill.yaml)')
    .action(async (flags: { config?: string }) => {
      const config = loadConfigOrReport(configPath(flags.config));
      if (typeof config === 'number') {
        ctx.exitCode = config;
        return;
      }
      const db = openDatabaseOrReport(config);
      if (typeof db === 'number') {
        ctx.exitCode = db;
        return;
      }
      try {
        const damaged = await verifyDatabaseOrReport(db, config);
        if (damaged !== 0) {
          ctx.exitCode = damaged;
          return;
        }
        const result = await migrateToLatest(db);
        const applied = result.results?.filter((r) => r.status === 'Success').map((r) => r.migrationName) ?? [];
        process.stdout.write(applied.length ? `applied: ${applied.join(', ')}\n` : 'database is up to date\n');
        ctx.exitCode = 0;
      } catch (err) {
        process.stderr.write(`migrate failed: ${(err as Error).message}\n`);
        ctx.exitCode = 1;
      } finally {
        await db.destroy();
      }
    });
}
