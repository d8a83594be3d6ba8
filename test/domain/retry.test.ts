/**
 * Collecting a cycle (SPEC section 6) as pure settlement: what each gateway
 * answer does to the attempt row, the cycle row, the subscription's work
 * pointer and the outbox. The retry policy is the default one (3 attempts,
 * P1D then P3D) unless a test says otherwise.
 */
import { describe, expect, it } from 'vitest';
import {
  applyEnd,
  beginAttempt,
  cancel,
  cycleDueAt,
  dueStep,
  linkDeadline,
  nextAttemptAt,
  nextPayment,
  settleAttempt,
  workAt,
  type AttemptInfo,
  type Outcome,
  type Settlement,
  type Subscription,
} from '../../src/domain/index.js';
import { at, attemptOf, CAPTURED, collect, create, DAY, HARD, isoOrNull, policy, SOFT, types } from './helpers.js';

const T1 = at('2025-01-31T10:00:00Z');

/** Gold monthly from Jan 31 2025 10:00 UTC, created before its start. */
function fresh(plan: Parameters<typeof create>[1] = {}): Subscription {
  return create(at('2025-01-15T08:00:00Z'), plan).subscription;
}

describe('nextAttemptAt and linkDeadline', () => {
  it('waits P1D before attempt 2 and P3D before attempt 3, measured from the failure instant', () => {
    const p = policy().retry;
    const failedAt = at('2025-01-31T10:00:07.250Z');
    expect(nextAttemptAt(p, 1, false, failedAt)).toBe(failedAt + 1 * DAY);
    expect(nextAttemptAt(p, 2, false, failedAt)).toBe(failedAt + 3 * DAY);
    expect(nextAttemptAt(p, 3, false, failedAt)).toBeNull();
  });

  it('a hard decline never gets another attempt', () => {
    expect(nextAttemptAt(policy().retry, 1, true, T1)).toBeNull();
  });

  it('more attempts than delays reuse the last delay', () => {
    const p = { attempts: 5, delays: ['PT1H', 'P2D'], onFinalFailure: 'terminate' as const };
    expect(nextAttemptAt(p, 1, false, T1)).toBe(T1 + 3_600_000);
    expect(nextAttemptAt(p, 3, false, T1)).toBe(T1 + 2 * DAY);
    expect(nextAttemptAt(p, 4, false, T1)).toBe(T1 + 2 * DAY);
    expect(nextAttemptAt(p, 5, false, T1)).toBeNull();
  });

  it('a link for attempt k stays open for the delay before attempt k+1 (the last one for the last delay)', () => {
    const p = policy().retry;
    expect(linkDeadline(p, { attempt: 1, createdAt: T1 })).toBe(T1 + 1 * DAY);
    expect(linkDeadline(p, { attempt: 2, createdAt: T1 })).toBe(T1 + 3 * DAY);
    expect(linkDeadline(p, { attempt: 3, createdAt: T1 })).toBe(T1 + 3 * DAY);
  });
});

describe('beginAttempt', () => {
  it('keys the attempt <subscriptionId>:<cycle>:<attempt> and points at reconcile when the lease ends', () => {
    const sub = fresh();
    const begun = beginAttempt(sub, T1, T1 + 120_000);
    expect(begun.key).toBe('sub-1:1:1');
    expect(begun.subscription).toMatchObject({ nextAction: 'reconcile', actionAt: T1 + 120_000, nextCycle: 1, nextAttempt: 1 });
    expect(begun.cycles).toEqual([{ cycle: 1, dueAt: T1, status: 'collecting', attempts: 1 }]);
    expect(begun.events).toEqual([]);
    // A process that dies now leaves work the next sweep finds: ask the gateway about the key.
    expect(dueStep(begun.subscription, T1 + 120_000)).toBe('reconcile');
  });
});

