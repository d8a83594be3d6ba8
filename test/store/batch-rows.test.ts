/**
 * Issue 7, item 18 (seeds at scale): createSubscriptionsBatch writes its rows
 * with plain multi-row inserts instead of kysely's query builder. The rows
 * must be exactly those that createSubscription writes one at a time: same
 * subscriptions, cycles (skipped ones for a past start), events and customers.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { subscriptionFromPlan } from '../../src/domain/index.js';
import { createSubscription, createSubscriptionsBatch } from '../../src/store/index.js';
import { openTempDb, type TempDb } from '../support/temp.js';

const NOW = Date.parse('2025-06-15T08:00:00Z');

const plan = {
  id: 'p',
  version: 'v1',
  description: 'Gold',
  amountMinor: 999,
  currency: 'USD',
  mode: 'charge' as const,
  gateway: 'sim',
  every: { unit: 'month' as const, count: 1 },
  sendOnHour: 9,
  timezone: 'Europe/Berlin',
  monthEnd: 'clamp' as const,
  trial: null,
  endDate: null,
  maxCycles: null,
  backfill: false,
};

/** 250 inputs: past and future starts, shared and new customers, externalIds, metadata. */
function inputs() {
  return Array.from({ length: 250 }, (_, i) =>
    subscriptionFromPlan(plan, {
      id: `s${i}`,
      startDate: i % 3 === 0 ? '2024-01-31' : i % 3 === 1 ? '2025-06-15' : '2026-02-28',
      paymentToken: `tok_${i}`,
      endDate: i % 7 === 0 ? '2025-03-01' : null,
      sendOnHour: i % 5 === 0 ? 23 : null,
      timezone: i % 4 === 0 ? 'America/New_York' : null,
      externalId: i % 6 === 0 ? `ext-${i}` : null,
      source: i % 6 === 0 ? 'crm' : null,
      customer: i % 2 === 0 ? { id: `cus-${i % 10}`, email: `c${i % 10}@example.com`, firstName: 'Ann' } : null,
      metadata: i % 8 === 0 ? { plan: 'gold', n: String(i) } : {},
    }),
  );
}

async function dump(store: TempDb) {
  const db = store.db;
  return {
    subscriptions: await db.selectFrom('subscriptions').selectAll().orderBy('id').execute(),
    cycles: await db.selectFrom('cycles').selectAll().orderBy('subscription_id').orderBy('cycle').execute(),
    events: (await db.selectFrom('events').selectAll().orderBy('subscription_id').orderBy('type').execute()).map(({ id: _id, ...rest }) => rest),
    customers: await db.selectFrom('customers').selectAll().orderBy('id').execute(),
  };
}

let batched: TempDb;
let single: TempDb;
beforeEach(async () => {
  batched = await openTempDb({}, { name: 'batch-rows' });
  single = await openTempDb({}, { name: 'single-rows' });
});
afterEach(async () => {
  await batched.close();
  await single.close();
});

describe('createSubscriptionsBatch', () => {
  it('writes the same rows as createSubscription one at a time', async () => {
    const outcomes = await createSubscriptionsBatch(batched.db, inputs(), NOW);
    expect(outcomes.every((o) => o.created)).toBe(true);
    for (const input of inputs()) await createSubscription(single.db, input, NOW);
    const [a, b] = [await dump(batched), await dump(single)];
    expect(a.cycles.length).toBeGreaterThan(0);
    expect(a).toEqual(b);
  });

  it('finds an input created earlier in the same batch, in another of its chunks, by id or by live externalId', async () => {
    const again = subscriptionFromPlan(plan, { id: 's5', startDate: '2025-06-15', paymentToken: 'tok_other', endDate: null, sendOnHour: null, timezone: null, externalId: null, source: null, customer: null, metadata: {} });
    const sameExternal = subscriptionFromPlan(plan, { id: 'new', startDate: '2025-06-15', paymentToken: 'tok_new', endDate: null, sendOnHour: null, timezone: null, externalId: 'ext-0', source: 'crm', customer: null, metadata: {} });
    const outcomes = await createSubscriptionsBatch(batched.db, [...inputs(), again, sameExternal], NOW);
    expect(outcomes.slice(250)).toEqual([
      { id: 's5', created: false, stored: { paymentToken: 'tok_5', amountMinor: 999, currency: 'USD' } },
      { id: 'new', created: false, stored: { paymentToken: 'tok_0', amountMinor: 999, currency: 'USD' } },
    ]);
    for (const input of inputs()) await createSubscription(single.db, input, NOW);
    expect(await dump(batched)).toEqual(await dump(single));
  });
});
