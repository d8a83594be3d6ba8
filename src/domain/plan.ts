/**
 * Turning plan terms into a new subscription's snapshot. A subscription keeps
 * the amount, currency and schedule it was created with: editing the plan
 * later changes new subscriptions only.
 */
import type { Interval, MonthEndPolicy } from '../calendar/index.js';
import type { CustomerInput } from './customer.js';
import type { DispatchMode, NewSubscription } from './subscription.js';

/** The plan fields a subscription copies (the config's PlanConfig has these and more). */
export interface PlanTerms {
  readonly id: string;
  readonly version: string;
  readonly description?: string | null;
  readonly amountMinor: number;
  readonly currency: string;
  readonly every: Interval;
  readonly sendOnHour: number;
  readonly timezone: string;
  readonly monthEnd: MonthEndPolicy;
  readonly mode: DispatchMode;
  readonly gateway: string;
  readonly trial?: string | null;
  readonly maxCycles?: number | null;
  readonly endDate?: string | null;
  readonly backfill?: boolean;
  /** Link mode: the payment links are e-mailed to the customer (a notification setting, stored beside the snapshot). */
  readonly emailLinks?: boolean;
}

/** Per-subscription fields given at creation (API body, CSV line, seed entry). */
export interface SubscriptionRequest {
  readonly id: string;
  readonly startDate: string;
  readonly paymentToken?: string | null;
  readonly endDate?: string | null;
  readonly sendOnHour?: number | null;
  readonly timezone?: string | null;
  readonly externalId?: string | null;
  readonly source?: string | null;
  readonly customerId?: string | null;
  readonly customer?: CustomerInput | null;
  readonly metadata?: Readonly<Record<string, string>>;
}

/** The snapshot of a new subscription on `plan`, with the request's overrides applied. */
export function subscriptionFromPlan(
  plan: PlanTerms,
  request: SubscriptionRequest,
): Omit<NewSubscription, 'customerId'> & { customerId: string | null; customer: CustomerInput | null; emailLinks: boolean } {
  return {
    id: request.id,
    externalId: request.externalId ?? null,
    source: request.source ?? null,
    planId: plan.id,
    planVersion: plan.version,
    customerId: request.customerId ?? null,
    customer: request.customer ?? null,
    paymentToken: request.paymentToken ?? null,
    description: plan.description ?? null,
    amount: { amountMinor: plan.amountMinor, currency: plan.currency },
    mode: plan.mode,
    gateway: plan.gateway,
    schedule: {
      startDate: request.startDate,
      every: plan.every,
      sendOnHour: request.sendOnHour ?? plan.sendOnHour,
      timezone: request.timezone ?? plan.timezone,
      monthEnd: plan.monthEnd,
      trial: plan.trial ?? null,
      endDate: request.endDate ?? plan.endDate ?? null,
      maxCycles: plan.maxCycles ?? null,
      backfill: plan.backfill ?? false,
    },
    metadata: { ...(request.metadata ?? {}) },
    emailLinks: plan.emailLinks ?? false,
  };
}