describe('settleAttempt: captured', () => {
  it('marks the cycle paid, counts it and points at the next cycle', () => {
    const s = collect(fresh(), T1, CAPTURED('pay_42'));
    expect(s.attempt).toEqual({ state: 'captured', externalId: 'pay_42' });
    expect(s.resend).toBe(false);
    expect(s.cycles).toEqual([{ cycle: 1, dueAt: T1, status: 'paid', attempts: 1, settledAt: T1 }]);
    expect(s.subscription).toMatchObject({
      status: 'active',
      completedCycles: 1,
      lastPaidCycle: 1,
      latestPaymentExternalId: 'pay_42',
      nextAction: 'collect',
      nextCycle: 2,
      nextAttempt: 1,
    });
    expect(isoOrNull(s.subscription.actionAt)).toBe('2025-02-28T10:00:00Z');
    expect(types(s.events)).toEqual(['charge.succeeded']);
    expect(s.events[0]).toEqual({
      type: 'charge.succeeded',
      subscriptionId: 'sub-1',
      at: T1,
      cycle: 1,
      attempt: 1,
      data: { amount: '9.99', currency: 'USD', mode: 'charge', idempotencyKey: 'sub-1:1:1', status: 'captured', externalId: 'pay_42' },
    });
  });

  it('a capture that arrives after an immediate cancel is recorded and schedules nothing', () => {
    const begun = beginAttempt(fresh(), T1, T1 + 120_000);
    const cancelled = cancel(begun.subscription, {}, T1 + 1_000).subscription;
    const s = settleAttempt(cancelled, attemptOf(fresh(), T1), CAPTURED(), T1 + 2_000, policy());
    expect(s.cycles.map((c) => [c.cycle, c.status])).toEqual([[1, 'paid']]);
    expect(types(s.events)).toEqual(['charge.succeeded']);
    expect(s.subscription).toMatchObject({ status: 'terminated', nextAction: 'none', completedCycles: 1 });
    expect(workAt(s.subscription)).toBeNull();
  });
});

