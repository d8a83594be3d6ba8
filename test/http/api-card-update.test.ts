/**
 * A card update after a decline (issue 8): the retry the policy scheduled
 * sends the new token. The simulator declines `tok_insufficient` on every
 * attempt; after PATCH paymentToken=tok_ok, attempt 2 of the same cycle is
 * captured. Then /retry: a decline, then a card update, then "collect now"
 * instead of waiting for the scheduled retry.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { startApi, type ApiHarness } from '../support/api-harness.js';
import { attemptsOf as attempts } from '../support/engine-harness.js';

let api: ApiHarness | undefined;
afterEach(async () => {
  await api?.close();
  api = undefined;
});

const T0 = Date.parse('2026-03-01T12:00:00Z');
const DAY = 86_400_000;

describe('card update after a decline', () => {
  it('the scheduled retry uses the new token: declined on attempt 1, captured on attempt 2 after PATCH', async () => {
    api = await startApi({ now: T0 });
    const created = await api.call('POST', '/v1/subscriptions', { body: { planId: 'gold-monthly', paymentToken: 'tok_insufficient', startDate: '2026-03-01' } });
    expect(created.status).toBe(201);
    const id = created.body.id as string;
    // Cycle 1 is due 2026-03-01T10:00Z, before T0: collected now, and declined.
    await api.engine.sweepUntilIdle();
    let sub = (await api.call('GET', `/v1/subscriptions/${id}`)).body;
    expect(sub.nextPaymentAction).toBe('retry');
    expect(sub.nextPaymentAt).toBe('2026-03-02T12:00:00Z'); // P1D after the decline

    const patched = await api.call('PATCH', `/v1/subscriptions/${id}`, { body: { paymentToken: 'tok_ok' } });
    expect(patched.status).toBe(200);
    expect(patched.body.paymentToken).not.toContain('tok_ok');
    expect(patched.body.nextPaymentAt).toBe('2026-03-02T12:00:00Z'); // the retry stays where the policy put it

    api.clock.set(T0 + DAY);
    await api.engine.sweepUntilIdle();
    const rows = await attempts(api.tmp.db, id);
    expect(rows.map((a) => [a.cycle, a.attempt, a.state])).toEqual([
      [1, 1, 'rejected'],
      [1, 2, 'captured'],
    ]);
    sub = (await api.call('GET', `/v1/subscriptions/${id}`)).body;
    expect(sub).toMatchObject({ status: 'active', completedCycles: 1, nextPaymentAction: 'charge', nextPaymentAt: '2026-04-01T10:00:00Z' });
    const charges = (await api.call('GET', `/v1/subscriptions/${id}/charges`)).body.data;
    expect(charges.map((c: { attempt: number; status: string; rejectedReason: string | null }) => [c.attempt, c.status, c.rejectedReason !== null])).toEqual([
      [1, 'rejected', true],
      [2, 'captured', false],
    ]);
    const updated = (await api.call('GET', `/v1/events?type=subscription.updated&subscriptionId=${id}`)).body.data;
    expect(updated).toHaveLength(1);
    expect(updated[0].data.changed).toEqual(['paymentToken']);
    expect(JSON.stringify(updated)).not.toContain('tok_ok');
  });

  it('/retry collects the open cycle now, within its budget, and is 409 when nothing is open', async () => {
    api = await startApi({ now: T0 });
    const id = (await api.call('POST', '/v1/subscriptions', { body: { planId: 'gold-monthly', paymentToken: 'tok_insufficient', startDate: '2026-03-01' } })).body.id as string;
    const early = await api.call('POST', `/v1/subscriptions/${id}/retry`);
    expect(early.status).toBe(409); // attempt 1 has not run yet: it is due, not failed
    await api.engine.sweepUntilIdle();
    await api.call('PATCH', `/v1/subscriptions/${id}`, { body: { paymentToken: 'tok_ok' } });
    api.clock.set(T0 + 60_000);
    const retried = await api.call('POST', `/v1/subscriptions/${id}/retry`);
    expect(retried.status).toBe(200);
    expect(retried.body.nextPaymentAt).toBe('2026-03-01T12:01:00Z');
    await api.engine.sweepUntilIdle();
    expect((await attempts(api.tmp.db, id)).map((a) => [a.attempt, a.state])).toEqual([
      [1, 'rejected'],
      [2, 'captured'],
    ]);
    const again = await api.call('POST', `/v1/subscriptions/${id}/retry`);
    expect(again.status).toBe(409);
    expect(again.contentType).toContain('application/problem+json');
    expect(again.body.type).toBe('urn:rebill:problem:nothing-to-retry');
  });
});
