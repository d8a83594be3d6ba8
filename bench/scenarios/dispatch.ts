/**
 * Dispatch throughput of `rebill run` (spawned: the daemon's own code path,
 * compiled, with its own config), on a database seeded with N subscriptions
 * all due now.
 *
 * dispatch-zero-latency: the built-in simulator as `config/rebill.yaml`
 * configures it (its ledger in the daemon's database), against the lean raw
 * SQLite loop of ../support/raw-dispatch.ts on an identically seeded
 * database. Baseline runs bracket the daemon run (raw, daemon, raw) so drift
 * in the machine's load hits both.
 *
 * dispatch-latency-bound: `rebill fake-gateway --latency-ms 20` over
 * loopback HTTP, scheduler.concurrency 64, against Little's law: at most
 * 64 calls in flight of 20 ms each is 3,200 calls/s.
 */
import { join } from 'node:path';
import { dueAt } from '../../src/calendar/index.js';
import { toDbTime } from '../../src/store/index.js';
import { atLeast, median, row, type Scenario } from '../harness.js';
import { writeBenchConfig, type BenchConfigOptions } from '../support/config.js';
import { collect, slowestHealthz } from '../support/daemon.js';
import { freePort, startFakeGatewayProcess } from '../support/processes.js';
import { rawDispatch } from '../support/raw-dispatch.js';
import { seedSubscriptions, utcDate } from '../support/seed.js';

/** A directory with a config and N subscriptions due now (cycle 1 of a plan that started today at 00:00 UTC). */
async function prepareDue(dir: string, n: number, options: Omit<BenchConfigOptions, 'dir' | 'httpPort'> = {}): Promise<{ config: string; port: number }> {
  const port = await freePort();
  const config = writeBenchConfig({ ...options, dir, httpPort: port });
  await seedSubscriptions(config, { count: n, templates: [{ startDate: utcDate() }], row: () => ({ template: 0 }) });
  return { config, port };
}

/** Generous: a daemon slower than 100 charges/s (a loaded disk can do that) is broken, not slow. */
const timeoutFor = (n: number) => 120_000 + (n / 100) * 1000;

export const dispatchZeroLatency: Scenario = {
  rows: ['dispatch-zero-latency'],
  description: 'N due at once through `rebill run` and the simulator (ledger in the database), charges/s vs the lean raw SQLite loop',
  async run(ctx) {
    const n = ctx.size(100_000, 800);
    // Every seeded row has the same schedule: the raw loop advances them all to its cycle 2.
    const cycle2 = toDbTime(dueAt({ startDate: utcDate(), every: { unit: 'month', count: 1 }, sendOnHour: 0, timezone: 'UTC', monthEnd: 'clamp' }, 2).toMillis());
    const cpu: number[] = [];
    const raw = async () => {
      const dir = ctx.dir('raw');
      await prepareDue(dir, n);
      const r = rawDispatch(join(dir, 'rebill.db'), cycle2);
      if (r.charges !== n) throw new Error(`the raw loop collected ${r.charges} of ${n}`);
      ctx.log(`raw loop: ${n} in ${r.seconds.toFixed(2)} s = ${(n / r.seconds).toFixed(0)}/s, CPU ${r.cpuSeconds.toFixed(2)} s`);
      cpu.push(r.cpuSeconds);
      return n / r.seconds;
    };
    const baselines = [await raw()];
    const dir = ctx.dir('daemon');
    const { config, port } = await prepareDue(dir, n);
    const daemon = await collect({ dir, config, port, expected: n, timeoutMs: timeoutFor(n) });
    ctx.log(`rebill run: ${n} in ${daemon.seconds.toFixed(2)} s = ${daemon.perSecond.toFixed(0)}/s, CPU ${daemon.cpuSeconds.toFixed(1)} s (start ${daemon.startSeconds.toFixed(1)} s, peak RSS ${daemon.peakRssMb.toFixed(0)} MB, ${slowestHealthz(daemon.healthzMaxMs)})`);
    if (!ctx.quick) baselines.push(await raw());
    const baseline = median(baselines);
    return [
      row('dispatch-zero-latency', daemon.perSecond, 'charges/s', baseline, atLeast(0.5), `${n} due; daemon ${daemon.seconds.toFixed(1)} s, ${daemon.cpuSeconds.toFixed(1)} s of it on CPU, ${slowestHealthz(daemon.healthzMaxMs)} meanwhile; raw runs ${baselines.map((b) => b.toFixed(0)).join(', ')}/s (CPU ${cpu.map((c) => c.toFixed(1)).join(', ')} s)`),
    ];
  },
};

const LATENCY_MS = 20;
const CONCURRENCY = 64;

export const dispatchLatencyBound: Scenario = {
  rows: ['dispatch-latency-bound'],
  description: `N due at once through \`rebill run\`, CoolPay adapter to \`rebill fake-gateway --latency-ms ${LATENCY_MS}\`, concurrency ${CONCURRENCY}, charges/s vs Little's law`,
  async run(ctx) {
    const n = ctx.size(5_000, 400);
    const rates: number[] = [];
    for (let round = 0; round < ctx.rounds; round++) {
      const dir = ctx.dir('latency');
      const gateway = await startFakeGatewayProcess(dir, LATENCY_MS);
      try {
        const { config, port } = await prepareDue(dir, n, { gateway: { type: 'coolpay', baseUrl: gateway.url }, scheduler: { concurrency: CONCURRENCY } });
        const run = await collect({ dir, config, port, expected: n, timeoutMs: timeoutFor(n) });
        const ledger = (await (await fetch(`${gateway.url}/__ledger`)).json()) as unknown[];
        if (ledger.length !== n) throw new Error(`the fake gateway captured ${ledger.length} of ${n}`);
        ctx.log(`latency-bound round ${round + 1}: ${n} in ${run.seconds.toFixed(2)} s = ${run.perSecond.toFixed(0)}/s (${slowestHealthz(run.healthzMaxMs)})`);
        rates.push(run.perSecond);
      } finally {
        await gateway.child.stop();
      }
    }
    const baseline = CONCURRENCY / (LATENCY_MS / 1000);
    return [row('dispatch-latency-bound', median(rates), 'charges/s', baseline, atLeast(0.9), `${n} due, median of ${rates.length}: ${rates.map((r) => r.toFixed(0)).join(', ')}/s`)];
  },
};
