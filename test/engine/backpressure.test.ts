/**
 * Backpressure (SPEC section 6, DESIGN.md "Claim, then lease"): due work
 * beyond the dispatch queue's capacity waits in the database, not in memory.
 * 20,000 subscriptions fall due at the same instant; the engine never holds
 * more than `queueBound` of them, and every one is collected exactly once.
 */
import { sql } from 'kysely';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { VirtualClock } from '../../src/clock.js';
import { subscriptionFromPlan } from '../../src/domain/index.js';
import { createGateways, MemorySimulatorLedger, type Gateway } from '../../src/gateways/index.js';
import { createSubscription, type Db } from '../../src/store/index.js';
import { cloneSubscription, daemonEngine, ms, openTempDb, planTerms, type TempDb } from '../support/engine-harness.js';

const DUE = '2025-03-01T09:00:00Z';

let t: TempDb;

beforeEach(async () => {
  t = await openTempDb();
});

afterEach(async () => {
  await t.close();
});

/**
 * `count` subscriptions whose cycle 1 is due at DUE: the first through the
 * store's own createSubscription, the rest copied from its rows in bulk
 * (cloneSubscription), so set-up takes milliseconds, not an fsync per row.
 */
async function seedDue(count: number, prefix: string): Promise<void> {
  const template = `${prefix}00000`;
  await createSubscription(t.db, subscriptionFromPlan(planTerms({ sendOnHour: 9 }), { id: template, startDate: '2025-03-01', paymentToken: 'tok_ok' }), ms('2025-02-01T00:00:00Z'));
  await cloneSubscription(t.db, template, prefix, 1, count);
}

/** The simulator with an in-memory ledger: the ledger is not what this test measures. */
function simulator(clock: VirtualClock): { gateways: Map<string, Gateway>; ledger: MemorySimulatorLedger } {
  const ledger = new MemorySimulatorLedger();
  return { gateways: createGateways({ sim: { type: 'simulator' } }, { clock, simulatorLedger: () => ledger }), ledger };
}

async function count(db: Db, table: 'attempts' | 'cycles' | 'subscriptions' | 'events', where: { column: string; value: string | number } | null = null): Promise<number> {
  let q = db.selectFrom(table).select((eb) => eb.fn.countAll<number>().as('n'));
  if (where) q = q.where(where.column as never, '=', where.value as never);
  return Number((await q.executeTakeFirstOrThrow()).n);
}

