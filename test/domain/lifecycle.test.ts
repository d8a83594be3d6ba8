/**
 * The subscription lifecycle of SPEC section 5 as pure transitions:
 * create, pause, resume, cancel and end, with the events each one emits
 * (SPEC section 8) and the public nextPaymentAction / nextPaymentAt that
 * a caller sees after every step. `now` is always passed in.
 */
import { describe, expect, it } from 'vitest';
import {
  applyEnd,
  applyScheduledPause,
  beginAttempt,
  cancel,
  cycleDueAt,
  dueStep,
  LifecycleError,
  nextPayment,
  pause,
  resume,
  settleAttempt,
  subscriptionView,
  workAt,
  type Subscription,
  type Transition,
} from '../../src/domain/index.js';
import { at, attemptOf, CAPTURED, collect, create, gold, isoOrNull, newSubscription, policy, SOFT, types } from './helpers.js';
import { createSubscription } from '../../src/domain/index.js';

/** Gold monthly from Jan 31 2025 (10:00 UTC), created on Jan 15, with cycle 1 paid on time. */
function paidOnce(): Subscription {
  const created = create(at('2025-01-15T08:00:00Z')).subscription;
  return collect(created, at('2025-01-31T10:00:00Z'), CAPTURED()).subscription;
}

/** The public "what next" of a subscription, as ISO text. */
function next(sub: Subscription): { action: string; at: string | null } {
  const n = nextPayment(sub);
  return { action: n.action, at: isoOrNull(n.at) };
}

function lifecycleCode(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(LifecycleError);
    return (err as LifecycleError).code;
  }
  throw new Error('expected a LifecycleError');
}

