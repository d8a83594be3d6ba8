/**
 * `GET /v1/webhook-deliveries` and `POST /v1/events/{id}/redeliver` over real
 * HTTP, with the relay sending to a real receiver on 127.0.0.1.
 */
import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRelay, type Relay } from '../../src/webhooks/index.js';
import { API_CONFIG, READ_TOKEN, startApi, type ApiHarness } from '../support/api-harness.js';
import { silentLogger } from '../support/engine-harness.js';

const SECRET = `whsec_${Buffer.from('api-test-secret-0123456789').toString('base64')}`;
let api: ApiHarness;
let relay: Relay;
const received: Array<{ headers: IncomingHttpHeaders; body: string }> = [];
const server = createServer((req, res) => {
  let body = '';
  req.on('data', (c: Buffer) => (body += c.toString()));
  req.on('end', () => {
    received.push({ headers: req.headers, body });
    res.writeHead(JSON.parse(body).type === 'subscription.paused' ? 500 : 204).end();
  });
});

beforeAll(async () => {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
  api = await startApi({ configText: `${API_CONFIG}webhooks: [{ url: "${url}", secret: "${SECRET}" }]\n` });
  relay = createRelay({ db: api.tmp.db, clock: api.clock, logger: silentLogger, webhooks: api.config.webhooks });
  await relay.init();
});
afterAll(async () => {
  await api.close();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

describe('webhook deliveries over the admin API', () => {
  it('lists deliveries by status with paging, and redelivers an event with the same webhook-id', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      const res = await api.call('POST', '/v1/subscriptions', { body: { planId: 'gold-monthly', paymentToken: 'tok_ok', startDate: '2026-04-01' } });
      expect(res.status, res.text).toBe(201);
      ids.push(res.body.id);
    }
    // The receiver answers 500 to subscription.paused: that delivery stays pending.
    const paused = await api.call('POST', `/v1/subscriptions/${ids[0]}/pause`);
    expect(paused.status, paused.text).toBe(200);
    while ((await relay.tick()) > 0);

    const delivered = await api.call('GET', '/v1/webhook-deliveries?status=delivered&limit=2', { token: READ_TOKEN });
    expect(delivered.status, delivered.text).toBe(200);
    expect(delivered.body.data).toHaveLength(2);
    expect(delivered.body.data[0]).toMatchObject({ eventId: 'evt_000000000001', eventType: 'subscription.created', status: 'delivered', attempts: 1, lastStatusCode: 204, lastError: null });
    const next = await api.call('GET', `/v1/webhook-deliveries?status=delivered&limit=2&cursor=${delivered.body.nextCursor}`, { token: READ_TOKEN });
    expect(next.body.data.map((d: { eventId: string }) => d.eventId)).toEqual(['evt_000000000003']);
    expect(next.body.nextCursor).toBeNull();
    const pending = await api.call('GET', '/v1/webhook-deliveries?status=pending', { token: READ_TOKEN });
    expect(pending.body.data).toMatchObject([{ eventType: 'subscription.paused', status: 'pending', attempts: 1, lastStatusCode: 500, lastError: 'HTTP 500' }]);

    const before = received.filter((r) => r.headers['webhook-id'] === 'evt_000000000002').length;
    const again = await api.call('POST', '/v1/events/evt_000000000002/redeliver');
    expect(again.status, again.text).toBe(200);
    expect(again.body.data).toMatchObject([{ eventId: 'evt_000000000002', status: 'pending' }]);
    while ((await relay.tick()) > 0);
    expect(received.filter((r) => r.headers['webhook-id'] === 'evt_000000000002')).toHaveLength(before + 1);
    const after = await api.call('GET', '/v1/webhook-deliveries?eventId=evt_000000000002', { token: READ_TOKEN });
    expect(after.body.data).toMatchObject([{ status: 'delivered', attempts: 2 }]);
  });

  it('404 for an unknown event, 400 for a bad filter, 403 for a read token redelivering', async () => {
    expect((await api.call('POST', '/v1/events/evt_000000009999/redeliver')).status).toBe(404);
    expect((await api.call('GET', '/v1/webhook-deliveries?status=sent')).status).toBe(400);
    expect((await api.call('POST', '/v1/events/evt_000000000001/redeliver', { token: READ_TOKEN })).status).toBe(403);
  });
});