describe('settleAttempt: declines and the retry policy', () => {
  it('a soft decline retries at +P1D, then +P3D after the second failure, each measured from the failure', () => {
    const f1 = T1 + 5_000; // the gateway answered five seconds after the attempt started
    const s1 = collect(fresh(), T1, SOFT, { answeredAt: f1 });
    expect(s1.attempt).toEqual({ state: 'rejected', declineCode: 'insufficient_funds', hardDecline: false, externalId: null });
    expect(s1.subscription).toMatchObject({ status: 'active', nextAction: 'collect', nextCycle: 1, nextAttempt: 2, actionAt: f1 + DAY });
    expect(s1.cycles).toEqual([{ cycle: 1, dueAt: T1, status: 'collecting', attempts: 1 }]);
    expect(types(s1.events)).toEqual(['charge.failed']);
    expect(s1.events[0]).toMatchObject({
      cycle: 1,
      attempt: 1,
      data: { status: 'rejected', declineCode: 'insufficient_funds', hardDecline: false, willRetry: true, nextAttemptAt: '2025-02-01T10:00:05Z', idempotencyKey: 'sub-1:1:1' },
    });
    expect(nextPayment(s1.subscription)).toEqual({ action: 'retry', at: f1 + DAY });

    // The sweep runs the retry a little late; the next wait is measured from its failure, not from the plan.
    const r2 = f1 + DAY + 90_000;
    const s2 = collect(s1.subscription, r2, SOFT);
    expect(s2.events[0]).toMatchObject({ attempt: 2, data: { idempotencyKey: 'sub-1:1:2', willRetry: true } });
    expect(s2.subscription).toMatchObject({ nextAttempt: 3, actionAt: r2 + 3 * DAY });
  });

  it('the final soft failure emits charge.failed (willRetry false) and subscription.payment_failed, then terminates with paymentCancel', () => {
    let sub = fresh();
    let s!: Settlement;
    for (let attempt = 1; attempt <= 3; attempt++) {
      const now = sub.actionAt!;
      s = collect(sub, now, SOFT);
      sub = s.subscription;
    }
    const now = T1 + 4 * DAY;
    expect(types(s.events)).toEqual(['charge.failed', 'subscription.payment_failed', 'subscription.cancelled']);
    expect(s.events[0]).toMatchObject({ at: now, attempt: 3, data: { willRetry: false, nextAttemptAt: null } });
    expect(s.events[1]).toMatchObject({ cycle: 1, attempt: 3, data: { declineCode: 'insufficient_funds', attempts: 3, action: 'terminate' } });
    expect(s.events[2]!.data).toEqual({ terminationType: 'paymentCancel' });
    expect(s.cycles).toEqual([{ cycle: 1, dueAt: T1, status: 'failed', attempts: 3, settledAt: now }]);
    expect(sub).toMatchObject({ status: 'terminated', terminationType: 'paymentCancel', nextAction: 'none', actionAt: null, endedAt: now, completedCycles: 0 });
    expect(nextPayment(sub)).toEqual({ action: 'none', at: null });
  });

  /** Three soft declines on cycle 1 under `onFinalFailure`. */
  function failThrice(onFinalFailure: 'terminate' | 'pause' | 'keep'): Settlement {
    let sub = fresh();
    let s!: Settlement;
    for (let attempt = 1; attempt <= 3; attempt++) {
      s = collect(sub, sub.actionAt!, SOFT, { policy: policy(onFinalFailure) });
      sub = s.subscription;
    }
    return s;
  }

  it('onFinalFailure pause: pauses with no resume date, pointed at the next cycle', () => {
    const s = failThrice('pause');
    expect(types(s.events)).toEqual(['charge.failed', 'subscription.payment_failed', 'subscription.paused']);
    expect(s.events[1]!.data).toMatchObject({ action: 'pause' });
    expect(s.events[2]!.data).toEqual({ reason: 'payment_failed', resumeAt: null });
    expect(s.subscription).toMatchObject({ status: 'paused', terminationType: null, nextAction: 'collect', nextCycle: 2, nextAttempt: 1, pausedAt: T1 + 4 * DAY });
    expect(workAt(s.subscription)).toBeNull();
    expect(nextPayment(s.subscription)).toEqual({ action: 'none', at: null });
  });

  it('onFinalFailure keep: the cycle stays failed and the subscription goes on to the next cycle', () => {
    const s = failThrice('keep');
    expect(types(s.events)).toEqual(['charge.failed', 'subscription.payment_failed']);
    expect(s.cycles.map((c) => [c.cycle, c.status])).toEqual([[1, 'failed']]);
    expect(s.subscription).toMatchObject({ status: 'active', nextAction: 'collect', nextCycle: 2, nextAttempt: 1, completedCycles: 0 });
    expect(isoOrNull(s.subscription.actionAt)).toBe('2025-02-28T10:00:00Z');
  });

  it('a hard decline skips the remaining attempts', () => {
    const s = collect(fresh(), T1, HARD);
    expect(s.attempt).toMatchObject({ state: 'rejected', declineCode: 'stolen_card', hardDecline: true });
    expect(types(s.events)).toEqual(['charge.failed', 'subscription.payment_failed', 'subscription.cancelled']);
    expect(s.events[0]!.data).toMatchObject({ hardDecline: true, willRetry: false, nextAttemptAt: null });
    expect(s.events[1]!.data).toMatchObject({ attempts: 1 });
    expect(s.cycles).toEqual([{ cycle: 1, dueAt: T1, status: 'failed', attempts: 1, settledAt: T1 }]);
    expect(s.subscription).toMatchObject({ status: 'terminated', terminationType: 'paymentCancel' });
  });

  it('a decline of a stopped subscription is not retried and the subscription still ends at its period end', () => {
    const paid = collect(fresh(), T1, CAPTURED()).subscription;
    const begun = beginAttempt(paid, at('2025-02-28T10:00:00Z'), at('2025-02-28T10:02:00Z'));
    const stopped = cancel(begun.subscription, { atPeriodEnd: true }, at('2025-02-28T10:00:01Z')).subscription;
    const s = settleAttempt(stopped, attemptOf(paid, at('2025-02-28T10:00:00Z')), SOFT, at('2025-02-28T10:00:02Z'), policy());
    expect(types(s.events)).toEqual(['charge.failed']);
    expect(s.events[0]!.data).toMatchObject({ willRetry: false });
    expect(s.subscription).toMatchObject({ status: 'stopped', nextAction: 'end' });
  });
});

