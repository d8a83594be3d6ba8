/**
 * The read side of /v1 (SPEC section 9): list filters and their bad values,
 * limits, cursor pagination that walks every row exactly once, charges (of
 * all subscriptions and of one), the event outbox for polling, the schedule
 * preview and the plans; a payment token is never shown whole.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectProblem } from '../support/api-checks.js';
import { READ_TOKEN, startApi, type ApiHarness } from '../support/api-harness.js';

let api: ApiHarness;
const ids: Record<string, string> = {};
const TOKENS = ['tok_ok', 'tok_insufficient', 'tok_stolen', 'tok_pending', 'tok_flaky_1'];

async function get(path: string) {
  const res = await api.call('GET', path, { token: READ_TOKEN });
  return res;
}

/** Every item of a list, following nextCursor (sent as `param`) with `limit` per page; fails on a repeated id. */
async function walk(path: string, limit: number, param = 'cursor'): Promise<{ ids: string[]; pages: number }> {
  const seen: string[] = [];
  let cursor: string | null = null;
  let pages = 0;
  do {
    const sep = path.includes('?') ? '&' : '?';
    const res = await get(`${path}${sep}limit=${limit}${cursor ? `&${param}=${encodeURIComponent(cursor)}` : ''}`);
    expect(res.status, res.text).toBe(200);
    expect(res.body.data.length).toBeLessThanOrEqual(limit);
    seen.push(...res.body.data.map((item: { id: string }) => item.id));
    cursor = res.body.nextCursor;
    pages++;
    expect(pages).toBeLessThan(100);
  } while (cursor !== null);
  expect(new Set(seen).size).toBe(seen.length);
  return { ids: seen, pages };
}

beforeAll(async () => {
  api = await startApi(); // 2026-03-01T12:00:00Z
  const create = async (name: string, body: Record<string, unknown>) => {
    const res = await api.call('POST', '/v1/subscriptions', { body });
    expect(res.status, res.text).toBe(201);
    ids[name] = res.body.id;
    api.clock.advance(1000); // distinct createdAt: "oldest first" means something
  };
  // Due today at 10:00 UTC: the engine collects them at once.
  await create('ok', { planId: 'gold-monthly', paymentToken: 'tok_ok', startDate: '2026-03-01', source: 'crm', externalId: 'X1', customer: { email: 'ok@example.com' } });
  await create('soft', { planId: 'gold-monthly', paymentToken: 'tok_insufficient', startDate: '2026-03-01', source: 'crm', externalId: 'X2' });
  await create('hard', { planId: 'gold-monthly', paymentToken: 'tok_stolen', startDate: '2026-03-01', source: 'shop', externalId: 'X1' });
  await create('pending', { planId: 'gold-monthly', paymentToken: 'tok_pending', startDate: '2026-03-01' });
  await create('flaky', { planId: 'gold-monthly', paymentToken: 'tok_flaky_1', startDate: '2026-03-01', customer: { email: 'flaky@example.com' } });
  await create('link', { planId: 'yen-yearly', startDate: '2026-04-01', source: 'shop', externalId: 'Y1', customer: { email: 'ok@example.com' } });
  await create('paused', { planId: 'gold-monthly', paymentToken: 'tok_ok', startDate: '2026-04-01' });
  await create('stopped', { planId: 'gold-monthly', paymentToken: 'tok_ok', startDate: '2026-04-01' });
  await create('ended', { planId: 'gold-monthly', paymentToken: 'tok_ok', startDate: '2026-04-01', source: 'crm', externalId: 'X3' });
  await api.call('POST', `/v1/subscriptions/${ids.paused}/pause`);
  await api.call('POST', `/v1/subscriptions/${ids.stopped}/cancel`, { body: { atPeriodEnd: true } });
  await api.call('POST', `/v1/subscriptions/${ids.ended}/cancel`);
  await api.engine.sweepUntilIdle();
  // tok_flaky_1 failed once: its retry (a day later) is collected now.
  expect((await api.call('POST', `/v1/subscriptions/${ids.flaky}/retry`)).status).toBe(200);
  await api.engine.sweepUntilIdle();
});
afterAll(() => api.close());

const order = () => ['ok', 'soft', 'hard', 'pending', 'flaky', 'link', 'paused', 'stopped', 'ended'].map((n) => ids[n]);

