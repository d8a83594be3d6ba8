import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  createCoolpayGateway,
  GatewayProtocolError,
  GatewayUnavailableError,
  startFakeGateway,
  type FakeCapture,
  type FakeGateway,
  type Gateway,
} from '../../src/gateways/index.js';
import { collectRequest } from './helpers.js';

const API_KEY = 'ck_live_s3cr3t_DO_NOT_LEAK_0123456789';

let fake: FakeGateway;
let coolpay: Gateway;
let subscriptionSeq = 0;

/** A fresh rebill subscription id per test, so order_ids never collide in the shared fake. */
const nextSubscription = () => `cp-${++subscriptionSeq}`;

function gateway(timeoutSeconds = 5, baseUrl = fake.url): Gateway {
  return createCoolpayGateway({ name: 'coolpay', baseUrl, apiKey: API_KEY, timeoutSeconds });
}

async function ledger(url = fake.url): Promise<FakeCapture[]> {
  const response = await fetch(`${url}/__ledger`);
  return (await response.json()) as FakeCapture[];
}

async function capturesOf(orderId: string, url = fake.url) {
  return (await ledger(url)).filter((c) => c.order_id === orderId);
}

async function caught(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected a rejection');
}

/** Everything an error could put in a log line. */
function loggable(err: Error): string {
  return [String(err), err.stack, JSON.stringify(err), String(err.cause), JSON.stringify(err.cause)].join('\n');
}

beforeAll(async () => {
  fake = await startFakeGateway({ host: '127.0.0.1', port: 0 });
  coolpay = gateway();
});

afterAll(async () => {
  await fake.close();
});

