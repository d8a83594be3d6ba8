/**
 * Bodies that are not acceptable JSON, on every write route of /v1 (SPEC
 * section 9): malformed text, duplicate keys, `__proto__`, the wrong media
 * type, a body over 1 MiB, no body where one is needed. Each is problem+json
 * (with a JSON pointer where the input has a place) and changes nothing.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectProblem, expectRefused } from '../support/api-checks.js';
import { startApi, type ApiHarness } from '../support/api-harness.js';

let api: ApiHarness;
let id: string;
beforeAll(async () => {
  api = await startApi();
  const created = await api.call('POST', '/v1/subscriptions', { body: { planId: 'gold-monthly', paymentToken: 'tok_ok', startDate: '2026-04-01', metadata: { a: '1' } } });
  expect(created.status).toBe(201);
  id = created.body.id;
});
afterAll(() => api.close());

/** Every write route, and whether it needs a body. */
const writes = () =>
  [
    ['POST', '/v1/subscriptions', true],
    ['PATCH', `/v1/subscriptions/${id}`, true],
    ['POST', `/v1/subscriptions/${id}/pause`, false],
    ['POST', `/v1/subscriptions/${id}/resume`, false],
    ['POST', `/v1/subscriptions/${id}/cancel`, false],
    ['POST', `/v1/subscriptions/${id}/retry`, false],
  ] as const;
const ROUTES = ['POST /v1/subscriptions', 'PATCH /v1/subscriptions/{id}', 'POST .../pause', 'POST .../resume', 'POST .../cancel', 'POST .../retry'];
const each = ROUTES.map((name, i) => [name, i] as const);
const route = (i: number) => writes()[i]!;

describe.each(each)('%s', (_name, i) => {
  it.each([
    ['an unterminated object', '{', ''],
    ['not JSON at all', 'pause please', ''],
    ['a value cut short', '{"metadata": {"a": tru}}', '/metadata/a'],
    ['a missing value', '{"atPeriodEnd": }', '/atPeriodEnd'],
    ['a trailing comma', '{"metadata": {"a": "1",}}', '/metadata'],
    ['single quotes', "{'metadata': {}}", ''],
    ['a second document', '{} {}', ''],
    ['a byte order mark', '\uFEFF{}', ''],
    ['a lone surrogate escape in a list', '{"metadata": {"a": ["\\ud800", }}', '/metadata/a/1'],
  ])('malformed JSON (%s) is 400 at %j', async (_what, text, pointer) => {
    const [method, path] = route(i);
    const res = await expectRefused(api, method, path, { raw: text }, 400, [pointer]);
    expect(res.body.detail).toMatch(/JSON/);
  });

  it.each([
    ['at the top level', '{"atPeriodEnd": true, "atPeriodEnd": false}', '/atPeriodEnd'],
    ['inside an object', '{"metadata": {"a": "1", "a": "2"}}', '/metadata/a'],
    ['inside a list', '{"metadata": [{"k": 1, "k": 2}]}', '/metadata/0/k'],
  ])('a duplicate key with another value (%s) is 400 at %j', async (_where, text, pointer) => {
    const [method, path] = route(i);
    await expectRefused(api, method, path, { raw: text }, 400, [pointer]);
  });

  it.each([
    ['at the top level', '{"__proto__": {"atPeriodEnd": true}}', '/__proto__'],
    ['inside metadata', '{"metadata": {"__proto__": "x"}}', '/metadata/__proto__'],
    ['inside customer', '{"customer": {"__proto__": {"email": "a@example.com"}}}', '/customer/__proto__'],
  ])('a __proto__ key (%s) is 400 at %j', async (_where, text, pointer) => {
    const [method, path] = route(i);
    await expectRefused(api, method, path, { raw: text }, 400, [pointer]);
    expect(({} as Record<string, unknown>).atPeriodEnd).toBeUndefined();
  });

  it.each([
    ['text/plain', { 'content-type': 'text/plain' }],
    ['form data', { 'content-type': 'application/x-www-form-urlencoded' }],
    ['no content type', { 'content-type': '' }],
    ['application/jsonx', { 'content-type': 'application/jsonx' }],
  ])('a %s body is 415', async (_what, headers) => {
    const [method, path] = route(i);
    await expectRefused(api, method, path, { raw: '{}', headers }, 415);
  });

  it('a body over 1 MiB is 413', async () => {
    const [method, path] = route(i);
    const big = JSON.stringify({ metadata: { a: 'x'.repeat(1024 * 1024) } });
    await expectRefused(api, method, path, { raw: big }, 413);
  });

  it.each([
    ['a list', '[]'],
    ['a string', '"pause"'],
    ['a number', '5'],
    ['true', 'true'],
  ])('a body that is %s is 400 at the document', async (_what, text) => {
    const [method, path] = route(i);
    const res = await expectRefused(api, method, path, { raw: text }, 400);
    expect(res.body.errors[0].pointer).toBe('');
  });

  it.each([
    ['no body', undefined],
    ['an empty body', ''],
    ['whitespace', ' \n'],
    ['null', 'null'],
  ])('%s', async (_what, text) => {
    const [method, path, needsBody] = route(i);
    if (needsBody) {
      const res = await expectRefused(api, method, path, text === undefined ? {} : { raw: text }, 400, ['']);
      expect(res.body.detail).toMatch(/body/);
    } else {
      // A body-less action: the same as `{}`; the answer depends on the subscription's state, never 400 or 500.
      const res = await api.call(method, path, text === undefined ? {} : { raw: text });
      expect([200, 409]).toContain(res.status);
    }
  });

  it('an unknown subscription id is 404 and changes nothing', async () => {
    const [method, path] = route(i);
    if (i === 0) return; // the create route has no id
    const body = method === 'PATCH' ? { metadata: { a: '2' } } : {};
    const res = await expectRefused(api, method, path.replace(id, 'sub_nobody'), { body }, 404);
    expect(res.body.type).toBe('urn:rebill:problem:not-found');
  });
});

