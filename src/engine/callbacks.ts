/**
 * Settling an attempt from a gateway's callback (SPEC section 9,
 * `POST /v1/gateway-callbacks/{gateway}`), after the HTTP layer verified the
 * signature and the gateway adapter read the body.
 *
 * A callback is the same fact a status query would learn, only sooner, so it
 * goes through the same path: `settleAttempt` on the row as stored, the
 * attempt update, the subscription's next step and the events, in one
 * transaction. What keeps money safe:
 * - Only an open attempt is settled (in_flight, pending or unknown, and still
 *   the one its subscription points at). A replayed callback finds it
 *   captured or rejected and changes nothing, so five deliveries settle once.
 * - The attempt must belong to the gateway whose secret signed the callback:
 *   one gateway's key can never settle another gateway's attempt.
 * - The lease is not taken (the gateway does not wait for it) and not
 *   touched: an engine asking the gateway about the same attempt right now
 *   re-reads the attempt row when it records the answer, finds it settled and
 *   only gives its lease back (see GroupCommitWriter).
 */
import type { Logger } from 'pino';
import type { Clock } from '../clock.js';
import { isOpenAttemptState, settleAttempt, type AttemptState, type CollectionPolicy, type Subscription } from '../domain/index.js';
import type { CallbackReport } from '../gateways/index.js';
import { findAttempt, getRows, inTransaction, updateAttempt, writeTransition, type Db } from '../store/index.js';
import { outcomeOfResult } from './engine.js';

export interface CallbackDeps {
  readonly db: Db;
  readonly clock: Clock;
  readonly policy: CollectionPolicy;
  readonly logger: Logger;
  /** Wakes the engine: a settlement may make work due (the next cycle, a retry, a status query). */
  readonly kick: () => void;
}

/** What a callback did. */
export type CallbackSettlement =
  /** The attempt took the callback's outcome (and its subscription moved on). */
  | { readonly kind: 'settled'; readonly key: string; readonly state: AttemptState; readonly events: number }
  /** The attempt's status query was made due now (the engine finishes what only a gateway call can). */
  | { readonly kind: 'asked'; readonly key: string }
  /** The attempt was already settled (a replay, or the status query was first): nothing changed. */
  | { readonly kind: 'already_settled'; readonly key: string; readonly state: AttemptState }
  /** Nothing new for an open attempt (still pending, or nothing to act on). */
  | { readonly kind: 'unchanged'; readonly key: string | null; readonly reason: string }
  /** No attempt of this gateway has that key (another system's order on the same account): nothing changed. */
  | { readonly kind: 'unknown_key'; readonly key: string | null };

/**
 * Applies a verified callback from gateway `gateway` (its config name) in one
 * transaction, idempotently. Never calls a gateway.
 */
export async function settleFromCallback(deps: CallbackDeps, gateway: string, report: CallbackReport): Promise<CallbackSettlement> {
  const { db, clock, policy, logger } = deps;
  if (report.kind === 'none') return { kind: 'unchanged', key: report.key, reason: report.reason };
  const key = report.key;
  const now = clock.now();
  const settlement = await inTransaction(db, async (trx): Promise<CallbackSettlement & { subscriptionId?: string; cycle?: number; attempt?: number }> => {
    const found = await findAttempt(trx, key);
    if (!found || found.gateway !== gateway) return { kind: 'unknown_key', key };
    // The subscription row is locked first (PostgreSQL: until commit), then the attempt read again:
    // a replay of this callback arriving at once waits here and then finds the attempt settled.
    const row = (await getRows(trx, [found.subscriptionId])).get(found.subscriptionId);
    const owned = (await findAttempt(trx, key)) ?? found;
    const attempt = owned.attempt;
    const where = { subscriptionId: owned.subscriptionId, cycle: attempt.cycle, attempt: attempt.attempt };
    if (!row || !isOpenAttemptState(attempt.state) || !pointsAt(row.subscription, attempt)) {
      return { kind: 'already_settled', key, state: attempt.state, ...where };
    }
    const sub = row.subscription;
    if (report.kind === 'ask') {
      // The status query finishes it (it charges an authorised agreement once, keyed on the attempt).
      if (sub.actionAt !== null && sub.actionAt <= now) return { kind: 'asked', key, ...where };
      await writeTransition(trx, { subscription: { ...sub, actionAt: now, updatedAt: now }, cycles: [], events: [] }, now, 'ignore');
      return { kind: 'asked', key, ...where };
    }
    // A pending report for an attempt already known pending teaches nothing (and must not count as a poll).
    if (report.result.kind === 'pending' && attempt.state === 'pending') return { kind: 'unchanged', key, reason: 'still pending', ...where };
    const settled = settleAttempt(sub, attempt, outcomeOfResult(report.result), now, policy);
    await updateAttempt(trx, key, settled.attempt, now, settled.resend);
    await writeTransition(trx, settled, now, 'ignore');
    return { kind: 'settled', key, state: settled.attempt.state, events: settled.events.length, ...where };
  });
  const { subscriptionId, cycle, attempt, ...result } = settlement;
  const fields = { gateway, key, subscriptionId, cycle, attempt, result: result.kind };
  switch (result.kind) {
    case 'settled':
      logger.info({ ...fields, state: result.state }, `gateway callback: attempt ${result.state}`);
      deps.kick();
      break;
    case 'asked':
      logger.info(fields, 'gateway callback: status query due now');
      deps.kick();
      break;
    case 'unknown_key':
      // Acknowledged anyway: a gateway retries non-2xx answers, and no retry can make this key ours.
      logger.warn(fields, 'gateway callback for an order_id with no attempt on this gateway; ignored');
      break;
    default:
      logger.debug(fields, 'gateway callback: nothing to change');
  }
  return result as CallbackSettlement;
}

/** The attempt is the one its subscription is collecting (the row's pointer names it and waits on it). */
function pointsAt(sub: Subscription, attempt: { cycle: number; attempt: number }): boolean {
  return sub.nextCycle === attempt.cycle && sub.nextAttempt === attempt.attempt && (sub.nextAction === 'reconcile' || sub.nextAction === 'poll');
}
