/**
 * The fake CoolPay server's callbacks (`rebill fake-gateway --callback-url`):
 * what it POSTs when a pending payment settles or a payment window is
 * completed, how it signs it, and how it retries a receiver that fails. The
 * receiver is a plain HTTP server on 127.0.0.1.
 */
import { createHmac } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { createCoolpayGateway, startFakeGateway, type FakeGateway } from '../../src/gateways/index.js';
import { collectRequest } from './helpers.js';

const SECRET = 'fake-callback-secret';
const API_KEY = 'ck_test_fake_key';

interface Delivery {
  readonly headers: http.IncomingHttpHeaders;
  readonly body: string;
}

interface Receiver {
  readonly url: string;
  readonly deliveries: Delivery[];
  /** Resolves once `n` deliveries arrived. */
  received(n: number): Promise<Delivery[]>;
  close(): Promise<void>;
}

const closers: Array<() => Promise<void>> = [];

afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close();
});

/** A callback receiver answering each delivery with the next status of `statuses` (then 200). */
async function receiver(statuses: number[] = []): Promise<Receiver> {
  const deliveries: Delivery[] = [];
  const waiters: Array<{ n: number; resolve: (d: Delivery[]) => void }> = [];
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (chunk: Buffer) => (body += chunk.toString('utf8')));
    req.on('end', () => {
      deliveries.push({ headers: req.headers, body });
      res.writeHead(statuses.shift() ?? 200).end();
      for (const w of waiters.filter((w) => deliveries.length >= w.n)) w.resolve([...deliveries]);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const close = () => new Promise<void>((resolve) => server.close(() => resolve()));
  closers.push(close);
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1/gateway-callbacks/coolpay`,
    deliveries,
    received: (n) => (deliveries.length >= n ? Promise.resolve([...deliveries]) : new Promise((resolve) => waiters.push({ n, resolve }))),
    close,
  };
}

async function fake(options: Parameters<typeof startFakeGateway>[0]): Promise<FakeGateway> {
  const gateway = await startFakeGateway({ port: 0, pendingSettleMs: 10, ...options });
  closers.push(() => gateway.close());
  return gateway;
}

const coolpay = (gateway: FakeGateway) => createCoolpayGateway({ name: 'coolpay', baseUrl: gateway.url, apiKey: API_KEY, timeoutSeconds: 5 });
const hmac = (body: string, key: string) => createHmac('sha256', key).update(body).digest('hex');

describe('fake gateway callbacks', () => {
  it('a tok_pending payment settles by itself and the captured payment is POSTed once, signed with QuickPay-Checksum-Sha256', async () => {
    const hook = await receiver();
    const gateway = await fake({ callbackUrl: hook.url, callbackSecret: SECRET });
    const request = collectRequest('tok_pending', { subscriptionId: 'cb-1' });
    expect(await coolpay(gateway).charge(request)).toMatchObject({ kind: 'pending' });

    const [delivery] = await hook.received(1);
    expect(delivery!.headers['content-type']).toBe('application/json');
    expect(delivery!.headers['quickpay-resource-type']).toBe('Payment');
    expect(delivery!.headers['quickpay-checksum-sha256']).toBe(hmac(delivery!.body, SECRET));
    const payment = JSON.parse(delivery!.body) as { order_id: string; state: string; accepted: boolean; operations: Array<{ type: string; qp_status_code: string }> };
    expect(payment).toMatchObject({ order_id: 'cb-1:1:1', state: 'processed', accepted: true });
    expect(payment.operations.map((op) => [op.type, op.qp_status_code])).toEqual([
      ['recurring', '20000'],
      ['capture', '20000'],
    ]);
    // The status query now finds it captured, and nothing was captured twice.
    expect(await coolpay(gateway).status(request.idempotencyKey, request)).toMatchObject({ kind: 'captured' });
    const ledger = (await (await fetch(`${gateway.url}/__ledger`)).json()) as unknown[];
    expect(ledger).toHaveLength(1);
    expect(hook.deliveries).toHaveLength(1);
  });

  it('a receiver that fails (500, 503) gets the same signed callback again until it answers 2xx, then no more', async () => {
    const hook = await receiver([500, 503]);
    const gateway = await fake({ callbackUrl: hook.url, callbackSecret: SECRET });
    await coolpay(gateway).charge(collectRequest('tok_pending', { subscriptionId: 'cb-2' }));
    const deliveries = await hook.received(3);
    expect(new Set(deliveries.map((d) => d.body)).size).toBe(1);
    expect(new Set(deliveries.map((d) => d.headers['quickpay-checksum-sha256'])).size).toBe(1);
    // One more settled payment shows the retries of the first one are over (deliveries are in order).
    await coolpay(gateway).charge(collectRequest('tok_pending', { subscriptionId: 'cb-3' }));
    const after = await hook.received(4);
    expect(after.map((d) => (JSON.parse(d.body) as { order_id: string }).order_id)).toEqual(['cb-2:1:1', 'cb-2:1:1', 'cb-2:1:1', 'cb-3:1:1']);
  });

  it('gives up after callbackAttempts tries on a receiver that never answers 2xx, and says so on stderr', async () => {
    const hook = await receiver([500, 500, 500, 500, 500]);
    const gateway = await fake({ callbackUrl: hook.url, callbackSecret: SECRET, callbackAttempts: 2 });
    const stderr: string[] = [];
    const write = process.stderr.write.bind(process.stderr);
    process.stderr.write = ((chunk: string | Uint8Array) => (stderr.push(String(chunk)), true)) as typeof process.stderr.write;
    try {
      await coolpay(gateway).charge(collectRequest('tok_pending', { subscriptionId: 'cb-4' }));
      // The line is written after the last try: from then on no delivery of cb-4 can come.
      while (!stderr.some((l) => l.includes('callback for order_id cb-4:1:1 not delivered after 2 tries (answered 500)'))) await new Promise((r) => setTimeout(r, 10));
    } finally {
      process.stderr.write = write;
    }
    expect(hook.deliveries).toHaveLength(2);
    expect(stderr.join('')).not.toContain(SECRET);
  });

  it('a completed payment window POSTs the authorised agreement (QuickPay-Resource-Type Subscription)', async () => {
    const hook = await receiver();
    const gateway = await fake({ callbackUrl: hook.url, callbackSecret: SECRET });
    const link = await coolpay(gateway).sendLink(collectRequest(null, { subscriptionId: 'cb-6' }));
    expect(link).toMatchObject({ kind: 'pending', linkUrl: expect.stringMatching(/\/__pay\/\d+$/) });
    await fetch((link as { linkUrl: string }).linkUrl, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{"token":"tok_ok"}' });
    const [delivery] = await hook.received(1);
    expect(delivery!.headers['quickpay-resource-type']).toBe('Subscription');
    expect(delivery!.headers['quickpay-checksum-sha256']).toBe(hmac(delivery!.body, SECRET));
    expect(JSON.parse(delivery!.body)).toMatchObject({ type: 'Subscription', order_id: 'cb-6:1:1', accepted: true, state: 'active' });
  });

  it('without callbackSecret, a callback is signed with the API key the payment was made with', async () => {
    const hook = await receiver();
    const gateway = await fake({ callbackUrl: hook.url });
    await coolpay(gateway).charge(collectRequest('tok_pending', { subscriptionId: 'cb-7' }));
    const [delivery] = await hook.received(1);
    expect(delivery!.headers['quickpay-checksum-sha256']).toBe(hmac(delivery!.body, API_KEY));
  });
});