describe('GET /v1/subscriptions', () => {
  it('lists every subscription oldest first in one page by default', async () => {
    const res = await get('/v1/subscriptions');
    expect(res.body.data.map((s: { id: string }) => s.id)).toEqual(order());
    expect(res.body.nextCursor).toBeNull();
  });

  it.each([1, 2, 4, 9, 10])('pagination with limit=%i walks every row exactly once, in order', async (limit) => {
    const { ids: walked, pages } = await walk('/v1/subscriptions', limit);
    expect(walked).toEqual(order());
    expect(pages).toBe(Math.ceil(9 / limit));
  });

  it('pagination with a filter walks only the matching rows', async () => {
    const { ids: walked } = await walk('/v1/subscriptions?status=active', 2);
    expect(walked).toEqual([ids.ok, ids.soft, ids.pending, ids.flaky, ids.link]);
  });

  it.each([
    ['status=active', ['ok', 'soft', 'pending', 'flaky', 'link']],
    ['status=paused', ['paused']],
    ['status=stopped', ['stopped']],
    // tok_stolen is a hard decline: the subscription ends with paymentCancel.
    ['status=terminated', ['hard', 'ended']],
    ['planId=yen-yearly', ['link']],
    ['planId=nope', []],
    ['source=crm', ['ok', 'soft', 'ended']],
    ['source=crm&externalId=X1', ['ok']],
    ['externalId=X1', ['ok', 'hard']],
    ['email=ok%40example.com', ['ok', 'link']],
    ['email=OK%40example.com', []],
    ['status=active&source=shop', ['link']],
  ])('?%s', async (query, names) => {
    const res = await get(`/v1/subscriptions?${query}`);
    expect(res.status, res.text).toBe(200);
    expect(res.body.data.map((s: { id: string }) => s.id)).toEqual(names.map((n) => ids[n]));
  });

  it.each([
    ['status=cancelled', 'status'],
    ['status=', 'status'],
    ['status=active&status=paused', 'status'],
    ['planId=', 'planId'],
    ['email=', 'email'],
    ['limit=0', 'limit'],
    ['limit=501', 'limit'],
    ['limit=-1', 'limit'],
    ['limit=1.5', 'limit'],
    ['limit=ten', 'limit'],
    ['limit=', 'limit'],
    ['limit=1e2', 'limit'],
    ['cursor=not-a-cursor', 'cursor'],
    ['cursor=', 'cursor'],
    [`cursor=${Buffer.from('[1]').toString('base64url')}`, 'cursor'],
    [`cursor=${Buffer.from('["x","y"]').toString('base64url')}`, 'cursor'],
    [`cursor=${Buffer.from('{"createdAt":1}').toString('base64url')}`, 'cursor'],
    ['cursor=%00%01', 'cursor'],
    ['sort=id', 'sort'],
    ['Status=active', 'Status'],
  ])('?%s is 400 naming %s', async (query, parameter) => {
    const res = await get(`/v1/subscriptions?${query}`);
    expectProblem(res, 400);
    expect(res.body.errors[0].parameter).toBe(parameter);
  });

  it('limit bounds 1 and 500 are accepted', async () => {
    expect((await get('/v1/subscriptions?limit=1')).body.data).toHaveLength(1);
    expect((await get('/v1/subscriptions?limit=500')).body.data).toHaveLength(9);
  });

  it('an unknown id is 404', async () => {
    const res = await get('/v1/subscriptions/sub_nobody');
    expectProblem(res, 404);
    expect(res.body.type).toBe('urn:rebill:problem:not-found');
    expectProblem(await get(`/v1/subscriptions/${'x'.repeat(2000)}`), 404);
  });

  it('never shows a payment token whole, in any read', async () => {
    for (const path of ['/v1/subscriptions', `/v1/subscriptions/${ids.ok}`, '/v1/charges', '/v1/events?limit=500', `/v1/subscriptions/${ids.flaky}/charges`]) {
      const res = await get(path);
      expect(res.status).toBe(200);
      for (const token of TOKENS) expect(res.text, `${path} shows ${token}`).not.toContain(`"${token}"`);
    }
    const one = await get(`/v1/subscriptions/${ids.soft}`);
    expect(one.body.paymentToken).toBe('tok_…nt');
  });
});

