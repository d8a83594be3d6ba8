/**
 * Idempotency keys of the admin API (SPEC section 9, migration 0003). A key is
 * claimed, its request runs and its response is stored, all in the request's
 * own transaction (a savepoint of a group commit, see write-batcher.ts): a
 * crash leaves either the change and its stored response, or neither. Two
 * requests with one key cannot both run it: in SQLite one writer runs at a
 * time; in PostgreSQL the second one's insert of the key waits for the first
 * transaction and then finds its row. A second request in the same, still
 * uncommitted, transaction finds the key `in_progress` (its first request has
 * not been answered yet). A claim left `in_progress` by an older rebill, which
 * committed it first, is taken over once `locked_until` has passed.
 */
import { randomUUID } from 'node:crypto';
import { sql, type Transaction } from 'kysely';
import { dialectOf, forWrite, toDbTime, fromDbTime, Statement, type Db } from './db.js';
import type { Database } from './schema.js';

type Trx = Transaction<Database>;

/** What claiming a key found. */
export type IdempotencyClaim =
  /** The key is this request's (new, expired, or abandoned by a request that never committed): run it. */
  | { readonly kind: 'claimed'; readonly token: string }
  /** The key's first request completed: replay its response. */
  | { readonly kind: 'replay'; readonly status: number; readonly body: string }
  /** The key was used for another request (method, path or body differ). */
  | { readonly kind: 'mismatch'; readonly method: string; readonly path: string }
  /** A request with this key is still running. */
  | { readonly kind: 'in_progress' };

export interface IdempotencyRequest {
  readonly key: string;
  readonly requestHash: string;
  readonly method: string;
  readonly path: string;
}

export interface IdempotencyTimes {
  /** How long a completed response is kept (SPEC: 24 h). */
  readonly ttlMs: number;
  /** After this long without completing, a claim counts as abandoned (its request died). */
  readonly lockMs: number;
  /**
   * PostgreSQL: `trx` is the request's own transaction (a write that locks
   * rows, see WriteOptions.locksRows), which may wait for another request with
   * the key. False (a group-commit batch): the key is `in_progress` instead of
   * waited for. Default false.
   */
  readonly ownTransaction?: boolean;
}

/** Namespace of the per-key advisory locks (two-int form: apart from the outbox lock's bigint key). */
const KEY_LOCK_SPACE = 0x69646d70; // "idmp"

/**
 * PostgreSQL: takes the key's advisory lock for the rest of the transaction,
 * before anything of the key is read or written. A batch holds the outbox lock
 * while it writes; a request in a transaction of its own (pause, cancel, a
 * card update) claims its key first and takes the outbox lock last, for its
 * events. Had the batch waited on that request's uncommitted key row, each
 * waited for the other: PostgreSQL broke the deadlock after a second by
 * failing one of them (a 500, or every write of the batch). So only the
 * request of its own transaction waits (it holds nothing the batch needs);
 * a batch that finds the key taken answers `in_progress`. SQLite runs one
 * writer at a time: nothing to take.
 */
async function lockKey(trx: Trx, key: string, wait: boolean): Promise<boolean> {
  if (dialectOf(trx) !== 'postgres') return true;
  if (wait) {
    await sql`select pg_advisory_xact_lock(${KEY_LOCK_SPACE}, hashtext(${key}))`.execute(trx);
    return true;
  }
  const { rows } = await sql<{ ok: boolean }>`select pg_try_advisory_xact_lock(${KEY_LOCK_SPACE}, hashtext(${key})) as ok`.execute(trx);
  return rows[0]?.ok === true;
}

const lastPurge = new WeakMap<Db, number>();
const PURGE_EVERY_MS = 60_000;

/** Keys completed in a transaction that has not committed yet (their requests are not answered yet). */
const uncommitted = new WeakMap<Trx, Set<string>>();

/** The columns of a claim besides its key (the row claimIdempotencyKey writes). */
const CLAIM_COLUMNS = ['request_hash', 'method', 'path', 'state', 'response_status', 'response_body', 'lock_token', 'locked_until', 'created_at', 'expires_at'] as const;

