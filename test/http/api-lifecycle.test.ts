/**
 * The lifecycle writes of /v1 (SPEC sections 5 and 9): pause, resume, cancel,
 * retry and PATCH, over real HTTP against a real engine and SQLite file.
 * Refusals are problem+json and change nothing; accepted changes write the
 * events the contract names.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { expectRefused } from '../support/api-checks.js';
import { READ_TOKEN, startApi, type ApiHarness } from '../support/api-harness.js';

const BAD_DATES = ['2030-13-01', '2030-02-30', '1969-12-31', '2200-01-01', 'tomorrow', '2030-01-01T00:00:00Z'];

let api: ApiHarness;
beforeAll(async () => {
  api = await startApi(); // 2026-03-01T12:00:00Z
});
afterAll(() => api.close());

/** A new gold-monthly subscription starting 2026-04-01 (cycles at 10:00 UTC on the 1st). */
async function create(h: ApiHarness = api, extra: Record<string, unknown> = {}): Promise<string> {
  const res = await h.call('POST', '/v1/subscriptions', { body: { planId: 'gold-monthly', paymentToken: 'tok_ok', startDate: '2026-04-01', ...extra } });
  expect(res.status, res.text).toBe(201);
  return res.body.id as string;
}

const sub = (id: string, action = '') => `/v1/subscriptions/${id}${action}`;

async function events(h: ApiHarness, id: string, type?: string) {
  const res = await h.call('GET', `/v1/events?subscriptionId=${id}${type ? `&type=${type}` : ''}`, { token: READ_TOKEN });
  expect(res.status).toBe(200);
  return { list: res.body.data as Array<{ type: string; data: Record<string, unknown> }>, text: res.text };
}

describe('pause', () => {
  it('now: paused at once, nothing due, subscription.paused written', async () => {
    const id = await create();
    const res = await api.call('POST', sub(id, '/pause'));
    expect(res.status, res.text).toBe(200);
    expect(res.body).toMatchObject({ status: 'paused', nextPaymentAction: 'none', nextPaymentAt: null, pause: { resumeDate: null } });
    expect((await events(api, id, 'subscription.paused')).list).toHaveLength(1);
  });

  it('scheduled, with a resumeDate: still active, and the schedule leaves out the cycles due in the window', async () => {
    const id = await create();
    const res = await api.call('POST', sub(id, '/pause'), { body: { pauseDate: '2026-05-10', resumeDate: '2026-07-01' } });
    expect(res.status, res.text).toBe(200);
    expect(res.body).toMatchObject({ status: 'active', pause: { pauseDate: '2026-05-10T00:00:00Z', resumeDate: '2026-07-01T00:00:00Z' } });
    const schedule = await api.call('GET', sub(id, '/schedule?count=4'), { token: READ_TOKEN });
    expect(schedule.body.data.map((c: { dueAt: string }) => c.dueAt)).toEqual(['2026-04-01T10:00:00Z', '2026-05-01T10:00:00Z', '2026-07-01T10:00:00Z', '2026-08-01T10:00:00Z']);
    expect((await events(api, id, 'subscription.paused')).list).toHaveLength(0);
  });

  it('dates are local dates in the subscription time zone', async () => {
    const id = await create(api, { timezone: 'Asia/Tokyo' });
    const res = await api.call('POST', sub(id, '/pause'), { body: { pauseDate: '2026-05-10', resumeDate: '2026-06-10' } });
    expect(res.body.pause).toEqual({ pauseDate: '2026-05-09T15:00:00Z', resumeDate: '2026-06-09T15:00:00Z' });
  });

  it('a paused subscription may move its resume date', async () => {
    const id = await create();
    await api.call('POST', sub(id, '/pause'));
    const res = await api.call('POST', sub(id, '/pause'), { body: { resumeDate: '2026-09-01' } });
    expect(res.status, res.text).toBe(200);
    expect(res.body).toMatchObject({ status: 'paused', pause: { resumeDate: '2026-09-01T00:00:00Z' } });
  });

  it.each<[string, Record<string, unknown>, string[]]>([
    ['resumeDate before pauseDate', { pauseDate: '2026-05-10', resumeDate: '2026-05-01' }, ['/resumeDate']],
    ['resumeDate equal to pauseDate', { pauseDate: '2026-05-10', resumeDate: '2026-05-10' }, ['/resumeDate']],
    ['resumeDate in the past for a pause now', { resumeDate: '2026-01-01' }, ['/resumeDate']],
    ['resumeDate today (its start has passed)', { resumeDate: '2026-03-01' }, ['/resumeDate']],
    ['resumeDate before a past pauseDate', { pauseDate: '2026-01-10', resumeDate: '2026-02-01' }, ['/resumeDate']],
    ['an unknown field', { pauseDate: '2026-05-10', until: '2026-06-01' }, ['/until']],
    ['pauseDate a number', { pauseDate: 20260510 }, ['/pauseDate']],
    ...BAD_DATES.map((d): [string, Record<string, unknown>, string[]] => [`pauseDate ${d}`, { pauseDate: d }, ['/pauseDate']]),
    ...BAD_DATES.map((d): [string, Record<string, unknown>, string[]] => [`resumeDate ${d}`, { resumeDate: d }, ['/resumeDate']]),
  ])('%s is 400 and changes nothing', async (_name, body, pointers) => {
    const id = await create();
    await expectRefused(api, 'POST', sub(id, '/pause'), { body }, 400, pointers);
  });

  it('a terminated or stopped subscription cannot be paused (409, nothing changed)', async () => {
    const ended = await create();
    await api.call('POST', sub(ended, '/cancel'));
    const res = await expectRefused(api, 'POST', sub(ended, '/pause'), {}, 409);
    expect(res.body.type).toBe('urn:rebill:problem:subscription-not-active');
    const stopped = await create();
    await api.call('POST', sub(stopped, '/cancel'), { body: { atPeriodEnd: true } });
    await expectRefused(api, 'POST', sub(stopped, '/pause'), { body: { pauseDate: '2026-06-01' } }, 409);
  });
});

