/** The admin API harness itself: a create over real HTTP, read back with the read token. */
import { afterEach, describe, expect, it } from 'vitest';
import { READ_TOKEN, startApi, type ApiHarness } from '../support/api-harness.js';

let api: ApiHarness | undefined;
afterEach(async () => {
  await api?.close();
  api = undefined;
});

describe('admin API harness', () => {
  it('creates a subscription with the write token and reads it with the read token', async () => {
    api = await startApi();
    const created = await api.call('POST', '/v1/subscriptions', { body: { planId: 'gold-monthly', paymentToken: 'tok_ok', startDate: '2026-04-01' } });
    expect(created.status).toBe(201);
    const read = await api.call('GET', `/v1/subscriptions/${created.body.id}`, { token: READ_TOKEN });
    expect(read.status).toBe(200);
    expect(read.body).toMatchObject({ id: created.body.id, planId: 'gold-monthly', amount: '9.99', currency: 'USD', nextPaymentAt: '2026-04-01T10:00:00Z' });
    expect(api.wakes()).toBe(1);
  });

  it('accepts metadata at its limits: a 40-character key, a 500-character value', async () => {
    api = await startApi();
    const metadata = { ['k'.repeat(40)]: 'v'.repeat(500) };
    const created = await api.call('POST', '/v1/subscriptions', { body: { planId: 'gold-monthly', paymentToken: 'tok_ok', metadata } });
    expect(created.status).toBe(201);
    expect(created.body.metadata).toEqual(metadata);
  });
});