/**
 * The statements of every idempotent write, of fixed text (kysely building
 * them cost more than SQLite running them). A new key is inserted, or found
 * taken: `on conflict do nothing` changes 0 rows.
 */
const CLAIM_NEW_KEY = new Statement(
  `insert into "idempotency_keys" ("key", ${CLAIM_COLUMNS.map((c) => `"${c}"`).join(', ')}) values (?, ${CLAIM_COLUMNS.map(() => '?').join(', ')}) on conflict ("key") do nothing`,
);
const COMPLETE_KEY = new Statement(
  `update "idempotency_keys" set "state" = 'done', "response_status" = ?, "response_body" = ?, "lock_token" = null, "locked_until" = null where "key" = ? and "lock_token" = ? and "state" = 'in_progress'`,
);

/**
 * Claims `request.key` for one request inside its transaction, or says why it
 * cannot run (see IdempotencyClaim). `db`: the database `trx` is on (expired
 * keys are purged once a minute per database).
 */
export async function claimIdempotencyKey(trx: Trx, db: Db, request: IdempotencyRequest, now: number, times: IdempotencyTimes): Promise<IdempotencyClaim> {
  if (!(await lockKey(trx, request.key, times.ownTransaction === true))) return { kind: 'in_progress' };
  if (now - (lastPurge.get(db) ?? -Infinity) >= PURGE_EVERY_MS) {
    lastPurge.set(db, now);
    await trx.deleteFrom('idempotency_keys').where('expires_at', '<', toDbTime(now)).execute();
  }
  const token = randomUUID();
  const claim = {
    request_hash: request.requestHash,
    method: request.method,
    path: request.path,
    state: 'in_progress',
    response_status: null,
    response_body: null,
    lock_token: token,
    locked_until: toDbTime(now + times.lockMs),
    created_at: toDbTime(now),
    expires_at: toDbTime(now + times.ttlMs),
  } satisfies Record<(typeof CLAIM_COLUMNS)[number], unknown>;
  // The insert decides a race for a new key: exactly one request inserts the row (the others
  // find it). An existing key is then read under a row lock in PostgreSQL, so two requests that
  // find it expired or abandoned take it over one at a time (SQLite's `begin immediate` already
  // serialises the whole transaction).
  const inserted = await CLAIM_NEW_KEY.run(trx, [request.key, ...CLAIM_COLUMNS.map((column) => claim[column])]);
  if (inserted === 1) return { kind: 'claimed', token };
  const row = await forWrite(trx, trx.selectFrom('idempotency_keys').selectAll().where('key', '=', request.key)).executeTakeFirst();
  if (!row || fromDbTime(row.expires_at) <= now) {
    // Expired (or purged between the two statements): this request starts the key afresh.
    if (row) await trx.updateTable('idempotency_keys').set(claim).where('key', '=', request.key).execute();
    else await trx.insertInto('idempotency_keys').values({ key: request.key, ...claim }).execute();
    return { kind: 'claimed', token };
  }
  if (row.request_hash !== request.requestHash) return { kind: 'mismatch', method: row.method, path: row.path };
  if (uncommitted.get(trx)?.has(request.key)) return { kind: 'in_progress' };
  if (row.state === 'done') return { kind: 'replay', status: Number(row.response_status), body: row.response_body ?? '' };
  if (row.locked_until !== null && fromDbTime(row.locked_until) > now) return { kind: 'in_progress' };
  // Abandoned: its request never committed (completion is atomic with the change), so running it again is safe.
  await trx.updateTable('idempotency_keys').set({ lock_token: token, locked_until: claim.locked_until }).where('key', '=', request.key).execute();
  return { kind: 'claimed', token };
}

/**
 * Stores the response of a claimed key inside the transaction of the change.
 * Returns false when the claim was lost meanwhile (it is not this request's
 * any more): the caller must roll back.
 */
export async function completeIdempotencyKey(trx: Trx, key: string, token: string, status: number, body: string): Promise<boolean> {
  if ((await COMPLETE_KEY.run(trx, [status, body, key, token])) !== 1) return false;
  let keys = uncommitted.get(trx);
  if (!keys) uncommitted.set(trx, (keys = new Set()));
  keys.add(key);
  return true;
}
