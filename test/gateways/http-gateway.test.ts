import { createHmac, timingSafeEqual } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  createHttpGateway,
  GatewayProtocolError,
  GatewayUnavailableError,
  signHttpGatewayPayload,
  type Gateway,
} from '../../src/gateways/index.js';
import { collectRequest } from './helpers.js';

const SECRET = 'whsec_http_gateway_secret_42';

/** A tiny payment service: verifies the signature, remembers each Idempotency-Key, answers by token. */
let server: http.Server;
let url: string;
let charges: Map<string, { status: string; id: string; code?: string; linkUrl?: string }>;
let received: Array<{ method: string; path: string; headers: http.IncomingHttpHeaders; body: string }>;

function verify(signature: string | undefined, payload: string): boolean {
  const expected = Buffer.from(`sha256=${createHmac('sha256', SECRET).update(payload).digest('hex')}`);
  const given = Buffer.from(signature ?? '');
  return given.length === expected.length && timingSafeEqual(given, expected);
}

beforeAll(async () => {
  server = http.createServer(async (req, res) => {
    let body = '';
    for await (const chunk of req) body += chunk;
    const path = req.url ?? '/';
    received.push({ method: req.method ?? '', path, headers: req.headers, body });
    const reply = (status: number, json: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(json));
    };
    const signature = req.headers['x-rebill-signature'] as string | undefined;
    if (req.method === 'POST' && path === '/pay/charges') {
      if (!verify(signature, body)) return reply(401, { message: 'bad signature' });
      const attempt = JSON.parse(body);
      const key = req.headers['idempotency-key'] as string;
      if (attempt.paymentToken === 'tok_5xx') return reply(503, { message: 'down' });
      if (!charges.has(key)) {
        const id = `ch_${charges.size + 1}`;
        charges.set(
          key,
          attempt.mode === 'link'
            ? { status: 'pending', id, linkUrl: `https://pay.example/${id}` }
            : attempt.paymentToken === 'tok_stolen'
              ? { status: 'declined', id, code: 'stolen_card' }
              : attempt.paymentToken === 'tok_insufficient'
                ? { status: 'declined', id, code: 'insufficient_funds' }
                : attempt.paymentToken === 'tok_pending'
                  ? { status: 'pending', id }
                  : { status: 'captured', id },
        );
      }
      return reply(200, charges.get(key));
    }
    const status = /^\/pay\/charges\/([^/]+)$/.exec(path);
    if (req.method === 'GET' && status) {
      if (!verify(signature, path)) return reply(401, { message: 'bad signature' });
      const found = charges.get(decodeURIComponent(status[1]!));
      return found ? reply(200, found) : reply(404, { message: 'not found' });
    }
    reply(404, { message: 'no route' });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/pay`;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

beforeEach(() => {
  charges = new Map();
  received = [];
});

const gateway = (secret = SECRET, timeoutSeconds = 5): Gateway => createHttpGateway({ name: 'psp', url, secret, timeoutSeconds });

describe('http gateway', () => {
  it('POSTs the attempt as signed JSON with the Idempotency-Key, and maps captured', async () => {
    const request = collectRequest('tok_ok', { amountMinor: 999, currency: 'USD' });
    await expect(gateway().charge(request)).resolves.toEqual({ kind: 'captured', externalId: 'ch_1' });
    const sent = received[0]!;
    expect(sent.headers['idempotency-key']).toBe('sub-1:1:1');
    expect(sent.headers['content-type']).toBe('application/json');
    expect(sent.headers['x-rebill-signature']).toBe(signHttpGatewayPayload(SECRET, sent.body));
    expect(JSON.parse(sent.body)).toEqual({
      mode: 'charge',
      idempotencyKey: 'sub-1:1:1',
      subscriptionId: 'sub-1',
      cycle: 1,
      attempt: 1,
      amount: '9.99',
      amountMinor: 999,
      currency: 'USD',
      description: 'Gold membership',
      paymentToken: 'tok_ok',
      customer: { email: 'a@example.com' },
    });
  });

  it('maps declines to hard or soft by HARD_DECLINE_CODES', async () => {
    await expect(gateway().charge(collectRequest('tok_stolen', { cycle: 1 }))).resolves.toEqual({
      kind: 'declined',
      code: 'stolen_card',
      hard: true,
      externalId: 'ch_1',
    });
    await expect(gateway().charge(collectRequest('tok_insufficient', { cycle: 2 }))).resolves.toEqual({
      kind: 'declined',
      code: 'insufficient_funds',
      hard: false,
      externalId: 'ch_2',
    });
  });

  it('a link is pending with its URL; status reads it back; an unknown key is not_found', async () => {
    const request = collectRequest(null);
    const sent = await gateway().sendLink(request);
    expect(sent).toEqual({ kind: 'pending', externalId: 'ch_1', linkUrl: 'https://pay.example/ch_1' });
    expect(JSON.parse(received[0]!.body).mode).toBe('link');
    await expect(gateway().status(request.idempotencyKey, request)).resolves.toEqual(sent);
    expect(received[1]!.path).toBe('/pay/charges/sub-1%3A1%3A1');
    const unknown = collectRequest('tok_ok', { cycle: 9 });
    await expect(gateway().status(unknown.idempotencyKey, unknown)).resolves.toEqual({ kind: 'not_found' });
  });

  it('a re-sent key gets the same answer from an idempotent service', async () => {
    const request = collectRequest('tok_ok');
    const first = await gateway().charge(request);
    await expect(gateway().charge(request)).resolves.toEqual(first);
    expect(charges.size).toBe(1);
  });

  it('a wrong secret is refused by the service: protocol error that does not repeat the secret', async () => {
    const error = (await gateway('not-the-secret').charge(collectRequest('tok_ok')).catch((err: unknown) => err)) as Error;
    expect(error).toBeInstanceOf(GatewayProtocolError);
    expect(error.message).toMatch(/401.*bad signature/);
    expect(String(error)).not.toContain('not-the-secret');
  });

  it('5xx is unavailable', async () => {
    await expect(gateway().charge(collectRequest('tok_5xx'))).rejects.toBeInstanceOf(GatewayUnavailableError);
  });

  it('refuses an empty secret up front', () => {
    expect(() => createHttpGateway({ name: 'psp', url, secret: '', timeoutSeconds: 5 })).toThrow(/secret/);
  });
});
