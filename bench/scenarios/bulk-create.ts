/**
 * Creating subscriptions in bulk, the two ways an operator does it, each at
 * N and at N/10 on a fresh database, timed from spawn to the end (the whole
 * wait an operator sees) with the process's peak RSS over its life:
 *
 * seed-100k: `rebill run` with N `subscriptions:` seeds in its config (start
 * dates in 2099, so nothing is due), spawn -> first /healthz 200;
 * import-100k: `rebill subscriptions import` of an N-line CSV into a
 * migrated database (no daemon beside it), spawn -> exit.
 *
 * The time rows are absolute (10 s and 30 s, the targets); the
 * memory rows are the RSS at N over the RSS at N/10 (flat memory: <= 1.5).
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { migrateToLatest, openDatabase } from '../../src/store/index.js';
import { atMost, row, type Row, type Scenario } from '../harness.js';
import { BENCH_PLAN, writeBenchConfig } from '../support/config.js';
import { freePort, runRebill, spawnRebill, waitHealthy } from '../support/processes.js';

interface Measured {
  readonly seconds: number;
  readonly peakRssMb: number;
}

/** The seed of subscription i (as bench/seeds.ts wrote them before this harness). */
const seedLine = (i: number) => `{ id: seed-${i}, planId: ${BENCH_PLAN}, paymentToken: tok_ok, startDate: "2099-01-01", customer: { email: "u${i}@example.com" } }`;

function* seeds(n: number): Generator<string> {
  for (let i = 0; i < n; i++) yield seedLine(i);
}

export const seed100k: Scenario = {
  rows: ['seed-100k', 'seed-100k-memory'],
  description: '`rebill run` with N config seeds on a fresh database: spawn -> ready (s, vs 10 s), peak RSS at N vs N/10',
  async run(ctx) {
    const n = ctx.size(100_000, 5_000);
    const start = async (count: number): Promise<Measured> => {
      const dir = ctx.dir(`seeds-${count}`);
      const port = await freePort();
      const config = writeBenchConfig({ dir, httpPort: port, seeds: seeds(count) });
      const from = Date.now();
      const child = spawnRebill(['run', '--config', config], { dir, name: 'daemon' });
      const readyAt = await waitHealthy(child, port, 600_000, 50);
      const code = await child.stop();
      if (code !== 0) throw new Error(`rebill run exited ${code} on SIGTERM:\n${child.tail()}`);
      const m = { seconds: (readyAt - from) / 1000, peakRssMb: child.peakRssMb() };
      ctx.log(`${count} seeds: ready after ${m.seconds.toFixed(1)} s, peak RSS ${m.peakRssMb.toFixed(0)} MB`);
      return m;
    };
    const small = await start(n / 10);
    const big = await start(n);
    return rows('seed-100k', n, small, big, 10, 'rebill run spawn -> ready');
  },
};

export const import100k: Scenario = {
  rows: ['import-100k', 'import-100k-memory'],
  description: '`rebill subscriptions import` of an N-line CSV: spawn -> exit (s, vs 30 s), peak RSS at N vs N/10',
  async run(ctx) {
    const n = ctx.size(100_000, 5_000);
    const load = async (count: number): Promise<Measured> => {
      const dir = ctx.dir(`import-${count}`);
      const config = writeBenchConfig({ dir });
      // Migrated in process (what `rebill migrate` does), so only the import is a child to time.
      const db = openDatabase(`sqlite:${join(dir, 'rebill.db')}`);
      await migrateToLatest(db);
      await db.destroy();
      const csv = join(dir, 'subscriptions.csv');
      const lines = ['id,planId,paymentToken,startDate,customer.email'];
      for (let i = 0; i < count; i++) lines.push(`imp-${i},${BENCH_PLAN},tok_ok,2099-01-01,u${i}@example.com`);
      writeFileSync(csv, `${lines.join('\n')}\n`);
      const result = await runRebill(['subscriptions', 'import', csv, '--config', config, '--json'], { dir, name: 'import' });
      const summary = /\{.*"imported":(\d+).*\}/.exec(result.child.tail());
      if (Number(summary?.[1]) !== count) throw new Error(`import did not import ${count} lines:\n${result.child.tail()}`);
      ctx.log(`${count} lines: imported in ${result.seconds.toFixed(1)} s, peak RSS ${result.peakRssMb.toFixed(0)} MB`);
      return { seconds: result.seconds, peakRssMb: result.peakRssMb };
    };
    const small = await load(n / 10);
    const big = await load(n);
    return rows('import-100k', n, small, big, 30, 'rebill subscriptions import spawn -> exit');
  },
};

function rows(name: string, n: number, small: Measured, big: Measured, targetSeconds: number, what: string): Row[] {
  return [
    row(name, big.seconds, 's', targetSeconds, atMost(1), `${n.toLocaleString('en-US')} subscriptions, ${what}; ${(n / 10).toLocaleString('en-US')} took ${small.seconds.toFixed(1)} s`),
    row(`${name}-memory`, big.peakRssMb, 'MB', small.peakRssMb, atMost(1.5), `peak RSS at ${n.toLocaleString('en-US')} over peak RSS at ${(n / 10).toLocaleString('en-US')}`),
  ];
}
