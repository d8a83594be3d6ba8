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

/** Whether an attempt in `state` still waits for its outcome (a send, a status query or a callback may settle it). */
export function isOpenAttemptState(state: AttemptState): boolean {
  return state === 'in_flight' || state === 'pending' || state === 'unknown';
}

/** The attempt row as the settlement logic needs it. */
export interface AttemptInfo {
  readonly key: string;
  readonly cycle: number;
  readonly attempt: number;
  readonly mode: 'charge' | 'link';
  readonly state: AttemptState;
  readonly sends: number;
  readonly createdAt: number;
  /** Start of the current run of unavailable outcomes (null/absent: the gateway's last word was an answer). */
  readonly unavailableSince?: number | null;
  /** Unavailable outcomes in that run (absent: 0). */
  readonly unavailableCount?: number;
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
  readonly unavailableSince?: number | null;
  readonly unavailableCount?: number;
}

/** The outage bookkeeping an answer from the gateway resets (only written when there is something to reset). */
function answered(attempt: AttemptInfo): Pick<AttemptUpdate, 'unavailableSince' | 'unavailableCount'> {
  return attempt.unavailableSince != null || (attempt.unavailableCount ?? 0) > 0 ? { unavailableSince: null, unavailableCount: 0 } : {};
}

/** Shortest and longest wait between re-sends of an unavailable key (SPEC section 6: 1 minute doubling to 1 hour). */
export const OUTAGE_BACKOFF_MIN_MS = 60_000;
export const OUTAGE_BACKOFF_MAX_MS = 3_600_000;

/**
 * How long to wait after the `n`-th unavailable outcome in a row (1-based)
 * before the status query that precedes any re-send. The first waits only
 * `reconcileMs`: a lost answer (a timeout whose charge went through) is
 * settled quickly. Then 1 minute, doubling, capped at 1 hour.
 */
export function outageBackoffMs(n: number, reconcileMs: number): number {
  if (n <= 1) return reconcileMs;
  return Math.min(OUTAGE_BACKOFF_MAX_MS, OUTAGE_BACKOFF_MIN_MS * 2 ** Math.min(n - 2, 30));
}

/** Where an attempt's outage began: its first unavailable outcome (rows older than migration 0002: its creation). */
export function outageStart(attempt: AttemptInfo): number {
  return attempt.unavailableSince ?? attempt.createdAt;
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
      return unavailable(sub, attempt, outcome.error, now, policy);
    case 'not_found':
      return notFound(sub, attempt, now, policy);
  }
}

/**
 * Nobody knows whether money moved: the attempt keeps its key and no budget
 * is spent. The next step is a status query after the backoff; only that
 * query's `not_found` may lead to a re-send or, after unavailableMs, to a
 * failed attempt. A pending attempt stays pending: the gateway did accept it,
 * and an unanswered poll taught nothing new.
 */
function unavailable(sub: Subscription, attempt: AttemptInfo, error: string, now: number, policy: CollectionPolicy): Settlement {
  const count = (attempt.unavailableCount ?? 0) + 1;
  const since = attempt.unavailableSince ?? now;
  const wasPending = attempt.state === 'pending';
  return {
    subscription: { ...sub, nextAction: wasPending ? 'poll' : 'reconcile', actionAt: now + outageBackoffMs(count, policy.reconcileMs), updatedAt: now },
    cycles: [],
    events: [],
    attempt: { state: wasPending ? 'pending' : 'unknown', error, unavailableSince: since, unavailableCount: count },
    resend: false,
  };
}

/**
 * The gateway says it never saw the key, so re-sending the same key cannot
 * charge twice. It is never a decline by itself: an attempt still in_flight
 * (its daemon died before any answer), or one the gateway had answered
 * `pending` (a gateway that lost its state), is always re-sent. An `unknown`
 * one (only unavailable outcomes so far) is re-sent until its outage has
 * lasted unavailableMs; then it counts as one soft failed attempt and the
 * normal retry delays apply.
 */
function notFound(sub: Subscription, attempt: AttemptInfo, now: number, policy: CollectionPolicy): Settlement {
  if (attempt.state === 'unknown' && now - outageStart(attempt) >= policy.unavailableMs) {
    return failed(sub, attempt, { code: 'gateway_unavailable', hard: false, externalId: null }, now, policy);
  }
  return { subscription: sub, cycles: [], events: [], attempt: { state: 'in_flight' }, resend: true };
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
    return { subscription: settled, cycles: [cycle], events, attempt: { state: 'captured', externalId, ...answered(attempt) }, resend: false };
  }
  const moved = advanceAfter(paid, attempt.cycle, now);
  return { subscription: moved.subscription, cycles: [cycle, ...moved.cycles], events: [...events, ...moved.events], attempt: { state: 'captured', externalId, ...answered(attempt) }, resend: false };
}

function failed(
  sub: Subscription,
  attempt: AttemptInfo,
  decline: { code: string; hard: boolean; externalId: string | null; delayServed?: boolean },
  now: number,
  policy: CollectionPolicy,
): Settlement {
  const update: AttemptUpdate = { state: 'rejected', declineCode: decline.code, hardDecline: decline.hard, externalId: decline.externalId, ...answered(attempt) };
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
    attempt: { state: 'pending', externalId: outcome.externalId, linkUrl: outcome.linkUrl ?? null, ...answered(attempt) },
    resend: false,
  };
}

/** A link sent for attempt k stays open until attempt k+1 would go (the last one: the last delay). */
export function linkDeadline(policy: RetryPolicy, attempt: Pick<AttemptInfo, 'attempt' | 'createdAt'>): number {
  const delay = policy.delays[Math.min(attempt.attempt - 1, policy.delays.length - 1)] ?? 'P1D';
  return DateTime.fromMillis(attempt.createdAt, { zone: 'utc' }).plus(parseDuration(delay)).toMillis();
}