describe('the rest of the surface', () => {
  let other: string;
  beforeAll(async () => {
    other = (await api.call('POST', '/v1/subscriptions', { body: { planId: 'gold-monthly', paymentToken: 'tok_ok', metadata: { a: '1' } } })).body.id;
  });

  it('an unknown /v1 route is a problem+json 404', async () => {
    expectProblem(await api.call('GET', '/v1/customers'), 404);
    expectProblem(await api.call('DELETE', `/v1/subscriptions/${other}`), 404);
  });

  it('a query parameter on a write is 400, not silently ignored (no ?dryRun that creates anyway)', async () => {
    const res = await expectRefused(api, 'POST', '/v1/subscriptions?dryRun=true', { body: { planId: 'gold-monthly', paymentToken: 'tok_ok' } }, 400);
    expect(res.body.errors[0]).toMatchObject({ parameter: 'dryRun' });
    await expectRefused(api, 'POST', `/v1/subscriptions/${other}/cancel?atPeriodEnd=true`, {}, 400);
    await expectRefused(api, 'PATCH', `/v1/subscriptions/${other}?force=1`, { body: { metadata: { z: '1' } } }, 400);
  });

  it('a path fastify cannot route (bad percent-encoding, an id over 100 characters) is problem+json too', async () => {
    await expectRefused(api, 'POST', '/v1/subscriptions/%E0%A4%A/cancel', {}, 400);
    await expectRefused(api, 'POST', `/v1/subscriptions/${'x'.repeat(101)}/cancel`, {}, 404);
    await expectRefused(api, 'PATCH', `/v1/subscriptions/${'x'.repeat(5000)}`, { body: { metadata: { z: '1' } } }, 404);
  });

  it('a deeply nested body is refused, not a crash', async () => {
    const deep = `{"metadata": ${'['.repeat(50_000)}${']'.repeat(50_000)}}`;
    const res = await expectRefused(api, 'PATCH', `/v1/subscriptions/${other}`, { raw: deep }, 400);
    expect(res.body.errors).toHaveLength(1);
  });

  it('JSON with a charset parameter and merge-patch+json are JSON', async () => {
    const res = await api.call('PATCH', `/v1/subscriptions/${other}`, { raw: '{"metadata":{"b":"2"}}', headers: { 'content-type': 'application/merge-patch+json' } });
    expect(res.status, res.text).toBe(200);
    const utf8 = await api.call('PATCH', `/v1/subscriptions/${other}`, { raw: '{"metadata":{"c":"ü"}}', headers: { 'content-type': 'application/json; charset=utf-8' } });
    expect(utf8.status, utf8.text).toBe(200);
    expect(utf8.body.metadata).toEqual({ a: '1', b: '2', c: 'ü' });
  });

  it('a duplicate key with the same value twice says nothing new and is accepted', async () => {
    const res = await api.call('PATCH', `/v1/subscriptions/${other}`, { raw: '{"metadata":{"d":"4","d":"4"}}' });
    expect(res.status, res.text).toBe(200);
    expect(res.body.metadata.d).toBe('4');
  });
});