describe('settleAttempt: outcomes nobody knows yet', () => {
  it('unavailable (timeout, 5xx) marks the attempt unknown and points at reconcile, keeping the key', () => {
    const begun = beginAttempt(fresh(), T1, T1 + 120_000);
    const s = settleAttempt(begun.subscription, attemptOf(fresh(), T1), { kind: 'unavailable', error: 'GATEWAY_TIMEOUT: no answer in 30s' }, T1 + 30_000, policy());
    expect(s.attempt).toEqual({ state: 'unknown', error: 'GATEWAY_TIMEOUT: no answer in 30s', unavailableSince: T1 + 30_000, unavailableCount: 1 });
    expect(s.events).toEqual([]);
    expect(s.cycles).toEqual([]);
    expect(s.resend).toBe(false);
    expect(s.subscription).toMatchObject({ nextAction: 'reconcile', nextCycle: 1, nextAttempt: 1, actionAt: T1 + 30_000 + 60_000 });
    expect(dueStep(s.subscription, T1 + 90_000)).toBe('reconcile');
    // Reconciliation then learns the charge went through: recorded once, no new attempt.
    const settled = settleAttempt(s.subscription, attemptOf(fresh(), T1, 'unknown'), CAPTURED('pay_late'), T1 + 90_000, policy());
    expect(settled.cycles[0]).toMatchObject({ cycle: 1, status: 'paid', attempts: 1 });
    expect(settled.subscription).toMatchObject({ nextCycle: 2, completedCycles: 1 });
  });

  it('not_found after a timeout re-sends the same key, spending no attempt, until the outage has lasted unavailableMs; then it counts as one soft failure', () => {
    const begun = beginAttempt(fresh(), T1, T1 + 120_000).subscription;
    const unknown = (sends: number) => ({ ...attemptOf(fresh(), T1, 'unknown', sends), unavailableSince: T1, unavailableCount: sends });
    // Many sends, 71 hours in: still the same key, no event, no budget spent.
    for (const [sends, now] of [[1, T1 + 150_000], [2, T1 + 300_000], [40, T1 + 71 * 3_600_000]] as const) {
      const s = settleAttempt(begun, unknown(sends), { kind: 'not_found' }, now, policy());
      expect(s.resend).toBe(true);
      expect(s.attempt).toEqual({ state: 'in_flight' });
      expect(s.subscription).toBe(begun);
      expect(s.events).toEqual([]);
    }
    const at72h = T1 + 72 * 3_600_000;
    const again = settleAttempt(begun, unknown(41), { kind: 'not_found' }, at72h, policy());
    expect(again.resend).toBe(false);
    expect(again.attempt).toMatchObject({ state: 'rejected', declineCode: 'gateway_unavailable', hardDecline: false });
    expect(again.events[0]!.data).toMatchObject({ willRetry: true, idempotencyKey: 'sub-1:1:1' });
    expect(again.subscription).toMatchObject({ status: 'active', nextAction: 'collect', nextAttempt: 2, actionAt: at72h + DAY });
  });

  it('the outage is measured from the first unavailable outcome, not from when the attempt was created', () => {
    const begun = beginAttempt(fresh(), T1, T1 + 120_000).subscription;
    const attempt = { ...attemptOf(fresh(), T1, 'unknown', 3), unavailableSince: T1 + 10 * DAY, unavailableCount: 3 };
    expect(settleAttempt(begun, attempt, { kind: 'not_found' }, T1 + 11 * DAY, policy()).resend).toBe(true);
    expect(settleAttempt(begun, attempt, { kind: 'not_found' }, T1 + 13 * DAY, policy()).attempt).toMatchObject({ declineCode: 'gateway_unavailable' });
  });

  it('after unavailable outcomes the status query waits reconcileMs, then 1 minute doubling to 1 hour; the outage start is kept', () => {
    const p = policy();
    const begun = beginAttempt(fresh(), T1, T1 + 120_000).subscription;
    let attempt: AttemptInfo = attemptOf(fresh(), T1);
    let now = T1 + 5_000;
    const waits: number[] = [];
    for (let i = 0; i < 10; i++) {
      const s = settleAttempt(begun, attempt, { kind: 'unavailable', error: 'GATEWAY_UNAVAILABLE: 500' }, now, p);
      expect(s.attempt).toMatchObject({ state: 'unknown', unavailableSince: T1 + 5_000, unavailableCount: i + 1 });
      expect(s.subscription.nextAction).toBe('reconcile');
      waits.push(s.subscription.actionAt! - now);
      now = s.subscription.actionAt!;
      attempt = { ...attempt, state: 'unknown', unavailableSince: s.attempt.unavailableSince!, unavailableCount: s.attempt.unavailableCount! };
    }
    const min = 60_000;
    expect(waits).toEqual([p.reconcileMs, min, 2 * min, 4 * min, 8 * min, 16 * min, 32 * min, 60 * min, 60 * min, 60 * min]);
    // An answer ends the outage: the bookkeeping is reset with it.
    const paid = settleAttempt(begun, attempt, CAPTURED('pay_1'), now, p);
    expect(paid.attempt).toEqual({ state: 'captured', externalId: 'pay_1', unavailableSince: null, unavailableCount: 0 });
  });

  it('not_found on a key the gateway had answered pending (it lost its state) is re-sent with the same key, never a decline', () => {
    const begun = beginAttempt(fresh(), T1, T1 + 120_000).subscription;
    const pendingLongAgo = { ...attemptOf(fresh(), T1, 'pending', 1), unavailableSince: T1, unavailableCount: 4 };
    const s = settleAttempt(begun, pendingLongAgo, { kind: 'not_found' }, T1 + 30 * DAY, policy());
    expect(s.resend).toBe(true);
    expect(s.events).toEqual([]);
    expect(s.subscription).toBe(begun);
  });

  it('an unavailable poll of a pending payment keeps it pending (no second charge.pending when it answers again)', () => {
    const p = policy();
    const begun = beginAttempt(fresh(), T1, T1 + 120_000).subscription;
    const pendingAttempt = attemptOf(fresh(), T1, 'pending');
    const s = settleAttempt(begun, pendingAttempt, { kind: 'unavailable', error: 'GATEWAY_TIMEOUT: 30 s' }, T1 + DAY, p);
    expect(s.attempt).toMatchObject({ state: 'pending', unavailableSince: T1 + DAY, unavailableCount: 1 });
    expect(s.subscription).toMatchObject({ nextAction: 'poll', actionAt: T1 + DAY + p.reconcileMs });
    const back = settleAttempt(s.subscription, { ...pendingAttempt, unavailableSince: T1 + DAY, unavailableCount: 1 }, { kind: 'pending', externalId: 'pay_p' }, T1 + DAY + p.reconcileMs, p);
    expect(back.events).toEqual([]);
    expect(back.attempt).toMatchObject({ state: 'pending', unavailableSince: null, unavailableCount: 0 });
  });

  it('not_found for an attempt still in_flight (its daemon died before any answer) is always re-sent with the same key', () => {
    const begun = beginAttempt(fresh(), T1, T1 + 120_000).subscription;
    for (const sends of [1, 2, 5]) {
      const s = settleAttempt(begun, attemptOf(fresh(), T1, 'in_flight', sends), { kind: 'not_found' }, T1 + 150_000, policy());
      expect(s.resend).toBe(true);
      expect(s.events).toEqual([]);
    }
  });

  it('pending (charge mode) emits charge.pending once and polls until the gateway settles it', () => {
    const p = policy();
    const begun = beginAttempt(fresh(), T1, T1 + 120_000).subscription;
    const pend: Outcome = { kind: 'pending', externalId: 'pay_p' };
    const s1 = settleAttempt(begun, attemptOf(fresh(), T1), pend, T1 + 1_000, p);
    expect(types(s1.events)).toEqual(['charge.pending']);
    expect(s1.events[0]!.data).toMatchObject({ status: 'pending', externalId: 'pay_p' });
    expect(s1.cycles).toEqual([{ cycle: 1, dueAt: T1, status: 'pending', attempts: 1 }]);
    expect(s1.attempt).toEqual({ state: 'pending', externalId: 'pay_p', linkUrl: null });
    expect(s1.subscription).toMatchObject({ nextAction: 'poll', actionAt: T1 + 1_000 + p.pollMs });
    expect(dueStep(s1.subscription, T1 + 1_000 + p.pollMs)).toBe('poll');

    const s2 = settleAttempt(s1.subscription, attemptOf(fresh(), T1, 'pending'), pend, T1 + 1_000 + p.pollMs, p);
    expect(s2.events).toEqual([]);
    expect(s2.cycles).toEqual([]);
    expect(s2.subscription.actionAt).toBe(T1 + 1_000 + 2 * p.pollMs);

    const s3 = settleAttempt(s2.subscription, attemptOf(fresh(), T1, 'pending'), CAPTURED('pay_p'), T1 + DAY, p);
    expect(types(s3.events)).toEqual(['charge.succeeded']);
    expect(s3.subscription).toMatchObject({ nextCycle: 2, completedCycles: 1 });
  });
});

