/**
 * The PostgreSQL rows (issue 11, item 6). Every database is created for the
 * scenario on the bench's server (../support/postgres.ts) and dropped when it
 * ends, failed or not; the seeded rows are what rebill's own seeding code
 * stores (../support/seed.ts), `vacuum analyze`d as a database in service
 * would be.
 *
 * pg-dispatch-zero-latency: one `rebill run` on PostgreSQL with the
 * simulator as configured by default, N due at once, charges/s (timed by the
 * daemon's own records, as on SQLite), against the lean raw `pg` loop of
 * ../support/raw-pg-dispatch.ts on an identically seeded database; the raw
 * runs bracket the daemon's.
 *
 * pg-peer-graphile-worker: in the same run, graphile-worker (a devDependency
 * of the bench only) on the same server, in a database of its own, works off
 * the same number of no-op jobs: bulk-added first with its `addJobs`
 * (`graphile_worker.add_jobs`), then only the processing is timed, from the
 * first job's start to the last one's completion, by its runner at the
 * concurrency rebill runs at by default (16) with a pool as large. The row is
 * rebill's charges/s over its jobs/s: rebill doing billing work (five tables
 * written per charge) should not be slower than a queue doing nothing.
 *
 * pg-scale-out: `rebill fake-gateway --latency-ms 20`, concurrency 32 per
 * daemon, N due at once collected by 2 daemons on one database vs by 1;
 * charges/s of 2 over charges/s of 1. The rows are seeded due tomorrow; once
 * every daemon answers /healthz they are made due 1 s (--quick: 0.5 s) later and each daemon
 * is woken by an API create, so all of them start together.
 */
import { mkdirSync } from 'node:fs';
import pg from 'pg';
import { join } from 'node:path';
import { dueAt } from '../../src/calendar/index.js';
import { toDbTime } from '../../src/store/index.js';
import { atLeast, median, row, type BenchContext, type Row, type Scenario } from '../harness.js';
import { writeBenchConfig, type BenchConfigOptions } from '../support/config.js';
import { collect, cpuSecondsOf, slowestHealthz, startDaemon, waitFor, wakeEngine, type DaemonRun } from '../support/daemon.js';
import { analyze, postgresRecords, withClient, withDatabases } from '../support/postgres.js';
import { freePort, startFakeGatewayProcess } from '../support/processes.js';
import { rawPgDispatch } from '../support/raw-pg-dispatch.js';
import { seedSubscriptions, utcDate } from '../support/seed.js';

/** Generous: slower than 100 charges/s is broken, not slow. */
const timeoutFor = (n: number) => 120_000 + (n / 100) * 1000;

/** rebill's default scheduler.concurrency, given to graphile-worker too. */
const PEER_CONCURRENCY = 16;

/** A directory with a config on `databaseUrl`, and N subscriptions due now (or per `due`) seeded there. */
async function preparePostgres(ctx: BenchContext, name: string, databaseUrl: string, n: number, options: Omit<BenchConfigOptions, 'dir' | 'httpPort' | 'databaseUrl'> = {}, due?: number) {
  const dir = ctx.dir(name);
  const port = await freePort();
  const config = writeBenchConfig({ ...options, dir, httpPort: port, databaseUrl });
  await seedSubscriptions(config, { count: n, templates: [{ startDate: utcDate() }], row: () => ({ template: 0, ...(due === undefined ? {} : { dueAt: due }) }) });
  await analyze(databaseUrl);
  return { dir, port, config };
}

