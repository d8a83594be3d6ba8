/**
 * A `rebill run` daemon collecting a prepared database, timed by its own
 * records: the engine's window runs from the first attempt's created_at (the
 * instant of the first sweep, taken before its claim) to the last attempt's
 * updated_at (its outcome recorded), both written by the daemon with its
 * clock. The bench only polls the database read-only (a count on the partial
 * capture index) to know when every charge is in, so neither its polling
 * interval nor a busy daemon's late /healthz answer enters the figure.
 *
 * What the bench reads goes through `AttemptRecords`: SQLite here; a
 * PostgreSQL scenario passes a reader over `pg` with the same four methods.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import SQLite from 'better-sqlite3';
import { BENCH_PLAN, BENCH_TOKEN } from './config.js';
import { sleep, spawnRebill, waitHealthy, type Child } from './processes.js';

/** The daemon's attempt records as the bench reads them while it runs. */
export interface AttemptRecords {
  /** Attempts written so far (any state). */
  attempts(): Promise<number>;
  captured(): Promise<number>;
  /** First created_at and last updated_at over the attempts (epoch ms), and how many there are. */
  window(): Promise<{ readonly from: number; readonly to: number; readonly count: number }>;
  close(): Promise<void>;
}

/** The SQLite database `<dir>/rebill.db`, opened read-only beside the daemon (WAL: readers never block it). */
export function sqliteRecords(dir: string): AttemptRecords & { readonly db: SQLite.Database } {
  const db = new SQLite(join(dir, 'rebill.db'), { readonly: true, fileMustExist: true });
  db.pragma('busy_timeout = 5000');
  const count = (sql: string) => (db.prepare(sql).get() as { n: number }).n;
  return {
    db,
    attempts: async () => count('select count(*) as n from attempts'),
    captured: async () => count("select count(*) as n from attempts where state = 'captured'"),
    async window() {
      const r = db.prepare('select min(created_at) as a, max(updated_at) as b, count(*) as n from attempts').get() as { a: string | null; b: string | null; n: number };
      return { from: r.a ? Date.parse(r.a) : NaN, to: r.b ? Date.parse(r.b) : NaN, count: r.n };
    },
    async close() {
      if (db.open) db.close();
    },
  };
}

export interface Collected {
  /** Attempts captured. */
  readonly charges: number;
  /** From the first intent's created_at to the last outcome's updated_at. */
  readonly seconds: number;
  readonly perSecond: number;
  /** The daemon's peak RSS over its whole life (MB). */
  readonly peakRssMb: number;
  /** Seconds from spawn to the first sweep (node start, migrations, start checks). */
  readonly startSeconds: number;
  /** The slowest /healthz answer while it collected (ms), probed every 250 ms: how long the event loop was held. */
  readonly healthzMaxMs: number;
  /**
   * CPU seconds (user + system) the daemon used between the bench's first
   * sight of an attempt and of the last capture (polled every 100 ms): beside
   * `seconds`, it tells a slow engine from a machine busy with other work.
   */
  readonly cpuSeconds: number;
}

/** The slowest /healthz answer in words (the probe gives up on one request after 30 s). */
export function slowestHealthz(ms: number): string {
  return ms >= 30_000 ? 'a /healthz request went unanswered for 30 s' : `slowest /healthz ${(ms / 1000).toFixed(1)} s`;
}

/** CPU seconds (user + system) a process has used so far, from /proc (NaN where there is none). */
export function cpuSecondsOf(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // utime and stime (fields 14 and 15 of proc(5)), in clock ticks of 1/100 s on Linux.
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return NaN;
  }
}

/**
 * Waits until `done()` holds, checking every `everyMs`; throws when `child`
 * exits first or `timeoutMs` passes.
 */
export async function waitFor(child: Child, done: () => boolean | Promise<boolean>, what: string, timeoutMs: number, everyMs = 100): Promise<void> {
  let exited: number | null | undefined;
  void child.exited.then((code) => (exited = code));
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await done()) return;
    if (exited !== undefined) throw new Error(`the process exited ${exited} before ${what}:\n${child.tail()}`);
    if (Date.now() > deadline) throw new Error(`${what}: not done after ${timeoutMs / 1000} s:\n${child.tail()}`);
    await sleep(everyMs);
  }
}

export interface DaemonRun {
  readonly child: Child;
  /** Date.now() at the first /healthz 200. */
  readonly readyAt: number;
  /** Seconds from spawn to that answer. */
  readonly startSeconds: number;
  /** SIGTERM, wait for the exit (the daemon drains); the exit code must be 0. */
  stop(): Promise<void>;
}