describe('coolpay adapter against the fake gateway over HTTP: charge mode', () => {
  it('tok_ok is captured once, with the payment id as externalId and the amount in minor units', async () => {
    const request = collectRequest('tok_ok', { subscriptionId: nextSubscription(), amountMinor: 1500, currency: 'JPY' });
    const result = await coolpay.charge(request);
    expect(result).toMatchObject({ kind: 'captured' });
    const captures = await capturesOf(request.idempotencyKey);
    expect(captures).toEqual([
      { order_id: request.idempotencyKey, amount: 1500, currency: 'JPY', payment_id: Number((result as { externalId: string }).externalId), captured_at: expect.any(String) },
    ]);
  });

  it.each([
    ['tok_insufficient', 'insufficient_funds', false],
    ['tok_do_not_honor', 'do_not_honor', false],
    ['tok_stolen', 'stolen_card', true],
    ['tok_lost', 'lost_card', true],
    ['tok_closed', 'closed_account', true],
  ])('%s is declined %s (hard: %s) and nothing is captured', async (token, code, hard) => {
    const request = collectRequest(token, { subscriptionId: nextSubscription() });
    const result = await coolpay.charge(request);
    expect(result).toEqual({ kind: 'declined', code, hard, externalId: expect.any(String) });
    expect(await capturesOf(request.idempotencyKey)).toEqual([]);
  });

  it('a missing token is a hard invalid_card_number without calling the gateway', async () => {
    const request = collectRequest(null, { subscriptionId: nextSubscription() });
    await expect(coolpay.charge(request)).resolves.toEqual({ kind: 'declined', code: 'invalid_card_number', hard: true });
  });

  it('tok_flaky_1 declines attempt 1 softly and captures attempt 2 (attempt read from the order_id)', async () => {
    const subscriptionId = nextSubscription();
    await expect(coolpay.charge(collectRequest('tok_flaky_1', { subscriptionId, attempt: 1 }))).resolves.toMatchObject({
      kind: 'declined',
      code: 'do_not_honor',
      hard: false,
    });
    await expect(coolpay.charge(collectRequest('tok_flaky_1', { subscriptionId, attempt: 2 }))).resolves.toMatchObject({ kind: 'captured' });
  });

  it.each(['tok_visa_4242', '4242424242424242', 'card_1NvXyZ2eZvKYlo2C'])('a real-looking token %s is a hard unknown_test_token decline and is never captured', async (token) => {
    const request = collectRequest(token, { subscriptionId: nextSubscription() });
    await expect(coolpay.charge(request)).resolves.toMatchObject({ kind: 'declined', code: 'unknown_test_token', hard: true });
    await expect(coolpay.status(request.idempotencyKey, request)).resolves.toMatchObject({ kind: 'declined', code: 'unknown_test_token', hard: true });
    expect(await capturesOf(request.idempotencyKey)).toEqual([]);
  });

  it('re-sending the same order_id returns the same payment and the ledger has one capture', async () => {
    const request = collectRequest('tok_ok', { subscriptionId: nextSubscription() });
    const first = await coolpay.charge(request);
    const second = await coolpay.charge(request);
    expect(second).toEqual(first);
    expect(await capturesOf(request.idempotencyKey)).toHaveLength(1);
    await expect(coolpay.status(request.idempotencyKey, request)).resolves.toEqual(first);
  });

  it('tok_timeout: the answer is lost (unavailable), status then says captured, and a re-send does not capture again', async () => {
    const request = collectRequest('tok_timeout', { subscriptionId: nextSubscription() });
    const error = await caught(coolpay.charge(request));
    expect(error).toBeInstanceOf(GatewayUnavailableError);
    const status = await coolpay.status(request.idempotencyKey, request);
    expect(status).toMatchObject({ kind: 'captured' });
    await expect(coolpay.charge(request)).resolves.toEqual(status);
    expect(await capturesOf(request.idempotencyKey)).toHaveLength(1);
  });

  it('tok_5xx throws unavailable, records nothing, and status says not_found', async () => {
    const request = collectRequest('tok_5xx', { subscriptionId: nextSubscription() });
    const error = await caught(coolpay.charge(request));
    expect(error).toBeInstanceOf(GatewayUnavailableError);
    expect((error as GatewayUnavailableError).code).toBe('GATEWAY_UNAVAILABLE');
    expect(error.message).toMatch(/500/);
    await expect(coolpay.status(request.idempotencyKey, request)).resolves.toEqual({ kind: 'not_found' });
  });

  it('tok_slow with a shorter timeout throws GATEWAY_TIMEOUT; the gateway finishes and status then says captured', async () => {
    const request = collectRequest('tok_slow_400', { subscriptionId: nextSubscription() });
    const impatient = gateway(0.1);
    const error = await caught(impatient.charge(request));
    expect(error).toBeInstanceOf(GatewayUnavailableError);
    expect((error as GatewayUnavailableError).code).toBe('GATEWAY_TIMEOUT');
    // Still processing: the gateway knows the order_id, so it is pending, not not_found (a re-send would be safe anyway).
    await expect(impatient.status(request.idempotencyKey, request)).resolves.toMatchObject({ kind: 'pending' });
    await expect(impatient.charge(request)).resolves.toMatchObject({ kind: 'pending' });
    // Poll the way the engine does until the gateway has finished (400 ms after the send).
    let status = await impatient.status(request.idempotencyKey, request);
    for (const deadline = Date.now() + 5_000; status.kind === 'pending' && Date.now() < deadline; ) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      status = await impatient.status(request.idempotencyKey, request);
    }
    expect(status).toMatchObject({ kind: 'captured' });
    expect(await capturesOf(request.idempotencyKey)).toHaveLength(1);
  });

  it('tok_slow within the timeout is captured', async () => {
    const request = collectRequest('tok_slow_50', { subscriptionId: nextSubscription() });
    await expect(coolpay.charge(request)).resolves.toMatchObject({ kind: 'captured' });
  });

  it('tok_pending answers pending; a status query then finds it captured', async () => {
    const request = collectRequest('tok_pending', { subscriptionId: nextSubscription() });
    const pending = await coolpay.charge(request);
    expect(pending).toMatchObject({ kind: 'pending' });
    expect(await capturesOf(request.idempotencyKey)).toEqual([]);
    const settled = await coolpay.status(request.idempotencyKey, request);
    expect(settled).toEqual({ kind: 'captured', externalId: (pending as { externalId: string }).externalId });
    expect(await capturesOf(request.idempotencyKey)).toHaveLength(1);
  });

  it('an authorised payment that auto_capture left uncaptured is captured by the adapter, once', async () => {
    // A gateway account with auto-capture disabled: forward the request with auto_capture false.
    const noAutoCapture: typeof fetch = (input, init) => {
      const body = init?.body ? JSON.parse(String(init.body)) : undefined;
      if (body && 'auto_capture' in body) body.auto_capture = false;
      return fetch(input, body ? { ...init, body: JSON.stringify(body) } : init);
    };
    const adapter = createCoolpayGateway({ name: 'coolpay', baseUrl: fake.url, apiKey: API_KEY, timeoutSeconds: 5, fetch: noAutoCapture });
    const request = collectRequest('tok_ok', { subscriptionId: nextSubscription(), amountMinor: 4200 });
    const result = await adapter.charge(request);
    expect(result).toMatchObject({ kind: 'captured' });
    await expect(adapter.charge(request)).resolves.toEqual(result);
    expect(await capturesOf(request.idempotencyKey)).toEqual([expect.objectContaining({ amount: 4200 })]);
  });

  it('status of an order_id the gateway never saw is not_found', async () => {
    const request = collectRequest('tok_ok', { subscriptionId: nextSubscription() });
    await expect(coolpay.status(request.idempotencyKey, request)).resolves.toEqual({ kind: 'not_found' });
  });
});

