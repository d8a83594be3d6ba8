/**
 * `GET /v1/openapi.json` (SPEC section 9): a valid OpenAPI 3.1 document,
 * generated from the request schemas, that documents every /v1 route the
 * server registers (collected with an onRoute hook, so a route added without
 * documentation fails here) and nothing that does not exist.
 */
import { Validator } from '@seriousme/openapi-schema-validator';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startApi, type ApiHarness } from '../support/api-harness.js';

type Doc = {
  openapi: string;
  paths: Record<string, Record<string, { requestBody?: { content: Record<string, { schema: Schema }> }; responses: Record<string, unknown>; parameters?: Array<{ name: string; in: string }> }>>;
  components?: { schemas?: Record<string, Schema> };
};
type Schema = { $ref?: string; properties?: Record<string, unknown>; additionalProperties?: unknown; type?: unknown };

let api: ApiHarness;
let doc: Doc;
const registered: Array<{ method: string; path: string }> = [];

beforeAll(async () => {
  api = await startApi({
    beforeListen: (app) =>
      app.addHook('onRoute', (route) => {
        const hidden = (route.schema as { hide?: boolean } | undefined)?.hide === true;
        for (const method of [route.method].flat()) {
          if (method === 'HEAD' || hidden || !route.url.startsWith('/v1/')) continue;
          // fastify's /:id is OpenAPI's /{id}.
          registered.push({ method: method.toLowerCase(), path: route.url.replace(/:([A-Za-z]+)/g, '{$1}') });
        }
      }),
  });
  const res = await api.call('GET', '/v1/openapi.json', { token: null });
  expect(res.status).toBe(200);
  expect(res.contentType).toMatch(/^application\/json/);
  doc = res.body;
});
afterAll(() => api.close());

function resolve(schema: Schema): Schema {
  if (!schema.$ref) return schema;
  const name = schema.$ref.replace('#/components/schemas/', '');
  const target = doc.components?.schemas?.[name];
  expect(target, schema.$ref).toBeDefined();
  return resolve(target!);
}

describe('GET /v1/openapi.json', () => {
  it('is a valid OpenAPI 3.1 document', async () => {
    expect(doc.openapi).toMatch(/^3\.1\./);
    const result = await new Validator().validate(doc as Record<string, unknown>);
    expect(result.errors ?? []).toEqual([]);
    expect(result.valid).toBe(true);
  });

  it('documents every /v1 route the server registers, with its method, and no route that does not exist', () => {
    // The routes this suite is about (SPEC 9, less webhook deliveries and gateway callbacks, which other suites own).
    const expected = [
      'get /v1/subscriptions',
      'post /v1/subscriptions',
      'get /v1/subscriptions/{id}',
      'patch /v1/subscriptions/{id}',
      'post /v1/subscriptions/{id}/pause',
      'post /v1/subscriptions/{id}/resume',
      'post /v1/subscriptions/{id}/cancel',
      'post /v1/subscriptions/{id}/retry',
      'get /v1/subscriptions/{id}/charges',
      'get /v1/subscriptions/{id}/schedule',
      'get /v1/charges',
      'get /v1/events',
      'get /v1/plans',
    ];
    const routes = registered.map((r) => `${r.method} ${r.path}`);
    expect(routes).toEqual(expect.arrayContaining(expected));
    const documented = Object.entries(doc.paths).flatMap(([path, operations]) => Object.keys(operations).map((method) => `${method} ${path}`));
    expect([...documented].sort()).toEqual([...routes].sort());
  });

  it('the create body lists planId, amount and startDate and refuses other fields', () => {
    const body = doc.paths['/v1/subscriptions']!.post!.requestBody!;
    const schema = resolve(body.content['application/json']!.schema);
    expect(Object.keys(schema.properties ?? {})).toEqual(expect.arrayContaining(['planId', 'amount', 'startDate', 'paymentToken', 'customer', 'metadata', 'every', 'sendEvery']));
    expect(schema.additionalProperties).toBe(false);
  });

  it('every write documents its body as closed, its Idempotency-Key and its problems', () => {
    for (const [path, operations] of Object.entries(doc.paths)) {
      for (const [method, operation] of Object.entries(operations)) {
        expect(operation.responses, `${method} ${path}`).toHaveProperty('401');
        expect(operation.responses, `${method} ${path}`).toHaveProperty('403');
        if (method === 'get') continue;
        expect(operation.parameters?.map((p) => `${p.in}:${p.name}`), `${method} ${path}`).toContain('header:idempotency-key');
        expect(operation.responses, `${method} ${path}`).toHaveProperty('422');
        const content = operation.requestBody?.content['application/json'];
        if (content) expect(resolve(content.schema).additionalProperties, `${method} ${path}`).toBe(false);
      }
    }
  });
});
