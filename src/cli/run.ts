import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { Command } from 'commander';
import cron, { type ScheduledTask } from 'node-cron';
import { systemClock } from '../clock.js';
import type { Logger } from 'pino';
import type { Clock } from '../clock.js';
import { createEngine, daemonGateways, engineOptions, logSkippedCycles, seedWarnings, upsertSeeds } from '../engine/index.js';
import { configWarnings, type Config } from '../config/index.js';
import { RebillError } from '../errors.js';
import { createHttpServer, createMetrics, type HttpServer } from '../http/index.js';
import { createLogger } from '../logger.js';
import { createRelay, endpointId } from '../webhooks/index.js';
import { createLinkEmailSender, type LinkEmailObserver, type LinkEmailSender } from '../notifications/index.js';
import { catalogOf } from '../service/index.js';
import { isPostgresUrl, lastEventId, openWakeBus, type WakeBus, linkEmailBacklog, migrateToLatest, syncPlanEmailLinks, toDbTime, withStreamingPageCache, type DaemonLock, type Db } from '../store/index.js';
import { checkMovedOrReport, checkRemovedInUse, lockDatabaseOrReport, openDatabaseOrReport, printableUrl, verifyDatabaseOrReport } from './database.js';
import { packageVersion, type CommandContext } from './index.js';
import { configPath, loadConfigOrReport } from './config-file.js';
import { watchParent } from './parent.js';

/** Log seeding progress every this many seeds. */
const SEED_PROGRESS_EVERY = 10_000;

