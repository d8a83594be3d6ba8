/**
 * Group commit for the admin API's writes (DESIGN.md "Intent, call, outcome"
 * does the same for attempt outcomes). At `synchronous=FULL` one commit costs
 * an fsync, and the disk does a few hundred to a thousand a second: one
 * transaction per request capped the API at that many creates per second.
 *
 * Writes that arrive while a batch is being written wait for the next one,
 * which starts as soon as that batch has committed (no timer: a lone request
 * is written at once). A batch is ONE transaction; each write runs in a
 * SAVEPOINT of its own, so a write that fails (invalid input, a unique
 * conflict, a trigger, any error) rolls back only itself. Every caller is
 * answered only after the batch's COMMIT returned: a success never claims a
 * change that is not durable, and if the commit fails every write of the
 * batch fails with it (a write that failed on its own keeps its own error).
 *
 * PostgreSQL, several daemons: a batch takes the outbox lock (lockOutbox)
 * before its first write, as each creation did before writing anything, so
 * batches of all daemons run one at a time and event ids still increase in
 * commit order. A write that reads existing rows for update (`locksRows`:
 * pause, cancel, a card update) would there take its row lock after the
 * outbox lock, the reverse of the engine's order (rows, then the outbox):
 * such a write runs in a transaction of its own, as before. SQLite runs one
 * writer at a time (`begin immediate`), so every write shares the batch.
 */
import { dialectOf, Statement, type Db } from './db.js';
import { lockOutbox, type Trx } from './repository.js';

export interface WriteOptions {
  /**
   * The write reads existing rows to write them back (getSubscription's row
   * lock): on PostgreSQL it gets a transaction of its own. Default false.
   */
  readonly locksRows?: boolean;
}

/** What the batcher has done since it was made (tests observe the grouping). */
export interface WriteBatcherStats {
  /** Transactions begun (each batch is one; so is each write run on its own). */
  readonly transactions: number;
  /** Writes run or waiting. */
  readonly writes: number;
  /** Writes waiting for the next batch. */
  readonly queued: number;
}

type Pending = { readonly work: (trx: Trx) => Promise<unknown>; readonly resolve: (value: unknown) => void; readonly reject: (error: unknown) => void };
type Result = { readonly ok: true; readonly value: unknown } | { readonly ok: false; readonly error: unknown };

export class WriteBatcher {
  #queue: Pending[] = [];
  #scheduled = false;
  #busy = false;
  #held = 0;
  #transactions = 0;
  #writes = 0;
  readonly #postgres: boolean;

  /** @param maxBatch writes per transaction at most. */
  constructor(
    private readonly db: Db,
    private readonly maxBatch = 200,
  ) {
    this.#postgres = dialectOf(db) === 'postgres';
  }

  /**
   * Runs `work` inside a transaction shared with other writes, in a savepoint
   * of its own; resolves with its value once that transaction has committed,
   * rejects with its error (its changes rolled back) or with the commit's.
   */
  run<T>(work: (trx: Trx) => Promise<T>, options: WriteOptions = {}): Promise<T> {
    this.#writes++;
    if (this.#postgres && options.locksRows) {
      this.#transactions++;
      return this.db.transaction().execute(work);
    }
    return new Promise<T>((resolve, reject) => {
      this.#queue.push({ work, resolve: resolve as (value: unknown) => void, reject });
      this.#schedule();
    });
  }

  stats(): WriteBatcherStats {
    return { transactions: this.#transactions, writes: this.#writes, queued: this.#queue.length };
  }

  /**
   * For tests: no batch starts until the returned function is called, so the
   * writes sent meanwhile are known to share one (see stats().queued).
   */
  hold(): () => void {
    this.#held++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.#held--;
      this.#schedule();
    };
  }

  /**
   * The next batch starts from `setImmediate`, after the event loop has read
   * every request that arrived meanwhile (their handlers queue their writes
   * before it runs), and never while a batch is being written.
   */
  #schedule(): void {
    if (this.#scheduled || this.#busy || this.#held > 0 || this.#queue.length === 0) return;
    this.#scheduled = true;
    setImmediate(() => {
      this.#scheduled = false;
      void this.#writeBatch();
    });
  }

  async #writeBatch(): Promise<void> {
    this.#busy = true;
    const batch = this.#queue.splice(0, this.maxBatch);
    this.#transactions++;
    const results: Result[] = [];
    let failure: { error: unknown } | undefined;
    try {
      await this.db.transaction().execute(async (trx) => {
        if (this.#postgres) await lockOutbox(trx);
        for (const pending of batch) {
          try {
            results.push({ ok: true, value: await inSavepoint(trx, () => pending.work(trx)) });
          } catch (error) {
            if (error instanceof TransactionLost) throw error.cause;
            results.push({ ok: false, error });
          }
        }
      });
    } catch (error) {
      failure = { error };
    }
    this.#busy = false;
    batch.forEach((pending, i) => {
      const result = results[i];
      if (result && !result.ok) pending.reject(result.error);
      else if (failure) pending.reject(failure.error);
      else pending.resolve(result!.value);
    });
    this.#schedule();
  }
}

const SAVEPOINT = new Statement('savepoint w');
const ROLLBACK_TO = new Statement('rollback to savepoint w');
const RELEASE = new Statement('release savepoint w');

/** The transaction itself is gone (SQLite rolls back by itself on SQLITE_FULL, IOERR, NOMEM): nothing of it can commit. */
class TransactionLost extends Error {}

/**
 * Runs `fn` inside a savepoint of `trx`: if it throws, what it wrote is rolled
 * back and the error rethrown; the transaction goes on. If even the rollback
 * fails, the transaction is lost, and so is everything else written in it: a
 * TransactionLost (the original error as its cause) is thrown.
 *
 * Every savepoint is named `w`: savepoints nest strictly here (one write at a
 * time per transaction), and `rollback to` / `release` act on the innermost
 * of that name. One name is also one SQL text: the statement cache prepares
 * it once (a name per savepoint made every one a prepare, and pushed the
 * engine's statements out of the cache).
 */
export async function inSavepoint<T>(trx: Trx, fn: () => Promise<T>): Promise<T> {
  await SAVEPOINT.run(trx, []);
  let value: T;
  try {
    value = await fn();
  } catch (error) {
    if (error instanceof TransactionLost) throw error;
    try {
      await ROLLBACK_TO.run(trx, []);
      await RELEASE.run(trx, []);
    } catch {
      throw new TransactionLost('the transaction was rolled back under a failed write', { cause: error });
    }
    throw error;
  }
  await RELEASE.run(trx, []);
  return value;
}
