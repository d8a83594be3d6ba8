/**
 * Charges (SPEC 9): one per attempt, the attempt's idempotency key as its id.
 */
import { formatAmount } from '../money/index.js';
import { iso } from '../domain/index.js';
import { ACQUIRER_CODES } from '../gateways/index.js';
import { attemptsByKeys, cycleDueDates, linkEmailsByKeys, listAttemptRows, type AttemptRecord, type Db, type LinkEmailRecord, type LinkEmailState } from '../store/index.js';
import { CHARGE_STATUSES, decodeCursor, encodeCursor, parseEnum, parseInstant, parseLimit, parseText, type ChargeStatus } from './filters.js';
import type { Page } from './subscriptions.js';

/** The SPEC 9 charge object. */
export interface Charge {
  id: string;
  subscriptionId: string;
  cycle: number;
  attempt: number;
  /** `initial` for cycle 1 (the customer's first payment), `recurring` after. */
  operation: 'initial' | 'recurring';
  status: ChargeStatus;
  amount: string;
  currency: string;
  gateway: string;
  externalPaymentId: string | null;
  declineCode: string | null;
  /** The decline code in words, for people reading a dashboard or a support ticket. */
  rejectedReason: string | null;
  hardDecline: boolean | null;
  linkUrl: string | null;
  /** The e-mail that carries linkUrl to the customer; null when the attempt's link is not e-mailed. */
  linkEmail: LinkEmail | null;
  dueAt: string | null;
  createdAt: string;
  updatedAt: string;
}

/** A payment-link e-mail as recorded on its attempt. */
export interface LinkEmail {
  /** pending (queued or waiting for a retry), sent, failed (gave up after maxAgeHours), skipped (final, see error). */
  status: LinkEmailState;
  /** SMTP conversations so far (a skip is not one). */
  tries: number;
  to: string | null;
  lastTryAt: string | null;
  nextTryAt: string | null;
  sentAt: string | null;
  messageId: string | null;
  /** The last failure, or why it was skipped. */
  error: string | null;
}

function toLinkEmail(e: LinkEmailRecord | undefined): LinkEmail | null {
  if (e === undefined) return null;
  const at = (ms: number | null) => (ms === null ? null : iso(ms));
  return { status: e.state, tries: e.tries, to: e.recipient, lastTryAt: at(e.lastTryAt), nextTryAt: at(e.nextTryAt), sentAt: at(e.sentAt), messageId: e.messageId, error: e.error };
}

/** The words for a decline code: the acquirer's text where known, else the code itself spelled out. */
export function rejectedReason(code: string | null): string | null {
  if (code === null) return null;
  const known = ACQUIRER_CODES[code];
  if (known) return known.message;
  const words = code.replace(/_/g, ' ');
  return words.charAt(0).toUpperCase() + words.slice(1);
}

function toCharge(a: AttemptRecord, dueAt: number | undefined, email: LinkEmailRecord | undefined): Charge {
  return {
    id: a.key,
    subscriptionId: a.subscriptionId,
    cycle: a.cycle,
    attempt: a.attempt,
    operation: a.cycle === 1 ? 'initial' : 'recurring',
    status: a.state as ChargeStatus,
    amount: formatAmount({ amountMinor: a.amountMinor, currency: a.currency }),
    currency: a.currency,
    gateway: a.gateway,
    externalPaymentId: a.externalId,
    declineCode: a.declineCode,
    rejectedReason: a.state === 'rejected' ? rejectedReason(a.declineCode) : null,
    hardDecline: a.hardDecline,
    linkUrl: a.linkUrl,
    linkEmail: toLinkEmail(email),
    dueAt: dueAt === undefined ? null : iso(dueAt),
    createdAt: iso(a.createdAt),
    updatedAt: iso(a.updatedAt),
  };
}

/** The charges with these ids (idempotency keys), by id; unknown ids are absent. */
export async function chargesByIds(db: Db, ids: readonly string[]): Promise<Map<string, Charge>> {
  const attempts = await attemptsByKeys(db, ids);
  const due = await cycleDueDates(db, [...attempts.values()].map((a) => a.subscriptionId));
  const emails = await linkEmailsOf(db, [...attempts.values()]);
  return new Map([...attempts].map(([key, a]) => [key, toCharge(a, due.get(`${a.subscriptionId}:${a.cycle}`), emails.get(key))]));
}

/** The link e-mails of these attempts; only link-mode attempts can have one, so a page of card charges costs no query. */
function linkEmailsOf(db: Db, attempts: readonly AttemptRecord[]): Promise<Map<string, LinkEmailRecord>> {
  const keys = attempts.filter((a) => a.mode === 'link').map((a) => a.key);
  return keys.length === 0 ? Promise.resolve(new Map()) : linkEmailsByKeys(db, keys);
}

/** The filters of `GET /v1/charges`, `GET /v1/subscriptions/{id}/charges` and `rebill subscriptions show`. */
export interface ChargeListQuery {
  subscriptionId?: string;
  status?: string;
  /** ISO instant: charges created at or after it. */
  since?: string;
  limit?: number | string;
  cursor?: string;
}

/** One page of charges in creation order (oldest first). Throws FilterError for a bad filter. */
export async function listCharges(db: Db, query: ChargeListQuery): Promise<Page<Charge>> {
  const filter = {
    subscriptionId: parseText('subscriptionId', query.subscriptionId),
    state: parseEnum('status', query.status, CHARGE_STATUSES),
    since: parseInstant('since', query.since),
  };
  const limit = parseLimit(query.limit);
  const after = decodeCursor(query.cursor);
  const defined = Object.fromEntries(Object.entries(filter).filter(([, v]) => v !== undefined));
  const rows = await listAttemptRows(db, defined, limit + 1, after);
  const page = rows.slice(0, limit);
  const due = await cycleDueDates(db, page.map((a) => a.subscriptionId));
  const emails = await linkEmailsOf(db, page);
  const last = page.at(-1);
  return {
    data: page.map((a) => toCharge(a, due.get(`${a.subscriptionId}:${a.cycle}`), emails.get(a.key))),
    nextCursor: rows.length > limit && last ? encodeCursor({ createdAt: last.createdAt, id: last.key }) : null,
  };
}

/** Every charge matching `query` (all pages), for callers that show a whole history (`rebill subscriptions show`). */
export async function allCharges(db: Db, query: Omit<ChargeListQuery, 'limit' | 'cursor'>): Promise<Charge[]> {
  const out: Charge[] = [];
  let cursor: string | undefined;
  do {
    const page = await listCharges(db, { ...query, limit: 500, ...(cursor ? { cursor } : {}) });
    out.push(...page.data);
    cursor = page.nextCursor ?? undefined;
  } while (cursor);
  return out;
}
