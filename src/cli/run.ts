import type { Command } from 'commander';
import cron from 'node-cron';
import { systemClock } from '../clock.js';
import { createEngine, daemonGateways, engineOptions, logSkippedCycles, missingLivePlans, upsertSeeds } from '../engine/index.js';
import { configWarnings } from '../config/index.js';
import { EXIT_CONFIG } from '../errors.js';
import { createLogger } from '../logger.js';
import { lastEventId, migrateToLatest } from '../store/index.js';
import { openDatabaseOrReport } from './database.js';
import type { CommandContext } from './index.js';
import { configPath, loadConfigOrReport } from './config-file.js';

/**
 * `rebill run`: validate config, migrate, seed, then run the engine until
 * SIGTERM/SIGINT, which stop claiming, let in-flight attempts finish (up to
 * scheduler.drainSeconds), release unstarted claims and close the database.
 */
export function registerRun(program: Command, ctx: CommandContext): void {
  program
    .command('run')
    .description('run the billing daemon until SIGTERM/SIGINT')
    .option('--config <file>', 'config file (default: $REBILL_CONFIG or config/rebill.yaml)')
    .action(async (flags: { config?: string }) => {
      const file = configPath(flags.config);
      const config = loadConfigOrReport(file);
      if (typeof config === 'number') {
        ctx.exitCode = config;
        return;
      }
      const logger = createLogger({ level: config.logging.level });
      for (const warning of configWarnings(config)) logger.warn({ config: file }, warning);
      const clock = systemClock;
      const db = openDatabaseOrReport(config);
      if (typeof db === 'number') {
        ctx.exitCode = db;
        return;
      }
      let stopSignal: NodeJS.Signals | null = null;
      const stopped = new Promise<void>((resolve) => {
        const onSignal = (signal: NodeJS.Signals) => {
          stopSignal = signal;
          resolve();
        };
        process.once('SIGTERM', onSignal);
        process.once('SIGINT', onSignal);
      });
      try {
        await migrateToLatest(db);
        const missing = await missingLivePlans(db, config.plans);
        if (missing.length) {
          process.stderr.write(`${file}: plans still used by live subscriptions were removed: ${missing.join(', ')}\n`);
          ctx.exitCode = EXIT_CONFIG;
          return;
        }
        const eventsBefore = await lastEventId(db);
        const seeded = await upsertSeeds(db, config.plans, config.subscriptions, clock.now());
        const created = seeded.filter((r) => r.created).length;
        await logSkippedCycles(db, logger, eventsBefore); // a start date in the past skips cycles: say so
        const gateways = daemonGateways(db, clock, config.gateways);
        const engine = createEngine({ db, clock, gateways, logger, options: engineOptions(config.retry, config.scheduler) });
        await engine.checkStartClock(); // a clock behind the stored changes refuses to collect: exit 1
        await engine.recoverDeadOwners();
        engine.start();
        // The cron sweep is the safety net; the engine's own timer wakes it for the earliest due instant.
        const sweep = cron.schedule(config.scheduler.sweep, () => engine.kick(), { noOverlap: true });
        logger.info(
          { config: file, database: config.database.url.replace(/\/\/[^@]*@/, '//***@'), plans: config.plans.length, seeded: created, gateways: [...gateways.keys()] },
          'rebill ready',
        );
        await stopped;
        logger.info({ signal: stopSignal }, 'stopping: no new claims, draining in-flight attempts');
        await sweep.stop();
        const report = await engine.stop(config.scheduler.drainSeconds * 1000);
        const { drained } = report;
        for (const gateway of gateways.values()) await gateway.close?.();
        logger.info(report, drained ? 'stopped cleanly' : `stopped; ${report.leftForReconciliation} attempts left for reconciliation on the next start`);
        ctx.exitCode = 0;
        if (!drained) {
          // Calls still waiting on a gateway hold their sockets open and would keep the process alive
          // past drainSeconds, up to the gateway timeout, only to fail writing to the closed database.
          // Their attempts stay in_flight for the next start to reconcile: exit once the logs are out.
          setTimeout(() => process.exit(ctx.exitCode), 250).unref();
        }
      } catch (err) {
        logger.fatal({ err }, 'rebill failed');
        ctx.exitCode = 1;
      } finally {
        await db.destroy();
        logger.flush();
      }
    });
}
