/**
 * sweep-scale: does collecting the due work cost more when the database holds
 * many subscriptions that are not due? The same D due rows (cycle 1, due
 * today) are collected by `rebill run` with the simulator from a database of
 * 100 x D subscriptions (the others due in 10 days, the due ones interleaved
 * every 100th row so they sit on pages all over the table, as in a real
 * database) and from a database of D alone. The row is the big database's
 * collection time over the small one's (engine window, as in
 * dispatch-zero-latency); small runs bracket the big one.
 *
 * memory-1m: the peak RSS (VmHWM) of the daemon on the big database, start-up
 * checks included, against 300 MB.
 */
import { atMost, below, median, row, type Scenario } from '../harness.js';
import { writeBenchConfig } from '../support/config.js';
import { collect, type Collected } from '../support/daemon.js';
import { freePort } from '../support/processes.js';
import { seedSubscriptions, utcDate } from '../support/seed.js';

const SPREAD = 100;

export const sweepScale: Scenario = {
  rows: ['sweep-scale', 'memory-1m'],
  description: 'D due among 100 x D stored vs D stored alone, `rebill run` collection time ratio; peak RSS of the daemon on 100 x D',
  async run(ctx) {
    const due = ctx.size(10_000, 300);
    const stored = due * SPREAD;
    const run = async (total: number): Promise<Collected> => {
      const dir = ctx.dir(`sweep-${total}`);
      const port = await freePort();
      const config = writeBenchConfig({ dir, httpPort: port });
      const from = performance.now();
      await seedSubscriptions(config, {
        count: total,
        templates: [{ startDate: utcDate() }, { startDate: utcDate(10) }],
        row: (i) => ({ template: total === due || i % SPREAD === 0 ? 0 : 1 }),
      });
      ctx.log(`seeded ${total} (${due} due) in ${((performance.now() - from) / 1000).toFixed(1)} s`);
      const result = await collect({ dir, config, port, expected: due, timeoutMs: 600_000 });
      ctx.log(`${total} stored: ${due} collected in ${result.seconds.toFixed(2)} s (CPU ${result.cpuSeconds.toFixed(2)} s), start ${result.startSeconds.toFixed(1)} s, peak RSS ${result.peakRssMb.toFixed(0)} MB`);
      return result;
    };
    const small = [await run(due)];
    const big = await run(stored);
    if (!ctx.quick) small.push(await run(due));
    const smallSeconds = median(small.map((s) => s.seconds));
    return [
      row(
        'sweep-scale',
        big.seconds,
        's',
        smallSeconds,
        atMost(1.2),
        `${due} due among ${stored.toLocaleString('en-US')} stored vs ${due} stored (${small.map((s) => s.seconds.toFixed(2)).join(', ')} s); daemon CPU ${big.cpuSeconds.toFixed(1)} s vs ${small.map((s) => s.cpuSeconds.toFixed(1)).join(', ')} s (ratio ${(big.cpuSeconds / median(small.map((s) => s.cpuSeconds))).toFixed(2)}); start-up before the first sweep ${big.startSeconds.toFixed(1)} s vs ${small[0]!.startSeconds.toFixed(1)} s`,
      ),
      row('memory-1m', big.peakRssMb, 'MB', 300, below(1), `peak RSS (VmHWM) of rebill run with ${stored.toLocaleString('en-US')} stored, over its whole life; ${small[0]!.peakRssMb.toFixed(0)} MB with ${due} stored`),
    ];
  },
};
