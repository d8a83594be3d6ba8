/**
 * One subscription with its history and its future: what `rebill
 * subscriptions show` prints, and what `GET /v1/subscriptions/{id}`,
 * `/charges` and `/schedule` return piece by piece.
 */
import { getSubscription, type Db } from '../store/index.js';
import { allCharges, type Charge } from './charges.js';
import { FilterError } from './filters.js';
import { getSubscriptionView, schedulePreview, type ScheduledCycle, type SubscriptionObject } from './subscriptions.js';

/** How many due dates a preview may ask for. */
export const MAX_PREVIEW = 100;

/** A preview `count`: a whole number 1..100 (absent: `fallback`). */
export function parseCount(value: number | string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const text = String(value);
  const n = Number(text);
  if (!/^\d+$/.test(text) || n < 1 || n > MAX_PREVIEW) throw new FilterError('count', `expected a whole number 1..${MAX_PREVIEW}; got "${text}"`);
  return n;
}

/** The next `count` due dates of subscription `id` (NotFoundError for an unknown id). */
export async function getSchedulePreview(db: Db, id: string, count: number | string | undefined, now: number): Promise<ScheduledCycle[]> {
  const n = parseCount(count, 12);
  return schedulePreview(await getSubscription(db, id), n, now);
}

export interface SubscriptionDetail {
  subscription: SubscriptionObject;
  charges: Charge[];
  nextDueDates: ScheduledCycle[];
}

/** The subscription, every charge it has had (oldest first) and its next `count` due dates; NotFoundError for an unknown id. */
export async function getSubscriptionDetail(db: Db, id: string, count: number | string | undefined, now: number): Promise<SubscriptionDetail> {
  const n = parseCount(count, 5);
  const subscription = await getSubscriptionView(db, id, now);
  return { subscription, charges: await allCharges(db, { subscriptionId: id }), nextDueDates: await getSchedulePreview(db, id, n, now) };
}