describe('resume', () => {
  it('of an active subscription is 409 and changes nothing', async () => {
    const id = await create();
    const res = await expectRefused(api, 'POST', sub(id, '/resume'), {}, 409);
    expect(res.body.type).toBe('urn:rebill:problem:subscription-not-paused');
  });

  it('drops a pause that has not started', async () => {
    const id = await create();
    await api.call('POST', sub(id, '/pause'), { body: { pauseDate: '2026-05-10' } });
    const res = await api.call('POST', sub(id, '/resume'), { body: {} });
    expect(res.status, res.text).toBe(200);
    expect(res.body).toMatchObject({ status: 'active', pause: null, nextPaymentAt: '2026-04-01T10:00:00Z' });
  });

  it('with a body other than {} is 400', async () => {
    const id = await create();
    await api.call('POST', sub(id, '/pause'));
    await expectRefused(api, 'POST', sub(id, '/resume'), { body: { at: '2026-04-01' } }, 400, ['/at']);
  });

  describe('after time has passed', () => {
    let moving: ApiHarness | undefined;
    afterEach(async () => {
      await moving?.close();
      moving = undefined;
    });

    it('the next cycle is the first due after the resume (no back-billing); the missed ones are skipped', async () => {
      moving = await startApi();
      const id = await create(moving);
      await moving.call('POST', sub(id, '/pause'));
      moving.clock.set(Date.parse('2026-05-15T08:00:00Z'));
      const res = await moving.call('POST', sub(id, '/resume'));
      expect(res.status, res.text).toBe(200);
      expect(res.body).toMatchObject({ status: 'active', pause: null, nextPaymentAt: '2026-06-01T10:00:00Z' });
      const { list } = await events(moving, id);
      expect(list.map((e) => e.type)).toEqual(['subscription.created', 'subscription.paused', 'subscription.resumed', 'cycle.skipped', 'cycle.skipped']);
      expect(list.filter((e) => e.type === 'cycle.skipped').map((e) => e.data.reason)).toEqual(['paused', 'paused']);
    });
  });
});

describe('cancel', () => {
  it('now: terminated by the user, subscription.cancelled written; a second cancel is 409 and changes nothing', async () => {
    const id = await create();
    const res = await api.call('POST', sub(id, '/cancel'));
    expect(res.status, res.text).toBe(200);
    expect(res.body).toMatchObject({ status: 'terminated', terminationType: 'userCancel', nextPaymentAction: 'none', nextPaymentAt: null });
    expect((await events(api, id, 'subscription.cancelled')).list).toHaveLength(1);
    const again = await expectRefused(api, 'POST', sub(id, '/cancel'), { body: { atPeriodEnd: false } }, 409);
    expect(again.body.type).toBe('urn:rebill:problem:subscription-terminated');
  });

  it('at period end: stopped now, terminated when the period ends; asking again changes nothing', async () => {
    const id = await create();
    const res = await api.call('POST', sub(id, '/cancel'), { body: { atPeriodEnd: true } });
    expect(res.status, res.text).toBe(200);
    expect(res.body).toMatchObject({ status: 'stopped', terminationType: null });
    const [cancelled] = (await events(api, id, 'subscription.cancelled')).list;
    expect(cancelled!.data).toMatchObject({ atPeriodEnd: true, terminationType: 'userCancel', endsAt: '2026-04-01T10:00:00Z' });
    const before = await api.dump();
    const again = await api.call('POST', sub(id, '/cancel'), { body: { atPeriodEnd: true } });
    expect(again.status).toBe(200);
    expect(again.body.status).toBe('stopped');
    expect(await api.dump()).toEqual(before);
    // ...and an immediate cancel still ends it now.
    expect((await api.call('POST', sub(id, '/cancel'))).body).toMatchObject({ status: 'terminated', terminationType: 'userCancel' });
  });

  it.each([
    ['atPeriodEnd as a string', { atPeriodEnd: 'true' }, ['/atPeriodEnd']],
    ['atPeriodEnd null', { atPeriodEnd: null }, ['/atPeriodEnd']],
    ['atPeriodEnd 1', { atPeriodEnd: 1 }, ['/atPeriodEnd']],
    ['an unknown field', { atPeriodEnd: true, reason: 'too expensive' }, ['/reason']],
  ])('%s is 400 and changes nothing', async (_name, body, pointers) => {
    const id = await create();
    await expectRefused(api, 'POST', sub(id, '/cancel'), { body }, 400, pointers);
  });
});

