/**
 * Plans as the API shows them (`GET /v1/plans`): the config's plans with their
 * amounts as decimal text and their version hash (a subscription keeps the
 * version it was created with).
 */
import type { PlanConfig } from '../config/index.js';

/** The public plan object. */
export interface PlanObject {
  id: string;
  version: string;
  description: string | null;
  amount: string;
  currency: string;
  every: { unit: PlanConfig['every']['unit']; count: number };
  sendOnHour: number;
  timezone: string;
  monthEnd: PlanConfig['monthEnd'];
  mode: PlanConfig['mode'];
  gateway: string;
  trial: string | null;
  maxCycles: number | null;
  endDate: string | null;
}

/** The public object of one configured plan. */
export function planObject(plan: PlanConfig): PlanObject {
  return {
    id: plan.id,
    version: plan.version,
    description: plan.description,
    amount: plan.amount,
    currency: plan.currency,
    every: { unit: plan.every.unit, count: plan.every.count },
    sendOnHour: plan.sendOnHour,
    timezone: plan.timezone,
    monthEnd: plan.monthEnd,
    mode: plan.mode,
    gateway: plan.gateway,
    trial: plan.trial,
    maxCycles: plan.maxCycles,
    endDate: plan.endDate,
  };
}