describe('link mode', () => {
  const linkSub = () => fresh({ mode: 'link' });
  const link = (n: number): Outcome => ({ kind: 'pending', externalId: `pl_${n}`, linkUrl: `https://pay.example/l/${n}` });

  it('sends payment_link.sent once, polls, and counts a link unpaid past its deadline as a soft failure; the next attempt sends a new link', () => {
    const p = policy();
    const sub = linkSub();
    const begun = beginAttempt(sub, T1, T1 + 120_000);
    expect(begun.key).toBe('sub-1:1:1');
    const sent = settleAttempt(begun.subscription, attemptOf(sub, T1), link(1), T1, p);
    expect(types(sent.events)).toEqual(['payment_link.sent']);
    expect(sent.events[0]!.data).toMatchObject({ mode: 'link', status: 'pending', externalId: 'pl_1', linkUrl: 'https://pay.example/l/1', amount: '9.99' });
    expect(sent.attempt).toEqual({ state: 'pending', externalId: 'pl_1', linkUrl: 'https://pay.example/l/1' });
    expect(sent.subscription).toMatchObject({ nextAction: 'poll', actionAt: T1 + p.pollMs });

    // Polls while the link is open: no second payment_link.sent.
    let current = sent.subscription;
    let polls = 0;
    while (current.nextAction === 'poll') {
      const now = current.actionAt!;
      const s = settleAttempt(current, attemptOf(sub, T1, 'pending'), link(1), now, p);
      if (s.subscription.nextAction === 'poll') {
        expect(s.events).toEqual([]);
        expect(s.subscription.actionAt!).toBeLessThanOrEqual(T1 + DAY);
      } else {
        // The deadline: the first link's window (P1D) is over.
        expect(now).toBe(T1 + DAY);
        expect(s.attempt).toMatchObject({ state: 'rejected', declineCode: 'link_unpaid', hardDecline: false, externalId: 'pl_1' });
        expect(types(s.events)).toEqual(['charge.failed']);
        expect(s.events[0]!.data).toMatchObject({ willRetry: true, mode: 'link', nextAttemptAt: '2025-02-01T10:00:00Z' });
      }
      current = s.subscription;
      polls++;
    }
    expect(polls).toBe(DAY / p.pollMs);
    // The link already waited out the delay before attempt 2, so attempt 2 is due at once.
    expect(current).toMatchObject({ nextAction: 'collect', nextCycle: 1, nextAttempt: 2, actionAt: T1 + DAY });
    expect(nextPayment(current).action).toBe('retry');
    // The second link goes as the next attempt, with its own key.
    expect(beginAttempt(current, current.actionAt!, current.actionAt! + 120_000).key).toBe('sub-1:1:2');
  });

  it('keeps the charge-mode timeline: link 2 goes when link 1 expires (+P1D), link 3 when link 2 expires (+P3D), and the last link gets the last delay', () => {
    const p = policy();
    let sub = linkSub();
    const sentAt: string[] = [];
    let s!: Settlement;
    for (let attempt = 1; attempt <= 3; attempt++) {
      const now = sub.actionAt!;
      sentAt.push(isoOrNull(now)!);
      const begun = beginAttempt(sub, now, now + 120_000);
      const info = attemptOf(sub, now);
      const pending = settleAttempt(begun.subscription, info, link(attempt), now, p).subscription;
      const deadline = linkDeadline(p.retry, info);
      s = settleAttempt(pending, { ...info, state: 'pending' }, link(attempt), deadline, p);
      sub = s.subscription;
    }
    expect(sentAt).toEqual(['2025-01-31T10:00:00Z', '2025-02-01T10:00:00Z', '2025-02-04T10:00:00Z']);
    expect(types(s.events)).toEqual(['charge.failed', 'subscription.payment_failed', 'subscription.cancelled']);
    expect(s.events[0]!.at).toBe(at('2025-02-07T10:00:00Z'));
    expect(sub).toMatchObject({ status: 'terminated', terminationType: 'paymentCancel' });
  });

  it('a link paid before its deadline settles the cycle', () => {
    const p = policy();
    const sub = linkSub();
    const begun = beginAttempt(sub, T1, T1 + 120_000);
    const sent = settleAttempt(begun.subscription, attemptOf(sub, T1), link(1), T1, p);
    const paid = settleAttempt(sent.subscription, attemptOf(sub, T1, 'pending'), CAPTURED('pl_1'), T1 + 3_600_000, p);
    expect(types(paid.events)).toEqual(['charge.succeeded']);
    expect(paid.subscription).toMatchObject({ nextCycle: 2, nextAction: 'collect', completedCycles: 1 });
  });
});

