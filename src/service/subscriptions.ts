/**
 * The subscription read operations of the admin surface: the SPEC section 5
 * object (with the customer and a masked payment token), filtered lists with
 * cursors, and the next due dates.
 */
import { DateTime } from 'luxon';
import { cycleExists, firstCycleAtOrAfter } from '../calendar/index.js';
import { cycleDueAt, iso, scheduleOf, subscriptionView, type Subscription, type SubscriptionView } from '../domain/index.js';
import { customersById, getSubscription, listSubscriptionRows, subscriptionsByIds, type Db, type Keyset, type SubscriptionRowFilter } from '../store/index.js';
import { decodeCursor, encodeCursor, parseEnum, parseLimit, parseText, SUBSCRIPTION_STATUSES } from './filters.js';

/** A customer as the API shows it (SPEC 5: `{id?, email?, phone?, firstName?, lastName?}`). */
export interface CustomerView {
  id: string;
  email?: string;
  phone?: string;
  firstName?: string;
  lastName?: string;
}

/**
 * The public subscription object. `paymentToken` is masked (`tok_…42`): a
 * token charges the customer's card, so no read ever returns it whole.
 */
export type SubscriptionObject = Omit<SubscriptionView, 'customerId' | 'paymentToken'> & {
  customer: CustomerView | null;
  paymentToken: string | null;
};

/** A list page (SPEC 9: `{"data": [...], "nextCursor": "..." | null}`). */
export interface Page<T> {
  data: T[];
  nextCursor: string | null;
}

/**
 * A token as it may be shown: its prefix up to the first `_` and its last two
 * characters, only when that leaves at least six hidden (`tok_…42`); a short
 * token shows only its prefix.
 */
export function maskToken(token: string | null): string | null {
  if (token === null) return null;
  const underscore = token.indexOf('_');
  const prefix = underscore > 0 && underscore <= 5 ? token.slice(0, underscore + 1) : '';
  const hidden = token.length - prefix.length - 2;
  return hidden >= 6 ? `${prefix}…${token.slice(-2)}` : `${prefix}…`;
}

type CustomerRow = { id: string; email: string | null; phone: string | null; first_name: string | null; last_name: string | null };

function customerView(row: CustomerRow | undefined): CustomerView | null {
  if (!row) return null;
  const view: CustomerView = { id: row.id };
  if (row.email !== null) view.email = row.email;
  if (row.phone !== null) view.phone = row.phone;
  if (row.first_name !== null) view.firstName = row.first_name;
  if (row.last_name !== null) view.lastName = row.last_name;
  return view;
}

function toObject(sub: Subscription, customer: CustomerRow | undefined, now: number): SubscriptionObject {
  const view = subscriptionView(sub, now);
  // Key by key, in the view's order: a rest-and-spread copy without customerId cost twice as much as
  // building the view (5 us of every create's answer). A field added to the view is a compile error here.
  return {
    id: view.id,
    externalId: view.externalId,
    source: view.source,
    planId: view.planId,
    description: view.description,
    amount: view.amount,
    currency: view.currency,
    status: view.status,
    terminationType: view.terminationType,
    startDate: view.startDate,
    endDate: view.endDate,
    currentCycle: view.currentCycle,
    completedCycles: view.completedCycles,
    currentPeriodStart: view.currentPeriodStart,
    currentPeriodEnd: view.currentPeriodEnd,
    inTrial: view.inTrial,
    nextPaymentAction: view.nextPaymentAction,
    nextPaymentAt: view.nextPaymentAt,
    pause: view.pause,
    latestPaymentExternalId: view.latestPaymentExternalId,
    metadata: view.metadata,
    createdAt: view.createdAt,
    updatedAt: view.updatedAt,
    customer: customerView(customer),
    paymentToken: maskToken(view.paymentToken),
  };
}

/** One subscription's public object as of `now`; throws NotFoundError (SUBSCRIPTION_NOT_FOUND) for an unknown id. */
export async function getSubscriptionView(db: Db, id: string, now: number): Promise<SubscriptionObject> {
  return subscriptionObject(db, await getSubscription(db, id), now);
}

/**
 * The public object of a subscription already read (or just written: a create
 * answers without reading its row back). `customer`: its customer's row when
 * the caller has it (null: it has none), else it is read.
 */
