/**
 * The plan the domain, store and engine tests bill on (SPEC section 4's
 * example), and subscription requests made from it.
 */
import { subscriptionFromPlan, type PlanTerms, type SubscriptionRequest } from '../../src/domain/index.js';

/** Gold monthly: 9.99 USD on the start day's date each month at 10:00 UTC, card charges, on the `sim` gateway. */
export const gold: PlanTerms = {
  id: 'gold-monthly',
  version: 'v1',
  description: 'Gold membership',
  amountMinor: 999,
  currency: 'USD',
  every: { unit: 'month', count: 1 },
  sendOnHour: 10,
  timezone: 'UTC',
  monthEnd: 'clamp',
  mode: 'charge',
  gateway: 'sim',
};

/**
 * subscriptionFromPlan on `gold` with `plan` overrides: subscription `sub-1` starting
 * 2025-01-31 with token `tok_ok` unless `request` says otherwise (customer included).
 */
export function goldSubscription(request: Partial<SubscriptionRequest> = {}, plan: Partial<PlanTerms> = {}): ReturnType<typeof subscriptionFromPlan> {
  return subscriptionFromPlan({ ...gold, ...plan }, { id: 'sub-1', startDate: '2025-01-31', paymentToken: 'tok_ok', ...request });
}