/** graphile-worker working off `n` no-op jobs in the database at `url`: jobs/s from the first start to the last completion. */
async function graphileWorker(ctx: BenchContext, url: string, n: number): Promise<{ perSecond: number; seconds: number; cpuSeconds: number }> {
  // Loaded here: only this row needs it (and it searches for a config file of its own as it loads).
  const { Logger, makeWorkerUtils, run: runGraphileWorker } = await import('graphile-worker');
  const quiet = new Logger(() => () => undefined);
  // The bench's own pool, ended here: graphile-worker's pool could still hold idle connections when
  // the scenario drops the database, and the server ending them was an unhandled 'error' event.
  const pool = new pg.Pool({ connectionString: url, max: PEER_CONCURRENCY });
  pool.on('error', () => undefined); // an idle connection the server ended: the pool replaces it
  try {
    const options = { pgPool: pool, logger: quiet, concurrency: PEER_CONCURRENCY };
    const utils = await makeWorkerUtils(options);
    try {
      await utils.migrate();
      const chunk = 10_000;
      for (let i = 0; i < n; i += chunk) await utils.addJobs(Array.from({ length: Math.min(chunk, n - i) }, () => ({ identifier: 'noop', payload: {} })));
    } finally {
      await utils.release();
    }
    await withClient(url, (c) => c.query('vacuum analyze'));
    let first = NaN;
    let last = NaN;
    let completed = 0;
    let failed = 0;
    let cpuFrom: NodeJS.CpuUsage | undefined;
    let cpu = NaN;
    let resolveDone!: () => void;
    let rejectDone!: (err: Error) => void;
    const done = new Promise<void>((ok, fail) => {
      resolveDone = ok;
      rejectDone = fail;
    });
    const runner = await runGraphileWorker({ ...options, noHandleSignals: true, taskList: { noop: async () => undefined } });
    try {
      runner.events.on('job:start', () => {
        if (Number.isNaN(first)) {
          first = performance.now();
          cpuFrom = process.cpuUsage();
        }
      });
      runner.events.on('job:error', () => failed++);
      runner.events.on('job:complete', () => {
        if (++completed === n) {
          last = performance.now();
          const used = process.cpuUsage(cpuFrom);
          cpu = (used.user + used.system) / 1e6;
          resolveDone();
        }
      });
      const timeout = setTimeout(() => rejectDone(new Error(`graphile-worker: ${completed} of ${n} jobs done after ${timeoutFor(n) / 1000} s`)), timeoutFor(n));
      await done.finally(() => clearTimeout(timeout));
    } finally {
      await runner.stop();
    }
    const left = await withClient(url, async (c) => Number((await c.query<{ n: string }>('select count(*) as n from graphile_worker.jobs')).rows[0]!.n));
    if (failed || left) throw new Error(`graphile-worker: ${failed} jobs failed, ${left} left in the queue`);
    const seconds = (last - first) / 1000;
    ctx.log(`graphile-worker: ${n} no-op jobs in ${seconds.toFixed(2)} s = ${(n / seconds).toFixed(0)}/s (concurrency ${PEER_CONCURRENCY}, pool ${PEER_CONCURRENCY}), bench-process CPU ${cpu.toFixed(1)} s`);
    return { perSecond: n / seconds, seconds, cpuSeconds: cpu };
  } finally {
    await pool.end();
  }
}

export const pgDispatch: Scenario = {
  rows: ['pg-dispatch-zero-latency', 'pg-peer-graphile-worker'],
  description:
    'PostgreSQL: N due at once through one `rebill run` and the simulator, charges/s vs the lean raw `pg` loop; ' +
    'and the same charges/s vs graphile-worker working off N no-op jobs on the same server',
  async run(ctx) {
    const n = ctx.size(100_000, 800);
    const cycle2 = toDbTime(dueAt({ startDate: utcDate(), every: { unit: 'month', count: 1 }, sendOnHour: 0, timezone: 'UTC', monthEnd: 'clamp' }, 2).toMillis());
    return withDatabases(async (create) => {
      const cpu: number[] = [];
      const raw = async () => {
        const db = await create('raw');
        await preparePostgres(ctx, 'pg-raw', db.url, n);
        const r = await rawPgDispatch(db.url, cycle2);
        await db.drop();
        if (r.charges !== n) throw new Error(`the raw pg loop collected ${r.charges} of ${n}`);
        ctx.log(`raw pg loop: ${n} in ${r.seconds.toFixed(2)} s = ${(n / r.seconds).toFixed(0)}/s, bench-process CPU ${r.cpuSeconds.toFixed(2)} s`);
        cpu.push(r.cpuSeconds);
        return n / r.seconds;
      };
      const baselines = [await raw()];

      const db = await create('daemon');
      const { dir, config, port } = await preparePostgres(ctx, 'pg-daemon', db.url, n);
      const daemon = await collect({ dir, config, port, expected: n, timeoutMs: timeoutFor(n), records: await postgresRecords(db.url), pollMs: 1000 }); // the count scans attempts: polled every 250 ms it took 5.4 s of server CPU from the shared cores at 100,000 (the figure is the daemon's own stamps, not the poll)
      await db.drop();
      ctx.log(
        `rebill run (PostgreSQL): ${n} in ${daemon.seconds.toFixed(2)} s = ${daemon.perSecond.toFixed(0)}/s, CPU ${daemon.cpuSeconds.toFixed(1)} s (start ${daemon.startSeconds.toFixed(1)} s, peak RSS ${daemon.peakRssMb.toFixed(0)} MB, ${slowestHealthz(daemon.healthzMaxMs)})`,
      );

      const peerDb = await create('graphile');
      const peer = await graphileWorker(ctx, peerDb.url, n);
      await peerDb.drop();

      if (!ctx.quick) baselines.push(await raw());
      const baseline = median(baselines);
      const rows: Row[] = [
        row(
          'pg-dispatch-zero-latency',
          daemon.perSecond,
          'charges/s',
          baseline,
          atLeast(0.5),
          `${n} due; daemon ${daemon.seconds.toFixed(1)} s, ${daemon.cpuSeconds.toFixed(1)} s of it on CPU, ${slowestHealthz(daemon.healthzMaxMs)}; raw pg runs ${baselines.map((b) => b.toFixed(0)).join(', ')}/s (bench-process CPU ${cpu.map((c) => c.toFixed(1)).join(', ')} s)`,
        ),
        row(
          'pg-peer-graphile-worker',
          daemon.perSecond,
          'charges/s',
          peer.perSecond,
          atLeast(1),
          `baseline: graphile-worker jobs/s, ${n} no-op jobs in ${peer.seconds.toFixed(1)} s at concurrency ${PEER_CONCURRENCY}`,
        ),
      ];
      return rows;
    });
  },
};

