/**
 * schedule-lag: how late `rebill run` starts a charge after it falls due.
 * N subscriptions get due instants spread evenly over a window (written to
 * their work pointer, the way a retry or a collection at an arbitrary instant
 * is stored) that begins a few seconds after the daemon is spawned; the
 * engine's own timer must wake it for each.
 *
 * The lag of each charge is the gateway call's start (the simulator stamps
 * `createdAt` in its ledger entry as the call begins, in the daemon's
 * database) minus the row's due instant; the row reports the p99. The
 * daemon's `rebill_scheduling_lag_seconds` histogram (the engine observer's
 * due -> call start, the same quantity) is scraped at the end as a check: its
 * count must match and its buckets bound the same p99.
 */
import { atMost, percentile, row, type Scenario } from '../harness.js';
import { writeBenchConfig } from '../support/config.js';
import { capturedCount, startDaemon, waitFor } from '../support/daemon.js';
import { freePort } from '../support/processes.js';
import { seedSubscriptions, utcDate } from '../support/seed.js';

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
    const spreadMs = ctx.size(30_000, 3_000);
    // Time for the daemon to start before the first instant falls due (it needs about 1 s idle).
    const leadMs = ctx.size(6_000, 2_500);
    const dir = ctx.dir('lag');
    const port = await freePort();
    const config = writeBenchConfig({ dir, httpPort: port });
    const first = Date.now() + leadMs;
    const due = (i: number) => first + Math.floor((i * spreadMs) / n);
    await seedSubscriptions(config, { count: n, templates: [{ startDate: utcDate() }], row: (i) => ({ template: 0, dueAt: due(i) }) });
    const daemon = await startDaemon(dir, config, port);
    try {
      await waitFor(daemon, () => capturedCount(daemon.db) >= n, `${n} captures`, leadMs + spreadMs + 120_000, 250);
      // Instants that fell due before the daemon was up (a slow start on a loaded machine) are its
      // catch-up, not its scheduling: only those due after the first /healthz answer count.
      const lags: number[] = [];
      let entries = 0;
      for (const { entry } of daemon.db.prepare('select entry from simulator_ledger').all() as Array<{ entry: string }>) {
        const parsed = JSON.parse(entry) as { subscriptionId: string; createdAt: number };
        const dueAt = due(Number(parsed.subscriptionId.slice(1)));
        entries++;
        if (dueAt > daemon.readyAt) lags.push(parsed.createdAt - dueAt);
      }
      if (entries !== n) throw new Error(`the simulator ledger has ${entries} entries for ${n} charges`);
      if (lags.length < n / 2) throw new Error(`the daemon took ${daemon.startSeconds.toFixed(1)} s to start: only ${lags.length} of ${n} instants fell due after it was ready`);
      const lateStart = lags.length < n ? ` (${n - lags.length} instants due before the daemon was ready left out)` : '';
      const metrics = lagHistogram(await (await fetch(`http://127.0.0.1:${port}/metrics`)).text());
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
          `${lags.length} instants over ${spreadMs / 1000} s; p50 ${percentile(lags, 50)} ms, max ${Math.max(...lags)} ms; ${metric}${lateStart}`,
        ),
      ];
    } catch (err) {
      await daemon.child.stop('SIGKILL');
      throw err;
    }
  },
};