describe('charges', () => {
  it('GET /v1/charges lists every attempt of every subscription, oldest first', async () => {
    const res = await get('/v1/charges');
    expect(res.status).toBe(200);
    const rows = res.body.data.map((c: { subscriptionId: string; attempt: number; status: string }) => [c.subscriptionId, c.attempt, c.status]);
    expect(rows).toEqual(
      expect.arrayContaining([
        [ids.ok, 1, 'captured'],
        [ids.soft, 1, 'rejected'],
        [ids.hard, 1, 'rejected'],
        [ids.pending, 1, 'pending'],
        [ids.flaky, 1, 'rejected'],
        [ids.flaky, 2, 'captured'],
      ]),
    );
    expect(rows).toHaveLength(6);
    const charge = res.body.data.find((c: { subscriptionId: string }) => c.subscriptionId === ids.ok);
    expect(charge).toMatchObject({ id: `${ids.ok}:1:1`, cycle: 1, operation: 'initial', amount: '9.99', currency: 'USD', gateway: 'sim', dueAt: '2026-03-01T10:00:00Z' });
    const hard = res.body.data.find((c: { subscriptionId: string }) => c.subscriptionId === ids.hard);
    expect(hard).toMatchObject({ declineCode: 'stolen_card', hardDecline: true, rejectedReason: expect.any(String) });
  });

  it.each([
    ['status=captured', 2],
    ['status=rejected', 3],
    ['status=pending', 1],
    ['status=in_flight', 0],
    ['since=2026-03-01T00:00:00Z', 6],
    ['since=2026-03-02T00:00:00%2B01:00', 0],
    ['since=2099-01-01T00:00:00Z', 0],
  ])('?%s gives %i', async (query, count) => {
    const res = await get(`/v1/charges?${query}`);
    expect(res.status, res.text).toBe(200);
    expect(res.body.data).toHaveLength(count);
  });

  it.each([1, 2, 5])('pagination with limit=%i walks every charge exactly once', async (limit) => {
    const all = (await get('/v1/charges')).body.data.map((c: { id: string }) => c.id);
    expect((await walk('/v1/charges', limit)).ids).toEqual(all);
  });

  it.each([
    ['status=declined', 'status'],
    ['status=', 'status'],
    ['since=2026-03-01', 'since'],
    ['since=2026-03-01T00:00:00', 'since'],
    ['since=yesterday', 'since'],
    ['limit=0', 'limit'],
    ['cursor=abc', 'cursor'],
    ['subscriptionId=x', 'subscriptionId'],
  ])('?%s is 400 naming %s', async (query, parameter) => {
    const res = await get(`/v1/charges?${query}`);
    expectProblem(res, 400);
    expect(res.body.errors[0].parameter).toBe(parameter);
  });

  it("GET /v1/subscriptions/{id}/charges lists that subscription's attempts only", async () => {
    const res = await get(`/v1/subscriptions/${ids.flaky}/charges`);
    expect(res.body.data.map((c: { id: string; status: string }) => [c.id, c.status])).toEqual([
      [`${ids.flaky}:1:1`, 'rejected'],
      [`${ids.flaky}:1:2`, 'captured'],
    ]);
    expect((await get(`/v1/subscriptions/${ids.flaky}/charges?status=captured`)).body.data).toHaveLength(1);
    expect((await get(`/v1/subscriptions/${ids.link}/charges`)).body).toEqual({ data: [], nextCursor: null });
    expect((await walk(`/v1/subscriptions/${ids.flaky}/charges`, 1)).ids).toHaveLength(2);
  });

  it('an unknown subscription is 404, not an empty list', async () => {
    expectProblem(await get('/v1/subscriptions/sub_nobody/charges'), 404);
  });
});

