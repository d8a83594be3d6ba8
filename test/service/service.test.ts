/**
 * The service layer behind `rebill status`, `rebill subscriptions` and the
 * future `/v1` API, on a real SQLite file with attempts made by the real
 * engine and the simulator: filters, keyset pages, SPEC 9 charge objects and
 * the status report. No read ever returns a payment token whole.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { VirtualClock } from '../../src/clock.js';
import { pause } from '../../src/domain/index.js';
import {
  FilterError,
  getSchedulePreview,
  getSubscriptionDetail,
  getSubscriptionView,
  listCharges,
  listSubscriptions,
  maskToken,
  schedulePreview,
  statusReport,
  type Charge,
} from '../../src/service/index.js';
import { getSubscription, NotFoundError, updateSubscription } from '../../src/store/index.js';
import { addSubscription, daemonEngine } from '../support/engine-harness.js';
import { openTempDb, type TempDb } from '../support/temp.js';

const NOW = Date.parse('2025-03-15T08:00:00Z');
const DAY = 86_400_000;
const TOKENS = ['tok_ok', 'tok_insufficient', 'tok_stolen', 'tok_pending', 'tok_visa_4242424242'];

let store: TempDb;

beforeAll(async () => {
  store = await openTempDb({}, { name: 'service' });
  const db = store.db;
  await addSubscription(db, NOW - 3000, { id: 'cap', startDate: '2025-03-15', paymentToken: 'tok_ok', customer: { email: 'ann@example.com', firstName: 'Ann' } });
  await addSubscription(db, NOW - 2000, { id: 'soft', startDate: '2025-03-15', paymentToken: 'tok_insufficient', externalId: 'crm-7', source: 'crm' });
  await addSubscription(db, NOW - 2000, { id: 'hard', startDate: '2025-03-15', paymentToken: 'tok_stolen' });
  await addSubscription(db, NOW - 1000, { id: 'pend', startDate: '2025-03-15', paymentToken: 'tok_pending' });
  await addSubscription(db, NOW - 1000, { id: 'link', startDate: '2025-03-15', paymentToken: null }, { mode: 'link', id: 'links' });
  // Started a month ago: catch-up collects cycle 2, a recurring charge.
  await addSubscription(db, NOW - 1000, { id: 'rec', startDate: '2025-02-15', paymentToken: 'tok_ok' });
  // Not due yet (starts next week): no charge.
  await addSubscription(db, NOW, { id: 'later', startDate: '2025-03-22', paymentToken: 'tok_ok' }, { id: 'other' });
  // 25 more created at one instant, so pages must break ties by id.
  for (let i = 0; i < 25; i++) await addSubscription(db, NOW, { id: `bulk-${String(i).padStart(2, '0')}`, startDate: '2025-04-01', paymentToken: 'tok_ok' });
  const engine = daemonEngine(db, new VirtualClock(NOW));
  await engine.sweepUntilIdle();
  await engine.stop(1000);
});

afterAll(async () => {
  await store?.close();
});

async function allCharges(): Promise<Charge[]> {
  return (await listCharges(store.db, { limit: 500 })).data;
}

function chargeOf(charges: readonly Charge[], subscriptionId: string): Charge {
  const found = charges.find((c) => c.subscriptionId === subscriptionId);
  expect(found, `charge of ${subscriptionId}`).toBeDefined();
  return found!;
}

describe('charge objects (SPEC 9)', () => {
  it('shows captured, soft-declined, hard-declined, pending and link attempts with their fields', async () => {
    const charges = await allCharges();
    const cap = chargeOf(charges, 'cap');
    expect(cap).toMatchObject({
      id: 'cap:1:1',
      cycle: 1,
      attempt: 1,
      operation: 'initial',
      status: 'captured',
      amount: '9.99',
      currency: 'USD',
      gateway: 'sim',
      declineCode: null,
      rejectedReason: null,
      linkUrl: null,
      dueAt: '2025-03-15T00:00:00Z',
      createdAt: '2025-03-15T08:00:00Z',
    });
    expect(cap.externalPaymentId).toEqual(expect.any(String));
    expect(chargeOf(charges, 'soft')).toMatchObject({ status: 'rejected', declineCode: 'insufficient_funds', rejectedReason: 'Insufficient funds', hardDecline: false });
    expect(chargeOf(charges, 'hard')).toMatchObject({ status: 'rejected', declineCode: 'stolen_card', rejectedReason: 'Stolen card, pick up', hardDecline: true });
    expect(chargeOf(charges, 'pend')).toMatchObject({ status: 'pending', declineCode: null, rejectedReason: null });
    const link = chargeOf(charges, 'link');
    expect(link.status).toBe('pending');
    expect(link.linkUrl).toMatch(/^https?:\/\//);
    expect(charges.some((c) => c.subscriptionId === 'later')).toBe(false);
  });

  it('calls cycle 1 initial and a later cycle recurring', async () => {
    const rec = chargeOf(await allCharges(), 'rec');
    expect(rec).toMatchObject({ id: 'rec:2:1', cycle: 2, operation: 'recurring', status: 'captured', dueAt: '2025-03-15T00:00:00Z' });
  });

  it('filters by subscription, status and since', async () => {
    expect((await listCharges(store.db, { subscriptionId: 'soft' })).data.map((c) => c.id)).toEqual(['soft:1:1']);
    expect((await listCharges(store.db, { status: 'rejected' })).data.map((c) => c.subscriptionId).sort()).toEqual(['hard', 'soft']);
    expect((await listCharges(store.db, { since: '2025-03-15T08:00:00Z' })).data).toHaveLength(6);
    expect((await listCharges(store.db, { since: '2025-03-15T08:00:00.001Z' })).data).toHaveLength(0);
  });

  it('pages charges with a cursor: every charge once, none missing', async () => {
    const all = (await allCharges()).map((c) => c.id);
    const seen: string[] = [];
    let cursor: string | undefined;
    let pages = 0;
    do {
      const page = await listCharges(store.db, { limit: 4, ...(cursor ? { cursor } : {}) });
      seen.push(...page.data.map((c) => c.id));
      cursor = page.nextCursor ?? undefined;
      pages++;
    } while (cursor);
    expect(pages).toBe(2);
    expect(seen).toEqual(all);
    expect(new Set(seen).size).toBe(seen.length);
  });
});

describe('subscription objects and lists', () => {
  it('renders the SPEC 5 object with the customer and a masked token', async () => {
    const view = await getSubscriptionView(store.db, 'cap', NOW);
    expect(view).toMatchObject({
      id: 'cap',
      planId: 'gold-monthly',
      customer: { email: 'ann@example.com', firstName: 'Ann', id: expect.any(String) },
      paymentToken: 'tok_…',
      amount: '9.99',
      currency: 'USD',
      status: 'active',
      currentCycle: 1,
      completedCycles: 1,
      nextPaymentAction: 'charge',
      nextPaymentAt: '2025-04-15T00:00:00Z',
    });
    expect(view).not.toHaveProperty('customerId');
    expect((await getSubscriptionView(store.db, 'hard', NOW)).status).toBe('terminated');
  });

  it('throws NotFoundError for an unknown id', async () => {
    await expect(getSubscriptionView(store.db, 'nope', NOW)).rejects.toBeInstanceOf(NotFoundError);
  });

  it('filters by status, plan, source, externalId and email', async () => {
    const ids = async (q: Parameters<typeof listSubscriptions>[1]) => (await listSubscriptions(store.db, q, NOW)).data.map((s) => s.id);
    expect(await ids({ status: 'terminated' })).toEqual(['hard']);
    expect(await ids({ planId: 'other' })).toEqual(['later']);
    expect(await ids({ planId: 'links', status: 'active' })).toEqual(['link']);
    expect(await ids({ source: 'crm', externalId: 'crm-7' })).toEqual(['soft']);
    expect(await ids({ email: 'ann@example.com' })).toEqual(['cap']);
    expect(await ids({ email: 'nobody@example.com' })).toEqual([]);
  });

  it('pages through more than one page in (created, id) order with no duplicates or gaps', async () => {
    const everything = (await listSubscriptions(store.db, { limit: 500 }, NOW)).data.map((s) => s.id);
    expect(everything).toHaveLength(32);
    const seen: string[] = [];
    let cursor: string | undefined;
    let pages = 0;
    do {
      const page = await listSubscriptions(store.db, { limit: 7, ...(cursor ? { cursor } : {}) }, NOW);
      expect(page.data.length).toBeLessThanOrEqual(7);
      seen.push(...page.data.map((s) => s.id));
      cursor = page.nextCursor ?? undefined;
      pages++;
    } while (cursor);
    expect(pages).toBe(5);
    expect(seen).toEqual(everything);
    expect(new Set(seen).size).toBe(32);
    // Oldest first; rows created at the same instant in id order.
    const bulk = Array.from({ length: 25 }, (_, i) => `bulk-${String(i).padStart(2, '0')}`);
    expect(seen).toEqual(['cap', 'hard', 'soft', 'link', 'pend', 'rec', ...bulk, 'later']);
  });
});

describe('filter validation', () => {
  const bad = async (fn: () => Promise<unknown>, parameter: string) => {
    const err = await fn().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(FilterError);
    expect((err as FilterError).parameter).toBe(parameter);
    expect((err as FilterError).code).toBe('INVALID_FILTER');
  };

  it('refuses a bad status, limit, cursor or since with the parameter named', async () => {
    await bad(() => listSubscriptions(store.db, { status: 'bogus' }, NOW), 'status');
    await bad(() => listCharges(store.db, { status: 'paid' }), 'status');
    for (const limit of ['0', '501', 'x', '1.5', -1]) await bad(() => listSubscriptions(store.db, { limit }, NOW), 'limit');
    for (const cursor of ['garbage!', 'e30', Buffer.from('["x","y"]').toString('base64url')]) await bad(() => listSubscriptions(store.db, { cursor }, NOW), 'cursor');
    for (const since of ['yesterday', '2025-01-01T00:00:00', '2025-13-01T00:00:00Z']) await bad(() => listCharges(store.db, { since }), 'since');
    await bad(() => listSubscriptions(store.db, { planId: '' }, NOW), 'planId');
  });
});

describe('schedule preview', () => {
  it('lists the next due dates from the cycle collected next, and none once terminated', async () => {
    const cap = await getSubscription(store.db, 'cap');
    expect(schedulePreview(cap, 3, NOW)).toEqual([
      { cycle: 2, dueAt: '2025-04-15T00:00:00Z' },
      { cycle: 3, dueAt: '2025-05-15T00:00:00Z' },
      { cycle: 4, dueAt: '2025-06-15T00:00:00Z' },
    ]);
    // A soft decline keeps cycle 1 open: its retry comes first.
    expect(schedulePreview(await getSubscription(store.db, 'soft'), 2, NOW).map((d) => d.cycle)).toEqual([1, 2]);
    expect(schedulePreview(await getSubscription(store.db, 'hard'), 3, NOW)).toEqual([]);
  });

  it('leaves out the cycles of a scheduled pause and resumes at the first due date after it', async () => {
    const later = await updateSubscription(store.db, 'later', NOW, (sub) =>
      pause(sub, { pauseAt: Date.parse('2025-04-01T00:00:00Z'), resumeAt: Date.parse('2025-05-10T00:00:00Z') }, NOW),
    );
    expect(schedulePreview(later, 3, NOW)).toEqual([
      { cycle: 1, dueAt: '2025-03-22T00:00:00Z' },
      { cycle: 3, dueAt: '2025-05-22T00:00:00Z' },
      { cycle: 4, dueAt: '2025-06-22T00:00:00Z' },
    ]);
  });
});

describe('subscription detail', () => {
  it('puts the object, its charges and its next due dates together, and refuses a bad count', async () => {
    const detail = await getSubscriptionDetail(store.db, 'rec', 2, NOW);
    expect(detail.subscription.id).toBe('rec');
    expect(detail.charges.map((c) => c.id)).toEqual(['rec:2:1']);
    expect(detail.nextDueDates).toEqual([
      { cycle: 3, dueAt: '2025-04-15T00:00:00Z' },
      { cycle: 4, dueAt: '2025-05-15T00:00:00Z' },
    ]);
    expect(await getSchedulePreview(store.db, 'rec', undefined, NOW)).toHaveLength(12);
    await expect(getSubscriptionDetail(store.db, 'nope', 2, NOW)).rejects.toBeInstanceOf(NotFoundError);
    for (const count of ['0', '101', 'x']) await expect(getSchedulePreview(store.db, 'rec', count, NOW)).rejects.toMatchObject({ parameter: 'count' });
  });
});

describe('status report', () => {
  it('counts by status, declines in the last 24 h, the backlog and the outbox', async () => {
    const report = await statusReport(store.db, NOW);
    expect(report.subscriptions).toEqual({ active: 31, paused: 0, stopped: 0, terminated: 1, total: 32 });
    expect(report.failuresLast24h).toMatchObject({ rejected: 2, hard: 1 });
    expect(report.dueBacklog).toEqual({ count: 0, oldestDueAt: null, oldestDueAgeSeconds: null });
    expect(report.attempts).toMatchObject({ captured: 2, rejected: 2, pending: 2 });
    expect(report.webhooks.deliveries).toEqual({ pending: 0, delivered: 0, failed: 0 });
    expect(report.webhooks.events).toBeGreaterThan(0);

    // Two days on: the soft decline's retry (P1D) and the pending polls are overdue; the declines are older than 24 h.
    const later = await statusReport(store.db, NOW + 2 * DAY);
    expect(later.dueBacklog.count).toBeGreaterThan(0);
    expect(later.dueBacklog.oldestDueAgeSeconds).toBeGreaterThan(0);
    expect(later.failuresLast24h.rejected).toBe(0);
  });
});

describe('payment tokens', () => {
  it('are masked, and never appear whole in any view, list, charge or report', async () => {
    expect(maskToken('tok_visa_4242424242')).toBe('tok_…42');
    expect(maskToken('tok_ok')).toBe('tok_…');
    expect(maskToken(null)).toBeNull();
    const everything = JSON.stringify([
      (await listSubscriptions(store.db, { limit: 500 }, NOW)).data,
      await Promise.all(['cap', 'soft', 'hard', 'pend', 'rec'].map((id) => getSubscriptionView(store.db, id, NOW))),
      await allCharges(),
      await statusReport(store.db, NOW),
    ]);
    for (const token of TOKENS) expect(everything).not.toContain(token);
  });
});
