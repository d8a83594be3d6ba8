/**
 * The engine's conditional outcome writes (issue 10): an outcome is written
 * only against the lease and row version the engine saw at the intent. A
 * gateway held open by the test lets the API change the row while the charge
 * is out; the outcome must then settle against the row as it is now, never
 * write back the old columns (a card update or a pause would be lost), and a
 * daemon that lost its lease must record nothing.
 */
import { sql } from 'kysely';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { VirtualClock } from '../../src/clock.js';
import { pause, updateDetails } from '../../src/domain/index.js';
import type { CollectRequest, Gateway, GatewayResult } from '../../src/gateways/index.js';
import { getSubscription, updateSubscription } from '../../src/store/index.js';
import { addSubscription, attemptsOf, cyclesOf, daemonEngine, eventsOf, ms, openTempDb, type TempDb } from '../support/engine-harness.js';

const DUE = ms('2025-01-31T10:00:00Z');

let t: TempDb;

beforeEach(async () => {
  t = await openTempDb();
});

afterEach(async () => {
  await t.close();
});

/** A gateway whose charges wait until the test answers them. */
function heldGateway(): { gateway: Gateway; calls: CollectRequest[]; answer(result: GatewayResult): void; called: Promise<void> } {
  const calls: CollectRequest[] = [];
  let answer: (result: GatewayResult) => void = () => undefined;
  let called: () => void = () => undefined;
  const calledPromise = new Promise<void>((resolve) => (called = resolve));
  const gateway: Gateway = {
    name: 'sim',
    charge(request) {
      calls.push(request);
      called();
      return new Promise((resolve) => (answer = resolve));
    },
    sendLink: () => Promise.reject(new Error('no links here')),
    status: async () => ({ kind: 'not_found' }),
  };
  return { gateway, calls, answer: (result) => answer(result), called: calledPromise };
}

async function version(id: string): Promise<number> {
  return Number((await t.db.selectFrom('subscriptions').select('version').where('id', '=', id).executeTakeFirstOrThrow()).version);
}

describe('outcome written against the row as it is now', () => {
  it('a card update (PATCH) while the charge is out is kept: the capture writes only the columns it changed', async () => {
    const clock = new VirtualClock(DUE);
    await addSubscription(t.db, DUE - 86_400_000, { id: 'card', startDate: '2025-01-31', paymentToken: 'tok_old', metadata: { plan: 'gold' } }, { sendOnHour: 10 });
    const held = heldGateway();
    const engine = daemonEngine(t.db, clock, {}, { gateways: new Map([['sim', held.gateway]]) });
    const idle = engine.sweepUntilIdle();
    await held.called;
    expect(held.calls.map((c) => c.paymentToken)).toEqual(['tok_old']);
    const atIntent = await version('card');

    // The customer updates the card and the metadata while the old token is being charged.
    await updateSubscription(t.db, 'card', DUE + 10, (s) => updateDetails(s, { paymentToken: 'tok_new', metadata: { plan: 'platinum' } }, DUE + 10));
    expect(await version('card')).toBe(atIntent + 1);
    held.answer({ kind: 'captured', externalId: 'ext-1' });
    await idle;

    const sub = await getSubscription(t.db, 'card');
    expect({ token: sub.paymentToken, metadata: sub.metadata }).toEqual({ token: 'tok_new', metadata: { plan: 'platinum' } });
    expect({ completed: sub.completedCycles, next: sub.nextAction, cycle: sub.nextCycle, latest: sub.latestPaymentExternalId }).toEqual({
      completed: 1,
      next: 'collect',
      cycle: 2,
      latest: 'ext-1',
    });
    expect(await version('card')).toBe(atIntent + 2);
    expect((await attemptsOf(t.db, 'card')).map((a) => [a.key, a.state])).toEqual([['card:1:1', 'captured']]);
    expect((await eventsOf(t.db, 'card')).map((e) => e.type)).toEqual(['subscription.created', 'subscription.updated', 'charge.succeeded']);
  });

  it('a pause while the charge is out is respected: the capture is recorded and the subscription stays paused', async () => {
    const clock = new VirtualClock(DUE);
    await addSubscription(t.db, DUE - 86_400_000, { id: 'pz', startDate: '2025-01-31' }, { sendOnHour: 10 });
    const held = heldGateway();
    const engine = daemonEngine(t.db, clock, {}, { gateways: new Map([['sim', held.gateway]]) });
    const idle = engine.sweepUntilIdle();
    await held.called;
    await updateSubscription(t.db, 'pz', DUE + 10, (s) => pause(s, {}, DUE + 10));
    held.answer({ kind: 'captured', externalId: 'ext-p' });
    await idle;

    const sub = await getSubscription(t.db, 'pz');
    expect({ status: sub.status, completed: sub.completedCycles, next: sub.nextAction, cycle: sub.nextCycle }).toEqual({ status: 'paused', completed: 1, next: 'collect', cycle: 2 });
    expect((await cyclesOf(t.db, 'pz')).map((c) => [c.cycle, c.status])).toEqual([[1, 'paid']]);
    // Paused: nothing more is due, so the engine is idle with nothing held.
    expect(engine.stats().active).toBe(0);
  });

  it('a daemon whose lease was taken over records nothing: the attempt stays in_flight for the new owner, which settles it once', async () => {
    const clock = new VirtualClock(DUE);
    await addSubscription(t.db, DUE - 86_400_000, { id: 'lost', startDate: '2025-01-31' }, { sendOnHour: 10 });
    const held = heldGateway();
    const first = daemonEngine(t.db, clock, { leaseMs: 60_000 }, { gateways: new Map([['sim', held.gateway]]), owner: 'first' });
    const idle = first.sweepUntilIdle();
    await held.called;

    // The lease runs out while the call hangs; a second daemon claims the row and reconciles the key.
    clock.set(DUE + 61_000);
    const ledger = new Map<string, GatewayResult>();
    const second = daemonEngine(t.db, clock, { leaseMs: 60_000 }, {
      owner: 'second',
      gateways: new Map([
        [
          'sim',
          {
            name: 'sim',
            charge: async (r) => {
              const result: GatewayResult = { kind: 'captured', externalId: `second-${r.idempotencyKey}` };
              ledger.set(r.idempotencyKey, result);
              return result;
            },
            sendLink: () => Promise.reject(new Error('no links')),
            status: async (key) => ledger.get(key) ?? { kind: 'not_found' },
          } satisfies Gateway,
        ],
      ]),
    });
    await second.sweepUntilIdle();
    expect((await attemptsOf(t.db, 'lost')).map((a) => [a.key, a.state, a.sends])).toEqual([['lost:1:1', 'captured', 2]]);

    // The first daemon's answer arrives late: its lease is gone, so nothing of it is written.
    held.answer({ kind: 'captured', externalId: 'first-late' });
    await idle;
    const sub = await getSubscription(t.db, 'lost');
    expect({ completed: sub.completedCycles, latest: sub.latestPaymentExternalId }).toEqual({ completed: 1, latest: 'second-lost:1:1' });
    expect(await eventsOf(t.db, 'lost', 'charge.succeeded')).toHaveLength(1);
    const lease = await sql<{ lease_owner: string | null }>`select lease_owner from subscriptions where id = 'lost'`.execute(t.db);
    expect(lease.rows[0]!.lease_owner).toBeNull();
  });
});
