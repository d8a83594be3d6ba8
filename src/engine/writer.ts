/**
 * Recording: group commit for attempt outcomes (DESIGN.md "Intent, call, outcome").
 *
 * Outcomes arriving within a few milliseconds are written in one transaction
 * at one instant: attempt state, the subscription's next step, the cycle rows
 * and the events, plus the simulator ledger entries staged meanwhile. Each
 * caller's promise resolves only after that commit, so nothing that depends
 * on an outcome (a log line that says "captured", the next claim) runs before
 * it is durable. While a backlog is due, the sweeper's next claim rides in
 * that same transaction (Sweeper.claimAlong): one commit records a batch and
 * writes the intent of the next, whose calls start only after it.
 *
 * Each outcome is written only if the row still has this claim's lease and
 * the version the engine last saw; otherwise the store re-reads it (see
 * HotPathStore.recordOutcomes): a daemon whose lease expired (another daemon
 * took over) records nothing, and an API pause/cancel made meanwhile is
 * respected. A gateway callback settles an attempt without the lease (the
 * gateway does not wait for it), and writes its subscription in the same
 * transaction, so the version moved: while this daemon was asking the
 * gateway about a pending attempt, the callback may already have recorded
 * the capture and moved the subscription on. Recording the answer again
 * would count the cycle twice and emit a second charge.succeeded: an attempt
 * that is no longer open (captured or rejected) is left as it is and only
 * the lease is given back.
 */
import type { Logger } from 'pino';
import type { Clock } from '../clock.js';
import { settleAttempt, type AttemptInfo, type CollectionPolicy, type Outcome, type Subscription } from '../domain/index.js';
import type { HotPathStore, OutcomeBatch, OutcomeWrite, OutcomeWritten } from '../store/index.js';

export interface OutcomeItem {
  /** The claim token that must still own the row's lease. */
  readonly token: string;
  /** The row as this daemon last wrote (intent) or claimed (status query) it, and its version then. */
  readonly subscription: Subscription;
  readonly version: number;
  /** The attempt as this daemon knows it. */
  readonly attempt: AttemptInfo;
  readonly outcome: Outcome;
  readonly policy: CollectionPolicy;
}

export type OutcomeResult = OutcomeWritten;

type Entry = { item: OutcomeItem; resolve: (r: OutcomeResult) => void; reject: (e: unknown) => void };

export class GroupCommitWriter {
  private buffer: Entry[] = [];
  private timer: ReturnType<typeof setTimeout> | null = null;
  private flushing: Promise<void> = Promise.resolve();
  /** A commit is being written now. */
  private writing = false;
  /** The flush that will cut the buffer when the commit in flight ends (at most one). */
  private deferred: Promise<void> | null = null;

  /** Says whether no further outcome can arrive soon (no gateway call out or queued): then waiting only adds latency. */
  private idle: () => boolean = () => false;

  /**
   * @param maxBatch outcomes per commit at most: one claim batch fits in one commit.
   * @param delayMs how long the first outcome of a batch waits for others while calls are still out
   *   (the last answer of a batch is written at once). 10 ms: a slow gateway's answers trickle in, and
   *   a commit every 10 ms (an fsync each) is what a disk doing a few hundred commits/s can follow
   *   while its other commits (claims) go on; the outcome is only later by that much.
   */
  constructor(
    private readonly store: HotPathStore,
    private readonly clock: Clock,
    private readonly logger: Logger,
    private readonly maxBatch = 500,
    private readonly delayMs = 10,
  ) {}

  /** Offers each batch to the next claim (Sweeper.claimAlong): null, or one transaction that records it and claims. */
  private along: (finishing: number) => ((outcomes: OutcomeBatch) => Promise<OutcomeResult[]>) | null = () => null;

  /** Lets the sweeper carry outcome batches in its claims (one commit for both). */
  claimAlong(along: (finishing: number) => ((outcomes: OutcomeBatch) => Promise<OutcomeResult[]>) | null): void {
    this.along = along;
  }

  /** Lets the dispatcher say when every call made so far has answered (the batch is complete). */
  flushWhenIdle(idle: () => boolean): void {
    this.idle = idle;
  }

  /** Queues an outcome; resolves once it is committed. */
  record(item: OutcomeItem): Promise<OutcomeResult> {
    return new Promise((resolve, reject) => {
      this.buffer.push({ item, resolve, reject });
      if (this.buffer.length >= this.maxBatch || this.idle()) void this.flush();
      else if (!this.timer) this.timer = setTimeout(() => void this.flush(), this.delayMs);
    });
  }

  /** Writes everything buffered now (and any staged ledger entry); resolves when all earlier flushes are done too. */
  flush(): Promise<void> {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    if (this.writing) {
      // A commit is in flight: what is buffered now, and whatever arrives until it ends, goes into
      // ONE commit cut when it ends (on PostgreSQL a commit is several round trips and a WAL flush;
      // cut every 2 ms behind it, the batches were a handful of rows and the commits the limit).
      // One such cut at a time, so a chain of commits never outlives the flush calls that asked.
      this.deferred ??= this.flushing.then(() => {
        this.deferred = null;
        return this.writeNow(this.take());
      });
      this.flushing = this.deferred;
      return this.flushing;
    }
    const batch = this.take();
    this.flushing = this.flushing.then(() => this.writeNow(batch));
    return this.flushing;
  }

  private take(): Entry[] {
    const batch = this.buffer;
    this.buffer = [];
    return batch;
  }

  private async writeNow(batch: Entry[]): Promise<void> {
    if (batch.length === 0) return this.store.flushStaged();
    this.writing = true;
    try {
      await this.write(batch);
    } finally {
      this.writing = false;
    }
  }

  private async write(batch: Entry[]): Promise<void> {
    try {
      const items = batch.map((e) => toWrite(e.item));
      const claim = this.along(batch.length);
      const results = claim ? await claim({ now: this.clock.now(), items }) : await this.store.recordOutcomes(this.clock.now(), items);
      batch.forEach((e, i) => e.resolve(this.logged(e.item, results[i]!)));
    } catch (err) {
      // One bad row must not hold back the others: retry each outcome in its own transaction.
      this.logger.warn({ err, batch: batch.length }, 'outcome batch failed; writing one by one');
      for (const e of batch) {
        try {
          const [result] = await this.store.recordOutcomes(this.clock.now(), [toWrite(e.item)]);
          e.resolve(this.logged(e.item, result!));
        } catch (itemErr) {
          e.reject(itemErr);
        }
      }
    }
  }

  private logged(item: OutcomeItem, result: OutcomeResult): OutcomeResult {
    if (result.kind === 'lease_lost') {
      this.logger.warn({ subscriptionId: item.subscription.id, key: item.attempt.key }, 'lease lost before the outcome was recorded; the new owner will reconcile');
    }
    return result;
  }
}

function toWrite(item: OutcomeItem): OutcomeWrite {
  return {
    token: item.token,
    subscription: item.subscription,
    version: item.version,
    attempt: item.attempt,
    settle: (subscription, attempt, now) => settleAttempt(subscription, attempt, item.outcome, now, item.policy),
  };
}