describe('catch-up after downtime', () => {
  /** Cycle 1 paid on time; cycle 2 (Feb 28) is only settled on May 10, after the daemon was down. */
  function lateSettlement(backfill: boolean): Settlement {
    const paid = collect(fresh({ backfill }), T1, CAPTURED('pay_1')).subscription;
    const begun = beginAttempt(paid, at('2025-02-28T10:00:00Z'), at('2025-02-28T10:02:00Z'));
    return settleAttempt(begun.subscription, attemptOf(paid, at('2025-02-28T10:00:00Z'), 'unknown'), CAPTURED('pay_2'), at('2025-05-10T00:00:00Z'), policy());
  }

  it('backfill false: cycles older than the current period are skipped; the current one is due at once', () => {
    const s = lateSettlement(false);
    expect(s.cycles.map((c) => [c.cycle, c.status])).toEqual([
      [2, 'paid'],
      [3, 'skipped'],
    ]);
    expect(s.subscription.nextCycle).toBe(4);
    expect(isoOrNull(s.subscription.actionAt)).toBe('2025-04-30T10:00:00Z');
    expect(dueStep(s.subscription, at('2025-05-10T00:00:00Z'))).toBe('collect');
  });

  it('backfill false: a first attempt started after several missed due dates goes to the current period, not the oldest', () => {
    const paid = collect(fresh({ backfill: false }), T1, CAPTURED('pay_1')).subscription;
    // Down from before Feb 28 until May 10: cycles 2 (Feb 28) and 3 (Mar 31) are past, cycle 4 (Apr 30) is current.
    const begun = beginAttempt(paid, at('2025-05-10T00:00:00Z'), at('2025-05-10T00:02:00Z'));
    expect(begun).toMatchObject({ cycle: 4, attempt: 1, key: 'sub-1:4:1' });
    expect(begun.cycles.map((c) => [c.cycle, c.status])).toEqual([
      [2, 'skipped'],
      [3, 'skipped'],
      [4, 'collecting'],
    ]);
    expect(begun.subscription).toMatchObject({ nextCycle: 4, nextAction: 'reconcile' });
  });

  it('backfill true: a first attempt after downtime still starts with the oldest unpaid cycle', () => {
    const paid = collect(fresh({ backfill: true }), T1, CAPTURED('pay_1')).subscription;
    const begun = beginAttempt(paid, at('2025-05-10T00:00:00Z'), at('2025-05-10T00:02:00Z'));
    expect(begun).toMatchObject({ cycle: 2, attempt: 1 });
    expect(begun.cycles.map((c) => c.status)).toEqual(['collecting']);
  });

  it('backfill true: every missed cycle is collected in turn', () => {
    const s = lateSettlement(true);
    expect(s.cycles.map((c) => [c.cycle, c.status])).toEqual([[2, 'paid']]);
    expect(s.subscription.nextCycle).toBe(3);
    expect(isoOrNull(s.subscription.actionAt)).toBe('2025-03-31T10:00:00Z');
    const then = collect(s.subscription, at('2025-05-10T00:00:01Z'), CAPTURED('pay_3'));
    expect(then.subscription.nextCycle).toBe(4);
  });
});