describe('retry', () => {
  it('with nothing open is 409 and changes nothing', async () => {
    const id = await create();
    const res = await expectRefused(api, 'POST', sub(id, '/retry'), {}, 409);
    expect(res.body.type).toBe('urn:rebill:problem:nothing-to-retry');
    await api.call('POST', sub(id, '/pause'));
    await expectRefused(api, 'POST', sub(id, '/retry'), { body: {} }, 409);
    await expectRefused(api, 'POST', sub(id, '/retry'), { body: { now: true } }, 400, ['/now']);
  });

  describe('after a declined charge', () => {
    let live: ApiHarness | undefined;
    afterEach(async () => {
      await live?.close();
      live = undefined;
    });

    it('a card update then retry collects now with the new token; the event names the change, never the token', async () => {
      live = await startApi();
      // Due today at 10:00 UTC (now is 12:00): the engine collects it at once.
      const id = await create(live, { paymentToken: 'tok_insufficient', startDate: '2026-03-01' });
      await live.engine.sweepUntilIdle();
      const declined = await live.call('GET', sub(id));
      expect(declined.body).toMatchObject({ nextPaymentAction: 'retry', nextPaymentAt: '2026-03-02T12:00:00Z' });

      const patched = await live.call('PATCH', sub(id), { body: { paymentToken: 'tok_ok' } });
      expect(patched.status, patched.text).toBe(200);
      expect(patched.body.paymentToken).toBe('tok_…');
      const updated = await events(live, id, 'subscription.updated');
      expect(updated.list).toHaveLength(1);
      expect(updated.list[0]!.data.changed).toEqual(['paymentToken']);
      expect(updated.text).not.toContain('tok_ok');
      expect(updated.text).not.toContain('tok_insufficient');

      const retried = await live.call('POST', sub(id, '/retry'));
      expect(retried.status, retried.text).toBe(200);
      expect(retried.body).toMatchObject({ nextPaymentAction: 'retry', nextPaymentAt: '2026-03-01T12:00:00Z' });
      await live.engine.sweepUntilIdle();

      const charges = await live.call('GET', sub(id, '/charges'), { token: READ_TOKEN });
      expect(charges.body.data.map((c: { attempt: number; status: string }) => [c.attempt, c.status])).toEqual([
        [1, 'rejected'],
        [2, 'captured'],
      ]);
      expect((await live.call('GET', sub(id))).body).toMatchObject({ completedCycles: 1, nextPaymentAt: '2026-04-01T10:00:00Z' });
      // Nothing open any more.
      await expectRefused(live, 'POST', sub(id, '/retry'), {}, 409);
    });
  });
});