/**
 * `rebill run`: validate config, migrate, seed, listen on http.host:http.port,
 * then run the engine until SIGTERM/SIGINT, which close the HTTP server first
 * (in-flight requests finish, new ones get 503), then stop claiming, let
 * in-flight attempts finish (up to scheduler.drainSeconds), release unstarted
 * claims and close the database.
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
      const opened = openLockedDatabase(config, clock);
      if (typeof opened === 'number') {
        ctx.exitCode = opened;
        return;
      }
      const { db, lock } = opened;
      let stopSignal: NodeJS.Signals | 'parent-exit' | null = null;
      let stopParentWatch = () => {};
      const stopped = new Promise<void>((resolve) => {
        const onSignal = (signal: NodeJS.Signals) => {
          stopSignal = signal;
          resolve();
        };
        process.once('SIGTERM', onSignal);
        process.once('SIGINT', onSignal);
        stopParentWatch = watchParent((previous, now) => {
          logger.warn({ parentPid: previous, newParentPid: now }, `parent process ${previous} exited (npm does not forward SIGTERM); stopping as on SIGTERM`);
          stopSignal = 'parent-exit';
          resolve();
        });
      });
      let wakeBus: WakeBus | undefined;
      try {
        const refused = await prepareDatabase(db, config, file);
        if (refused !== 0) {
          ctx.exitCode = refused;
          return;
        }
        const gateways = daemonGateways(db, clock, config.gateways);
        const options = engineOptions(config.retry, config.scheduler);
        // Metrics first: the engine takes their observer when it is built, then the metrics read the engine.
        const webhookEndpoints = config.webhooks.filter((w) => w.enabled).map((w) => endpointId(w.url));
        const metrics = createMetrics({ db, clock, queueBound: options.queueBound, gateways: [...gateways.keys()], webhookEndpoints });
        // One id for this daemon's engine claims, relay leases and wake-ups: recovery at the next start
        // recognises all of them as this process's if it dies.
        const daemonId = `${hostname()}:${process.pid}:${randomBytes(4).toString('hex')}`;
        const engine = createEngine({ db, clock, gateways, logger, options, observer: metrics.engineObserver, owner: daemonId });
        metrics.attach(engine);
        // Before anything is written with it: a clock behind the stored changes refuses to collect (exit 1).
        await engine.checkStartClock();
        // Endpoints are registered before seeding, so a first start delivers the seeds' events too.
        const relay = createRelay({ db, clock, logger, webhooks: config.webhooks, observer: metrics.webhookObserver, options: { owner: daemonId } });
        await relay.init();
        const created = await seed(db, config, logger, clock);
        const linkEmails = await linkEmailSender(db, config, logger, clock, metrics.linkEmailObserver);
        await engine.recoverDeadOwners();
        // On PostgreSQL, the other daemons' API writes wake this engine too (LISTEN/NOTIFY; nothing on SQLite).
        wakeBus = openWakeBus(db, { sender: daemonId, onWake: () => engine.kick(), logger });
        // The cron sweep is the safety net; the engine's own timer wakes it for the earliest due instant.
        const sweep = cron.schedule(config.scheduler.sweep, () => engine.kick(), { noOverlap: true });
        const server = createHttpServer({
          config: config.http,
          engine,
          db,
          clock,
          logger,
          metrics,
          adminApi: {
            tokens: config.http.tokens,
            catalog: catalogOf(config),
            // A create with a past start or a retry-now makes work due before the engine's timer would wake it.
            wake: (dueAt) => {
              if (dueAt === null) return;
              engine.kick(dueAt);
              wakeBus?.notify();
            },
            version: packageVersion(),
          },
          callbacks: { gateways: config.gateways, policy: options.policy },
          readiness: {
            databaseUrl: config.database.url,
            sweepIntervalMs: sweepIntervalMs(sweep, options.maxSleepMs),
            queueBound: options.queueBound,
            webhookEndpoints: webhookEndpoints.length,
            webhookEndpointIds: webhookEndpoints,
          },
        });
        // Listening before the engine starts: a port in use stops the daemon before it collects anything.
        const address = await listenOrReport(server, config, logger);
        if (address === undefined) {
          await sweep.stop();
          ctx.exitCode = 1;
          return;
        }
        engine.start();
        relay.start();
        linkEmails?.start();
        logger.info(
          { config: file, database: printableUrl(config.database.url), http: address, plans: config.plans.length, seeded: created, gateways: [...gateways.keys()] },
          'rebill ready',
        );
        await stopped;
        // The server closes first: new requests get 503, those in flight finish; then the engine drains.
        logger.info({ signal: stopSignal }, 'stopping: HTTP server closing, no new claims, draining in-flight attempts');
        await server.close();
        await sweep.stop();
        await wakeBus.close();
        // The sender drains beside the engine, within the same limit; links the engine records meanwhile stay queued for the next start.
        const [report, mail] = await Promise.all([engine.stop(config.scheduler.drainSeconds * 1000), linkEmails?.stop(config.scheduler.drainSeconds * 1000)]);
        await relay.stop();
        if (mail && !mail.drained) logger.warn(mail, `${mail.abandoned} payment-link e-mails cut off by the drain limit; sent again at the next start`);
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
        stopParentWatch();
        await wakeBus?.close();
        await db.destroy();
        lock?.release();
        logger.flush();
      }
    });
}

/**
 * How often a sweep happens: the gap between the cron's next two runs, or the
 * engine's longest sleep when that is shorter (the engine's own wake-ups sweep
 * too). Readiness compares the last sweep's age with it.
 */
function sweepIntervalMs(sweep: ScheduledTask, maxSleepMs: number): number {
  const [a, b] = sweep.getNextRuns(2);
  const cronGap = a && b ? b.getTime() - a.getTime() : Infinity;
  return Math.min(cronGap, maxSleepMs);
}

/** Binds the HTTP server; a bind failure is logged in one line saying what to change, and undefined returned. */
async function listenOrReport(server: HttpServer, config: Config, logger: Logger): Promise<string | undefined> {
  try {
    return await server.listen();
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const where = `${config.http.host}:${config.http.port}`;
    const why = code === 'EADDRINUSE' ? 'the address is already in use' : code === 'EADDRNOTAVAIL' ? 'no interface has that address' : code === 'EACCES' ? 'permission denied (ports below 1024 need privileges)' : (err as Error).message;
    logger.fatal({ http: where, code }, `cannot listen on ${where}: ${why}; set http.host / http.port (or REBILL_HTTP_HOST / REBILL_HTTP_PORT)`);
    return undefined;
  }
}