describe('createSubscription from a plan', () => {
  it('a future start date collects cycle 1 at dueAt(1) and records nothing else', () => {
    const now = at('2025-01-15T08:00:00Z');
    const t = create(now);
    const sub = t.subscription;
    expect(sub).toMatchObject({
      status: 'active',
      terminationType: null,
      nextAction: 'collect',
      nextCycle: 1,
      nextAttempt: 1,
      completedCycles: 0,
      createdAt: now,
      updatedAt: now,
    });
    expect(isoOrNull(sub.actionAt)).toBe('2025-01-31T10:00:00Z');
    expect(t.cycles).toEqual([]);
    expect(types(t.events)).toEqual(['subscription.created']);
    expect(t.events[0]).toMatchObject({ subscriptionId: 'sub-1', at: now, data: { planId: 'gold-monthly' } });
    expect(next(sub)).toEqual({ action: 'charge', at: '2025-01-31T10:00:00Z' });
    expect(dueStep(sub, now)).toBe('none');
    expect(dueStep(sub, at('2025-01-31T10:00:00Z'))).toBe('collect');
    expect(workAt(sub)).toBe(at('2025-01-31T10:00:00Z'));
  });

  it('a start date later on the same day waits for sendOnHour', () => {
    const sub = create(at('2025-01-31T09:59:59Z')).subscription;
    expect(sub.nextCycle).toBe(1);
    expect(isoOrNull(sub.actionAt)).toBe('2025-01-31T10:00:00Z');
  });

  it('copies the plan terms into the snapshot and applies the request overrides', () => {
    const sub = create(at('2025-01-15T00:00:00Z'), {}, { sendOnHour: 7, timezone: 'Europe/Copenhagen', externalId: 'ext-9', source: 'shop' }).subscription;
    expect(sub.amount).toEqual({ amountMinor: 999, currency: 'USD' });
    expect(sub).toMatchObject({ planId: 'gold-monthly', planVersion: 'v1', description: 'Gold membership', mode: 'charge', gateway: 'sim', externalId: 'ext-9', source: 'shop' });
    expect(sub.schedule).toMatchObject({ startDate: '2025-01-31', sendOnHour: 7, timezone: 'Europe/Copenhagen', monthEnd: 'clamp', backfill: false });
    // 07:00 in Copenhagen (UTC+1 in winter).
    expect(isoOrNull(sub.actionAt)).toBe('2025-01-31T06:00:00Z');
  });

  it('a past start date collects the current period now and records earlier cycles as skipped', () => {
    const now = at('2025-04-15T12:00:00Z');
    const t = create(now);
    const sub = t.subscription;
    // Cycles: 1 Jan 31, 2 Feb 28, 3 Mar 31 (the current period on Apr 15), 4 Apr 30.
    expect(sub.nextCycle).toBe(3);
    expect(sub.nextAttempt).toBe(1);
    expect(isoOrNull(sub.actionAt)).toBe('2025-03-31T10:00:00Z');
    expect(dueStep(sub, now)).toBe('collect');
    expect(t.cycles).toEqual([
      { cycle: 1, dueAt: at('2025-01-31T10:00:00Z'), status: 'skipped' },
      { cycle: 2, dueAt: at('2025-02-28T10:00:00Z'), status: 'skipped' },
    ]);
    // Issue 7 item 6: each skipped cycle is an event too, with the reason and its due instant.
    expect(types(t.events)).toEqual(['subscription.created', 'cycle.skipped', 'cycle.skipped']);
    expect(t.events.slice(1).map((e) => [e.cycle, e.data])).toEqual([
      [1, { reason: 'past_start', dueAt: '2025-01-31T10:00:00Z' }],
      [2, { reason: 'past_start', dueAt: '2025-02-28T10:00:00Z' }],
    ]);
    const view = subscriptionView(sub, now);
    expect(view).toMatchObject({ currentCycle: 3, currentPeriodStart: '2025-03-31T10:00:00Z', currentPeriodEnd: '2025-04-30T10:00:00Z', inTrial: false });
    // Later cycles keep the anchor's dates.
    const paid = collect(sub, now, CAPTURED()).subscription;
    expect(paid.nextCycle).toBe(4);
    expect(isoOrNull(paid.actionAt)).toBe('2025-04-30T10:00:00Z');
  });

  it('a start exactly at a due instant makes that cycle the current period', () => {
    const t = create(at('2025-02-28T10:00:00Z'));
    expect(t.subscription.nextCycle).toBe(2);
    expect(t.cycles.map((c) => [c.cycle, c.status])).toEqual([[1, 'skipped']]);
  });

  it('backfill: true collects from cycle 1 and skips nothing', () => {
    const now = at('2025-04-15T12:00:00Z');
    const t = create(now, { backfill: true });
    expect(t.subscription.nextCycle).toBe(1);
    expect(isoOrNull(t.subscription.actionAt)).toBe('2025-01-31T10:00:00Z');
    expect(t.cycles).toEqual([]);
    // Every missed cycle is then collected in turn, each one due at once.
    let sub = t.subscription;
    const collected: number[] = [];
    while (sub.actionAt !== null && sub.actionAt <= now) {
      collected.push(sub.nextCycle);
      sub = collect(sub, now, CAPTURED(`pay_${sub.nextCycle}`)).subscription;
    }
    expect(collected).toEqual([1, 2, 3]);
    expect(sub.nextCycle).toBe(4);
    expect(sub.completedCycles).toBe(3);
  });

  it('a trial makes cycle 1 due at start + trial, and the view says inTrial until then', () => {
    const now = at('2025-01-10T09:00:00Z');
    const sub = create(now, { trial: 'P14D' }, { startDate: '2025-01-10' }).subscription;
    expect(sub.nextCycle).toBe(1);
    expect(isoOrNull(sub.actionAt)).toBe('2025-01-24T10:00:00Z');
    expect(isoOrNull(cycleDueAt(sub, 2))).toBe('2025-02-24T10:00:00Z');
    const view = subscriptionView(sub, now);
    expect(view).toMatchObject({ inTrial: true, currentCycle: 0, currentPeriodStart: null, nextPaymentAction: 'charge', nextPaymentAt: '2025-01-24T10:00:00Z' });
    expect(subscriptionView(sub, at('2025-01-24T09:59:59Z')).inTrial).toBe(true);
    expect(subscriptionView(sub, at('2025-01-24T10:00:00Z'))).toMatchObject({ inTrial: false, currentCycle: 1 });
  });

  it('a plan without a trial is never inTrial, even before cycle 1', () => {
    const sub = create(at('2025-01-15T00:00:00Z')).subscription;
    expect(subscriptionView(sub, at('2025-01-15T00:00:00Z')).inTrial).toBe(false);
  });

  it('refuses a schedule the calendar cannot resolve before anything is stored', () => {
    expect(() => createSubscription(newSubscription({ timezone: 'Mars/Olympus' }), at('2025-01-15T00:00:00Z'))).toThrow(/time zone/);
  });
});

describe('nextPaymentAction / nextPaymentAt', () => {
  it('charge mode: charge at the due instant, none while the attempt is in flight, charge at the next cycle once paid', () => {
    const sub = create(at('2025-01-15T08:00:00Z')).subscription;
    expect(next(sub)).toEqual({ action: 'charge', at: '2025-01-31T10:00:00Z' });
    const inFlight = beginAttempt(sub, at('2025-01-31T10:00:00Z'), at('2025-01-31T10:02:00Z')).subscription;
    expect(inFlight.nextAction).toBe('reconcile');
    expect(next(inFlight)).toEqual({ action: 'none', at: null });
    expect(next(paidOnce())).toEqual({ action: 'charge', at: '2025-02-28T10:00:00Z' });
  });

  it('link mode: sendLink instead of charge', () => {
    const sub = create(at('2025-01-15T08:00:00Z'), { mode: 'link' }).subscription;
    expect(next(sub)).toEqual({ action: 'sendLink', at: '2025-01-31T10:00:00Z' });
    expect(subscriptionView(sub, at('2025-01-15T08:00:00Z')).nextPaymentAction).toBe('sendLink');
  });

  it('retry after a soft decline, at the retry instant', () => {
    const sub = create(at('2025-01-15T08:00:00Z')).subscription;
    const declined = collect(sub, at('2025-01-31T10:00:00Z'), SOFT).subscription;
    expect(next(declined)).toEqual({ action: 'retry', at: '2025-02-01T10:00:00Z' });
  });

  it('none while paused, stopped or terminated', () => {
    const sub = paidOnce();
    const now = at('2025-02-10T00:00:00Z');
    expect(next(pause(sub, {}, now).subscription)).toEqual({ action: 'none', at: null });
    expect(next(cancel(sub, { atPeriodEnd: true }, now).subscription)).toEqual({ action: 'none', at: null });
    expect(next(cancel(sub, {}, now).subscription)).toEqual({ action: 'none', at: null });
  });
});