const SCALE_LATENCY_MS = 20;
const SCALE_CONCURRENCY = 32;
/** N due collected by `daemons` daemons on one fresh database against one fake gateway: charges/s. */
async function scaleOutRun(ctx: BenchContext, create: (label: string) => Promise<{ url: string; drop(): Promise<void> }>, n: number, daemons: number): Promise<number> {
  // How long after the last daemon is up the rows fall due.
  const leadMs = ctx.size(1_000, 500);
  // A gateway per run: it answers a key it has seen with its first answer, and every run's keys are the same.
  const db = await create(`scale${daemons}`);
  const gatewayDir = ctx.dir(`pg-scale${daemons}`);
  const gateway = await startFakeGatewayProcess(gatewayDir, SCALE_LATENCY_MS);
  const running: DaemonRun[] = [];
  const records = await postgresRecords(db.url);
  try {
    const options = { gateway: { type: 'coolpay', baseUrl: gateway.url } as const, scheduler: { concurrency: SCALE_CONCURRENCY } };
    // Seeded due tomorrow: a slow start cannot let one daemon begin before the others.
    const first = await preparePostgres(ctx, `pg-scale${daemons}-d0`, db.url, n, options, Date.now() + 86_400_000);
    const dirs = [first];
    for (let d = 1; d < daemons; d++) {
      const dir = join(gatewayDir, `d${d}`);
      mkdirSync(dir);
      const port = await freePort();
      dirs.push({ dir, port, config: writeBenchConfig({ ...options, dir, httpPort: port, databaseUrl: db.url }) });
    }
    running.push(...(await Promise.all(dirs.map((d, i) => startDaemon(d.dir, d.config, d.port, `daemon${i}`)))));
    const due = toDbTime(Date.now() + leadMs);
    await withClient(db.url, (c) => c.query('update subscriptions set action_at = $1, work_at = $1', [due]));
    // An API write that may make work due now wakes each daemon's engine, which re-reads the next due instant.
    await Promise.all(dirs.map(({ port }) => wakeEngine(port)));
    const cpu = () => [...running.map((d) => cpuSecondsOf(d.child.pid)), cpuSecondsOf(gateway.child.pid)];
    const cpuFrom = cpu();
    await waitFor(running[0]!.child, async () => (await records.captured()) >= n, `${n} captures`, timeoutFor(n), 250);
    const cpuUsed = cpu().map((c, i) => c - cpuFrom[i]!);
    const w = await records.window();
    if (w.count !== n) throw new Error(`expected ${n} attempts, found ${w.count}`);
    const ledger = (await (await fetch(`${gateway.url}/__ledger`)).json()) as unknown[];
    if (ledger.length !== n) throw new Error(`the fake gateway captured ${ledger.length} of ${n}`);
    await records.close();
    for (const d of running.splice(0)) await d.stop();
    const seconds = (w.to - w.from) / 1000;
    ctx.log(
      `${daemons} daemon${daemons > 1 ? 's' : ''}: ${n} in ${seconds.toFixed(2)} s = ${(n / seconds).toFixed(0)}/s; CPU s meanwhile: daemons ${cpuUsed
        .slice(0, -1)
        .map((c) => c.toFixed(1))
        .join(' + ')}, fake gateway ${cpuUsed.at(-1)!.toFixed(1)}`,
    );
    return n / seconds;
  } finally {
    await records.close();
    for (const d of running) await d.child.stop('SIGKILL');
    await gateway.child.stop();
    await db.drop();
  }
}

export const pgScaleOut: Scenario = {
  rows: ['pg-scale-out'],
  description: `PostgreSQL: N due at once, \`rebill fake-gateway --latency-ms ${SCALE_LATENCY_MS}\`, concurrency ${SCALE_CONCURRENCY} per daemon: charges/s of 2 daemons on one database over 1`,
  async run(ctx) {
    const n = ctx.size(10_000, 300);
    return withDatabases(async (create) => {
      const one: number[] = [];
      const two: number[] = [];
      for (let round = 0; round < ctx.rounds; round++) {
        one.push(await scaleOutRun(ctx, create, n, 1));
        two.push(await scaleOutRun(ctx, create, n, 2));
      }
      const single = median(one);
      return [
        row(
          'pg-scale-out',
          median(two),
          'charges/s',
          single,
          atLeast(1.8),
          `${n} due, median of ${two.length}; 2 daemons ${two.map((r) => r.toFixed(0)).join(', ')}/s vs 1 daemon ${one.map((r) => r.toFixed(0)).join(', ')}/s (Little's law: ${SCALE_CONCURRENCY / (SCALE_LATENCY_MS / 1000)}/s per daemon)`,
        ),
      ];
    });
  },
};