describe('coolpay adapter: link mode', () => {
  async function pay(linkUrl: string, token: string | null) {
    const response = await fetch(linkUrl, { method: 'POST', body: JSON.stringify({ token }), headers: { 'content-type': 'application/json' } });
    expect(response.status).toBe(200);
  }

  it('sendLink creates an agreement and answers pending with its link; an open link stays pending', async () => {
    const request = collectRequest(null, { subscriptionId: nextSubscription() });
    const sent = await coolpay.sendLink(request);
    expect(sent).toEqual({ kind: 'pending', externalId: expect.stringMatching(/^\d+$/), linkUrl: expect.stringContaining(`${fake.url}/__pay/`) });
    await expect(coolpay.status(request.idempotencyKey, request)).resolves.toEqual(sent);
    // Re-sending the same key finds the same agreement.
    await expect(coolpay.sendLink(request)).resolves.toEqual(sent);
  });

  it('once the customer pays the link, status charges the agreement once for this cycle and reports captured', async () => {
    const request = collectRequest(null, { subscriptionId: nextSubscription(), amountMinor: 2500, currency: 'EUR' });
    const sent = await coolpay.sendLink(request);
    await pay((sent as { linkUrl: string }).linkUrl, 'tok_ok');
    const first = await coolpay.status(request.idempotencyKey, request);
    expect(first).toMatchObject({ kind: 'captured' });
    await expect(coolpay.status(request.idempotencyKey, request)).resolves.toEqual(first);
    expect(await capturesOf(request.idempotencyKey)).toEqual([expect.objectContaining({ amount: 2500, currency: 'EUR' })]);
  });

  it('a link paid with a stolen card is a hard decline; with insufficient funds a soft one', async () => {
    for (const [token, code, hard] of [
      ['tok_stolen', 'stolen_card', true],
      ['tok_insufficient', 'insufficient_funds', false],
    ] as const) {
      const request = collectRequest(null, { subscriptionId: nextSubscription() });
      const sent = await coolpay.sendLink(request);
      await pay((sent as { linkUrl: string }).linkUrl, token);
      await expect(coolpay.status(request.idempotencyKey, request)).resolves.toEqual({
        kind: 'declined',
        code,
        hard,
        externalId: (sent as { externalId: string }).externalId,
      });
      expect(await capturesOf(request.idempotencyKey)).toEqual([]);
    }
  });

  it('tok_flaky_1 leaves the link of attempt 1 unpaid and pays the link of attempt 2', async () => {
    const subscriptionId = nextSubscription();
    const kinds = [];
    for (const attempt of [1, 2]) {
      const request = collectRequest(null, { subscriptionId, attempt });
      const sent = await coolpay.sendLink(request);
      await pay((sent as { linkUrl: string }).linkUrl, 'tok_flaky_1');
      kinds.push((await coolpay.status(request.idempotencyKey, request)).kind);
    }
    expect(kinds).toEqual(['declined', 'captured']);
  });
});