describe('pause', () => {
  it('pausing now stops collection, emits subscription.paused and leaves no work without a resume date', () => {
    const sub = paidOnce();
    const now = at('2025-02-10T00:00:00Z');
    const t = pause(sub, {}, now);
    expect(t.subscription).toMatchObject({ status: 'paused', pausedAt: now, pauseAt: null, resumeAt: null, nextCycle: 2, updatedAt: now });
    expect(t.cycles).toEqual([]);
    expect(types(t.events)).toEqual(['subscription.paused']);
    expect(t.events[0]).toMatchObject({ subscriptionId: 'sub-1', at: now, data: { resumeAt: null } });
    expect(workAt(t.subscription)).toBeNull();
    // The charge due on Feb 28 does not go while paused.
    expect(dueStep(t.subscription, at('2025-03-01T00:00:00Z'))).toBe('none');
    expect(subscriptionView(t.subscription, now).pause).toEqual({ pauseDate: '2025-02-10T00:00:00Z', resumeDate: null });
  });

  it('pausing now with a resumeDate makes the resume the only work', () => {
    const sub = paidOnce();
    const t = pause(sub, { resumeAt: at('2025-04-15T00:00:00Z') }, at('2025-02-10T00:00:00Z'));
    expect(t.events[0]!.data).toEqual({ resumeAt: '2025-04-15T00:00:00Z' });
    expect(workAt(t.subscription)).toBe(at('2025-04-15T00:00:00Z'));
    expect(dueStep(t.subscription, at('2025-04-15T00:00:00Z'))).toBe('resume');
  });

  it('a paused subscription with a resumeDate shows the first charge after the resume, which resume then makes', () => {
    const sub = paidOnce();
    const paused = pause(sub, { resumeAt: at('2025-04-15T00:00:00Z') }, at('2025-02-10T00:00:00Z')).subscription;
    const resumed = resume(paused, at('2025-04-15T00:00:00Z')).subscription;
    expect(isoOrNull(resumed.actionAt)).toBe('2025-04-30T10:00:00Z');
    expect(next(paused)).toEqual({ action: 'charge', at: '2025-04-30T10:00:00Z' });
  });

  it('a pause with a future pauseDate keeps the subscription active and charging until then', () => {
    const sub = paidOnce();
    const now = at('2025-02-10T00:00:00Z');
    // The pause starts after the Feb 28 charge.
    const t = pause(sub, { pauseAt: at('2025-03-05T00:00:00Z'), resumeAt: at('2025-05-01T00:00:00Z') }, now);
    const s = t.subscription;
    expect(s).toMatchObject({ status: 'active', pauseAt: at('2025-03-05T00:00:00Z'), resumeAt: at('2025-05-01T00:00:00Z'), pausedAt: null });
    expect(t.events).toEqual([]);
    expect(next(s)).toEqual({ action: 'charge', at: '2025-02-28T10:00:00Z' });
    expect(workAt(s)).toBe(at('2025-02-28T10:00:00Z'));
    expect(subscriptionView(s, now).pause).toEqual({ pauseDate: '2025-03-05T00:00:00Z', resumeDate: '2025-05-01T00:00:00Z' });
    // Feb 28 is charged, then the pause applies on Mar 5 and the Mar 31 and Apr 30 cycles are skipped.
    const paid = collect(s, at('2025-02-28T10:00:00Z'), CAPTURED()).subscription;
    expect(paid.nextCycle).toBe(3);
    expect(dueStep(paid, at('2025-03-05T00:00:00Z'))).toBe('pause');
    const paused = applyScheduledPause(paid, at('2025-03-05T00:00:00Z'));
    expect(paused.subscription).toMatchObject({ status: 'paused', pauseAt: null, resumeAt: at('2025-05-01T00:00:00Z'), pausedAt: at('2025-03-05T00:00:00Z') });
    expect(types(paused.events)).toEqual(['subscription.paused']);
    expect(paused.events[0]!.data).toEqual({ resumeAt: '2025-05-01T00:00:00Z' });
    expect(dueStep(paused.subscription, at('2025-03-31T10:00:00Z'))).toBe('none');
    expect(dueStep(paused.subscription, at('2025-05-01T00:00:00Z'))).toBe('resume');
    const resumed = resume(paused.subscription, at('2025-05-01T00:00:00Z'));
    expect(resumed.cycles.map((c) => [c.cycle, c.status])).toEqual([
      [3, 'skipped'],
      [4, 'skipped'],
    ]);
    expect(resumed.subscription.nextCycle).toBe(5);
    expect(isoOrNull(resumed.subscription.actionAt)).toBe('2025-05-31T10:00:00Z');
  });

  it('a paused subscription whose schedule ends before its resumeDate shows no next payment; a link plan shows sendLink', () => {
    const now = at('2025-02-10T00:00:00Z');
    const short = collect(create(at('2025-01-15T08:00:00Z'), { maxCycles: 2 }).subscription, at('2025-01-31T10:00:00Z'), CAPTURED()).subscription;
    expect(next(pause(short, { resumeAt: at('2025-03-15T00:00:00Z') }, now).subscription)).toEqual({ action: 'none', at: null });
    const links = collect(create(at('2025-01-15T08:00:00Z'), { mode: 'link' }).subscription, at('2025-01-31T10:00:00Z'), CAPTURED()).subscription;
    expect(next(pause(links, { resumeAt: at('2025-03-15T00:00:00Z') }, now).subscription)).toEqual({ action: 'sendLink', at: '2025-03-31T10:00:00Z' });
  });

  it('a future pauseDate before the next charge: nothing to pay before the pause; with a resumeDate, the first charge after it', () => {
    const sub = paidOnce();
    const now = at('2025-02-10T00:00:00Z');
    const open = pause(sub, { pauseAt: at('2025-02-20T00:00:00Z') }, now).subscription;
    expect(next(open)).toEqual({ action: 'none', at: null });
    expect(workAt(open)).toBe(at('2025-02-20T00:00:00Z'));
    const bounded = pause(sub, { pauseAt: at('2025-02-20T00:00:00Z'), resumeAt: at('2025-04-15T00:00:00Z') }, now).subscription;
    expect(next(bounded)).toEqual({ action: 'charge', at: '2025-04-30T10:00:00Z' });
  });

  it('a pause at the same instant as a charge goes first, so that charge is not made', () => {
    const sub = paidOnce();
    const s = pause(sub, { pauseAt: at('2025-02-28T10:00:00Z') }, at('2025-02-10T00:00:00Z')).subscription;
    expect(dueStep(s, at('2025-02-28T10:00:00Z'))).toBe('pause');
    const paused = applyScheduledPause(s, at('2025-02-28T10:00:00Z')).subscription;
    expect(dueStep(paused, at('2025-02-28T10:00:00Z'))).toBe('none');
  });

  it('re-pausing a paused subscription only moves its resumeDate and emits nothing', () => {
    const paused = pause(paidOnce(), {}, at('2025-02-10T00:00:00Z')).subscription;
    const t = pause(paused, { resumeAt: at('2025-03-15T00:00:00Z') }, at('2025-02-11T00:00:00Z'));
    expect(t.subscription).toMatchObject({ status: 'paused', pausedAt: at('2025-02-10T00:00:00Z'), resumeAt: at('2025-03-15T00:00:00Z') });
    expect(t.events).toEqual([]);
  });

  it('a sweep that runs after the whole scheduled pause window still pauses, and the resume follows at once', () => {
    const sub = paidOnce();
    // Pause Feb 20 for one hour; the daemon is down until Mar 3, past the Feb 28 charge too.
    const s = pause(sub, { pauseAt: at('2025-02-20T00:00:00Z'), resumeAt: at('2025-02-20T01:00:00Z') }, at('2025-02-10T00:00:00Z')).subscription;
    const late = at('2025-03-03T00:00:00Z');
    expect(dueStep(s, late)).toBe('pause');
    const paused = applyScheduledPause(s, late);
    expect(paused.subscription).toMatchObject({ status: 'paused', pauseAt: null, resumeAt: at('2025-02-20T01:00:00Z'), pausedAt: late });
    expect(types(paused.events)).toEqual(['subscription.paused']);
    expect(workAt(paused.subscription)).toBe(at('2025-02-20T01:00:00Z'));
    expect(dueStep(paused.subscription, late)).toBe('resume');
    const resumed = resume(paused.subscription, late);
    // No back-billing: the Feb 28 cycle fell due before the resume ran.
    expect(resumed.cycles.map((c) => [c.cycle, c.status])).toEqual([[2, 'skipped']]);
    expect(resumed.subscription).toMatchObject({ status: 'active', nextCycle: 3 });
  });

  it('pausing an already paused subscription with a future pauseDate schedules nothing (no work without a step)', () => {
    const paused = pause(paidOnce(), {}, at('2025-02-10T00:00:00Z')).subscription;
    const again = pause(paused, { pauseAt: at('2025-02-20T00:00:00Z'), resumeAt: at('2025-03-15T00:00:00Z') }, at('2025-02-11T00:00:00Z')).subscription;
    expect(again).toMatchObject({ status: 'paused', pauseAt: null, resumeAt: at('2025-03-15T00:00:00Z') });
    expect(workAt(again)).toBe(at('2025-03-15T00:00:00Z'));
    expect(dueStep(again, at('2025-03-15T00:00:00Z'))).toBe('resume');
  });

  it('refuses a resumeDate that is not after the pause starts', () => {
    const sub = paidOnce();
    const now = at('2025-02-10T00:00:00Z');
    expect(lifecycleCode(() => pause(sub, { resumeAt: now }, now))).toBe('PAUSE_INVALID');
    expect(lifecycleCode(() => pause(sub, { pauseAt: at('2025-03-01T00:00:00Z'), resumeAt: at('2025-02-20T00:00:00Z') }, now))).toBe('PAUSE_INVALID');
  });

  it('refuses to pause a stopped or terminated subscription', () => {
    const sub = paidOnce();
    const now = at('2025-02-10T00:00:00Z');
    expect(lifecycleCode(() => pause(cancel(sub, {}, now).subscription, {}, now))).toBe('SUBSCRIPTION_NOT_ACTIVE');
    expect(lifecycleCode(() => pause(cancel(sub, { atPeriodEnd: true }, now).subscription, {}, now))).toBe('SUBSCRIPTION_NOT_ACTIVE');
  });
});

