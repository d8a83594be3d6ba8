/**
 * Group commit for attempt outcomes (DESIGN.md "Intent, call, outcome").
 *
 * Outcomes arriving within a few milliseconds are written in one transaction:
 * attempt state, the subscription's next step and the events. Each caller's
 * promise resolves only after that commit, so nothing that depends on an
 * outcome (a log line that says "captured", the next claim) runs before it is
 * durable. Each row is re-read inside the transaction and its lease checked:
 * an API pause/cancel made meanwhile is respected, and a daemon whose lease
 * expired (another daemon took over) records nothing.
 *
 * The attempt row is re-read too. A gateway callback settles an attempt
 * without the lease (the gateway does not wait for it), so while this daemon
 * was asking the gateway about a pending attempt, the callback may already
 * have recorded the capture and moved the subscription on. Recording the
 * answer again would count the cycle twice and emit a second
 * charge.succeeded: an attempt that is no longer open (captured or rejected)
 * is left as it is and only the lease is given back.
 */
import type { Logger } from 'pino';
import type { Clock } from '../clock.js';
import { isOpenAttemptState, settleAttempt, type AttemptInfo, type AttemptState, type CollectionPolicy, type Outcome, type Subscription } from '../domain/index.js';
import { attemptStates, getRows, inTransaction, releaseLeases, updateAttempt, writeTransitions, type Db } from '../store/index.js';
import type { DomainEvent, Transition } from '../domain/index.js';

export interface OutcomeItem {
  readonly subscriptionId: string;
  /** The claim token that must still own the row's lease. */
  readonly token: string;
  /** The attempt as this daemon knows it (only this lease holder changes it). */
  readonly attempt: AttemptInfo;
  readonly outcome: Outcome;
  readonly policy: CollectionPolicy;
}

export type OutcomeResult =
  | {
      readonly kind: 'written';
      readonly subscription: Subscription;
      readonly state: AttemptState;
      readonly cycle: number;
      readonly attempt: number;
      /** The events written with it (the engine logs the cycle.skipped ones). */
      readonly events: readonly DomainEvent[];
    }
  /** The gateway never saw the key: the lease is kept and the caller sends the same key again. */
  | { readonly kind: 'resend' }
  | { readonly kind: 'lease_lost' }
  /** The attempt was settled meanwhile by someone else (a gateway callback): nothing written, the lease released. */
  | { readonly kind: 'already_settled'; readonly state: AttemptState };

type Entry = { item: OutcomeItem; resolve: (r: OutcomeResult) => void; reject: (e: unknown) => void };

export class GroupCommitWriter {
  private buffer: Entry[] = [];
  private timer: ReturnType<typeof setTimeout> | null = null;
  private flushing: Promise<void> = Promise.resolve();

  constructor(
    private readonly db: Db,
    private readonly clock: Clock,
    private readonly logger: Logger,
    private readonly maxBatch = 200,
    private readonly delayMs = 2,
  ) {}

  /** Queues an outcome; resolves once it is committed. */
  record(item: OutcomeItem): Promise<OutcomeResult> {
    return new Promise((resolve, reject) => {
      this.buffer.push({ item, resolve, reject });
      if (this.buffer.length >= this.maxBatch) void this.flush();
      else if (!this.timer) this.timer = setTimeout(() => void this.flush(), this.delayMs);
    });
  }

  /** Writes everything buffered now; resolves when all earlier flushes are done too. */
  flush(): Promise<void> {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    const batch = this.buffer;
    this.buffer = [];
    this.flushing = this.flushing.then(() => (batch.length ? this.write(batch) : undefined));
    return this.flushing;
  }

  private async write(batch: Entry[]): Promise<void> {
    try {
      const results = await inTransaction(this.db, (trx) => this.apply(trx, batch.map((e) => e.item)));
      batch.forEach((e, i) => e.resolve(results[i]!));
    } catch (err) {
      // One bad row must not hold back the others: retry each outcome in its own transaction.
      this.logger.warn({ err, batch: batch.length }, 'outcome batch failed; writing one by one');
      for (const e of batch) {
        try {
          const [result] = await inTransaction(this.db, (trx) => this.apply(trx, [e.item]));
          e.resolve(result!);
        } catch (itemErr) {
          e.reject(itemErr);
        }
      }
    }
  }

  private async apply(trx: Parameters<Parameters<typeof inTransaction>[1]>[0], items: OutcomeItem[]): Promise<OutcomeResult[]> {
    const now = this.clock.now();
    const results: OutcomeResult[] = [];
    const rows = await getRows(trx, items.map((i) => i.subscriptionId));
    const states = await attemptStates(trx, items.map((i) => i.attempt.key));
    const transitions: Transition[] = [];
    const settledElsewhere = new Map<string, string[]>();
    for (const item of items) {
      const row = rows.get(item.subscriptionId);
      if (row?.leaseOwner !== item.token) {
        this.logger.warn({ subscriptionId: item.subscriptionId, key: item.attempt.key }, 'lease lost before the outcome was recorded; the new owner will reconcile');
        results.push({ kind: 'lease_lost' });
        continue;
      }
      // The state as stored now, not as this daemon last knew it: a callback may have settled it, or recorded it pending.
      const attempt = { ...item.attempt, state: states.get(item.attempt.key) ?? item.attempt.state };
      if (!isOpenAttemptState(attempt.state)) {
        settledElsewhere.set(item.token, [...(settledElsewhere.get(item.token) ?? []), item.subscriptionId]);
        results.push({ kind: 'already_settled', state: attempt.state });
        continue;
      }
      const settlement = settleAttempt(row.subscription, attempt, item.outcome, now, item.policy);
      await updateAttempt(trx, item.attempt.key, settlement.attempt, now, settlement.resend);
      if (settlement.resend) {
        results.push({ kind: 'resend' });
        continue;
      }
      transitions.push(settlement);
      results.push({
        kind: 'written',
        subscription: settlement.subscription,
        state: settlement.attempt.state,
        cycle: item.attempt.cycle,
        attempt: item.attempt.attempt,
        events: settlement.events,
      });
    }
    await writeTransitions(trx, transitions, now, 'release');
    for (const [token, ids] of settledElsewhere) await releaseLeases(trx, token, ids);
    return results;
  }
}
