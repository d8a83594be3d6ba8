/**
 * `npm run bench`: engine throughput against a baseline measured in the same
 * run on the same machine, printed as a ratio (never asserted in tests).
 *
 * Baseline: the naive safe loop, one durable commit per step per charge
 * (insert the attempt, call the gateway, commit the outcome), sequentially.
 * Engine: the daemon's sweep -> batched intents -> bounded queue -> group
 * commit, both on SQLite at synchronous=FULL in a temp directory, both
 * against the simulator gateway.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { VirtualClock } from '../src/clock.js';
import { createEngine, collectionPolicy } from '../src/engine/index.js';
import { createSimulatorGateway, MemorySimulatorLedger } from '../src/gateways/index.js';
import { createSubscription, inTransaction, insertAttempts, migrateToLatest, openDatabase, updateAttempt, type Db } from '../src/store/index.js';
import { idempotencyKey, type NewSubscription } from '../src/domain/index.js';

const N = Number(process.env.BENCH_N ?? 5000);
const START = Date.UTC(2025, 0, 1);
let databases = 0;
const dir = mkdtempSync(join(tmpdir(), 'rebill-bench-'));

function subscription(i: number): NewSubscription {
  return {
    id: `sub-${i}`,
    externalId: null,
    source: null,
    planId: 'bench',
    planVersion: 'v1',
    customerId: null,
    paymentToken: 'tok_ok',
    description: 'bench',
    amount: { amountMinor: 999, currency: 'USD' },
    mode: 'charge',
    gateway: 'sim',
    schedule: { startDate: '2025-01-01', every: { unit: 'month', count: 1 }, sendOnHour: 0, timezone: 'UTC', monthEnd: 'clamp', backfill: false },
    metadata: {},
  };
}

async function prepare(name: string): Promise<{ db: Db; clock: VirtualClock }> {
  const db = openDatabase(`sqlite:${join(dir, `${name}-${++databases}.db`)}`);
  await migrateToLatest(db);
  const clock = new VirtualClock(START);
  for (let i = 0; i < N; i++) await createSubscription(db, { ...subscription(i), customerId: null }, START);
  return { db, clock };
}

async function baseline(): Promise<number> {
  const { db, clock } = await prepare('baseline');
  const sim = createSimulatorGateway({ name: 'sim', ledger: new MemorySimulatorLedger(), clock });
  const rows = await db.selectFrom('subscriptions').selectAll().execute();
  const t0 = performance.now();
  for (const row of rows) {
    const key = idempotencyKey(row.id, 1, 1);
    const sub = { ...subscription(Number(row.id.slice(4))), status: 'active' } as never;
    await inTransaction(db, (trx) => insertAttempts(trx, [{ key, subscription: sub, cycle: 1, attempt: 1 }], START));
    const result = await sim.charge({ idempotencyKey: key, subscriptionId: row.id, cycle: 1, attempt: 1, amount: { amountMinor: 999, currency: 'USD' }, description: 'bench', paymentToken: 'tok_ok', customer: {} });
    await inTransaction(db, (trx) => updateAttempt(trx, key, { state: result.kind === 'captured' ? 'captured' : 'rejected' }, START));
  }
  const seconds = (performance.now() - t0) / 1000;
  await db.destroy();
  return N / seconds;
}

async function engine(): Promise<{ rate: number; heapMb: number; highWater: number }> {
  const { db, clock } = await prepare('engine');
  const gateways = new Map([['sim', createSimulatorGateway({ name: 'sim', ledger: new MemorySimulatorLedger(), clock })]]);
  const policy = collectionPolicy({ attempts: 3, delays: ['P1D', 'P3D'], onFinalFailure: 'terminate', unavailableHours: 72 }, { pendingPollSeconds: 300, leaseSeconds: 120 } as never);
  const e = createEngine({ db, clock, gateways, logger: pino({ level: 'silent' }), options: { concurrency: 16, ratePerSecond: null, leaseMs: 120_000, queueBound: 500, maxSleepMs: 60_000, maxClockJumpMs: 300_000, policy } });
  let heapPeak = 0;
  const sampler = setInterval(() => (heapPeak = Math.max(heapPeak, process.memoryUsage().heapUsed)), 20);
  const t0 = performance.now();
  await e.sweepUntilIdle();
  const seconds = (performance.now() - t0) / 1000;
  clearInterval(sampler);
  const captured = await db.selectFrom('attempts').select((eb) => eb.fn.countAll().as('n')).where('state', '=', 'captured').executeTakeFirst();
  if (Number(captured?.n) !== N) throw new Error(`engine captured ${String(captured?.n)} of ${N}`);
  await db.destroy();
  return { rate: N / seconds, heapMb: heapPeak / 2 ** 20, highWater: e.stats().highWater };
}

try {
  // The disk is shared and noisy: alternate the two, three rounds each, and compare medians.
  const bases: number[] = [];
  const engines: Array<{ rate: number; heapMb: number; highWater: number }> = [];
  for (let round = 0; round < 3; round++) {
    bases.push(await baseline());
    engines.push(await engine());
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const base = median(bases);
  const rate = median(engines.map((e) => e.rate));
  console.log(`subscriptions due at once: ${N} (SQLite, synchronous=FULL, simulator gateway), median of 3 alternating rounds`);
  console.log(`baseline  one commit per step:            ${base.toFixed(0)} charges/s  [${bases.map((b) => b.toFixed(0)).join(', ')}]`);
  console.log(`engine    batched intents + group commit: ${rate.toFixed(0)} charges/s  [${engines.map((e) => e.rate.toFixed(0)).join(', ')}]`);
  console.log(`engine    queue high-water ${Math.max(...engines.map((e) => e.highWater))} (bound 500), peak heap ${Math.max(...engines.map((e) => e.heapMb)).toFixed(1)} MiB`);
  console.log(`ratio engine/baseline: ${(rate / base).toFixed(2)}x`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
