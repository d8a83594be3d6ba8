/**
 * api-create: `POST /v1/subscriptions` per second against a real `rebill
 * run` (simulator, nothing due, SQLite at synchronous=FULL; the creates that
 * arrive together share one commit: src/store/write-batcher.ts), 32 concurrent keep-alive connections from
 * autocannon in the bench process, each request a new subscription with a
 * new customer. Baseline: ../support/bare-server.mjs, fastify with one route
 * answering 201 at once, spawned the same way and loaded the same way. The
 * two alternate (bare, daemon, bare, daemon, ...), each after a 1 s warm-up
 * (--quick: one 1.5 s run each after 0.5 s).
 */
import autocannon from 'autocannon';
import { join } from 'node:path';
import { atLeast, median, row, type Scenario } from '../harness.js';
import { BENCH_PLAN, BENCH_TOKEN, writeBenchConfig } from '../support/config.js';
import { freePort, spawnNode, spawnRebill, waitForLog, waitHealthy, ROOT, type Child } from '../support/processes.js';

const CONNECTIONS = 32;

async function load(port: number, seconds: number): Promise<{ perSecond: number; non2xx: number; errors: number }> {
  const result = await autocannon({
    url: `http://127.0.0.1:${port}/v1/subscriptions`,
    method: 'POST',
    connections: CONNECTIONS,
    duration: seconds,
    headers: { authorization: `Bearer ${BENCH_TOKEN}`, 'content-type': 'application/json' },
    // [<id>]: a fresh id per request, so every request creates a subscription and a customer.
    idReplacement: true,
    body: JSON.stringify({ planId: BENCH_PLAN, paymentToken: 'tok_ok', startDate: '2099-01-01', customer: { email: 'u[<id>]@example.com' } }),
  });
  return { perSecond: result['2xx'] / result.duration, non2xx: result.non2xx, errors: result.errors + result.timeouts };
}

export const apiCreate: Scenario = {
  rows: ['api-create'],
  description: `POST /v1/subscriptions/s at ${CONNECTIONS} connections (autocannon) against rebill run vs a bare fastify 201 route`,
  async run(ctx) {
    const seconds = ctx.size(5, 1.5);
    const warmUp = ctx.size(1, 0.5);
    const dir = ctx.dir('api');
    const daemonPort = await freePort();
    const config = writeBenchConfig({ dir, httpPort: daemonPort });
    const barePort = await freePort();
    const children: Child[] = [];
    try {
      const daemon = spawnRebill(['run', '--config', config], { dir, name: 'daemon' });
      children.push(daemon);
      await waitHealthy(daemon, daemonPort);
      const bare = spawnNode(join(ROOT, 'bench/support/bare-server.mjs'), [String(barePort)], { dir, name: 'bare' });
      children.push(bare);
      await waitForLog(bare, /bare server listening/);
      const rates = { daemon: [] as number[], bare: [] as number[] };
      let rejected = 0;
      for (let round = 0; round < ctx.rounds; round++) {
        for (const [name, port] of [['bare', barePort], ['daemon', daemonPort]] as const) {
          await load(port, warmUp);
          const r = await load(port, seconds);
          if (r.perSecond === 0) throw new Error(`${name}: no 2xx answer (${r.non2xx} non-2xx, ${r.errors} errors):\n${name === 'daemon' ? daemon.tail() : bare.tail()}`);
          if (name === 'daemon') rejected += r.non2xx + r.errors;
          rates[name].push(r.perSecond);
          ctx.log(`${name}: ${r.perSecond.toFixed(0)}/s${r.non2xx + r.errors ? ` (${r.non2xx} non-2xx, ${r.errors} errors)` : ''}`);
        }
      }
      for (const child of children) await child.stop();
      const value = median(rates.daemon);
      const baseline = median(rates.bare);
      const note = `${seconds} s runs, median of ${rates.daemon.length}: daemon ${rates.daemon.map((r) => r.toFixed(0)).join(', ')}/s, bare ${rates.bare.map((r) => r.toFixed(0)).join(', ')}/s${rejected ? `; ${rejected} requests failed` : ''}`;
      return [row('api-create', value, 'creates/s', baseline, atLeast(0.3), note)];
    } finally {
      for (const child of children) await child.stop('SIGKILL');
    }
  },
};
