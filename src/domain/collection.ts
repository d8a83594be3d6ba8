/**
 * Collecting a cycle (SPEC section 6): the retry policy and what each gateway
 * answer does to the attempt, the cycle and the subscription. Pure functions.
 */
import { DateTime } from 'luxon';
import { parseDuration } from '../calendar/index.js';
import { formatAmount } from '../money/index.js';
import {
  advanceAfter,
  cycleDueAt,
  iso,
  type CycleWrite,
  type DomainEvent,
  type EventType,
  type Subscription,
  type Transition,
} from './subscription.js';

export type FinalFailureAction = 'terminate' | 'pause' | 'keep';

export interface RetryPolicy {
  /** Attempts per cycle in total (default 3). */
  readonly attempts: number;
  /** ISO-8601 delays before attempts 2, 3, ... (default P1D, P3D). */
  readonly delays: readonly string[];
  readonly onFinalFailure: FinalFailureAction;
}

export interface CollectionPolicy {
  readonly retry: RetryPolicy;
  /** How long to wait before asking again about a pending payment or an unpaid link. */
  readonly pollMs: number;
  /** How long to wait before asking about an attempt whose outcome is unknown. */
  readonly reconcileMs: number;
  /** How long an unknown outcome is re-sent with the same key before it counts as a failed attempt (retry.unavailableHours). */
  readonly unavailableMs: number;
}

export type AttemptState = 'in_flight' | 'captured' | 'rejected' | 'pending' | 'unknown';

/** The attempt row as the settlement logic needs it. */
export interface AttemptInfo {
  readonly key: string;
  readonly cycle: number;
  readonly attempt: number;
  readonly mode: 'charge' | 'link';
  readonly state: AttemptState;
  readonly sends: number;
  readonly createdAt: number;
}

/** What was learned about an attempt: from a send, a status query or a callback. */
export type Outcome =
  | { readonly kind: 'captured'; readonly externalId: string }
  | { readonly kind: 'declined'; readonly code: string; readonly hard: boolean; readonly externalId?: string }
  | { readonly kind: 'pending'; readonly externalId: string; readonly linkUrl?: string }
  /** Timeout, connection error, 5xx: nobody knows whether money moved. */
  | { readonly kind: 'unavailable'; readonly error: string }
  /** The gateway never saw the key (reconciliation only). */
  | { readonly kind: 'not_found' };

/** The attempt row's new columns. */
export interface AttemptUpdate {
  readonly state: AttemptState;
  readonly declineCode?: string | null;
  readonly hardDecline?: boolean | null;
  readonly externalId?: string | null;
  readonly linkUrl?: string | null;
  readonly error?: string | null;
}

export interface Settlement extends Transition {
  readonly attempt: AttemptUpdate;
  /** true: send the same key again (the gateway never saw it). */
  readonly resend: boolean;
}

/** Retry decision after a failed attempt: when the next attempt goes, or that this was the last. */
export function nextAttemptAt(policy: RetryPolicy, failedAttempt: number, hard: boolean, now: number): number | null {
  if (hard || failedAttempt >= policy.attempts) return null;
  const delay = policy.delays[Math.min(failedAttempt - 1, policy.delays.length - 1)] ?? 'P1D';
  return DateTime.fromMillis(now, { zone: 'utc' }).plus(parseDuration(delay)).toMillis();
}

function chargeEvent(sub: Subscription, type: EventType, now: number, attempt: AttemptInfo, data: Record<string, unknown>): DomainEvent {
  return {
    type,
    subscriptionId: sub.id,
    at: now,
    cycle: attempt.cycle,
    attempt: attempt.attempt,
    data: { amount: formatAmount(sub.amount), currency: sub.amount.currency, mode: attempt.mode, idempotencyKey: attempt.key, ...data },
  };
}

/**
 * Applies an outcome to an attempt and its subscription. Exhaustive over
 * Outcome: adding a kind is a compile error here until it is handled.
 */
