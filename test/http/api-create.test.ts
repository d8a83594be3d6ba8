/**
 * POST /v1/subscriptions against bad and good input (SPEC sections 3, 5, 9):
 * every refusal is problem+json at the right JSON pointer and leaves every
 * table as it was; every acceptance stores what the contract says.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectProblem, expectRefused } from '../support/api-checks.js';
import { READ_TOKEN, startApi, type ApiHarness, type CallOptions } from '../support/api-harness.js';

const CREATE = '/v1/subscriptions';
const onPlan = { planId: 'gold-monthly', paymentToken: 'tok_ok', startDate: '2026-04-01' };
const inline = { amount: '5.00', currency: 'USD', every: 'MONTH', paymentToken: 'tok_ok', startDate: '2026-04-01' };
const manyKeys = (n: number) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`k${i}`, 'v']));

let api: ApiHarness;
beforeAll(async () => {
  api = await startApi();
  // Something in every table the create touches, so "unchanged" is not "still empty".
  const seed = await api.call('POST', CREATE, { body: { ...onPlan, source: 'shop', externalId: 'seed', customer: { email: 'seed@example.com' } } });
  expect(seed.status).toBe(201);
});
afterAll(() => api.close());

interface BadCase {
  readonly name: string;
  readonly call: CallOptions;
  readonly status?: number;
  readonly pointers: readonly string[];
}

const body = (value: unknown): CallOptions => ({ body: value });
const text = (value: string): CallOptions => ({ raw: value });

const wrongTypes: BadCase[] = [
  { name: 'planId a number', call: body({ ...onPlan, planId: 5 }), pointers: ['/planId'] },
  { name: 'paymentToken a number', call: body({ ...onPlan, paymentToken: 4242 }), pointers: ['/paymentToken'] },
  { name: 'startDate a number', call: body({ ...onPlan, startDate: 20300101 }), pointers: ['/startDate'] },
  { name: 'sendOnHour a word', call: body({ ...onPlan, sendOnHour: 'ten' }), pointers: ['/sendOnHour'] },
  { name: 'sendOnHour 24', call: body({ ...onPlan, sendOnHour: 24 }), pointers: ['/sendOnHour'] },
  { name: 'sendOnHour 9.5', call: body({ ...onPlan, sendOnHour: 9.5 }), pointers: ['/sendOnHour'] },
  { name: 'externalId true', call: body({ ...onPlan, externalId: true }), pointers: ['/externalId'] },
  { name: 'customer a string', call: body({ ...onPlan, customer: 'a@example.com' }), pointers: ['/customer'] },
  { name: 'customer email not an email', call: body({ ...onPlan, customer: { email: 'not-an-email' } }), pointers: ['/customer/email'] },
  { name: 'metadata a list', call: body({ ...onPlan, metadata: ['a'] }), pointers: ['/metadata'] },
  { name: 'maxCycles 1.5', call: body({ ...inline, maxCycles: 1.5 }), pointers: ['/maxCycles'] },
  { name: 'mode cash', call: body({ ...inline, mode: 'cash' }), pointers: ['/mode'] },
  { name: 'monthEnd wrap', call: body({ ...inline, monthEnd: 'wrap' }), pointers: ['/monthEnd'] },
  { name: 'timezone unknown', call: body({ ...onPlan, timezone: 'Mars/Olympus' }), pointers: ['/timezone'] },
  { name: 'id with a slash', call: body({ ...onPlan, id: 'a/b' }), pointers: ['/id'] },
  { name: 'trial zero', call: body({ ...inline, trial: 'P0D' }), pointers: ['/trial'] },
  { name: 'trial not a duration', call: body({ ...inline, trial: '14 days' }), pointers: ['/trial'] },
];

const unknownFields: BadCase[] = [
  { name: 'top level', call: body({ ...onPlan, plan: 'gold-monthly' }), pointers: ['/plan'] },
  { name: 'top level typo', call: body({ ...onPlan, startdate: '2026-04-01' }), pointers: ['/startdate'] },
  { name: 'in customer', call: body({ ...onPlan, customer: { email: 'a@example.com', emial: 'a@example.com' } }), pointers: ['/customer/emial'] },
  { name: 'in every', call: body({ ...inline, every: { unit: 'month', cuont: 1 } }), pointers: ['/every/cuont'] },
  { name: 'in sendEvery', call: body({ ...inline, every: undefined, sendEvery: { unit: 'month', count: 1, anchor: 'x' } }), pointers: ['/sendEvery/anchor'] },
];

const BAD_DATES = ['2030-13-01', '2030-02-30', '1969-12-31', '2200-01-01', 'tomorrow', '2030-1-01', '2030-01-01T00:00:00Z', ''];
const badDates: BadCase[] = [
  ...BAD_DATES.map((d) => ({ name: `startDate ${JSON.stringify(d)}`, call: body({ ...onPlan, startDate: d }), pointers: ['/startDate'] })),
  // An impossible date is one problem; 1969-12-31 is also before the start date, and says so.
  ...BAD_DATES.map((d) => ({ name: `endDate ${JSON.stringify(d)}`, call: body({ ...onPlan, endDate: d }), pointers: d === '1969-12-31' ? ['/endDate', '/endDate'] : ['/endDate'] })),
  { name: 'endDate before startDate', call: body({ ...onPlan, endDate: '2026-03-31' }), pointers: ['/endDate'] },
];

const planAndMoney: BadCase[] = [
  { name: 'unknown plan', call: body({ ...onPlan, planId: 'platinum' }), pointers: ['/planId'] },
  { name: 'no plan and no schedule', call: body({ paymentToken: 'tok_ok' }), pointers: ['/planId'] },
  { name: 'unknown currency', call: body({ ...inline, currency: 'XYZ' }), pointers: ['/currency'] },
  { name: 'two-letter currency', call: body({ ...inline, currency: 'US' }), pointers: ['/currency'] },
  { name: 'currency a number', call: body({ ...inline, currency: 840 }), pointers: ['/currency'] },
  { name: 'inline without currency', call: body({ ...inline, currency: undefined }), pointers: ['/currency'] },
  { name: 'inline without amount', call: body({ ...inline, amount: undefined }), pointers: ['/amount'] },
  { name: 'inline without every', call: body({ ...inline, every: undefined }), pointers: ['/every'] },
  { name: 'amount with 3 decimals in USD', call: body({ ...inline, amount: '9.999' }), pointers: ['/amount'] },
  { name: 'amount with decimals in JPY', call: body({ ...inline, currency: 'JPY', amount: '1500.5' }), pointers: ['/amount'] },
  { name: 'amount 9.990 as a number', call: text(JSON.stringify({ ...inline, amount: 0 }).replace('"amount":0', '"amount":9.990')), pointers: ['/amount'] },
  {
    name: 'amount 9.999999999999999999 as a JSON number (refused, not rounded to 10)',
    call: text(JSON.stringify({ ...inline, amount: 0 }).replace('"amount":0', '"amount":9.999999999999999999')),
    pointers: ['/amount'],
  },
  { name: 'amount 1e3 as a JSON number', call: text(JSON.stringify({ ...inline, amount: 0 }).replace('"amount":0', '"amount":1e3')), pointers: ['/amount'] },
  { name: 'amount "1e3"', call: body({ ...inline, amount: '1e3' }), pointers: ['/amount'] },
  { name: 'amount "0x10"', call: body({ ...inline, amount: '0x10' }), pointers: ['/amount'] },
  { name: 'amount " 9.99"', call: body({ ...inline, amount: ' 9.99' }), pointers: ['/amount'] },
  { name: 'amount "9,99"', call: body({ ...inline, amount: '9,99' }), pointers: ['/amount'] },
  { name: 'amount negative', call: body({ ...inline, amount: '-1.00' }), pointers: ['/amount'] },
  { name: 'amount -1 as a number', call: text(JSON.stringify({ ...inline, amount: 0 }).replace('"amount":0', '"amount":-1')), pointers: ['/amount'] },
  { name: 'amount zero without a trial', call: body({ ...inline, amount: '0.00' }), pointers: ['/amount'] },
  { name: 'amount true', call: body({ ...inline, amount: true }), pointers: ['/amount'] },
  { name: 'every and sendEvery both', call: body({ ...inline, sendEvery: 'MONTH' }), pointers: ['/sendEvery'] },
  { name: 'every fortnight', call: body({ ...inline, every: 'fortnight' }), pointers: ['/every'] },
  { name: 'every count 0', call: body({ ...inline, every: { unit: 'month', count: 0 } }), pointers: ['/every/count'] },
  { name: 'every unit fortnight', call: body({ ...inline, every: { unit: 'fortnight', count: 1 } }), pointers: ['/every/unit'] },
  { name: 'planId with an inline amount', call: body({ ...onPlan, amount: '1.00' }), pointers: ['/amount'] },
  { name: 'planId with an inline schedule', call: body({ ...onPlan, currency: 'USD', every: 'MONTH' }), pointers: ['/currency', '/every'] },
  { name: 'unknown gateway in an inline schedule', call: body({ ...inline, gateway: 'stripe' }), pointers: ['/gateway'] },
  { name: 'charge-mode plan without paymentToken', call: body({ ...onPlan, paymentToken: undefined }), pointers: ['/paymentToken'] },
  { name: 'charge-mode plan with paymentToken null', call: body({ ...onPlan, paymentToken: null }), pointers: ['/paymentToken'] },
  { name: 'inline charge schedule without paymentToken', call: body({ ...inline, paymentToken: undefined }), pointers: ['/paymentToken'] },
  { name: 'empty paymentToken', call: body({ ...onPlan, paymentToken: '' }), pointers: ['/paymentToken'] },
  { name: 'unknown customerId', call: body({ ...onPlan, customerId: 'cus_nobody' }), pointers: ['/customerId'] },
];

const metadata: BadCase[] = [
  { name: '51 keys', call: body({ ...onPlan, metadata: manyKeys(51) }), pointers: ['/metadata'] },
  { name: 'a number value', call: body({ ...onPlan, metadata: { partner: 7 } }), pointers: ['/metadata/partner'] },
  { name: 'a boolean value', call: body({ ...onPlan, metadata: { vip: true } }), pointers: ['/metadata/vip'] },
  { name: 'a null value', call: body({ ...onPlan, metadata: { gone: null } }), pointers: ['/metadata/gone'] },
  { name: 'a nested object', call: body({ ...onPlan, metadata: { nested: { a: 'b' } } }), pointers: ['/metadata/nested'] },
  // The amount parser keeps the text of numbers under an `amount` key: inside metadata it must still be refused.
  { name: 'a number under the key "amount"', call: body({ ...onPlan, metadata: { amount: 12 } }), pointers: ['/metadata/amount'] },
  { name: 'a key over 40 characters', call: body({ ...onPlan, metadata: { ['k'.repeat(41)]: 'v' } }), pointers: [`/metadata/${'k'.repeat(41)}`] },
  { name: 'an empty key', call: body({ ...onPlan, metadata: { '': 'v' } }), pointers: ['/metadata/'] },
  { name: 'a value over 500 characters', call: body({ ...onPlan, metadata: { note: 'x'.repeat(501) } }), pointers: ['/metadata/note'] },
  { name: 'a key with a slash (escaped in the pointer)', call: body({ ...onPlan, metadata: { 'a/b~c': 1 } }), pointers: ['/metadata/a~1b~0c'] },
];

describe('POST /v1/subscriptions refuses bad input with problem+json at the field, and changes nothing', () => {
  for (const [group, cases] of [
    ['wrong types', wrongTypes],
    ['unknown fields', unknownFields],
    ['bad dates', badDates],
    ['plans, schedules and money', planAndMoney],
    ['metadata', metadata],
  ] as const) {
    describe(group, () => {
      it.each(cases.map((c) => [c.name, c] as const))('%s', async (_name, c) => {
        await expectRefused(api, 'POST', CREATE, c.call, c.status ?? 400, c.pointers);
      });
    });
  }

  it('names every problem of a body at once', async () => {
    const res = await expectRefused(api, 'POST', CREATE, body({ planId: 'gold-monthly', paymentToken: 'tok_ok', startDate: '2030-02-30', sendOnHour: 25, colour: 'red' }), 400);
    expect(res.body.errors.map((e: { pointer: string }) => e.pointer).sort()).toEqual(['/colour', '/sendOnHour', '/startDate']);
    expect(res.body.detail).toMatch(/and 2 more/);
  });

  it('refuses customer and customerId together instead of ignoring one of them', async () => {
    const known = (await api.call('GET', '/v1/subscriptions?source=shop&externalId=seed')).body.data[0].customer.id;
    const res = await expectRefused(api, 'POST', CREATE, body({ ...onPlan, customerId: known, customer: { email: 'other@example.com' } }), 400, ['/customer']);
    expect(res.body.errors[0].detail).toMatch(/customerId/);
  });

  it('never repeats a mistyped payment token in the message', async () => {
    const res = await expectRefused(api, 'POST', CREATE, body({ ...onPlan, paymentToken: { card: '4242424242424242' } }), 400, ['/paymentToken']);
    expect(res.text).not.toContain('4242424242424242');
  });

  it('a read token gets 403 and nothing is created', async () => {
    await expectRefused(api, 'POST', CREATE, { body: onPlan, token: READ_TOKEN }, 403);
  });
});

describe('POST /v1/subscriptions accepts what the contract allows', () => {
  it('a link-mode plan (yen-yearly) needs no payment token', async () => {
    const res = await api.call('POST', CREATE, { body: { planId: 'yen-yearly', startDate: '2026-04-01' } });
    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({ planId: 'yen-yearly', amount: '1500', currency: 'JPY', paymentToken: null, nextPaymentAction: 'sendLink', nextPaymentAt: '2026-04-01T00:00:00Z' });
  });

  it('an amount written as a JSON number is taken by its text: 9.99 is 9.99', async () => {
    const res = await api.call('POST', CREATE, { raw: JSON.stringify({ ...inline, amount: 0 }).replace('"amount":0', '"amount":9.99') });
    expect(res.status, res.text).toBe(201);
    expect(res.body).toMatchObject({ amount: '9.99', currency: 'USD', planId: null });
  });

  it('a zero amount is allowed with a trial', async () => {
    const res = await api.call('POST', CREATE, { body: { ...inline, amount: '0', trial: 'P14D' } });
    expect(res.status, res.text).toBe(201);
    expect(res.body).toMatchObject({ amount: '0.00', nextPaymentAt: '2026-04-15T00:00:00Z' });
  });

  it('an inline schedule with sendEvery THREE_MONTHS keeps month ends from the anchor (Jan 31 -> Apr 30 -> Jul 31)', async () => {
    const res = await api.call('POST', CREATE, { body: { amount: '5.00', currency: 'eur', sendEvery: 'THREE_MONTHS', sendOnHour: 9, paymentToken: 'tok_ok', startDate: '2027-01-31' } });
    expect(res.status, res.text).toBe(201);
    expect(res.body).toMatchObject({ planId: null, amount: '5.00', currency: 'EUR', nextPaymentAt: '2027-01-31T09:00:00Z' });
    const schedule = await api.call('GET', `/v1/subscriptions/${res.body.id}/schedule?count=3`, { token: READ_TOKEN });
    expect(schedule.body.data).toEqual([
      { cycle: 1, dueAt: '2027-01-31T09:00:00Z' },
      { cycle: 2, dueAt: '2027-04-30T09:00:00Z' },
      { cycle: 3, dueAt: '2027-07-31T09:00:00Z' },
    ]);
  });

  it('sendOnHour and timezone override the plan (07:00 Berlin summer time is 05:00Z)', async () => {
    const res = await api.call('POST', CREATE, { body: { ...onPlan, sendOnHour: 7, timezone: 'Europe/Berlin' } });
    expect(res.status, res.text).toBe(201);
    expect(res.body.nextPaymentAt).toBe('2026-04-01T05:00:00Z');
  });

  it('metadata with 50 string keys is stored and returned as given', async () => {
    const res = await api.call('POST', CREATE, { body: { ...onPlan, metadata: { ...manyKeys(49), 'odd key/~': 'ü ✓' } } });
    expect(res.status, res.text).toBe(201);
    expect(res.body.metadata).toEqual({ ...manyKeys(49), 'odd key/~': 'ü ✓' });
  });

  it('an explicit id that exists is 409 and changes nothing', async () => {
    const first = await api.call('POST', CREATE, { body: { ...onPlan, id: 'fixed-id-1' } });
    expect(first.status).toBe(201);
    const res = await expectRefused(api, 'POST', CREATE, body({ ...onPlan, id: 'fixed-id-1', startDate: '2026-05-01' }), 409);
    expect(res.body.type).toBe('urn:rebill:problem:subscription-exists');
  });

  it('returns the payment token masked, on create and on every read', async () => {
    const token = 'tok_ok_secret_4711';
    const res = await api.call('POST', CREATE, { body: { ...onPlan, paymentToken: token, source: 'mask', externalId: 'm1' } });
    expect(res.status).toBe(201);
    expect(res.body.paymentToken).toBe('tok_…11');
    for (const path of [`/v1/subscriptions/${res.body.id}`, '/v1/subscriptions?source=mask', `/v1/events?subscriptionId=${res.body.id}`]) {
      const read = await api.call('GET', path, { token: READ_TOKEN });
      expect(read.status).toBe(200);
      expect(read.text).toContain('tok_…11');
      expect(read.text).not.toContain(token);
    }
  });

  it('reuses a customer matched by email', async () => {
    const a = await api.call('POST', CREATE, { body: { ...onPlan, customer: { email: 'same@example.com', firstName: 'Ada' } } });
    const b = await api.call('POST', CREATE, { body: { ...onPlan, customer: { email: 'same@example.com' } } });
    expect(a.body.customer.id).toBe(b.body.customer.id);
    expect(b.body.customer).toMatchObject({ email: 'same@example.com', firstName: 'Ada' });
    const c = await api.call('POST', CREATE, { body: { ...onPlan, customerId: a.body.customer.id } });
    expect(c.status).toBe(201);
    expect(c.body.customer.id).toBe(a.body.customer.id);
  });
});

describe('(source, externalId) deduplication', () => {
  it('a second create with the same source and externalId returns the live one with 200 and writes nothing', async () => {
    const first = await api.call('POST', CREATE, { body: { ...onPlan, source: 'crm', externalId: 'A-1' } });
    expect(first.status).toBe(201);
    const before = await api.dump();
    const again = await api.call('POST', CREATE, { body: { ...onPlan, source: 'crm', externalId: 'A-1' } });
    expect(again.status).toBe(200);
    expect(again.body).toEqual(first.body);
    // Another body with the same pair is the same subscription too (it is not a duplicate, whatever else it says).
    const other = await api.call('POST', CREATE, { body: { planId: 'yen-yearly', source: 'crm', externalId: 'A-1' } });
    expect(other.status).toBe(200);
    expect(other.body.id).toBe(first.body.id);
    expect(await api.dump()).toEqual(before);
  });

  it('the same externalId from another source, or with no source, is another subscription', async () => {
    const a = await api.call('POST', CREATE, { body: { ...onPlan, source: 'crm', externalId: 'B-1' } });
    const b = await api.call('POST', CREATE, { body: { ...onPlan, source: 'shop', externalId: 'B-1' } });
    const c = await api.call('POST', CREATE, { body: { ...onPlan, externalId: 'B-1' } });
    const d = await api.call('POST', CREATE, { body: { ...onPlan, externalId: 'B-1' } });
    expect([a.status, b.status, c.status, d.status]).toEqual([201, 201, 201, 200]);
    expect(new Set([a.body.id, b.body.id, c.body.id]).size).toBe(3);
    expect(d.body.id).toBe(c.body.id);
  });

  it('does not apply to a terminated subscription: the pair may start again', async () => {
    const first = await api.call('POST', CREATE, { body: { ...onPlan, source: 'crm', externalId: 'C-1' } });
    expect((await api.call('POST', `/v1/subscriptions/${first.body.id}/cancel`)).status).toBe(200);
    const second = await api.call('POST', CREATE, { body: { ...onPlan, source: 'crm', externalId: 'C-1' } });
    expect(second.status).toBe(201);
    expect(second.body.id).not.toBe(first.body.id);
    // ...and the new live one is what a third create finds.
    const third = await api.call('POST', CREATE, { body: { ...onPlan, source: 'crm', externalId: 'C-1' } });
    expect(third.status).toBe(200);
    expect(third.body.id).toBe(second.body.id);
  });

  it('a stopped (cancelled at period end) subscription still counts as live', async () => {
    const first = await api.call('POST', CREATE, { body: { ...onPlan, source: 'crm', externalId: 'D-1' } });
    expect((await api.call('POST', `/v1/subscriptions/${first.body.id}/cancel`, { body: { atPeriodEnd: true } })).body.status).toBe('stopped');
    const again = await api.call('POST', CREATE, { body: { ...onPlan, source: 'crm', externalId: 'D-1' } });
    expect(again.status).toBe(200);
    expect(again.body.id).toBe(first.body.id);
  });
});

describe('startDate defaults to today in the subscription time zone', () => {
  // 2026-03-01T02:00Z is still Feb 28 in Los Angeles and already Mar 1 in Tokyo.
  const zones = `
http: { host: 127.0.0.1, port: 0, tokens: [{ token: "test-write-token-0123456789", scope: write }] }
gateways: { sim: { type: simulator } }
plans:
  - { id: utc-plan, amount: "1.00", currency: USD, every: MONTH, sendOnHour: 10, gateway: sim }
  - { id: la-plan, amount: "1.00", currency: USD, every: MONTH, sendOnHour: 10, timezone: America/Los_Angeles, gateway: sim }
`;
  let zoned: ApiHarness;
  beforeAll(async () => {
    zoned = await startApi({ now: Date.parse('2026-03-01T02:00:00Z'), configText: zones });
  });
  afterAll(() => zoned.close());

  it.each([
    ['a UTC plan', { planId: 'utc-plan' }, '2026-03-01'],
    ['a plan in Los Angeles', { planId: 'la-plan' }, '2026-02-28'],
    ['a UTC plan with timezone Asia/Tokyo', { planId: 'utc-plan', timezone: 'Asia/Tokyo' }, '2026-03-01'],
    ['a Los Angeles plan with timezone UTC', { planId: 'la-plan', timezone: 'UTC' }, '2026-03-01'],
    ['a UTC plan with timezone Pacific/Honolulu', { planId: 'utc-plan', timezone: 'Pacific/Honolulu' }, '2026-02-28'],
    ['an inline schedule in Los Angeles', { amount: '1.00', currency: 'USD', every: 'MONTH', timezone: 'America/Los_Angeles' }, '2026-02-28'],
  ])('%s', async (_name, fields, today) => {
    const res = await zoned.call('POST', CREATE, { body: { paymentToken: 'tok_ok', ...fields } });
    expect(res.status, res.text).toBe(201);
    expect(res.body.startDate).toBe(today);
  });

  it('a Los Angeles plan started today charges at 10:00 local on that day', async () => {
    const res = await zoned.call('POST', CREATE, { body: { planId: 'la-plan', paymentToken: 'tok_ok' } });
    expect(res.body.nextPaymentAt).toBe('2026-02-28T18:00:00Z');
  });
});

describe('the harness checks what it claims', () => {
  it('expectProblem fails on a success', async () => {
    const res = await api.call('GET', '/v1/plans');
    expect(() => expectProblem(res, 400)).toThrow();
  });
});