export async function subscriptionObject(db: Db, sub: Subscription, now: number, customer?: CustomerRow | null): Promise<SubscriptionObject> {
  if (customer !== undefined && (customer?.id ?? null) === sub.customerId) return toObject(sub, customer ?? undefined, now);
  const customers = sub.customerId ? await customersById(db, [sub.customerId]) : new Map();
  return toObject(sub, sub.customerId ? customers.get(sub.customerId) : undefined, now);
}

/** The public objects of the subscriptions with these ids, by id (unknown ids are absent). */
export async function listSubscriptionObjects(db: Db, ids: readonly string[], now: number): Promise<Map<string, SubscriptionObject>> {
  const subs = await subscriptionsByIds(db, ids);
  const customers = await customersById(db, subs.flatMap((s) => (s.customerId ? [s.customerId] : [])));
  return new Map(subs.map((s) => [s.id, toObject(s, s.customerId ? customers.get(s.customerId) : undefined, now)]));
}

/** The filters of `GET /v1/subscriptions` and `rebill subscriptions list`, as given (text), validated here. */
export interface SubscriptionListQuery {
  status?: string;
  planId?: string;
  source?: string;
  externalId?: string;
  email?: string;
  limit?: number | string;
  cursor?: string;
}

/** A validated subscription list query. */
export interface ParsedSubscriptionListQuery {
  filter: SubscriptionRowFilter;
  limit: number;
  after: Keyset | undefined;
}

/**
 * Validates a subscription list query (FilterError naming the parameter);
 * listSubscriptions calls it, and a caller may call it first to refuse bad
 * input before it opens anything.
 */
export function parseSubscriptionListQuery(query: SubscriptionListQuery): ParsedSubscriptionListQuery {
  const filter = {
    status: parseEnum('status', query.status, SUBSCRIPTION_STATUSES),
    planId: parseText('planId', query.planId),
    source: parseText('source', query.source),
    externalId: parseText('externalId', query.externalId),
    email: parseText('email', query.email),
  };
  const defined = Object.fromEntries(Object.entries(filter).filter(([, v]) => v !== undefined)) as SubscriptionRowFilter;
  return { filter: defined, limit: parseLimit(query.limit), after: decodeCursor(query.cursor) };
}

/**
 * One page of subscriptions in creation order (oldest first), and the cursor
 * of the next page (null on the last). Throws FilterError for a bad filter.
 */
export async function listSubscriptions(db: Db, query: SubscriptionListQuery, now: number): Promise<Page<SubscriptionObject>> {
  const { filter, limit, after } = parseSubscriptionListQuery(query);
  // One row more than asked says whether another page exists, without a count.
  const rows = await listSubscriptionRows(db, filter, limit + 1, after);
  const page = rows.slice(0, limit);
  const customers = await customersById(db, page.flatMap((s) => (s.customerId ? [s.customerId] : [])));
  const last = page.at(-1);
  return {
    data: page.map((s) => toObject(s, s.customerId ? customers.get(s.customerId) : undefined, now)),
    nextCursor: rows.length > limit && last ? encodeCursor({ createdAt: last.createdAt, id: last.id }) : null,
  };
}

/** A due date of the schedule preview. */
export interface ScheduledCycle {
  cycle: number;
  dueAt: string;
}

/**
 * The next `count` due dates of a subscription, from its stored schedule:
 * from the cycle it collects next (an open cycle's retries included). A pause
 * removes the cycles due while paused: none after an open-ended pause, and
 * after a resume date the first cycle due at or after it (no back-billing).
 * Nothing for a stopped or terminated subscription.
 */
export function schedulePreview(sub: Subscription, count: number, now: number): ScheduledCycle[] {
  if (sub.status === 'stopped' || sub.status === 'terminated') return [];
  const schedule = scheduleOf(sub);
  const afterResume = (resumeAt: number) =>
    Math.max(sub.nextCycle, firstCycleAtOrAfter(schedule, DateTime.fromMillis(Math.max(resumeAt, now), { zone: 'utc' })));
  const out: ScheduledCycle[] = [];
  let n = Math.max(1, sub.nextCycle);
  if (sub.status === 'paused') {
    if (sub.resumeAt === null) return [];
    n = afterResume(sub.resumeAt);
  }
  for (; out.length < count && cycleExists(schedule, n); n++) {
    const at = cycleDueAt(sub, n);
    if (sub.status === 'active' && sub.pauseAt !== null && at >= sub.pauseAt && (sub.resumeAt === null || at < sub.resumeAt)) {
      if (sub.resumeAt === null) break;
      n = afterResume(sub.resumeAt) - 1;
      continue;
    }
    out.push({ cycle: n, dueAt: iso(at) });
  }
  return out;
}