describe('resume', () => {
  it('the next cycle is the first due at or after the resume instant; cycles due while paused are recorded skipped', () => {
    const paused = pause(paidOnce(), {}, at('2025-02-10T00:00:00Z')).subscription;
    const now = at('2025-04-15T00:00:00Z');
    const t = resume(paused, now);
    expect(t.subscription).toMatchObject({ status: 'active', pausedAt: null, pauseAt: null, resumeAt: null, nextAction: 'collect', nextCycle: 4, nextAttempt: 1 });
    expect(isoOrNull(t.subscription.actionAt)).toBe('2025-04-30T10:00:00Z');
    expect(t.cycles).toEqual([
      { cycle: 2, dueAt: at('2025-02-28T10:00:00Z'), status: 'skipped' },
      { cycle: 3, dueAt: at('2025-03-31T10:00:00Z'), status: 'skipped' },
    ]);
    expect(types(t.events)).toEqual(['subscription.resumed', 'cycle.skipped', 'cycle.skipped']);
    expect(t.events.slice(1).map((e) => [e.cycle, e.data])).toEqual([
      [2, { reason: 'paused', dueAt: '2025-02-28T10:00:00Z' }],
      [3, { reason: 'paused', dueAt: '2025-03-31T10:00:00Z' }],
    ]);
    expect(t.events[0]).toMatchObject({ subscriptionId: 'sub-1', at: now });
    expect(next(t.subscription)).toEqual({ action: 'charge', at: '2025-04-30T10:00:00Z' });
  });

  it('resuming exactly at a due instant collects that cycle (no back-billing, no skipping it)', () => {
    const paused = pause(paidOnce(), {}, at('2025-02-10T00:00:00Z')).subscription;
    const t = resume(paused, at('2025-03-31T10:00:00Z'));
    expect(t.subscription.nextCycle).toBe(3);
    expect(t.cycles.map((c) => c.cycle)).toEqual([2]);
    expect(dueStep(t.subscription, at('2025-03-31T10:00:00Z'))).toBe('collect');
  });

  it('resuming before the next due date changes nothing but the status', () => {
    const paused = pause(paidOnce(), {}, at('2025-02-10T00:00:00Z')).subscription;
    const t = resume(paused, at('2025-02-20T00:00:00Z'));
    expect(t.subscription.nextCycle).toBe(2);
    expect(isoOrNull(t.subscription.actionAt)).toBe('2025-02-28T10:00:00Z');
    expect(t.cycles).toEqual([]);
  });

  it('an unfinished retry from before the pause is skipped, not collected late', () => {
    const sub = paidOnce();
    const declined = collect(sub, at('2025-02-28T10:00:00Z'), SOFT).subscription;
    expect(declined.nextAttempt).toBe(2);
    const paused = pause(declined, {}, at('2025-02-28T12:00:00Z')).subscription;
    const t = resume(paused, at('2025-03-10T00:00:00Z'));
    expect(t.subscription).toMatchObject({ nextCycle: 3, nextAttempt: 1 });
    expect(t.cycles.map((c) => [c.cycle, c.status])).toEqual([[2, 'skipped']]);
  });

  it('an attempt still open at the gateway keeps its pointer across the resume', () => {
    const inFlight = beginAttempt(paidOnce(), at('2025-02-28T10:00:00Z'), at('2025-02-28T10:02:00Z')).subscription;
    const paused = pause(inFlight, {}, at('2025-02-28T10:00:30Z')).subscription;
    expect(dueStep(paused, at('2025-02-28T10:02:00Z'))).toBe('reconcile');
    const t = resume(paused, at('2025-04-15T00:00:00Z'));
    expect(t.subscription).toMatchObject({ status: 'active', nextAction: 'reconcile', nextCycle: 2 });
    expect(t.cycles).toEqual([]);
  });

  it('resuming after the schedule has run out ends it', () => {
    const created = create(at('2025-01-15T00:00:00Z'), { maxCycles: 2 }).subscription;
    const paid = collect(created, at('2025-01-31T10:00:00Z'), CAPTURED()).subscription;
    const paused = pause(paid, {}, at('2025-02-10T00:00:00Z')).subscription;
    const t = resume(paused, at('2025-06-01T00:00:00Z'));
    expect(t.cycles.map((c) => [c.cycle, c.status])).toEqual([[2, 'skipped']]);
    expect(t.subscription.nextAction).toBe('end');
    expect(applyEnd(t.subscription, at('2025-06-01T00:00:00Z')).subscription.terminationType).toBe('finished');
  });

  it('resuming a subscription that is not paused is an error with code SUBSCRIPTION_NOT_PAUSED', () => {
    const sub = paidOnce();
    const now = at('2025-02-10T00:00:00Z');
    expect(lifecycleCode(() => resume(sub, now))).toBe('SUBSCRIPTION_NOT_PAUSED');
    expect(lifecycleCode(() => resume(cancel(sub, {}, now).subscription, now))).toBe('SUBSCRIPTION_NOT_PAUSED');
    expect(() => resume(sub, now)).toThrow(/not paused/);
  });

  it('resuming before a scheduled pause has started cancels the scheduled pause', () => {
    const s = pause(paidOnce(), { pauseAt: at('2025-03-05T00:00:00Z'), resumeAt: at('2025-05-01T00:00:00Z') }, at('2025-02-10T00:00:00Z')).subscription;
    const t = resume(s, at('2025-02-11T00:00:00Z'));
    expect(t.subscription).toMatchObject({ status: 'active', pauseAt: null, resumeAt: null, nextCycle: 2 });
    expect(t.events).toEqual([]);
    expect(subscriptionView(t.subscription, at('2025-02-11T00:00:00Z')).pause).toBeNull();
  });
});