export function settleAttempt(sub: Subscription, attempt: AttemptInfo, outcome: Outcome, now: number, policy: CollectionPolicy): Settlement {
  switch (outcome.kind) {
    case 'captured':
      return captured(sub, attempt, outcome.externalId, now);
    case 'declined':
      return failed(sub, attempt, { code: outcome.code, hard: outcome.hard, externalId: outcome.externalId ?? null }, now, policy);
    case 'pending':
      return pending(sub, attempt, outcome, now, policy);
    case 'unavailable':
      return {
        subscription: { ...sub, nextAction: 'reconcile', actionAt: now + policy.reconcileMs, updatedAt: now },
        cycles: [],
        events: [],
        attempt: { state: 'unknown', error: outcome.error },
        resend: false,
      };
    case 'not_found':
      // Never seen by the gateway: re-sending the same key cannot charge twice. An attempt still
      // in_flight never had any answer recorded (the daemon that sent it died first): a crash is not
      // a decline, so it is always re-sent. An `unknown` one had a timeout/5xx answer; after a
      // second send the gateway still has not recorded, it counts as a soft failure.
      if (attempt.state === 'in_flight' || attempt.sends < 2) {
        return { subscription: sub, cycles: [], events: [], attempt: { state: 'in_flight' }, resend: true };
      }
      return failed(sub, attempt, { code: 'gateway_unavailable', hard: false, externalId: null }, now, policy);
  }
}

function captured(sub: Subscription, attempt: AttemptInfo, externalId: string, now: number): Settlement {
  const paid: Subscription = {
    ...sub,
    completedCycles: sub.completedCycles + 1,
    lastPaidCycle: Math.max(sub.lastPaidCycle, attempt.cycle),
    latestPaymentExternalId: externalId,
    updatedAt: now,
  };
  const cycle: CycleWrite = { cycle: attempt.cycle, dueAt: cycleDueAt(sub, attempt.cycle), status: 'paid', attempts: attempt.attempt, settledAt: now };
  const events = [chargeEvent(paid, 'charge.succeeded', now, attempt, { status: 'captured', externalId })];
  if (sub.status === 'terminated') {
    // Cancelled while the charge was in flight: the money moved, so it is recorded; nothing is scheduled.
    const settled: Subscription = { ...paid, nextAction: 'none', actionAt: null };
    return { subscription: settled, cycles: [cycle], events, attempt: { state: 'captured', externalId }, resend: false };
  }
  const moved = advanceAfter(paid, attempt.cycle, now);
  return { subscription: moved.subscription, cycles: [cycle, ...moved.cycles], events: [...events, ...moved.events], attempt: { state: 'captured', externalId }, resend: false };
}

