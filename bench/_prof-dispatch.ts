/**
 * Profiling helper for dispatch-zero-latency and pg-dispatch-zero-latency
 * (not a bench row): seeds N subscriptions due now as the scenario does,
 * spawns `rebill run` (with `--cpu-prof` into $PROF when set) and prints the
 * collection rate and the daemon's CPU time per charge (utime+stime from
 * /proc, between the first attempt and the last capture): a figure that a
 * shared machine's load disturbs less than charges/s.
 * `npx tsx bench/_prof-dispatch.ts 20000 [sqlite|pg]`.
 */
import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { writeBenchConfig } from './support/config.js';
import { cpuSecondsOf, sqliteRecords, waitFor, type AttemptRecords } from './support/daemon.js';
import { analyze, postgresRecords, withClient, withDatabases } from './support/postgres.js';
import { freePort, REBILL_BIN, spawnNode, spawnRebill } from './support/processes.js';
import { seedSubscriptions, utcDate } from './support/seed.js';

const n = Number(process.argv[2] ?? 20_000);
const dialect = process.argv[3] ?? 'sqlite';
const dir = '/tmp/dispatchprof/run';
rmSync(dir, { recursive: true, force: true });
mkdirSync(dir, { recursive: true });

async function run(databaseUrl?: string): Promise<void> {
  const port = await freePort();
  // LOG=info: the daemon's info lines (a line per charge, and each sweep) in $dir/daemon.log.
  const config = writeBenchConfig({ dir, httpPort: port, ...(databaseUrl ? { databaseUrl } : {}), ...(process.env.LOG === 'info' ? { logLevel: 'info' as const } : {}) });
  await seedSubscriptions(config, { count: n, templates: [{ startDate: utcDate() }], row: () => ({ template: 0 }) });
  if (databaseUrl) await analyze(databaseUrl);
  // Node refuses --cpu-prof in NODE_OPTIONS: it goes on the command line, before the script.
  const child = process.env.PROF
    ? spawnNode('--cpu-prof', [`--cpu-prof-dir=${process.env.PROF}`, REBILL_BIN, 'run', '--config', config], { dir, name: 'daemon' })
    : spawnRebill(['run', '--config', config], { dir, name: 'daemon' });
  const records: AttemptRecords = databaseUrl ? await postgresRecords(databaseUrl) : sqliteRecords(dir);
  let cpuFrom = NaN;
  let cpuTo = NaN;
  let writtenFrom = NaN;
  let writtenTo = NaN;
  try {
    await waitFor(
      child,
      async () => {
        if (Number.isNaN(cpuFrom) && (await records.attempts()) > 0) {
          cpuFrom = cpuSecondsOf(child.pid);
          writtenFrom = bytesWrittenBy(child.pid);
        }
        if ((await records.captured()) < n) return false;
        cpuTo = cpuSecondsOf(child.pid);
        writtenTo = bytesWrittenBy(child.pid);
        return true;
      },
      `${n} captures`,
      600_000,
      databaseUrl ? 250 : 100,
    );
    const w = await records.window();
    const seconds = (w.to - w.from) / 1000;
    const cpu = cpuTo - cpuFrom;
    // Claims and outcome commits: each stamps its rows with its one instant.
    const batches = 'select count(distinct created_at) as claims, count(distinct updated_at) as outcomes from attempts';
    const counts = databaseUrl
      ? (await withClient(databaseUrl, (c) => c.query<{ claims: string; outcomes: string }>(batches))).rows[0]!
      : (sqliteRecords(dir).db.prepare(batches).get() as { claims: number; outcomes: number });
    console.log(
      `${dialect}: ${n} in ${seconds.toFixed(2)} s = ${(n / seconds).toFixed(0)}/s; daemon CPU ${cpu.toFixed(2)} s = ${((cpu * 1e6) / n).toFixed(0)} us/charge; ${((writtenTo - writtenFrom) / n).toFixed(0)} bytes written/charge; ${counts.claims} claims, ${counts.outcomes} outcome commits`,
    );
  } finally {
    await records.close();
    await child.stop();
  }
}

/** Bytes a process wrote to files (`wchar` of /proc/<pid>/io: the WAL, checkpoints, logs), NaN if unreadable. */
function bytesWrittenBy(pid: number): number {
  try {
    return Number(/^wchar: (\d+)$/m.exec(readFileSync(`/proc/${pid}/io`, 'utf8'))?.[1] ?? NaN);
  } catch {
    return NaN;
  }
}

if (dialect === 'pg') {
  await withDatabases(async (create) => {
    const db = await create('prof');
    // PGLOG=1: every statement's duration in the server log (this database only).
    if (process.env.PGLOG) await withClient(db.url, (c) => c.query(`alter database "${db.name}" set log_min_duration_statement = 0`));
    await run(db.url);
    // PGSTATS=1: how each hot table was scanned (a sequential scan per batch grows with the table).
    if (process.env.PGSTATS) {
      const stats = await withClient(db.url, (c) => c.query('select relname, seq_scan, seq_tup_read, idx_scan, n_tup_upd, n_tup_hot_upd from pg_stat_user_tables order by relname'));
      console.table(stats.rows);
      await withClient(db.url, async (c) => {
        const keys = (await c.query<{ k: string }>('select idempotency_key as k from attempts limit 150')).rows.map((r) => r.k);
        const plan = await c.query(
          `explain update attempts a set state = v.next, updated_at = $4 from unnest($1::text[], $2::text[], $3::text[]) as v(k, expected, next)
           where a.idempotency_key = any($1::text[]) and a.idempotency_key = v.k and a.state = v.expected returning a.idempotency_key`,
          [keys, keys.map(() => 'in_flight'), keys.map(() => 'captured'), 'x'],
        );
        console.log(plan.rows.map((r) => r['QUERY PLAN']).join('\n'));
      });
    }
  });
}
else await run();
console.error(join(dir, 'daemon.log'));