describe('PATCH', () => {
  it('metadata merges, null removes a key, and the event names it', async () => {
    const id = await create(api, { metadata: { a: '1', b: '2' } });
    const res = await api.call('PATCH', sub(id), { body: { metadata: { b: null, c: '3' } } });
    expect(res.status, res.text).toBe(200);
    expect(res.body.metadata).toEqual({ a: '1', c: '3' });
    expect((await events(api, id, 'subscription.updated')).list.map((e) => e.data.changed)).toEqual([['metadata']]);
  });

  it('a patch that changes nothing writes no event', async () => {
    const id = await create(api, { metadata: { a: '1' } });
    const before = await api.dump();
    for (const body of [{ metadata: { a: '1' } }, { metadata: { gone: null } }, { paymentToken: 'tok_ok' }, { metadata: {} }]) {
      const res = await api.call('PATCH', sub(id), { body });
      expect(res.status, res.text).toBe(200);
    }
    const after = await api.dump();
    expect(after.events).toEqual(before.events);
  });

  it('customer: the first contact details create the customer, later ones update it', async () => {
    const id = await create();
    const first = await api.call('PATCH', sub(id), { body: { customer: { email: 'new@example.com' } } });
    expect(first.status, first.text).toBe(200);
    expect(first.body.customer).toMatchObject({ id: expect.any(String), email: 'new@example.com' });
    const second = await api.call('PATCH', sub(id), { body: { customer: { firstName: 'Grace', phone: '+4912345' } } });
    expect(second.body.customer).toEqual({ id: first.body.customer.id, email: 'new@example.com', firstName: 'Grace', phone: '+4912345' });
    expect((await events(api, id, 'subscription.updated')).list.map((e) => e.data.changed)).toEqual([['customer'], ['customer']]);
  });

  it('the payment token of a link-mode subscription is 400 at /paymentToken (there is none to update)', async () => {
    const res = await api.call('POST', '/v1/subscriptions', { body: { planId: 'yen-yearly' } });
    await expectRefused(api, 'PATCH', sub(res.body.id), { body: { paymentToken: 'tok_ok' } }, 400, ['/paymentToken']);
  });

  it('a terminated subscription is 409 and changes nothing', async () => {
    const id = await create();
    await api.call('POST', sub(id, '/cancel'));
    for (const body of [{ metadata: { a: '1' } }, { paymentToken: 'tok_new_123456' }, { customer: { email: 'late@example.com' } }]) {
      const res = await expectRefused(api, 'PATCH', sub(id), { body }, 409);
      expect(res.body.type).toBe('urn:rebill:problem:subscription-terminated');
    }
  });

  it.each([
    ['an empty patch', {}, ['']],
    ['an unknown field', { planId: 'yen-yearly' }, ['/planId']],
    ['an empty token', { paymentToken: '' }, ['/paymentToken']],
    ['a token that is a number', { paymentToken: 4242 }, ['/paymentToken']],
    ['metadata a string', { metadata: 'a=1' }, ['/metadata']],
    ['a metadata number', { metadata: { a: 1 } }, ['/metadata/a']],
    ['a customer id', { customer: { id: 'cus_other' } }, ['/customer/id']],
    ['a customer email that is not one', { customer: { email: 'nope' } }, ['/customer/email']],
    ['an unknown customer field', { customer: { mail: 'a@example.com' } }, ['/customer/mail']],
    ['51 metadata keys', { metadata: Object.fromEntries(Array.from({ length: 51 }, (_, i) => [`k${i}`, 'v'])) }, ['/metadata']],
    // The customer row is written first; the refusal must roll it back too.
    ['a customer change with 51 metadata keys', { customer: { email: 'rolled-back@example.com' }, metadata: Object.fromEntries(Array.from({ length: 51 }, (_, i) => [`k${i}`, 'v'])) }, ['/metadata']],
  ])('%s is 400 and changes nothing', async (_name, body, pointers) => {
    const id = await create(api, { metadata: { a: '1' } });
    await expectRefused(api, 'PATCH', sub(id), { body }, 400, pointers);
  });

  it('metadata that would pass 50 keys once merged is 400 at /metadata and changes nothing', async () => {
    const id = await create(api, { metadata: Object.fromEntries(Array.from({ length: 40 }, (_, i) => [`old${i}`, 'v'])) });
    const res = await expectRefused(api, 'PATCH', sub(id), { body: { metadata: Object.fromEntries(Array.from({ length: 11 }, (_, i) => [`new${i}`, 'v'])) } }, 400, ['/metadata']);
    expect(res.body.errors[0].detail).toMatch(/51/);
  });
});

describe('row version (migration 0006)', () => {
  it('every accepted write bumps the version the engine checks its outcomes against; a refused one does not', async () => {
    const id = await create();
    const version = async () => Number((await api.tmp.db.selectFrom('subscriptions').select('version').where('id', '=', id).executeTakeFirstOrThrow()).version);
    expect(await version()).toBe(0);
    expect((await api.call('PATCH', sub(id), { body: { metadata: { a: '1' } } })).status).toBe(200);
    expect(await version()).toBe(1);
    expect((await api.call('PATCH', sub(id), { body: { customer: { email: 'v@example.com' } } })).status).toBe(200);
    expect(await version()).toBeGreaterThan(1);
    const afterPatch = await version();
    expect((await api.call('POST', sub(id, '/pause'))).status).toBe(200);
    expect(await version()).toBe(afterPatch + 1);
    expect((await api.call('POST', sub(id, '/resume'))).status).toBe(200);
    expect(await version()).toBe(afterPatch + 2);
    // Refused (nothing to retry): nothing written, the version stays.
    expect((await api.call('POST', sub(id, '/retry'))).status).toBe(409);
    expect(await version()).toBe(afterPatch + 2);
    expect((await api.call('POST', sub(id, '/cancel'), { body: { atPeriodEnd: false } })).status).toBe(200);
    expect(await version()).toBe(afterPatch + 3);
  });
});
