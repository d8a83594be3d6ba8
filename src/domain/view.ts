/**
 * The public JSON shape of a subscription (SPEC section 5), derived from the
 * stored state: nothing here is stored twice.
 */
import { DateTime } from 'luxon';
import { cycleExists, firstCycleAtOrAfter } from '../calendar/index.js';
import { formatAmount } from '../money/index.js';
import { currentCycle, cycleDueAt, iso, scheduleOf, type Subscription } from './subscription.js';

export type NextPaymentAction = 'charge' | 'sendLink' | 'retry' | 'none';

export interface SubscriptionView {
  id: string;
  externalId: string | null;
  source: string | null;
  planId: string | null;
  customerId: string | null;
  paymentToken: string | null;
  description: string | null;
  amount: string;
  currency: string;
  status: Subscription['status'];
  terminationType: Subscription['terminationType'];
  startDate: string;
  endDate: string | null;
  currentCycle: number;
  completedCycles: number;
  currentPeriodStart: string | null;
  currentPeriodEnd: string | null;
  inTrial: boolean;
  nextPaymentAction: NextPaymentAction;
  nextPaymentAt: string | null;
  pause: { pauseDate: string | null; resumeDate: string | null } | null;
  latestPaymentExternalId: string | null;
  metadata: Record<string, string>;
  createdAt: string;
  updatedAt: string;
}

/** What the customer will be asked for next, and when (`none` while nothing is scheduled). */
export function nextPayment(sub: Subscription): { action: NextPaymentAction; at: number | null } {
  if (sub.status !== 'active' || sub.nextAction !== 'collect' || sub.actionAt === null) {
    if (sub.status === 'paused' && sub.resumeAt !== null && sub.nextAction === 'collect') return afterResume(sub, sub.resumeAt);
    return { action: 'none', at: null };
  }
  if (sub.pauseAt !== null && sub.pauseAt <= sub.actionAt) return sub.resumeAt === null ? { action: 'none', at: null } : afterResume(sub, sub.resumeAt);
  if (sub.nextAttempt > 1) return { action: 'retry', at: sub.actionAt };
  return { action: sub.mode === 'link' ? 'sendLink' : 'charge', at: sub.actionAt };
}

/**
 * The first collection after a scheduled resume, as `resume` will point it:
 * the first cycle due at or after the resume instant (never the resume instant
 * itself, which is usually no due date), or none when the schedule ends first.
 */
function afterResume(sub: Subscription, resumeAt: number): { action: NextPaymentAction; at: number | null } {
  const schedule = scheduleOf(sub);
  const cycle = Math.max(sub.nextCycle, firstCycleAtOrAfter(schedule, DateTime.fromMillis(resumeAt, { zone: 'utc' })));
  if (!cycleExists(schedule, cycle)) return { action: 'none', at: null };
  return { action: sub.mode === 'link' ? 'sendLink' : 'charge', at: cycleDueAt(sub, cycle) };
}

/** Renders the SPEC section 5 JSON of a subscription as of `now`. */
export function subscriptionView(sub: Subscription, now: number): SubscriptionView {
  const cycle = currentCycle(sub, now);
  const next = nextPayment(sub);
  const pausedOrScheduled = sub.status === 'paused' || sub.pauseAt !== null;
  return {
    id: sub.id,
    externalId: sub.externalId,
    source: sub.source,
    planId: sub.planId,
    customerId: sub.customerId,
    paymentToken: sub.paymentToken,
    description: sub.description,
    amount: formatAmount(sub.amount),
    currency: sub.amount.currency,
    status: sub.status,
    terminationType: sub.terminationType,
    startDate: sub.schedule.startDate,
    endDate: sub.schedule.endDate ?? null,
    currentCycle: cycle,
    completedCycles: sub.completedCycles,
    currentPeriodStart: cycle > 0 ? iso(cycleDueAt(sub, cycle)) : null,
    currentPeriodEnd: cycle > 0 ? iso(cycleDueAt(sub, cycle + 1)) : null,
    inTrial: Boolean(sub.schedule.trial) && cycle === 0,
    nextPaymentAction: next.action,
    nextPaymentAt: next.at === null ? null : iso(next.at),
    pause: pausedOrScheduled
      ? { pauseDate: iso(sub.pausedAt ?? sub.pauseAt ?? now), resumeDate: sub.resumeAt === null ? null : iso(sub.resumeAt) }
      : null,
    latestPaymentExternalId: sub.latestPaymentExternalId,
    metadata: { ...sub.metadata },
    createdAt: iso(sub.createdAt),
    updatedAt: iso(sub.updatedAt),
  };
}
