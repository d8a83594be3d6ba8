/**
 * Idempotency-Key on the /v1 writes (SPEC section 9): the first response is
 * stored for 24 h and replayed for the same request, another request with the
 * key is 422, one still running is 409; parallel retries create one
 * subscription; the stored answer survives a restart; a 5xx is not stored.
 */
import { sql } from 'kysely';
import { afterEach, describe, expect, it } from 'vitest';
import { toDbTime } from '../../src/store/index.js';
import { expectProblem, expectRefused } from '../support/api-checks.js';
import { startApi, type ApiHarness } from '../support/api-harness.js';
import { refuseInserts } from '../support/db-faults.js';

const CREATE = '/v1/subscriptions';
const body = { planId: 'gold-monthly', paymentToken: 'tok_ok', startDate: '2026-04-01', metadata: { order: '1001' } };
const key = (k: string) => ({ 'idempotency-key': k });

let api: ApiHarness;
afterEach(async () => {
  await api?.close();
});

const subscriptionCount = async (h: ApiHarness) => (await h.dump()).subscriptions!.length;

describe('Idempotency-Key', () => {
  it('the same key and body replay the first response (status, body, Idempotent-Replayed) and write nothing', async () => {
    api = await startApi();
    const first = await api.call('POST', CREATE, { body, headers: key('k-replay') });
    expect(first.status).toBe(201);
    expect(first.headers.get('idempotent-replayed')).toBeNull();
    const before = await api.dump();
    const again = await api.call('POST', CREATE, { body, headers: key('k-replay') });
    expect(again.status).toBe(201);
    expect(again.headers.get('idempotent-replayed')).toBe('true');
    expect(again.contentType).toMatch(/^application\/json/);
    expect(again.text).toBe(first.text);
    // The same body written with other key order and spacing is the same request.
    const reordered = await api.call('POST', CREATE, { raw: '{ "metadata": {"order": "1001"}, "startDate": "2026-04-01", "paymentToken": "tok_ok", "planId": "gold-monthly" }', headers: key('k-replay') });
    expect(reordered.status).toBe(201);
    expect(reordered.text).toBe(first.text);
    expect(await api.dump()).toEqual(before);
    expect(before.subscriptions).toHaveLength(1);
  });

  it('the same key with another body, path or method is 422 and changes nothing', async () => {
    api = await startApi();
    const first = await api.call('POST', CREATE, { body, headers: key('k-other') });
    const id = first.body.id as string;
    const res = await expectRefused(api, 'POST', CREATE, { body: { ...body, startDate: '2026-04-02' }, headers: key('k-other') }, 422);
    expect(res.body.type).toBe('urn:rebill:problem:idempotency-key-reused');
    await expectRefused(api, 'POST', CREATE, { body: { ...body, metadata: { order: '1002' } }, headers: key('k-other') }, 422);
    await expectRefused(api, 'POST', `${CREATE}/${id}/cancel`, { headers: key('k-other') }, 422);
    await expectRefused(api, 'PATCH', `${CREATE}/${id}`, { body: { metadata: { order: '1001' } }, headers: key('k-other') }, 422);
    expect(await subscriptionCount(api)).toBe(1);
  });

  it('a 4xx answer is stored and replayed: a retried cancel gets its first 200, not a 409', async () => {
    api = await startApi();
    const unknownPlan = { ...body, planId: 'platinum' };
    const refused = await api.call('POST', CREATE, { body: unknownPlan, headers: key('k-400') });
    expectProblem(refused, 400, ['/planId']);
    const replayed = await api.call('POST', CREATE, { body: unknownPlan, headers: key('k-400') });
    expectProblem(replayed, 400, ['/planId']);
    expect(replayed.headers.get('idempotent-replayed')).toBe('true');
    expect(replayed.text).toBe(refused.text);

    const id = (await api.call('POST', CREATE, { body })).body.id as string;
    const cancelled = await api.call('POST', `${CREATE}/${id}/cancel`, { headers: key('k-cancel') });
    expect(cancelled.status).toBe(200);
    const retried = await api.call('POST', `${CREATE}/${id}/cancel`, { headers: key('k-cancel') });
    expect(retried.status).toBe(200);
    expect(retried.text).toBe(cancelled.text);
    expect(retried.headers.get('idempotent-replayed')).toBe('true');
    // Without the key the second cancel is what it is: 409.
    expectProblem(await api.call('POST', `${CREATE}/${id}/cancel`), 409);

    const conflict = await api.call('POST', CREATE, { body: { ...body, id }, headers: key('k-409') });
    expectProblem(conflict, 409);
    const conflictAgain = await api.call('POST', CREATE, { body: { ...body, id }, headers: key('k-409') });
    expect(conflictAgain.headers.get('idempotent-replayed')).toBe('true');
    expectProblem(conflictAgain, 409);
  });

  it('a body refused by its schema never ran, so it does not use up the key', async () => {
    api = await startApi();
    expectProblem(await api.call('POST', CREATE, { body: { ...body, sendOnHour: 99 }, headers: key('k-schema') }), 400, ['/sendOnHour']);
    expect((await api.dump()).idempotency_keys).toEqual([]);
    expect((await api.call('POST', CREATE, { body, headers: key('k-schema') })).status).toBe(201);
  });

  it.each([
    ['256 characters', 'k'.repeat(256)],
    ['empty', ''],
    ['a space inside', 'my key'],
    ['a tab inside', 'my\tkey'],
    ['non-ASCII (sent as Latin-1)', 'schl\u00fcssel'],
  ])('a key that is %s is 400 and nothing is stored or created', async (_what, value) => {
    api = await startApi();
    const res = await expectRefused(api, 'POST', CREATE, { body, headers: { 'idempotency-key': value } }, 400);
    expect(res.body.errors[0]).toMatchObject({ parameter: 'Idempotency-Key' });
    expect((await api.dump()).idempotency_keys).toEqual([]);
  });

  it('a key of 255 visible characters is fine', async () => {
    api = await startApi();
    expect((await api.call('POST', CREATE, { body, headers: key('k'.repeat(255)) })).status).toBe(201);
  });

  it('10 parallel POSTs with one key create exactly one subscription; each answer is that 201 or 409 in progress', async () => {
    api = await startApi();
    const responses = await Promise.all(Array.from({ length: 10 }, () => api.call('POST', CREATE, { body, headers: key('k-parallel') })));
    const created = responses.filter((r) => r.status === 201);
    const busy = responses.filter((r) => r.status === 409);
    expect(created.length + busy.length).toBe(10);
    expect(created.length).toBeGreaterThanOrEqual(1);
    expect(new Set(created.map((r) => r.text)).size).toBe(1);
    expect(created.filter((r) => r.headers.get('idempotent-replayed') === null)).toHaveLength(1);
    for (const r of busy) {
      expectProblem(r, 409);
      expect(r.body.type).toBe('urn:rebill:problem:idempotency-key-in-progress');
      expect(r.headers.get('retry-after')).toBe('1');
    }
    expect(await subscriptionCount(api)).toBe(1);
    // Once it settled, the busy ones' retry gets the stored answer.
    const retry = await api.call('POST', CREATE, { body, headers: key('k-parallel') });
    expect(retry.text).toBe(created[0]!.text);
  });

  it('a request still running with the key is 409 with Retry-After; a claim whose request died is taken over after its lock', async () => {
    api = await startApi();
    await api.call('POST', CREATE, { body, headers: key('k-model') });
    // A claim for the same request under another key, as a request that is still running leaves it.
    const [model] = (await api.dump()).idempotency_keys as Array<Record<string, unknown>>;
    const now = api.clock.now();
    await sql`insert into idempotency_keys (key, request_hash, method, path, state, response_status, response_body, lock_token, locked_until, created_at, expires_at)
      values ('k-running', ${model!.request_hash}, 'POST', '/v1/subscriptions', 'in_progress', null, null, 'another-request', ${toDbTime(now + 60_000)}, ${toDbTime(now)}, ${toDbTime(now + 24 * 3600_000)})`.execute(api.tmp.db);
    const busy = await expectRefused(api, 'POST', CREATE, { body, headers: key('k-running') }, 409);
    expect(busy.body.type).toBe('urn:rebill:problem:idempotency-key-in-progress');
    expect(busy.headers.get('retry-after')).toBe('1');
    // Its request never committed (a completion is atomic with the change): once the lock passes, this one runs it.
    api.clock.advance(60_000);
    const taken = await api.call('POST', CREATE, { body, headers: key('k-running') });
    expect(taken.status, taken.text).toBe(201);
    expect((await api.call('POST', CREATE, { body, headers: key('k-running') })).text).toBe(taken.text);
    expect(await subscriptionCount(api)).toBe(2);
  });

  it('the stored answer survives a restart on the same database', async () => {
    api = await startApi();
    const first = await api.call('POST', CREATE, { body, headers: key('k-restart') });
    expect(first.status).toBe(201);
    api = await api.reopen();
    const again = await api.call('POST', CREATE, { body, headers: key('k-restart') });
    expect(again.status).toBe(201);
    expect(again.headers.get('idempotent-replayed')).toBe('true');
    expect(again.text).toBe(first.text);
    await expectRefused(api, 'POST', CREATE, { body: { ...body, startDate: '2026-05-01' }, headers: key('k-restart') }, 422);
    expect(await subscriptionCount(api)).toBe(1);
  });

  it('is kept for 24 hours, then forgotten', async () => {
    api = await startApi();
    const first = await api.call('POST', CREATE, { body, headers: key('k-ttl') });
    api.clock.advance(24 * 3600_000 - 1);
    expect((await api.call('POST', CREATE, { body, headers: key('k-ttl') })).headers.get('idempotent-replayed')).toBe('true');
    api.clock.advance(1);
    const later = await api.call('POST', CREATE, { body, headers: key('k-ttl') });
    expect(later.status).toBe(201);
    expect(later.headers.get('idempotent-replayed')).toBeNull();
    expect(later.body.id).not.toBe(first.body.id);
  });

  it('a 5xx is not stored: the change rolled back, the key is free, the client sees a title only', async () => {
    api = await startApi();
    const lift = await refuseInserts(api.tmp.db, 'subscriptions', 'disk on fire at /srv/rebill/secret.ts:12');
    const before = await api.dump();
    const failed = await api.call('POST', CREATE, { body, headers: key('k-500') });
    expectProblem(failed, 500);
    expect(failed.body).toEqual({ type: 'about:blank', title: 'Internal Server Error', status: 500 });
    expect(await api.dump()).toEqual(before);
    const failedWithoutKey = await api.call('POST', CREATE, { body });
    expect(failedWithoutKey.body).toEqual({ type: 'about:blank', title: 'Internal Server Error', status: 500 });
    await lift();
    const retried = await api.call('POST', CREATE, { body, headers: key('k-500') });
    expect(retried.status).toBe(201);
    expect(retried.headers.get('idempotent-replayed')).toBeNull();
  });
});