describe('coolpay adapter: errors', () => {
  it('the fake answers 401 without Basic auth', async () => {
    const response = await fetch(`${fake.url}/payments?order_id=x`);
    expect(response.status).toBe(401);
    expect(response.headers.get('www-authenticate')).toMatch(/^Basic/);
  });

  it('sends Basic auth with the key as password, Accept-Version v10, JSON and the Idempotency-Key', async () => {
    const seen: Array<{ url: string; headers: Record<string, string>; body: unknown }> = [];
    const recording: typeof fetch = async (input, init) => {
      seen.push({
        url: String(input),
        headers: Object.fromEntries(new Headers(init?.headers).entries()),
        body: init?.body ? JSON.parse(String(init.body)) : undefined,
      });
      return fetch(input, init);
    };
    const spied = createCoolpayGateway({ name: 'coolpay', baseUrl: `${fake.url}/`, apiKey: API_KEY, timeoutSeconds: 5, fetch: recording });
    const request = collectRequest('tok_ok', { subscriptionId: nextSubscription() });
    await spied.charge(request);
    expect(seen).toHaveLength(1);
    expect(seen[0]!.url).toBe(`${fake.url}/subscriptions/tok_ok/recurring?synchronized`);
    expect(seen[0]!.headers).toMatchObject({
      authorization: `Basic ${Buffer.from(`:${API_KEY}`).toString('base64')}`,
      'accept-version': 'v10',
      'content-type': 'application/json',
      'idempotency-key': request.idempotencyKey,
    });
    expect(seen[0]!.body).toEqual({ amount: 999, currency: 'USD', order_id: request.idempotencyKey, auto_capture: true });
  });

  it('a 4xx that is not a decline is a protocol error, and never repeats the API key', async () => {
    // The fake refuses a recurring payment on a link agreement nobody authorised: 400.
    const link = collectRequest(null, { subscriptionId: nextSubscription() });
    const sent = (await coolpay.sendLink(link)) as { externalId: string };
    const error = await caught(coolpay.charge(collectRequest(sent.externalId, { subscriptionId: nextSubscription() })));
    expect(error).toBeInstanceOf(GatewayProtocolError);
    expect(error.message).toMatch(/400.*not authorized/);
    expect(loggable(error)).not.toContain(API_KEY);
  });

  it('a gateway that answers 401 (wrong credentials) is a protocol error without the key', async () => {
    const server = http.createServer((req, res) => {
      res.writeHead(401, { 'content-type': 'application/json' });
      // A careless gateway echoing the credentials back.
      res.end(JSON.stringify({ message: `invalid key ${API_KEY} in ${req.headers.authorization}` }));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      const error = await caught(gateway(5, url).charge(collectRequest('tok_ok')));
      expect(error).toBeInstanceOf(GatewayProtocolError);
      expect(error.message).toMatch(/401/);
      expect(loggable(error)).not.toContain(API_KEY);
      expect(loggable(error)).not.toContain(Buffer.from(`:${API_KEY}`).toString('base64'));
    } finally {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it('a 4xx whose body is a rejected payment is a decline like any other', async () => {
    const server = http.createServer((_req, res) => {
      res.writeHead(402, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify({
          id: 77,
          order_id: 'sub-1:1:1',
          accepted: false,
          state: 'rejected',
          operations: [{ type: 'recurring', amount: 999, pending: false, qp_status_code: '40000', qp_status_msg: 'Rejected by acquirer', aq_status_code: '43', aq_status_msg: 'Stolen card' }],
        }),
      );
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      await expect(gateway(5, url).charge(collectRequest('tok_whatever'))).resolves.toEqual({
        kind: 'declined',
        code: 'stolen_card',
        hard: true,
        externalId: '77',
      });
    } finally {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it('a body that is not JSON is a protocol error; an unexpected JSON shape too', async () => {
    const bodies = ['<html>oops</html>', JSON.stringify({ hello: 'world' })];
    const server = http.createServer((_req, res) => {
      res.writeHead(202, { 'content-type': 'application/json' });
      res.end(bodies.shift());
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      for (let i = 0; i < 2; i++) {
        const error = await caught(gateway(5, url).charge(collectRequest('tok_ok')));
        expect(error).toBeInstanceOf(GatewayProtocolError);
      }
    } finally {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it('a refused connection is unavailable, and the error never carries the API key', async () => {
    const server = http.createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as AddressInfo).port;
    await new Promise((resolve) => server.close(resolve));
    const error = await caught(gateway(5, `http://127.0.0.1:${port}`).charge(collectRequest('tok_ok')));
    expect(error).toBeInstanceOf(GatewayUnavailableError);
    expect((error as GatewayUnavailableError).code).toBe('GATEWAY_UNAVAILABLE');
    expect(error.message).toMatch(/ECONNREFUSED/);
    expect(loggable(error)).not.toContain(API_KEY);
  });

  it('timeout and 5xx errors never carry the API key or the card token', async () => {
    const slow = await caught(gateway(0.05).charge(collectRequest('tok_slow_200', { subscriptionId: nextSubscription() })));
    const fivexx = await caught(coolpay.charge(collectRequest('tok_5xx', { subscriptionId: nextSubscription() })));
    for (const error of [slow, fivexx]) {
      expect(loggable(error)).not.toContain(API_KEY);
      expect(error.message).toContain('/subscriptions/{id}/recurring');
      expect(error.message).not.toContain('tok_');
    }
  });

  it('refuses a bad configuration up front', () => {
    expect(() => createCoolpayGateway({ name: 'c', baseUrl: 'not a url', apiKey: 'k', timeoutSeconds: 1 })).toThrow(/baseUrl/);
    expect(() => createCoolpayGateway({ name: 'c', baseUrl: 'https://x.example', apiKey: '', timeoutSeconds: 1 })).toThrow(/apiKey/);
    expect(() => createCoolpayGateway({ name: 'c', baseUrl: 'https://x.example', apiKey: 'k', timeoutSeconds: 0 })).toThrow(/timeoutSeconds/);
  });
});

describe('fake gateway with a ledger file, in process', () => {
  let dir: string;
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('a restarted fake keeps its captures and still deduplicates by order_id', async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rebill-fake-'));
    const ledgerFile = path.join(dir, 'captures.jsonl');
    const request = collectRequest('tok_ok', { subscriptionId: 'restart-1' });

    const first = await startFakeGateway({ port: 0, ledgerFile });
    const captured = await gateway(5, first.url).charge(request);
    const before = await ledger(first.url);
    await first.close();

    const second = await startFakeGateway({ port: 0, ledgerFile });
    try {
      expect(await ledger(second.url)).toEqual(before);
      await expect(gateway(5, second.url).charge(request)).resolves.toEqual(captured);
      await expect(gateway(5, second.url).status(request.idempotencyKey, request)).resolves.toEqual(captured);
      const other = await gateway(5, second.url).charge(collectRequest('tok_ok', { subscriptionId: 'restart-2' }));
      expect(other).not.toEqual(captured);
      expect((await ledger(second.url)).map((c) => c.order_id)).toEqual(['restart-1:1:1', 'restart-2:1:1']);
    } finally {
      await second.close();
    }
  });

  it('a restarted fake still knows every payment it saw: pending (then captured once, same payment), declined, and open links', async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rebill-fake-'));
    const ledgerFile = path.join(dir, 'payments.jsonl');
    const pending = collectRequest('tok_pending', { subscriptionId: 'keep-pending' });
    const declined = collectRequest('tok_insufficient', { subscriptionId: 'keep-declined' });
    const link = collectRequest(null, { subscriptionId: 'keep-link' });

    const first = await startFakeGateway({ port: 0, ledgerFile });
    const sentPending = await gateway(5, first.url).charge(pending);
    expect(sentPending).toMatchObject({ kind: 'pending' });
    const sentDeclined = await gateway(5, first.url).charge(declined);
    expect(sentDeclined).toMatchObject({ kind: 'declined', code: 'insufficient_funds' });
    const sentLink = await gateway(5, first.url).sendLink(link);
    expect(sentLink).toMatchObject({ kind: 'pending' });
    await first.close();

    const second = await startFakeGateway({ port: 0, ledgerFile });
    try {
      const cp = gateway(5, second.url);
      // Never "not found" for a key it has seen: the pending charge settles as before, as the same payment.
      const settled = await cp.status(pending.idempotencyKey, pending);
      expect(settled).toEqual({ kind: 'captured', externalId: (sentPending as { externalId: string }).externalId });
      await expect(cp.status(declined.idempotencyKey, declined)).resolves.toEqual(sentDeclined);
      await expect(cp.charge(declined)).resolves.toEqual(sentDeclined);
      await expect(cp.status(link.idempotencyKey, link)).resolves.toMatchObject({ kind: 'pending', externalId: (sentLink as { externalId: string }).externalId });
      expect((await ledger(second.url)).map((c) => [c.order_id, c.payment_id])).toEqual([['keep-pending:1:1', Number((sentPending as { externalId: string }).externalId)]]);
    } finally {
      await second.close();
    }

    // And once more: the capture made by the second run survives a third.
    const third = await startFakeGateway({ port: 0, ledgerFile });
    try {
      await expect(gateway(5, third.url).status(pending.idempotencyKey, pending)).resolves.toMatchObject({ kind: 'captured' });
      await expect(gateway(5, third.url).charge(pending)).resolves.toMatchObject({ kind: 'captured' });
      expect(await ledger(third.url)).toHaveLength(1);
    } finally {
      await third.close();
    }
  });

  it('a ledger written by an older fake (captures only) still loads', async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rebill-fake-'));
    const ledgerFile = path.join(dir, 'old.jsonl');
    fs.writeFileSync(ledgerFile, `${JSON.stringify({ order_id: 'old-1:1:1', amount: 999, currency: 'USD', payment_id: 1001, captured_at: '2025-01-01T00:00:00.000Z' })}\n`);
    const fakeOld = await startFakeGateway({ port: 0, ledgerFile });
    try {
      const request = collectRequest('tok_ok', { subscriptionId: 'old-1' });
      await expect(gateway(5, fakeOld.url).status(request.idempotencyKey, request)).resolves.toEqual({ kind: 'captured', externalId: '1001' });
      expect(await ledger(fakeOld.url)).toHaveLength(1);
    } finally {
      await fakeOld.close();
    }
  });
});