describe('the end of a schedule', () => {
  /** Pays every cycle on its due instant until the pointer stops collecting. */
  function payAll(sub: Subscription): { sub: Subscription; paidAt: string[] } {
    const paidAt: string[] = [];
    while (sub.nextAction === 'collect') {
      const now = sub.actionAt!;
      paidAt.push(isoOrNull(now)!);
      sub = collect(sub, now, CAPTURED(`pay_${sub.nextCycle}`)).subscription;
    }
    return { sub, paidAt };
  }

  it('maxCycles: after the last paid cycle the pointer ends the subscription when that period runs out; applyEnd finishes it', () => {
    const { sub, paidAt } = payAll(fresh({ maxCycles: 3 }));
    expect(paidAt).toEqual(['2025-01-31T10:00:00Z', '2025-02-28T10:00:00Z', '2025-03-31T10:00:00Z']);
    expect(sub).toMatchObject({ status: 'active', nextAction: 'end', nextCycle: 4, completedCycles: 3, lastPaidCycle: 3 });
    expect(isoOrNull(sub.actionAt)).toBe('2025-04-30T10:00:00Z');
    expect(nextPayment(sub)).toEqual({ action: 'none', at: null });
    expect(dueStep(sub, at('2025-04-30T09:59:59Z'))).toBe('none');
    expect(dueStep(sub, at('2025-04-30T10:00:00Z'))).toBe('end');
    const t = applyEnd(sub, at('2025-04-30T10:00:00Z'));
    expect(t.subscription).toMatchObject({ status: 'terminated', terminationType: 'finished', nextAction: 'none' });
    expect(types(t.events)).toEqual(['subscription.finished']);
  });

  it('endDate is inclusive: a cycle due on that local date is still charged', () => {
    expect(payAll(fresh({ endDate: '2025-03-31' })).paidAt).toEqual(['2025-01-31T10:00:00Z', '2025-02-28T10:00:00Z', '2025-03-31T10:00:00Z']);
    const shorter = payAll(fresh({ endDate: '2025-03-30' }));
    expect(shorter.paidAt).toEqual(['2025-01-31T10:00:00Z', '2025-02-28T10:00:00Z']);
    expect(isoOrNull(shorter.sub.actionAt)).toBe('2025-03-31T10:00:00Z');
  });

  it('a final failure on the last cycle (keep) still ends the subscription', () => {
    let sub = fresh({ maxCycles: 1 });
    for (let attempt = 1; attempt <= 3; attempt++) sub = collect(sub, sub.actionAt!, SOFT, { policy: policy('keep') }).subscription;
    expect(sub.nextAction).toBe('end');
    expect(applyEnd(sub, sub.actionAt!).subscription.terminationType).toBe('finished');
  });

  it('the Jan 31 monthly subscription paid 12 times lands on month ends (no drift)', () => {
    const { sub, paidAt } = payAll(fresh({ maxCycles: 12 }));
    expect(paidAt).toEqual([
      '2025-01-31T10:00:00Z',
      '2025-02-28T10:00:00Z',
      '2025-03-31T10:00:00Z',
      '2025-04-30T10:00:00Z',
      '2025-05-31T10:00:00Z',
      '2025-06-30T10:00:00Z',
      '2025-07-31T10:00:00Z',
      '2025-08-31T10:00:00Z',
      '2025-09-30T10:00:00Z',
      '2025-10-31T10:00:00Z',
      '2025-11-30T10:00:00Z',
      '2025-12-31T10:00:00Z',
    ]);
    expect(sub.completedCycles).toBe(12);
    // The period paid last runs to the anchor's next date, Jan 31 2026.
    expect(isoOrNull(sub.actionAt)).toBe('2026-01-31T10:00:00Z');
    expect(isoOrNull(cycleDueAt(sub, 13))).toBe('2026-01-31T10:00:00Z');
  });
});