/**
 * Takes the one-daemon lock (before anything touches the database file, so
 * two daemons started together never race on creating or migrating it), then
 * opens the database. Returns the exit code when either fails.
 */
function openLockedDatabase(config: Config, clock: Clock): { db: Db; lock: DaemonLock | undefined } | 1 {
  const lock = lockDatabaseOrReport(config, toDbTime(clock.now()));
  if (lock === 1) return 1;
  const db = openDatabaseOrReport(config);
  if (typeof db === 'number') {
    lock?.release();
    return db;
  }
  return { db, lock };
}

/**
 * The database checks before the engine may start: the SQLite file was not
 * moved to PostgreSQL (migrate-to), the file is not damaged (quick_check), the schema is migrated, and no plan or gateway that live
 * subscriptions use was removed from the config. 0, or the exit code.
 */
async function prepareDatabase(db: Db, config: Config, file: string): Promise<number> {
  const moved = await checkMovedOrReport(db, config, 'run');
  if (moved !== 0) return moved;
  const damaged = await verifyDatabaseOrReport(db, config);
  if (damaged !== 0) return damaged;
  try {
    await migrateToLatest(db);
  } catch (err) {
    // A PostgreSQL server that does not answer (or refuses us): one line naming it, not a stack trace.
    if (isPostgresUrl(config.database.url) && !(err instanceof RebillError)) {
      process.stderr.write(`cannot use database ${printableUrl(config.database.url)}: ${err instanceof Error ? err.message : String(err)}\n`);
      return 1;
    }
    // A downgrade: one line saying what to do, not a migrator stack trace.
    if (!(err instanceof RebillError && err.code === 'DATABASE_TOO_NEW')) throw err;
    process.stderr.write(`${err.message}\n`);
    return 1;
  }
  return checkRemovedInUse(db, config, file);
}

/**
 * The payment-link e-mail sender when `notifications.email` is configured.
 * First the plans' `emailLinks` are applied to their existing subscriptions;
 * without the section, e-mails still queued from an earlier run wait (logged).
 */
async function linkEmailSender(db: Db, config: Config, logger: Logger, clock: Clock, observer: LinkEmailObserver): Promise<LinkEmailSender | undefined> {
  // One pass over the whole table, whose pages nothing reads again soon (withStreamingPageCache).
  const changed = await withStreamingPageCache(db, () => syncPlanEmailLinks(db, config.plans));
  if (changed > 0) logger.info({ subscriptions: changed }, 'plans\' emailLinks applied to their existing subscriptions');
  const email = config.notifications.email;
  if (email === undefined) {
    const { pending } = await linkEmailBacklog(db);
    if (pending > 0) logger.warn({ pending }, `${pending} payment-link e-mails are waiting but notifications.email is not configured; they are sent once it is`);
    return undefined;
  }
  return createLinkEmailSender({ db, clock, logger, email, observer });
}

/** Upserts the config's seed subscriptions in batches, logging progress and the edits not applied; returns how many were created. */
async function seed(db: Db, config: Config, logger: Logger, clock: Clock): Promise<number> {
  const total = config.subscriptions.length;
  const from = clock.now();
  const eventsBefore = await lastEventId(db);
  // The seeds' skipped cycles are read back from the events just written: both at the streaming cache.
  return withStreamingPageCache(db, async () => {
    const report = await upsertSeeds(db, config.plans, config.subscriptions, from, {
      onProgress: (done) => {
        if (done % SEED_PROGRESS_EVERY === 0 && done < total) logger.info({ done, total }, 'seeding subscriptions');
      },
    });
    if (total >= SEED_PROGRESS_EVERY) logger.info({ total, created: report.created, existing: report.existing, ms: clock.now() - from }, 'seeding done');
    for (const warning of seedWarnings(report, config.plans)) logger.warn(warning);
    await logSkippedCycles(db, logger, eventsBefore); // a start date in the past skips cycles: say so
    return report.created;
  });
}