describe('cancel', () => {
  it('cancel now terminates with userCancel and emits subscription.cancelled', () => {
    const sub = paidOnce();
    const now = at('2025-02-10T00:00:00Z');
    const t = cancel(sub, {}, now);
    expect(t.subscription).toMatchObject({ status: 'terminated', terminationType: 'userCancel', nextAction: 'none', actionAt: null, endedAt: now });
    expect(workAt(t.subscription)).toBeNull();
    expect(dueStep(t.subscription, at('2025-03-01T00:00:00Z'))).toBe('none');
    expect(types(t.events)).toEqual(['subscription.cancelled']);
    expect(t.events[0]).toMatchObject({ at: now, data: { terminationType: 'userCancel', atPeriodEnd: false } });
  });

  it('cancel now while a charge is in flight keeps reconciling it, then records the capture and schedules nothing', () => {
    const fresh = create(at('2025-01-01T00:00:00Z')).subscription;
    const due = fresh.actionAt!;
    const begun = beginAttempt(fresh, due, due + 120_000).subscription;
    const t = cancel(begun, {}, due + 1_000);
    expect(t.subscription).toMatchObject({ status: 'terminated', terminationType: 'userCancel', nextAction: 'reconcile', actionAt: due + 120_000 });
    expect(workAt(t.subscription)).toBe(due + 120_000);
    expect(dueStep(t.subscription, due + 60_000)).toBe('none');
    expect(dueStep(t.subscription, due + 120_000)).toBe('reconcile');
    const settled = settleAttempt(t.subscription, attemptOf(fresh, due), CAPTURED('pay_late'), due + 121_000, policy());
    expect(types(settled.events)).toEqual(['charge.succeeded']);
    expect(settled.subscription).toMatchObject({ status: 'terminated', nextAction: 'none', actionAt: null, completedCycles: 1 });
    expect(workAt(settled.subscription)).toBeNull();
  });

  it('cancel now while a charge is in flight, then a decline: recorded, no retry, nothing scheduled', () => {
    const fresh = create(at('2025-01-01T00:00:00Z')).subscription;
    const due = fresh.actionAt!;
    const t = cancel(beginAttempt(fresh, due, due + 120_000).subscription, {}, due + 1_000);
    const settled = settleAttempt(t.subscription, attemptOf(fresh, due), SOFT, due + 2_000, policy());
    expect(types(settled.events)).toEqual(['charge.failed']);
    expect(settled.events[0]!.data).toMatchObject({ willRetry: false });
    expect(settled.subscription).toMatchObject({ status: 'terminated', nextAction: 'none', actionAt: null });
    expect(workAt(settled.subscription)).toBeNull();
  });

  it('cancel by the publisher terminates with publisherCancel', () => {
    const t = cancel(paidOnce(), { by: 'publisher' }, at('2025-02-10T00:00:00Z'));
    expect(t.subscription.terminationType).toBe('publisherCancel');
    expect(t.events[0]!.data).toMatchObject({ terminationType: 'publisherCancel' });
  });

  it('cancel at period end stops now and terminates with userCancel when the period ends', () => {
    const now = at('2025-02-10T00:00:00Z');
    const t = cancel(paidOnce(), { atPeriodEnd: true }, now);
    const stopped = t.subscription;
    expect(stopped).toMatchObject({ status: 'stopped', terminationType: null, nextAction: 'end' });
    expect(isoOrNull(stopped.actionAt)).toBe('2025-02-28T10:00:00Z');
    expect(types(t.events)).toEqual(['subscription.cancelled']);
    expect(t.events[0]!.data).toEqual({ atPeriodEnd: true, terminationType: 'userCancel', endsAt: '2025-02-28T10:00:00Z' });
    expect(dueStep(stopped, at('2025-02-28T09:59:59Z'))).toBe('none');
    expect(dueStep(stopped, at('2025-02-28T10:00:00Z'))).toBe('end');

    const end = at('2025-02-28T10:00:00Z');
    const ended = applyEnd(stopped, end);
    expect(ended.subscription).toMatchObject({ status: 'terminated', terminationType: 'userCancel', endedAt: end, nextAction: 'none' });
    expect(types(ended.events)).toEqual(['subscription.cancelled']);
    expect(ended.events[0]).toMatchObject({ at: end, data: { terminationType: 'userCancel', atPeriodEnd: true } });
  });

  it('cancel at period end during a trial ends when the trial would have been charged, without a charge', () => {
    const sub = create(at('2025-01-10T00:00:00Z'), { trial: 'P14D' }, { startDate: '2025-01-10' }).subscription;
    const stopped = cancel(sub, { atPeriodEnd: true }, at('2025-01-12T00:00:00Z')).subscription;
    expect(stopped.nextAction).toBe('end');
    expect(isoOrNull(stopped.actionAt)).toBe('2025-01-24T10:00:00Z');
    expect(dueStep(stopped, at('2025-01-24T10:00:00Z'))).toBe('end');
  });

  it('cancel at period end twice is a no-op the second time', () => {
    const stopped = cancel(paidOnce(), { atPeriodEnd: true }, at('2025-02-10T00:00:00Z')).subscription;
    const again = cancel(stopped, { atPeriodEnd: true }, at('2025-02-11T00:00:00Z'));
    expect(again.subscription).toBe(stopped);
    expect(again.events).toEqual([]);
  });

  it('cancel now on a stopped subscription terminates at once', () => {
    const stopped = cancel(paidOnce(), { atPeriodEnd: true }, at('2025-02-10T00:00:00Z')).subscription;
    const t = cancel(stopped, {}, at('2025-02-11T00:00:00Z'));
    expect(t.subscription).toMatchObject({ status: 'terminated', terminationType: 'userCancel' });
  });

  it('cancel at period end of a paused subscription terminates at once (there is no running period to finish)', () => {
    const paused = pause(paidOnce(), {}, at('2025-02-10T00:00:00Z')).subscription;
    const t = cancel(paused, { atPeriodEnd: true }, at('2025-02-11T00:00:00Z'));
    expect(t.subscription).toMatchObject({ status: 'terminated', terminationType: 'userCancel', pausedAt: at('2025-02-10T00:00:00Z') });
  });

  it('cancelling a terminated subscription is an error with code SUBSCRIPTION_TERMINATED', () => {
    const ended = cancel(paidOnce(), {}, at('2025-02-10T00:00:00Z')).subscription;
    expect(lifecycleCode(() => cancel(ended, {}, at('2025-02-11T00:00:00Z')))).toBe('SUBSCRIPTION_TERMINATED');
    expect(lifecycleCode(() => cancel(ended, { atPeriodEnd: true }, at('2025-02-11T00:00:00Z')))).toBe('SUBSCRIPTION_TERMINATED');
  });

  it('a cancel at period end while a charge is in flight waits for it, then ends at the end of the period it paid for', () => {
    const inFlight = beginAttempt(paidOnce(), at('2025-02-28T10:00:00Z'), at('2025-02-28T10:02:00Z'));
    const stopped = cancel(inFlight.subscription, { atPeriodEnd: true }, at('2025-02-28T10:00:01Z')).subscription;
    expect(stopped).toMatchObject({ status: 'stopped', nextAction: 'reconcile', nextCycle: 2 });
  });
});