describe('GET /v1/events', () => {
  it('polls the outbox in commit order: after, then nextCursor, sees every event once', async () => {
    const all = (await get('/v1/events?limit=500')).body.data as Array<{ id: string }>;
    expect(all.length).toBeGreaterThan(10);
    expect([...all.map((e) => e.id)].sort()).toEqual(all.map((e) => e.id));
    // Events page by `after` (SPEC 9); nextCursor is the id to pass.
    expect((await walk('/v1/events', 4, 'after')).ids).toEqual(all.map((e) => e.id));
    expect((await walk(`/v1/events?subscriptionId=${ids.flaky}`, 1, 'after')).ids).toHaveLength(3);
    const after = await get(`/v1/events?after=${all[2]!.id}&limit=2`);
    expect(after.body.data.map((e: { id: string }) => e.id)).toEqual([all[3]!.id, all[4]!.id]);
    expect(after.body.nextCursor).toBe(all[4]!.id);
    // The number alone works too; past the end the page is empty.
    expect((await get(`/v1/events?after=${Number(all[2]!.id.slice(4))}&limit=1`)).body.data[0].id).toBe(all[3]!.id);
    expect((await get(`/v1/events?after=${all.at(-1)!.id}`)).body).toEqual({ data: [], nextCursor: null });
  });

  it('filters by type, by family and by subscription', async () => {
    const types = async (query: string) => ((await get(`/v1/events?${query}`)).body.data as Array<{ type: string }>).map((e) => e.type);
    expect(await types(`subscriptionId=${ids.flaky}`)).toEqual(['subscription.created', 'charge.failed', 'charge.succeeded']);
    expect(await types(`subscriptionId=${ids.flaky}&type=charge.*`)).toEqual(['charge.failed', 'charge.succeeded']);
    expect(await types(`subscriptionId=${ids.ended}&type=subscription.*`)).toEqual(['subscription.created', 'subscription.cancelled']);
    expect(await types('type=subscription.paused')).toEqual(['subscription.paused']);
    const payment = (await get(`/v1/events?type=charge.succeeded&subscriptionId=${ids.ok}`)).body.data[0];
    expect(payment.data).toMatchObject({ subscription: { id: ids.ok }, charge: { id: `${ids.ok}:1:1`, status: 'captured', amount: '9.99' } });
    expect(await types('subscriptionId=sub_nobody')).toEqual([]);
    const linkSent = (await get(`/v1/events?type=payment_link.sent`)).body.data;
    expect(linkSent).toEqual([]);
  });

  it.each([
    ['type=charge.declined', 'type'],
    ['type=charge', 'type'],
    ['type=*', 'type'],
    ['type=', 'type'],
    ['after=evt_x', 'after'],
    ['after=-1', 'after'],
    ['after=', 'after'],
    ['subscriptionId=', 'subscriptionId'],
    ['limit=0', 'limit'],
    ['limit=501', 'limit'],
    ['cursor=x', 'cursor'],
  ])('?%s is 400 naming %s', async (query, parameter) => {
    const res = await get(`/v1/events?${query}`);
    expectProblem(res, 400);
    expect(res.body.errors[0].parameter).toBe(parameter);
  });
});

describe('GET /v1/subscriptions/{id}/schedule', () => {
  it('gives 12 due dates by default, from the next cycle on', async () => {
    const res = await get(`/v1/subscriptions/${ids.ok}/schedule`);
    expect(res.body.data).toHaveLength(12);
    expect(res.body.data[0]).toEqual({ cycle: 2, dueAt: '2026-04-01T10:00:00Z' });
  });

  it.each([
    [1, 1],
    [100, 100],
  ])('count=%i gives %i', async (count, n) => {
    expect((await get(`/v1/subscriptions/${ids.ok}/schedule?count=${count}`)).body.data).toHaveLength(n);
  });

  it('nothing for a terminated or stopped subscription, or one paused until resumed', async () => {
    for (const name of ['ended', 'stopped', 'paused']) expect((await get(`/v1/subscriptions/${ids[name]}/schedule`)).body.data).toEqual([]);
  });

  it.each(['count=0', 'count=101', 'count=-1', 'count=1.5', 'count=ten', 'count=', 'from=2026-01-01'])('?%s is 400', async (query) => {
    const res = await get(`/v1/subscriptions/${ids.ok}/schedule?${query}`);
    expectProblem(res, 400);
    expect(res.body.errors[0].parameter).toBe(query.split('=')[0]);
  });

  it('an unknown subscription is 404', async () => {
    expectProblem(await get('/v1/subscriptions/sub_nobody/schedule'), 404);
  });
});

describe('GET /v1/plans', () => {
  it('lists the configured plans with amounts as text and their versions', async () => {
    const res = await get('/v1/plans');
    expect(res.status).toBe(200);
    expect(res.body.data).toEqual([
      expect.objectContaining({ id: 'gold-monthly', amount: '9.99', currency: 'USD', every: { unit: 'month', count: 1 }, sendOnHour: 10, mode: 'charge', gateway: 'sim', version: expect.stringMatching(/^[0-9a-f]{12}$/) }),
      expect.objectContaining({ id: 'yen-yearly', amount: '1500', currency: 'JPY', every: { unit: 'year', count: 1 }, mode: 'link' }),
    ]);
  });

  it('takes no query parameters: an unknown one is 400, not ignored', async () => {
    const res = await get('/v1/plans?limit=1');
    expectProblem(res, 400);
    expect(res.body.errors[0].parameter).toBe('limit');
  });
});
