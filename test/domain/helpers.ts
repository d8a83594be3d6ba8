/**
 * Shared fixtures for the pure domain tests: a plan, subscriptions built from
 * it, and instants written as ISO text so every test reads like a calendar.
 */
import {
  beginAttempt,
  createSubscription,
  idempotencyKey,
  iso,
  settleAttempt,
  type AttemptInfo,
  type AttemptState,
  type CollectionPolicy,
  type Outcome,
  type Settlement,
  type Subscription,
  type DomainEvent,
  type NewSubscription,
  type PlanTerms,
  type SubscriptionRequest,
  type Transition,
} from '../../src/domain/index.js';
import { goldSubscription } from '../support/plans.js';

/** Epoch ms of an ISO instant; throws on a typo so a bad fixture cannot pass silently. */
export function at(text: string): number {
  const ms = Date.parse(text);
  if (Number.isNaN(ms)) throw new Error(`bad instant in a test fixture: ${text}`);
  return ms;
}

export const DAY = 86_400_000;

/** Gold monthly (see test/support/plans.ts): 9.99 USD each month at 10:00 UTC. */
export { gold } from '../support/plans.js';

/** A subscription snapshot on `plan` (customer fields dropped: the store resolves those). */
export function newSubscription(plan: Partial<PlanTerms> = {}, request: Partial<SubscriptionRequest> = {}): NewSubscription {
  const { customer: _customer, ...snapshot } = goldSubscription(request, plan);
  return snapshot;
}

/** createSubscription on `plan` at `now`. */
export function create(now: number, plan: Partial<PlanTerms> = {}, request: Partial<SubscriptionRequest> = {}): Transition {
  return createSubscription(newSubscription(plan, request), now);
}

/** The default retry policy of SPEC section 6 (3 attempts, P1D then P3D). */
export function policy(onFinalFailure: CollectionPolicy['retry']['onFinalFailure'] = 'terminate'): CollectionPolicy {
  return { retry: { attempts: 3, delays: ['P1D', 'P3D'], onFinalFailure }, pollMs: 5 * 60_000, reconcileMs: 60_000, unavailableMs: 72 * 3_600_000 };
}

export const types = (events: readonly DomainEvent[]): string[] => events.map((e) => e.type);

/** ISO text of an optional instant, for readable assertions. */
export const isoOrNull = (ms: number | null): string | null => (ms === null ? null : iso(ms));

/** The attempt row the engine would have written for the subscription's pointer at `createdAt`. */
export function attemptOf(sub: Subscription, createdAt: number, state: AttemptState = 'in_flight', sends = 1): AttemptInfo {
  return {
    key: idempotencyKey(sub.id, sub.nextCycle, sub.nextAttempt),
    cycle: sub.nextCycle,
    attempt: sub.nextAttempt,
    mode: sub.mode,
    state,
    sends,
    createdAt,
  };
}

/** One whole attempt as the engine runs it: begin at `now` (intent), then the gateway answers `outcome` at `answeredAt`. */
export function collect(sub: Subscription, now: number, outcome: Outcome, options: { policy?: CollectionPolicy; answeredAt?: number } = {}): Settlement {
  const begun = beginAttempt(sub, now, now + 120_000);
  return settleAttempt(begun.subscription, attemptOf(sub, now), outcome, options.answeredAt ?? now, options.policy ?? policy());
}

export const CAPTURED = (externalId = 'pay_1'): Outcome => ({ kind: 'captured', externalId });
export const SOFT: Outcome = { kind: 'declined', code: 'insufficient_funds', hard: false };
export const HARD: Outcome = { kind: 'declined', code: 'stolen_card', hard: true };
