/**
 * Bearer tokens and scopes on every /v1 route (SPEC section 9): 401 without
 * a token or with an unknown one (with WWW-Authenticate), 403 for a read
 * token on a write (and nothing changes), a write token reads everything,
 * and no response ever carries a token.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectProblem, expectRefused } from '../support/api-checks.js';
import { READ_TOKEN, WRITE_TOKEN, startApi, type ApiHarness, type ApiResponse } from '../support/api-harness.js';

const UNKNOWN_TOKEN = 'not-a-configured-token-5f3a9c';

let api: ApiHarness;
let id: string;
const seen: ApiResponse[] = [];

beforeAll(async () => {
  api = await startApi();
  const created = await api.call('POST', '/v1/subscriptions', { body: { planId: 'gold-monthly', paymentToken: 'tok_ok', startDate: '2026-04-01' } });
  id = created.body.id;
});
afterAll(async () => {
  // Whatever a test sent, no response echoed a token: not the configured ones, not the unknown one.
  expect(seen.length).toBeGreaterThan(100);
  for (const res of seen) {
    for (const token of [WRITE_TOKEN, READ_TOKEN, UNKNOWN_TOKEN]) expect(res.text).not.toContain(token);
    for (const [, value] of res.headers) for (const token of [WRITE_TOKEN, READ_TOKEN, UNKNOWN_TOKEN]) expect(value).not.toContain(token);
  }
  await api.close();
});

async function call(method: string, path: string, options: Parameters<ApiHarness['call']>[2] = {}): Promise<ApiResponse> {
  const res = await api.call(method, path, options);
  seen.push(res);
  return res;
}

const reads = (): Array<readonly [string, string]> => [
  ['GET', '/v1/subscriptions'],
  ['GET', `/v1/subscriptions/${id}`],
  ['GET', `/v1/subscriptions/${id}/charges`],
  ['GET', `/v1/subscriptions/${id}/schedule?count=2`],
  ['GET', '/v1/charges'],
  ['GET', '/v1/events'],
  ['GET', '/v1/plans'],
];
const writes = () => [
  ['POST', '/v1/subscriptions', { planId: 'gold-monthly', paymentToken: 'tok_ok' }],
  ['PATCH', `/v1/subscriptions/${id}`, { metadata: { a: '1' } }],
  ['POST', `/v1/subscriptions/${id}/pause`, {}],
  ['POST', `/v1/subscriptions/${id}/resume`, {}],
  ['POST', `/v1/subscriptions/${id}/cancel`, { atPeriodEnd: true }],
  ['POST', `/v1/subscriptions/${id}/retry`, {}],
] as const;
const ALL = ['GET /v1/subscriptions', 'GET /v1/subscriptions/{id}', 'GET .../charges', 'GET .../schedule', 'GET /v1/charges', 'GET /v1/events', 'GET /v1/plans', 'POST /v1/subscriptions', 'PATCH /v1/subscriptions/{id}', 'POST .../pause', 'POST .../resume', 'POST .../cancel', 'POST .../retry'];
const route = (i: number): readonly [string, string, unknown?] => [...reads(), ...writes()][i]! as never;

const BAD_CREDENTIALS: Array<[string, { token?: string | null; headers?: Record<string, string> }]> = [
  ['no Authorization header', { token: null }],
  ['Basic credentials', { token: null, headers: { authorization: `Basic ${Buffer.from(`x:${WRITE_TOKEN}`).toString('base64')}` } }],
  ['the token without "Bearer"', { token: null, headers: { authorization: WRITE_TOKEN } }],
  ['"Bearer" with no token', { token: null, headers: { authorization: 'Bearer ' } }],
  ['two tokens', { token: null, headers: { authorization: `Bearer ${WRITE_TOKEN} ${WRITE_TOKEN}` } }],
  ['a token with one character more', { token: `${WRITE_TOKEN}x` }],
  ['a prefix of the token', { token: WRITE_TOKEN.slice(0, -1) }],
  ['an unknown token', { token: UNKNOWN_TOKEN }],
];

describe.each(ALL.map((name, i) => [name, i] as const))('%s', (_name, i) => {
  it.each(BAD_CREDENTIALS)('%s is 401 with WWW-Authenticate and changes nothing', async (_what, credentials) => {
    const [method, path, body] = route(i);
    const before = await api.dump();
    const res = await call(method, path, { ...credentials, ...(body !== undefined ? { body } : {}) });
    expectProblem(res, 401);
    expect(res.headers.get('www-authenticate')).toMatch(/^Bearer realm="rebill"/);
    expect(res.body.type).toBe('urn:rebill:problem:unauthorized');
    expect(await api.dump()).toEqual(before);
  });

  it('is checked before the body is read: no token and a malformed body is still 401', async () => {
    const [method, path] = route(i);
    if (method === 'GET') return; // fetch sends no body with a GET
    const res = await call(method, path, { token: null, raw: '{"oops":' });
    expectProblem(res, 401);
  });
});

describe('scopes', () => {
  it.each(ALL.slice(reads().length).map((name, i) => [name, i] as const))('a read token on %s is 403 and changes nothing', async (_name, i) => {
    const [method, path, body] = writes()[i]!;
    const res = await expectRefused(api, method, path, { token: READ_TOKEN, body }, 403);
    seen.push(res);
    expect(res.body.type).toBe('urn:rebill:problem:forbidden');
    expect(res.headers.get('www-authenticate')).toBeNull();
    // Even a malformed body: the scope is checked first.
    seen.push(await expectRefused(api, method, path, { token: READ_TOKEN, raw: '{"oops":' }, 403));
  });

  it.each(ALL.slice(0, reads().length).map((name, i) => [name, i] as const))('%s answers the read token and the write token alike', async (_name, i) => {
    const [method, path] = reads()[i]!;
    const asReader = await call(method, path, { token: READ_TOKEN });
    const asWriter = await call(method, path, { token: WRITE_TOKEN });
    expect(asReader.status, asReader.text).toBe(200);
    expect(asWriter.status).toBe(200);
    expect(asWriter.text).toBe(asReader.text);
  });

  it('the scheme name is case-insensitive', async () => {
    expect((await call('GET', '/v1/plans', { token: null, headers: { authorization: `bearer ${READ_TOKEN}` } })).status).toBe(200);
  });

  it('the OpenAPI document needs no token', async () => {
    const res = await call('GET', '/v1/openapi.json', { token: null });
    expect(res.status).toBe(200);
  });
});

describe('a daemon with no admin tokens configured', () => {
  it('answers every /v1 call with 401 saying so', async () => {
    const bare = await startApi({ configText: 'gateways: { sim: { type: simulator } }\nplans: [{ id: p, amount: "1.00", currency: USD, every: MONTH }]\n' });
    try {
      for (const token of [null, WRITE_TOKEN, '']) {
        const res = await bare.call('GET', '/v1/plans', { token });
        seen.push(res);
        expectProblem(res, 401);
        expect(res.body.detail).toMatch(/no admin tokens are configured/);
      }
    } finally {
      await bare.close();
    }
  });
});