function failed(
  sub: Subscription,
  attempt: AttemptInfo,
  decline: { code: string; hard: boolean; externalId: string | null; delayServed?: boolean },
  now: number,
  policy: CollectionPolicy,
): Settlement {
  const update: AttemptUpdate = { state: 'rejected', declineCode: decline.code, hardDecline: decline.hard, externalId: decline.externalId };
  const retryAfterDelay = sub.status === 'terminated' || sub.status === 'stopped' ? null : nextAttemptAt(policy.retry, attempt.attempt, decline.hard, now);
  // An unpaid link has already waited out the delay before the next attempt (its deadline): that attempt goes now.
  const retryAt = retryAfterDelay !== null && decline.delayServed ? now : retryAfterDelay;
  const failedEvent = (willRetry: boolean) =>
    chargeEvent(sub, 'charge.failed', now, attempt, {
      status: 'rejected',
      declineCode: decline.code,
      hardDecline: decline.hard,
      willRetry,
      nextAttemptAt: retryAt === null ? null : iso(retryAt),
    });
  if (retryAt !== null) {
    return {
      subscription: { ...sub, nextAction: 'collect', nextAttempt: attempt.attempt + 1, actionAt: retryAt, updatedAt: now },
      cycles: [{ cycle: attempt.cycle, dueAt: cycleDueAt(sub, attempt.cycle), status: 'collecting', attempts: attempt.attempt }],
      events: [failedEvent(true)],
      attempt: update,
      resend: false,
    };
  }
  const cycle: CycleWrite = { cycle: attempt.cycle, dueAt: cycleDueAt(sub, attempt.cycle), status: 'failed', attempts: attempt.attempt, settledAt: now };
  const events: DomainEvent[] = [failedEvent(false)];
  if (sub.status === 'terminated' || sub.status === 'stopped') {
    const moved =
      sub.status === 'stopped'
        ? advanceAfter(sub, attempt.cycle, now)
        : { subscription: { ...sub, nextAction: 'none' as const, actionAt: null, updatedAt: now }, cycles: [], events: [] };
    return { subscription: moved.subscription, cycles: [cycle, ...moved.cycles], events, attempt: update, resend: false };
  }
  events.push({
    type: 'subscription.payment_failed',
    subscriptionId: sub.id,
    at: now,
    cycle: attempt.cycle,
    attempt: attempt.attempt,
    data: { declineCode: decline.code, attempts: attempt.attempt, action: policy.retry.onFinalFailure },
  });
  switch (policy.retry.onFinalFailure) {
    case 'terminate': {
      const ended: Subscription = { ...sub, status: 'terminated', terminationType: 'paymentCancel', nextAction: 'none', actionAt: null, pauseAt: null, resumeAt: null, endedAt: now, updatedAt: now };
      events.push({ type: 'subscription.cancelled', subscriptionId: sub.id, at: now, data: { terminationType: 'paymentCancel' } });
      return { subscription: ended, cycles: [cycle], events, attempt: update, resend: false };
    }
    case 'pause': {
      const paused: Subscription = { ...sub, status: 'paused', pausedAt: now, pauseAt: null, resumeAt: null, nextAction: 'collect', nextCycle: attempt.cycle + 1, nextAttempt: 1, actionAt: cycleDueAt(sub, attempt.cycle + 1), updatedAt: now };
      events.push({ type: 'subscription.paused', subscriptionId: sub.id, at: now, data: { reason: 'payment_failed', resumeAt: null } });
      return { subscription: paused, cycles: [cycle], events, attempt: update, resend: false };
    }
    case 'keep': {
      const moved = advanceAfter(sub, attempt.cycle, now);
      return { subscription: moved.subscription, cycles: [cycle, ...moved.cycles], events: [...events, ...moved.events], attempt: update, resend: false };
    }
  }
}

function pending(
  sub: Subscription,
  attempt: AttemptInfo,
  outcome: { externalId: string; linkUrl?: string },
  now: number,
  policy: CollectionPolicy,
): Settlement {
  // An unpaid link counts as a failed attempt once the wait before the next attempt has passed.
  if (attempt.mode === 'link' && attempt.state === 'pending') {
    const deadline = linkDeadline(policy.retry, attempt);
    if (now >= deadline) return failed(sub, attempt, { code: 'link_unpaid', hard: false, externalId: outcome.externalId, delayServed: true }, now, policy);
  }
  const firstReport = attempt.state !== 'pending';
  const events: DomainEvent[] = [];
  if (firstReport) {
    events.push(
      attempt.mode === 'link'
        ? chargeEvent(sub, 'payment_link.sent', now, attempt, { status: 'pending', externalId: outcome.externalId, linkUrl: outcome.linkUrl ?? null })
        : chargeEvent(sub, 'charge.pending', now, attempt, { status: 'pending', externalId: outcome.externalId }),
    );
  }
  let pollAt = now + policy.pollMs;
  if (attempt.mode === 'link') pollAt = Math.min(pollAt, linkDeadline(policy.retry, { ...attempt, createdAt: firstReport ? now : attempt.createdAt }));
  return {
    subscription: { ...sub, nextAction: 'poll', actionAt: pollAt, updatedAt: now },
    cycles: firstReport ? [{ cycle: attempt.cycle, dueAt: cycleDueAt(sub, attempt.cycle), status: 'pending', attempts: attempt.attempt }] : [],
    events,
    attempt: { state: 'pending', externalId: outcome.externalId, linkUrl: outcome.linkUrl ?? null },
    resend: false,
  };
}

/** A link sent for attempt k stays open until attempt k+1 would go (the last one: the last delay). */
export function linkDeadline(policy: RetryPolicy, attempt: Pick<AttemptInfo, 'attempt' | 'createdAt'>): number {
  const delay = policy.delays[Math.min(attempt.attempt - 1, policy.delays.length - 1)] ?? 'P1D';
  return DateTime.fromMillis(attempt.createdAt, { zone: 'utc' }).plus(parseDuration(delay)).toMillis();
}
