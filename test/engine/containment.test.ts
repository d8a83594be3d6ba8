/**
 * One bad row must not stop the others: a subscription the calendar refuses
 * (its stored time zone is unknown to this runtime) is logged and retried per
 * lease period while every other subscription in the same batch is charged.
 */
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { VirtualClock } from '../../src/clock.js';
import { addSubscription, attemptsOf, daemonEngine, ms, openTempDb, type TempDb } from '../support/engine-harness.js';

let temp: TempDb | undefined;
afterEach(async () => {
  await temp?.close();
  temp = undefined;
});

describe('engine containment', () => {
  it('charges the rest of a batch when one subscription cannot be scheduled, and logs the one it skipped', async () => {
    temp = await openTempDb();
    const { db } = temp;
    const now = ms('2025-03-01T00:00:00Z');
    for (const id of ['good-1', 'bad', 'good-2']) await addSubscription(db, now, { id, startDate: '2025-03-01', paymentToken: 'tok_ok' });
    // As if written by an older runtime whose tz database knew this zone.
    const row = await db.selectFrom('subscriptions').select('schedule').where('id', '=', 'bad').executeTakeFirstOrThrow();
    await db.updateTable('subscriptions').set({ schedule: JSON.stringify({ ...JSON.parse(row.schedule), timezone: 'Mars/Olympus_Mons' }) }).where('id', '=', 'bad').execute();

    const lines: string[] = [];
    const logger = pino({ level: 'error' }, new Writable({ write: (chunk, _enc, done) => (lines.push(String(chunk)), done()) }));
    const engine = daemonEngine(db, new VirtualClock(now), {}, { logger });
    await engine.sweepUntilIdle();

    expect((await attemptsOf(db, 'good-1')).map((a) => a.state)).toEqual(['captured']);
    expect((await attemptsOf(db, 'good-2')).map((a) => a.state)).toEqual(['captured']);
    expect(await attemptsOf(db, 'bad')).toEqual([]);
    expect(engine.stats().active).toBe(0);
    const logged = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(logged).toEqual([expect.objectContaining({ subscriptionId: 'bad', msg: 'cannot start an attempt; will retry when the lease expires' })]);
    // The refused row keeps its lease, so it is not claimed again until the lease runs out.
    const bad = await db.selectFrom('subscriptions').select(['lease_owner', 'lease_until']).where('id', '=', 'bad').executeTakeFirstOrThrow();
    expect(bad.lease_owner).not.toBeNull();
    expect(Date.parse(bad.lease_until!)).toBe(now + 120_000);
  });
});