/** Spawns `rebill run --config <config>` in `dir` and waits for /healthz on `port` (for a daemon with little to do at start). */
export async function startDaemon(dir: string, config: string, port: number, name = 'daemon'): Promise<DaemonRun> {
  const spawnedAt = Date.now();
  const child = spawnRebill(['run', '--config', config], { dir, name });
  const readyAt = await waitHealthy(child, port);
  return {
    child,
    readyAt,
    startSeconds: (readyAt - spawnedAt) / 1000,
    async stop() {
      const code = await child.stop();
      if (code !== 0) throw new Error(`rebill run exited ${code} on SIGTERM:\n${child.tail()}`);
    },
  };
}

export interface CollectOptions {
  readonly dir: string;
  readonly config: string;
  /** The daemon's http.port (for the /healthz probe). */
  readonly port: number;
  /** Captures to wait for. */
  readonly expected: number;
  readonly timeoutMs: number;
  /** Default: the SQLite database in `dir`. */
  readonly records?: AttemptRecords;
  /** How often the records are polled (default 100 ms; a PostgreSQL count costs the server CPU the daemon shares). */
  readonly pollMs?: number;
}

/**
 * Runs the daemon on a seeded database until `expected` attempts are
 * captured, then stops it. It does not wait for /healthz first: a daemon
 * that collects holds its event loop for long stretches, so the database is
 * the signal (it exists already, seeded).
 */
export async function collect(options: CollectOptions): Promise<Collected> {
  const { dir, config, port, expected, timeoutMs } = options;
  const spawnedAt = Date.now();
  const child = spawnRebill(['run', '--config', config], { dir, name: 'daemon' });
  const records = options.records ?? sqliteRecords(dir);
  let probing = true;
  let healthzMaxMs = 0;
  const probe = (async () => {
    while (probing) {
      // A request sent while the daemon collects counts even when its answer comes after the last
      // capture: that wait is exactly the stall being measured.
      const from = performance.now();
      try {
        const res = await fetch(`http://127.0.0.1:${port}/healthz`, { signal: AbortSignal.timeout(30_000) });
        await res.arrayBuffer();
        if (res.ok) healthzMaxMs = Math.max(healthzMaxMs, performance.now() - from);
      } catch (err) {
        // Refused: not listening yet. Timed out: listening, but no answer in 30 s (counts as 30 s at least).
        if ((err as Error).name === 'TimeoutError') healthzMaxMs = Math.max(healthzMaxMs, performance.now() - from);
      }
      await sleep(250);
    }
  })();
  try {
    let cpuFrom = NaN;
    let cpuTo = NaN;
    await waitFor(
      child,
      async () => {
        if (Number.isNaN(cpuFrom) && (await records.attempts()) > 0) cpuFrom = cpuSecondsOf(child.pid);
        if ((await records.captured()) < expected) return false;
        cpuTo = cpuSecondsOf(child.pid);
        return true;
      },
      `${expected} captures`,
      timeoutMs,
      options.pollMs,
    );
    probing = false;
    await probe;
    const w = await records.window();
    if (w.count !== expected) throw new Error(`expected ${expected} attempts, found ${w.count}`);
    const seconds = (w.to - w.from) / 1000;
    await records.close();
    const code = await child.stop();
    if (code !== 0) throw new Error(`rebill run exited ${code} on SIGTERM:\n${child.tail()}`);
    return { charges: expected, seconds, perSecond: expected / seconds, peakRssMb: child.peakRssMb(), startSeconds: (w.from - spawnedAt) / 1000, healthzMaxMs, cpuSeconds: cpuTo - cpuFrom };
  } catch (err) {
    probing = false;
    await records.close();
    await child.stop('SIGKILL');
    throw err;
  }
}

/**
 * Wakes a running daemon's engine through its API, after the bench moved rows
 * behind its back: it creates a subscription not due for years, then PATCHes
 * its metadata. A write whose work may be due now (a PATCH) wakes the engine,
 * which re-reads the next due instant; a create whose work falls due after
 * the engine's own wake-up leaves a sleeping engine asleep, so the create
 * alone would not.
 */
export async function wakeEngine(port: number): Promise<void> {
  const api = (method: string, path: string, body: unknown) =>
    fetch(`http://127.0.0.1:${port}/v1/subscriptions${path}`, {
      method,
      headers: { authorization: `Bearer ${BENCH_TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
  const created = await api('POST', '', { planId: BENCH_PLAN, paymentToken: 'tok_ok', startDate: '2099-01-01' });
  if (created.status !== 201) throw new Error(`the wake-up create answered ${created.status}: ${await created.text()}`);
  const { id } = (await created.json()) as { id: string };
  const patched = await api('PATCH', `/${id}`, { metadata: { wake: 'bench' } });
  if (patched.status !== 200) throw new Error(`the wake-up PATCH answered ${patched.status}: ${await patched.text()}`);
}