describe('the work pointer', () => {
  it('whenever a subscription has a work instant, some step is due at that instant (else a sweep would claim it forever)', () => {
    const base = paidOnce();
    const t0 = at('2025-02-10T00:00:00Z');
    const inFlight = beginAttempt(base, at('2025-02-28T10:00:00Z'), at('2025-02-28T10:02:00Z')).subscription;
    const paused = pause(base, {}, t0).subscription;
    const scheduled = pause(base, { pauseAt: at('2025-02-20T00:00:00Z'), resumeAt: at('2025-03-20T00:00:00Z') }, t0).subscription;
    const states: Record<string, Subscription> = {
      created: create(at('2025-01-15T08:00:00Z')).subscription,
      pastStart: create(at('2025-04-15T00:00:00Z')).subscription,
      trial: create(at('2025-01-10T00:00:00Z'), { trial: 'P14D' }, { startDate: '2025-01-10' }).subscription,
      paid: base,
      retrying: collect(base, at('2025-02-28T10:00:00Z'), SOFT).subscription,
      inFlight,
      inFlightPaused: pause(inFlight, {}, at('2025-02-28T10:01:00Z')).subscription,
      inFlightStopped: cancel(inFlight, { atPeriodEnd: true }, at('2025-02-28T10:01:00Z')).subscription,
      pausedWithResume: pause(base, { resumeAt: at('2025-04-01T00:00:00Z') }, t0).subscription,
      pausedThenScheduled: pause(paused, { pauseAt: at('2025-02-20T00:00:00Z') }, t0).subscription,
      scheduled,
      scheduledApplied: applyScheduledPause(scheduled, at('2025-02-20T00:00:00Z')).subscription,
      stopped: cancel(base, { atPeriodEnd: true }, t0).subscription,
      finishedPointer: collect(create(at('2025-01-15T08:00:00Z'), { maxCycles: 1 }).subscription, at('2025-01-31T10:00:00Z'), CAPTURED()).subscription,
    };
    for (const [name, sub] of Object.entries(states)) {
      const w = workAt(sub);
      if (w !== null) expect([name, dueStep(sub, w)]).not.toEqual([name, 'none']);
    }
  });
});

