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
import { waitFor } from '../e2e/support/processes.js';

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

describe('leases the engine no longer holds', () => {
  it('a row whose outcome could not be recorded is not kept leased by the heartbeat while other calls are out: its lease runs out and it is reconciled', async () => {
    const clock = new VirtualClock(DUE);
    const LEASE = 3_000; // heartbeat every 1 s (real time), leases judged by the virtual clock
    await addSubscription(t.db, DUE - 86_400_000, { id: 'stuck', startDate: '2025-01-31' }, { sendOnHour: 10 });
    await addSubscription(t.db, DUE - 86_400_000, { id: 'busy', startDate: '2025-01-31' }, { sendOnHour: 10 });
    // The gateway: 'stuck' is captured at once; 'busy' hangs until the end of the test, so the engine always has a call out.
    const seen = new Map<string, GatewayResult>();
    let releaseBusy: () => void = () => undefined;
    const busyHeld = new Promise<void>((resolve) => (releaseBusy = resolve));
    const gateway: Gateway = {
      name: 'sim',
      async charge(r) {
        if (r.subscriptionId === 'busy') await busyHeld;
        const result: GatewayResult = { kind: 'captured', externalId: `ext-${r.idempotencyKey}` };
        seen.set(r.idempotencyKey, result);
        return result;
      },
      sendLink: () => Promise.reject(new Error('no links')),
      status: async (key) => seen.get(key) ?? { kind: 'not_found' },
    };
    // The database refuses the write of stuck's outcome (a lost connection, a full disk): the batch fails, and so does its retry alone.
    const postgres = t.dialect === 'postgres';
    if (postgres) {
      await sql`create function refuse_stuck() returns trigger language plpgsql as $$ begin raise exception 'outcome write refused (test)'; end $$`.execute(t.db);
      await sql`create trigger refuse_stuck before update on attempts for each row when (new.idempotency_key = 'stuck:1:1') execute function refuse_stuck()`.execute(t.db);
    } else {
      await sql`create trigger refuse_stuck before update on attempts when new.idempotency_key = 'stuck:1:1' begin select raise(abort, 'outcome write refused (test)'); end`.execute(t.db);
    }
    const a = daemonEngine(t.db, clock, { leaseMs: LEASE }, { gateways: new Map([['sim', gateway]]), owner: 'a' });
    const leaseOf = async (id: string) =>
      (await t.db.selectFrom('subscriptions').select(['lease_owner', 'lease_until']).where('id', '=', id).executeTakeFirstOrThrow()) as { lease_owner: string | null; lease_until: string | null };
    try {
      a.start();
      // stuck's job failed (its outcome unrecorded, the row no longer held); busy's call is still out.
      await waitFor(() => (seen.has('stuck:1:1') && a.stats().active === 1 ? true : undefined), { timeoutMs: 10_000 });
      if (postgres) await sql`drop trigger refuse_stuck on attempts`.execute(t.db);
      else await sql`drop trigger refuse_stuck`.execute(t.db);
      const stuckLease = await leaseOf('stuck');
      expect(stuckLease.lease_owner).toMatch(/^a\//);
      expect(Date.parse(stuckLease.lease_until!)).toBe(DUE + LEASE);

      // Within the lease, a heartbeat runs: it extends the lease of busy, whose call is out, and only that one.
      clock.set(DUE + 2_000);
      await waitFor(async () => (Date.parse((await leaseOf('busy')).lease_until!) === DUE + 2_000 + LEASE ? true : undefined), { timeoutMs: 10_000 });
      expect(Date.parse((await leaseOf('stuck')).lease_until!)).toBe(DUE + LEASE);

      // Past stuck's lease: it is claimed again and reconciled (the gateway says captured), by either daemon.
      clock.set(DUE + LEASE + 500);
      const b = daemonEngine(t.db, clock, { leaseMs: LEASE }, { gateways: new Map([['sim', gateway]]), owner: 'b' });
      await b.sweepUntilIdle();
      await waitFor(async () => ((await attemptsOf(t.db, 'stuck'))[0]?.state === 'captured' ? true : undefined), { timeoutMs: 10_000 });
      expect((await cyclesOf(t.db, 'stuck')).map((c) => [c.cycle, c.status])).toEqual([[1, 'paid']]);
      expect(await eventsOf(t.db, 'stuck', 'charge.succeeded')).toHaveLength(1);
    } finally {
      releaseBusy();
      await a.stop(5_000);
    }
  });
});
