/**
 * sweep-scale: does collecting the due work cost more when the database holds
 * many subscriptions that are not due? The same D due rows (cycle 1, due
 * today) are collected by `rebill run` with the simulator from a database of
 * 100 x D subscriptions (the others due in 10 days, the due ones interleaved
 * every 100th row so they sit on pages all over the table, as in a real
 * database) and from a database of D alone. The row is the big database's
 * collection time over the small one's (engine window, as in
 * dispatch-zero-latency), the median of 3 runs of each, alternating (small,
 * big, small, ...): one collection takes about a second, so a single pair
 * measured the machine's load more than the database's size. Each size is
 * seeded once and each run collects a fresh copy of that file.
 *
 * memory-1m: the peak RSS (VmHWM) of the daemon on the big database, start-up
 * checks included, against 300 MB.
 */
import { copyFileSync } from 'node:fs';
import { join } from 'node:path';
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
    /** Seeds `total` subscriptions once; returns the directory holding the file. */
    const seed = async (total: number): Promise<string> => {
      const dir = ctx.dir(`sweep-${total}-seed`);
      const config = writeBenchConfig({ dir });
      const from = performance.now();
      await seedSubscriptions(config, {
        count: total,
        templates: [{ startDate: utcDate() }, { startDate: utcDate(10) }],
        row: (i) => ({ template: total === due || i % SPREAD === 0 ? 0 : 1 }),
      });
      ctx.log(`seeded ${total} (${due} due) in ${((performance.now() - from) / 1000).toFixed(1)} s`);
      return dir;
    };
    /** Collects the due rows of a fresh copy of a seeded file. */
    const run = async (total: number, seeded: string): Promise<Collected> => {
      const dir = ctx.dir(`sweep-${total}`);
      const port = await freePort();
      const config = writeBenchConfig({ dir, httpPort: port });
      copyFileSync(join(seeded, 'rebill.db'), join(dir, 'rebill.db')); // seeding ends with a TRUNCATE checkpoint: one file
      const result = await collect({ dir, config, port, expected: due, timeoutMs: 600_000 });
      ctx.log(`${total} stored: ${due} collected in ${result.seconds.toFixed(2)} s (CPU ${result.cpuSeconds.toFixed(2)} s), start ${result.startSeconds.toFixed(1)} s, peak RSS ${result.peakRssMb.toFixed(0)} MB`);
      return result;
    };
    const [smallSeed, bigSeed] = [await seed(due), await seed(stored)];
    const small: Collected[] = [];
    const big: Collected[] = [];
    for (let round = 0; round < (ctx.quick ? 1 : 3); round++) {
      small.push(await run(due, smallSeed));
      big.push(await run(stored, bigSeed));
    }
    const [smallSeconds, bigSeconds] = [median(small.map((s) => s.seconds)), median(big.map((s) => s.seconds))];
    const cpu = (runs: readonly Collected[]) => median(runs.map((r) => r.cpuSeconds));
    const list = (runs: readonly Collected[], of: (r: Collected) => number) => runs.map((r) => of(r).toFixed(2)).join(', ');
    const peakRssMb = Math.max(...big.map((b) => b.peakRssMb));
    return [
      row(
        'sweep-scale',
        bigSeconds,
        's',
        smallSeconds,
        atMost(1.2),
        `${due} due among ${stored.toLocaleString('en-US')} stored (${list(big, (r) => r.seconds)} s) vs ${due} stored (${list(small, (r) => r.seconds)} s), medians; daemon CPU ${list(big, (r) => r.cpuSeconds)} s vs ${list(small, (r) => r.cpuSeconds)} s (ratio of medians ${(cpu(big) / cpu(small)).toFixed(2)}); start-up before the first sweep ${big[0]!.startSeconds.toFixed(1)} s vs ${small[0]!.startSeconds.toFixed(1)} s`,
      ),
      row('memory-1m', peakRssMb, 'MB', 300, below(1), `peak RSS (VmHWM) of rebill run with ${stored.toLocaleString('en-US')} stored, over its whole life (the highest of ${big.length} runs); ${small[0]!.peakRssMb.toFixed(0)} MB with ${due} stored`),
    ];
  },
};
