/**
 * `rebill status` (and later an API view of it): what an operator asks first.
 */
import { iso, type SubscriptionStatus } from '../domain/index.js';
import { countAttemptsByState, countByStatus, countDeliveriesByState, countEvents, dueBacklog, rejectedAttemptsSince, webhookBacklog, type Db } from '../store/index.js';

const DAY_MS = 24 * 3_600_000;

/** The status report. Instants are UTC ISO text; ages in seconds. */
export interface StatusReport {
  at: string;
  subscriptions: Record<SubscriptionStatus, number> & { total: number };
  /** Subscriptions whose next work (a collection, a retry, a reconcile, a pause or resume) is due now. */
  dueBacklog: { count: number; oldestDueAt: string | null; oldestDueAgeSeconds: number | null };
  /** Declines recorded in the last 24 h (`hard`: of which hard declines). */
  failuresLast24h: { rejected: number; hard: number; since: string };
  /** Attempts by state, since the database began. */
  attempts: Record<string, number>;
  /**
   * Webhook delivery (SPEC section 8): the events in the outbox, the
   * deliveries by state over every endpoint, and the oldest undelivered
   * (pending) event.
   */
  webhooks: { events: number; deliveries: { pending: number; delivered: number; failed: number }; oldestPendingAt: string | null; oldestPendingAgeSeconds: number | null };
}

/** Builds the status report as of `now` (read-only). */
export async function statusReport(db: Db, now: number): Promise<StatusReport> {
  const counts = await countByStatus(db);
  const backlog = await dueBacklog(db, now);
  const since = now - DAY_MS;
  const failures = await rejectedAttemptsSince(db, since);
  const attempts = await countAttemptsByState(db);
  const events = await countEvents(db);
  const deliveries = await countDeliveriesByState(db);
  const pendingAt = (await webhookBacklog(db)).flatMap((r) => (r.oldestAt === null ? [] : [r.oldestAt]));
  const oldest = pendingAt.length ? Math.min(...pendingAt) : null;
  const total = Object.values(counts).reduce((a, b) => a + b, 0);
  return {
    at: iso(now),
    subscriptions: { ...counts, total },
    dueBacklog: {
      count: backlog.count,
      oldestDueAt: backlog.oldestDueAt === null ? null : iso(backlog.oldestDueAt),
      oldestDueAgeSeconds: backlog.oldestDueAt === null ? null : Math.max(0, Math.floor((now - backlog.oldestDueAt) / 1000)),
    },
    failuresLast24h: { rejected: failures.count, hard: failures.hard, since: iso(since) },
    attempts,
    webhooks: {
      events,
      deliveries,
      oldestPendingAt: oldest === null ? null : iso(oldest),
      oldestPendingAgeSeconds: oldest === null ? null : Math.max(0, Math.floor((now - oldest) / 1000)),
    },
  };
}