describe('events for each transition', () => {
  it('a year in the life of a subscription emits exactly the SPEC section 8 types, in order', () => {
    const events: string[] = [];
    const step = (t: Transition): Subscription => {
      events.push(...types(t.events));
      return t.subscription;
    };
    let sub = step(create(at('2025-01-15T00:00:00Z')));
    sub = step(collect(sub, at('2025-01-31T10:00:00Z'), CAPTURED('pay_1')));
    sub = step(pause(sub, { resumeAt: at('2025-04-01T00:00:00Z') }, at('2025-02-10T00:00:00Z')));
    sub = step(resume(sub, at('2025-04-01T00:00:00Z')));
    sub = step(collect(sub, at('2025-04-30T10:00:00Z'), SOFT));
    sub = step(collect(sub, at('2025-05-01T10:00:00Z'), CAPTURED('pay_2')));
    sub = step(cancel(sub, { atPeriodEnd: true }, at('2025-05-10T00:00:00Z')));
    sub = step(applyEnd(sub, at('2025-05-31T10:00:00Z')));
    expect(events).toEqual([
      'subscription.created',
      'charge.succeeded',
      'subscription.paused',
      'subscription.resumed',
      'cycle.skipped',
      'cycle.skipped',
      'charge.failed',
      'charge.succeeded',
      'subscription.cancelled',
      'subscription.cancelled',
    ]);
    expect(sub).toMatchObject({ status: 'terminated', terminationType: 'userCancel', completedCycles: 2 });
  });

  it('a finished schedule emits subscription.finished', () => {
    const created = create(at('2025-01-15T00:00:00Z'), { maxCycles: 1 }).subscription;
    const paid = collect(created, at('2025-01-31T10:00:00Z'), CAPTURED()).subscription;
    expect(paid.nextAction).toBe('end');
    const t = applyEnd(paid, at('2025-02-28T10:00:00Z'));
    expect(types(t.events)).toEqual(['subscription.finished']);
    expect(t.events[0]!.data).toEqual({ terminationType: 'finished' });
    expect(t.subscription).toMatchObject({ status: 'terminated', terminationType: 'finished' });
  });

  it('every transition stamps updatedAt with its own now and keeps createdAt', () => {
    const sub = paidOnce();
    const t = pause(sub, {}, at('2025-02-10T00:00:00Z'));
    expect(t.subscription.createdAt).toBe(at('2025-01-15T08:00:00Z'));
    expect(t.subscription.updatedAt).toBe(at('2025-02-10T00:00:00Z'));
    // The input is never mutated: transitions are pure.
    expect(sub.status).toBe('active');
  });
});

it('the gold fixture is the plan of SPEC section 4', () => {
  expect(gold).toMatchObject({ amountMinor: 999, currency: 'USD', sendOnHour: 10, timezone: 'UTC' });
});
