/**
 * schedule-lag: how late `rebill run` starts a charge after it falls due.
 * N subscriptions get due instants spread evenly over a window (written to
 * their work pointer, the way a retry or a collection at an arbitrary instant
 * is stored) that begins 2 s (--quick: 1 s) after the daemon is up: seeded due tomorrow,
 * moved into the window once /healthz answers, the engine woken once by an
 * API write that may make work due at once (a PATCH; a create of a
 * subscription due in years leaves a sleeping engine asleep). From there its
 * own timer must wake it for each instant.
 *
 * The lag of each charge is the gateway call's start (the simulator stamps
 * `createdAt` in its ledger entry as the call begins, in the daemon's
 * database) minus the row's due instant; the row reports the p99. The
 * daemon's `rebill_scheduling_lag_seconds` histogram (the engine observer's
 * due -> call start, the same quantity) is scraped at the end as a check: its
 * count must match and its buckets bound the same p99.
 */
import { join } from 'node:path';
import SQLite from 'better-sqlite3';
import { toDbTime } from '../../src/store/index.js';
import { atMost, percentile, row, type Scenario } from '../harness.js';
import { writeBenchConfig } from '../support/config.js';
import { sqliteRecords, startDaemon, waitFor, wakeEngine } from '../support/daemon.js';
import { freePort } from '../support/processes.js';
import { seededId, seedSubscriptions, utcDate } from '../support/seed.js';

/** Bucket upper bounds (s) and cumulative counts of the lag histogram, and its count. */
function lagHistogram(text: string): { buckets: Array<[number, number]>; count: number } {
  const buckets: Array<[number, number]> = [];
  let count = NaN;
  for (const line of text.split('\n')) {
    const bucket = /^rebill_scheduling_lag_seconds_bucket\{.*le="([^"]+)".*\} (\d+)/.exec(line);
    if (bucket) buckets.push([bucket[1] === '+Inf' ? Infinity : Number(bucket[1]), Number(bucket[2])]);
    const total = /^rebill_scheduling_lag_seconds_count\{.*\} (\d+)/.exec(line);
    if (total) count = Number(total[1]);
  }
  return { buckets, count };
}

export const scheduleLag: Scenario = {
  rows: ['schedule-lag'],
  description: 'N due instants spread over a window, `rebill run` with the simulator: p99 of due -> gateway call start, ms, vs 1 s',
  async run(ctx) {
    const n = ctx.size(2_000, 200);
    const spreadMs = ctx.size(30_000, 2_000);
    const leadMs = ctx.size(2_000, 1_000);
    const dir = ctx.dir('lag');
    const port = await freePort();
    const config = writeBenchConfig({ dir, httpPort: port });
    // Seeded due tomorrow, so a slow start on a loaded machine cannot eat into the window.
    await seedSubscriptions(config, { count: n, templates: [{ startDate: utcDate() }], row: () => ({ template: 0, dueAt: Date.now() + 86_400_000 }) });
    const daemon = await startDaemon(dir, config, port);
    const records = sqliteRecords(dir);
    try {
      // Once it is up, the window is set: each row's work pointer moved into it, in one transaction
      // beside the daemon (as `rebill subscriptions import` writes beside it)...
      const first = Date.now() + leadMs;
      const due = (i: number) => first + Math.floor((i * spreadMs) / n);
      const writer = new SQLite(join(dir, 'rebill.db'));
      writer.pragma('busy_timeout = 10000');
      const move = writer.prepare('update subscriptions set action_at = ?, work_at = ? where id = ?');
      writer.transaction(() => {
        for (let i = 0; i < n; i++) move.run(toDbTime(due(i)), toDbTime(due(i)), seededId(i));
      })();
      writer.close();
      // ...then an API write that may make work due now wakes the engine, which re-reads the next due
      // instant and arms its timer.
      await wakeEngine(port);
      const armedAt = Date.now();
      await waitFor(daemon.child, async () => (await records.captured()) >= n, `${n} captures`, leadMs + spreadMs + 120_000, 250);
      const lags: number[] = [];
      for (const { entry } of records.db.prepare('select entry from simulator_ledger').all() as Array<{ entry: string }>) {
        const parsed = JSON.parse(entry) as { subscriptionId: string; createdAt: number };
        lags.push(parsed.createdAt - due(Number(parsed.subscriptionId.slice(1))));
      }
      if (lags.length !== n) throw new Error(`the simulator ledger has ${lags.length} entries for ${n} charges`);
      const lateStart = armedAt > first ? ` (the wake-up came ${armedAt - first} ms after the first instant: the machine is very busy)` : '';
      const metrics = lagHistogram(await (await fetch(`http://127.0.0.1:${port}/metrics`)).text());
      await records.close();
      await daemon.stop();
      const p99 = percentile(lags, 99);
      const within = (le: number) => metrics.buckets.find(([bound]) => bound === le)?.[1] ?? NaN;
      const metric =
        metrics.count === n
          ? `rebill_scheduling_lag_seconds: ${metrics.count} observations, ${((100 * within(0.1)) / n).toFixed(1)}% <= 0.1 s, ${((100 * within(1)) / n).toFixed(1)}% <= 1 s`
          : `rebill_scheduling_lag_seconds counted ${metrics.count}, not ${n}`;
      ctx.log(`lag p50 ${percentile(lags, 50)} ms, p99 ${p99} ms, max ${Math.max(...lags)} ms; ${metric}${lateStart}`);
      return [
        row(
          'schedule-lag',
          p99,
          'ms',
          1000,
          atMost(1),
          `${n} instants over ${spreadMs / 1000} s; p50 ${percentile(lags, 50)} ms, max ${Math.max(...lags)} ms; ${metric}${lateStart}`,
        ),
      ];
    } catch (err) {
      await records.close();
      await daemon.child.stop('SIGKILL');
      throw err;
    }
  },
};
