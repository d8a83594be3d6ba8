/**
 * The operator's log lines about collections, shared by the sweep and the
 * dispatcher: one line per attempt outcome and per lifecycle step with
 * `subscriptionId`, `cycle`, `attempt`, and one line per transition that
 * skipped cycles.
 */
import type { Logger } from 'pino';
import { cycleDueAt, iso, skippedSummary, type DomainEvent, type Subscription } from '../domain/index.js';
import { formatAmount } from '../money/index.js';
import type { EngineObserver } from './observer.js';

/** What an operator needs to recognise a charge: amount as a decimal string, currency, the cycle's due instant. */
export function moneyFields(sub: Subscription, cycle: number): { amount: string; currency: string; dueAt: string | null } {
  let dueAt: string | null = null;
  try {
    dueAt = iso(cycleDueAt(sub, cycle));
  } catch {
    // A schedule the calendar refuses is logged where it is refused; the line still goes out.
  }
  return { amount: formatAmount(sub.amount), currency: sub.amount.currency, dueAt };
}

/** One info line about a subscription, with its cycle and attempt (overridable by `fields`). */
export function logSubscription(logger: Logger, sub: Subscription, fields: Record<string, unknown>, msg: string): void {
  logger.info({ subscriptionId: sub.id, cycle: sub.nextCycle, attempt: sub.nextAttempt, ...fields }, msg);
}

/**
 * One warning per subscription per transition that skipped cycles (the events
 * are already written), and the count per reason for the metrics. Returns how many.
 */
export function logSkipped(logger: Logger, observe: Required<EngineObserver>, subscriptionId: string, events: readonly DomainEvent[]): number {
  if (!events.some((e) => e.type === 'cycle.skipped')) return 0;
  const summary = skippedSummary(events);
  if (!summary) return 0;
  const byReason = new Map<string, number>();
  for (const e of events) if (e.type === 'cycle.skipped') byReason.set(String(e.data.reason), (byReason.get(String(e.data.reason)) ?? 0) + 1);
  for (const [reason, count] of byReason) observe.cyclesSkipped({ reason, count });
  logger.warn({ subscriptionId, ...summary }, `cycle${summary.count > 1 ? 's' : ''} ${summary.cycles} skipped (${summary.reason})`);
  return summary.count;
}