describe('backpressure', () => {
  it('20,000 subscriptions due at once: never more than queueBound in memory, each captured exactly once for cycle 1', async () => {
    const total = 20_000;
    const queueBound = 500;
    const seedStart = performance.now();
    await seedDue(total, 'bp');
    const seedMs = performance.now() - seedStart;

    expect(await count(t.db, 'subscriptions')).toBe(total);
    expect(await count(t.db, 'events', { column: 'type', value: 'subscription.created' })).toBe(total);

    const clock = new VirtualClock(ms(DUE));
    const sim = simulator(clock);
    const engine = daemonEngine(t.db, clock, { queueBound, concurrency: 16, ratePerSecond: null, leaseMs: 120_000 }, { gateways: sim.gateways });
    const started = performance.now();
    await engine.sweepUntilIdle();
    const elapsed = performance.now() - started;
    console.log(
      `backpressure: seeded ${total} subscriptions in ${Math.round(seedMs)} ms; ` +
        `collected them in ${(elapsed / 1000).toFixed(2)} s (${Math.round(total / (elapsed / 1000))} charges/s, ` +
        `${engine.stats().sweeps} sweeps, highWater ${engine.stats().highWater}, queueHighWater ${engine.stats().queueHighWater})`,
    );

    const stats = engine.stats();
    expect(stats.highWater).toBeLessThanOrEqual(queueBound);
    expect(stats.queueHighWater).toBeLessThanOrEqual(queueBound);
    // The bound was actually reached, so a regression that over-claims would be caught.
    expect(stats.highWater).toBe(queueBound);
    // The gateway queue itself was saturated (every slot busy), so concurrency was the limit, not the claims.
    expect(stats.queueHighWater).toBeGreaterThanOrEqual(16);
    expect(stats.active).toBe(0);
    expect(stats.attemptsStarted).toBe(total);
    expect(stats.outcomesRecorded).toBe(total);

    // Exactly one attempt per subscription, attempt 1 of cycle 1, captured.
    expect(await count(t.db, 'attempts')).toBe(total);
    expect(await count(t.db, 'attempts', { column: 'state', value: 'captured' })).toBe(total);
    const perSubscription = await t.db
      .selectFrom('attempts')
      .select(['subscription_id', (eb) => eb.fn.countAll<number>().as('n'), (eb) => eb.fn.min('cycle').as('minCycle'), (eb) => eb.fn.max('attempt').as('maxAttempt')])
      .groupBy('subscription_id')
      .execute();
    expect(perSubscription).toHaveLength(total);
    expect(perSubscription.filter((r) => Number(r.n) !== 1 || Number(r.minCycle) !== 1 || Number(r.maxAttempt) !== 1)).toEqual([]);
    expect(await count(t.db, 'cycles', { column: 'status', value: 'paid' })).toBe(total);
    const ledger = await sim.ledger.list();
    expect(ledger).toHaveLength(total);
    expect(ledger.every((e) => e.result.kind === 'captured' && e.cycle === 1 && e.attempt === 1)).toBe(true);

    // Every row moved on to cycle 2 and no lease is left behind.
    const leftovers = await t.db
      .selectFrom('subscriptions')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .where((eb) => eb.or([eb('next_cycle', '<>', 2), eb('lease_owner', 'is not', null), eb('next_action', '<>', 'collect')]))
      .executeTakeFirstOrThrow();
    expect(Number(leftovers.n)).toBe(0);
  });

  it('the started loop keeps claiming as slots free up, and still never holds more than queueBound', async () => {
    const total = 3_000;
    const queueBound = 200;
    await seedDue(total, 'lp');
    // Gateway answers after 0..4 ms, so outcomes (and freed slots) trickle in instead of arriving as one group commit.
    await sql`update subscriptions set payment_token = 'tok_slow_' || (cast(substr(id, 3) as integer) % 5)`.execute(t.db);
    const clock = new VirtualClock(ms(DUE));
    const engine = daemonEngine(t.db, clock, { queueBound, concurrency: 16, ratePerSecond: null, leaseMs: 120_000, maxSleepMs: 50 }, { gateways: simulator(clock).gateways });
    const started = performance.now();
    engine.start();
    try {
      // Real timers here: poll until every subscription has its captured attempt.
      const deadline = Date.now() + 30_000;
      while ((await count(t.db, 'attempts', { column: 'state', value: 'captured' })) < total && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    } finally {
      await engine.stop(5_000);
    }
    const elapsed = performance.now() - started;
    const stats = engine.stats();
    console.log(
      `backpressure (loop): ${total} charges in ${(elapsed / 1000).toFixed(2)} s (${Math.round(total / (elapsed / 1000))} charges/s, ` +
        `${stats.sweeps} sweeps, highWater ${stats.highWater}, queueHighWater ${stats.queueHighWater})`,
    );
    expect(await count(t.db, 'attempts')).toBe(total);
    expect(await count(t.db, 'attempts', { column: 'state', value: 'captured' })).toBe(total);
    expect(stats.highWater).toBeLessThanOrEqual(queueBound);
    expect(stats.queueHighWater).toBeLessThanOrEqual(queueBound);
    expect(stats.highWater).toBe(queueBound);
    expect(stats.active).toBe(0);
    // Slots were refilled as they freed up: many more sweeps than total / queueBound.
    expect(stats.sweeps).toBeGreaterThan(2 * (total / queueBound));
  });

  it('a backlog the simulator answers in microtasks still lets the event loop turn (timers, I/O, the HTTP server) while it is collected', async () => {
    const total = 3_000;
    await seedDue(total, 'ev');
    const clock = new VirtualClock(ms(DUE));
    const engine = daemonEngine(t.db, clock, { queueBound: 200, concurrency: 16, ratePerSecond: null, leaseMs: 120_000 }, { gateways: simulator(clock).gateways });
    let capturedWhenTimerFired = -1;
    let turns = 0;
    let collecting = true;
    const spin = () => {
      turns++;
      if (collecting) setImmediate(spin);
    };
    engine.start();
    setImmediate(spin);
    // Armed as the engine starts: it fires at the event loop's next turn, which must come long before the backlog is done.
    setTimeout(() => void count(t.db, 'attempts', { column: 'state', value: 'captured' }).then((n) => (capturedWhenTimerFired = n)), 0);
    try {
      const deadline = Date.now() + 60_000;
      while ((await count(t.db, 'attempts', { column: 'state', value: 'captured' })) < total && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    } finally {
      collecting = false;
      await engine.stop(5_000);
    }
    expect(await count(t.db, 'attempts', { column: 'state', value: 'captured' })).toBe(total);
    expect(capturedWhenTimerFired).toBeGreaterThanOrEqual(0);
    expect(capturedWhenTimerFired).toBeLessThan(total);
    // At least one turn per claim batch (the loop yields after each), however fast the machine.
    expect(turns).toBeGreaterThanOrEqual(total / 200);
  });
});
