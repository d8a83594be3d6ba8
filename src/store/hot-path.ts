/**
 * The engine's hot path as a store interface (issue 10): claim and intent in
 * one transaction, outcomes in group commits, leases given back or extended,
 * and the simulator's ledger written by those same commits. Everything else
 * (API, admin, import, webhooks, recovery) stays on kysely in repository.ts.
 *
 * The SQLite implementation (sqlite-hot-path.ts) runs prepared statements in
 * synchronous better-sqlite3 transactions on the daemon's one connection; a
 * PostgreSQL one implements the same methods (`FOR UPDATE SKIP LOCKED` in the
 * claim, the database's `now()`), so the engine does not know which it has.
 *
 * The money rules this interface carries, whatever the database:
 * - `claim` leases due rows and writes what `decide` made of them (attempt
 *   rows `in_flight`, pointers, lifecycle steps) in ONE transaction, committed
 *   before it resolves: no gateway is called for an attempt before its row is
 *   durable, and a claim that fails leaves nothing behind. It may carry a
 *   batch of outcomes, recorded first in the same transaction (one commit
 *   for the end of one batch and the intent of the next).
 * - `recordOutcomes` writes a batch of outcomes in one transaction, each one
 *   conditional on the lease AND the version the engine last saw
 *   (`WHERE id = ? AND lease_owner = ? AND version = ?`). When 0 rows change,
 *   it re-reads the row: a lost lease records nothing; a row written meanwhile
 *   (an API pause or cancel, a gateway callback) is settled against what is
 *   stored now, and an attempt that a callback already settled is not
 *   recorded twice.
 * - Only the columns a transition changed are written.
 */
import {
  workAt,
  type AttemptInfo,
  type AttemptState,
  type AttemptUpdate,
  type DomainEvent,
  type Settlement,
  type Subscription,
  type Transition,
} from '../domain/index.js';
import { RebillError } from '../errors.js';
import { toDbTime } from './db.js';

/** One claim: lease up to `limit` due rows (open attempts first) to `token` for `leaseMs`. */
export interface ClaimRequest {
  /** The lease owner written on the rows: `<daemon>/<claim number>`, never reused. */
  readonly token: string;
  /**
   * The daemon's instant. SQLite (one daemon per file) judges the batch by it;
   * PostgreSQL (several daemons) by the database's own clock instead. Either
   * way the instant used is the `now` given to `decide` and returned.
   */
  readonly now: number;
  readonly limit: number;
  readonly leaseMs: number;
}

/** What a claim leased and wrote, and the one instant it judged the batch by. */
export interface ClaimResult {
  readonly now: number;
  readonly claimed: Claimed[];
  /** What recording the outcomes given with the claim did, in their order (none given: empty). */
  readonly written: OutcomeWritten[];
}

/** Outcomes recorded in a claim's transaction (HotPathStore.claim), as recordOutcomes would record them. */
export interface OutcomeBatch {
  /** The instant each `settle` is called with (SQLite; PostgreSQL uses the database's clock, as the claim does). */
  readonly now: number;
  readonly items: readonly OutcomeWrite[];
}

/** A row as the claim leased it. */
export interface ClaimedRow {
  readonly subscription: Subscription;
  readonly version: number;
}

/** The attempt an intent starts (the row's gateway, mode and amount go with it). */
export interface AttemptStart {
  /** `<subscriptionId>:<cycle>:<attempt>`. */
  readonly key: string;
  readonly cycle: number;
  readonly attempt: number;
}

/** What the engine made of one claimed row; written in the claim's transaction. */
export type ClaimDecision =
  /** Intent: the attempt row (in_flight) and the transition (pointer `reconcile`); the lease is kept for the call. */
  | { readonly kind: 'begin'; readonly transition: Transition; readonly attempt: AttemptStart }
  /** A lifecycle step (pause, resume, end): the transition is written and the lease given back. */
  | { readonly kind: 'settle'; readonly transition: Transition }
  /** A status query (reconcile, poll): the attempt row is read; the lease is kept for the call. */
  | { readonly kind: 'query'; readonly key: string }
  /** Nothing to do now: the lease is given back, with the row's work due at `dueAt` if given (an open circuit). */
  | { readonly kind: 'release'; readonly dueAt?: number }
  /** Refused (a calendar error): the lease is kept, so the row is tried again when it expires. */
  | { readonly kind: 'keep' };

/** One claimed row after the claim's transaction committed. */
export interface Claimed {
  /** The row as claimed, before the decision's writes. */
  readonly subscription: Subscription;
  readonly decision: ClaimDecision;
  /** The row's version after the decision's writes (what an outcome write must find). */
  readonly version: number;
  /** `query` only: the attempt row, or undefined when it is missing. */
  readonly attempt?: AttemptInfo | undefined;
}

/** One outcome to record, with what the engine knows about the row. */
export interface OutcomeWrite {
  /** The claim token that must still hold the row's lease. */
  readonly token: string;
  /** The row as this daemon last wrote (or claimed) it, and its version then. */
  readonly subscription: Subscription;
  readonly version: number;
  /** The attempt as this daemon knows it (only the lease holder or a callback changes it). */
  readonly attempt: AttemptInfo;
  /**
   * Applies the outcome to a row and its attempt at the batch's instant (a
   * pure function). Called with the known row first; called again with the
   * stored row and attempt when the row was written meanwhile.
   */
  readonly settle: (subscription: Subscription, attempt: AttemptInfo, now: number) => Settlement;
}

/** What recording one outcome did. */
export type OutcomeWritten =
  /** Recorded; the lease was given back. */
  | {
      readonly kind: 'written';
      readonly subscription: Subscription;
      readonly state: AttemptState;
      /** The events written with it (the engine logs the cycle.skipped ones). */
      readonly events: readonly DomainEvent[];
    }
  /** The gateway never saw the key: the attempt is in_flight again, the lease kept; send the same key again. */
  | { readonly kind: 'resend'; readonly subscription: Subscription; readonly version: number; readonly attempt: AttemptInfo }
  /** Another claim holds the row now: nothing was written (its owner reconciles the attempt). */
  | { readonly kind: 'lease_lost' }
  /** The attempt was settled meanwhile (a gateway callback): nothing written, the lease given back. */
  | { readonly kind: 'already_settled'; readonly state: AttemptState };

/** The engine's hot path; see the module comment for the rules every implementation keeps. */
export interface HotPathStore {
  /**
   * Leases up to `request.limit` due rows (open attempts first: reconcile and
   * poll rows, then new collections, each in work_at order), hands them to
   * `decide` (synchronous and pure: it runs inside the transaction) and
   * writes the decisions, all in one transaction. Results follow work_at order.
   * `outcomes` are recorded first in that transaction, as recordOutcomes
   * would (staged ledger entries included), and fail or commit with the claim.
   */
  claim(request: ClaimRequest, decide: (rows: readonly ClaimedRow[], now: number) => readonly ClaimDecision[], outcomes?: OutcomeBatch): Promise<ClaimResult>;
  /**
   * Records a batch of outcomes in one transaction, each checked against its
   * lease and version, at instant `now` (SQLite) or the database's clock
   * (PostgreSQL): the instant each `settle` is called with.
   */
  recordOutcomes(now: number, items: readonly OutcomeWrite[]): Promise<OutcomeWritten[]>;
  /** Gives back the leases `token` holds on `ids`; with `dueAt`, the rows' pending step becomes due then. */
  release(token: string, ids: readonly string[], dueAt?: number): Promise<void>;
  /**
   * Moves the lease expiry of the rows the engine still holds to `leaseMs`
   * after now (`now`, or the database's clock) (heartbeat): each row only
   * while the claim token given with it still holds its lease. Never every
   * lease of the daemon: a row it gave up on (an outcome it could not record,
   * a refused step) must have its lease run out, so it is reconciled.
   */
  extendLeases(leases: readonly HeldLease[], now: number, leaseMs: number): Promise<void>;
  /**
   * Stages a simulator ledger entry: it is written by the next outcome commit
   * (recordOutcomes) or flushStaged, so at the latest by the commit that
   * records the call's outcome (the simulator stages before it answers).
   * Claims and lease writes never write staged entries: on PostgreSQL they
   * run beside an outcome commit, and two transactions upserting the same
   * keys wait for each other. Read back at once by ledgerEntry.
   */
  stageLedgerEntry(gateway: string, key: string, entry: string, at: number): void;
  /**
   * A simulator ledger entry (JSON), staged or stored. `now` (the caller's
   * clock): a key this store's claim inserted less than half a lease ago,
   * and not looked up since, is answered without a read (see NewKeys).
   */
  ledgerEntry(gateway: string, key: string, now: number): Promise<string | undefined>;
  /** Every entry of one simulator gateway, oldest first (staged ones written first). */
  ledgerEntries(gateway: string): Promise<string[]>;
  /** Writes the staged ledger entries now (stop: nothing staged is left behind). */
  flushStaged(): Promise<void>;
  /** Ledger entries staged and not yet committed. */
  readonly staged: number;
}

/** A row the engine holds (a gateway call queued, out, or waiting for its outcome's commit) and the claim token that leased it. */
export interface HeldLease {
  readonly id: string;
  readonly token: string;
}

/** A simulator ledger entry staged for the next outcome commit (both implementations keep them the same way). */
export interface StagedEntry {
  /** `<gateway>\u0000<key>`. */
  readonly id: string;
  readonly gateway: string;
  readonly key: string;
  readonly entry: string;
  readonly at: number;
}

/**
 * The idempotency keys of the attempt rows this store's claims inserted, for
 * the simulator's ledger lookup (one read per charge; on PostgreSQL a round
 * trip for every few charges, a quarter of the daemon's CPU at zero latency,
 * measured). A ledger entry is staged only by a call of its key, and a call
 * is made only after its attempt row is committed; a key whose row a claim
 * has just inserted (the insert would fail on a key that exists) was never
 * sent by anyone, as long as no other daemon can have taken the row over and
 * sent it. That takes the lease to expire: a key counts as new until half the
 * lease has passed since the claim (by the same clock: the claim's `now`,
 * taken before its transaction began, and the caller's at the lookup), and
 * only for its first lookup (that call stages its own entry). Keys leave at
 * that lookup, when their outcome is recorded, or once expired, so the map
 * holds about the rows in flight whatever the gateway.
 */
export class NewKeys {
  /** Key -> the instant it stops counting as new; in claim order. */
  private readonly keys = new Map<string, number>();

  /** The `begin` keys of a committed claim made at `now`. */
  add(claimed: readonly Claimed[], now: number, leaseMs: number): void {
    const until = now + leaseMs / 2;
    for (const [key, expires] of this.keys) {
      if (expires > now) break;
      this.keys.delete(key);
    }
    for (const c of claimed) if (c.decision.kind === 'begin') this.keys.set(c.decision.attempt.key, until);
  }

  /** True (once) when `key` is new at `now`: the ledger has no entry for it. */
  take(key: string, now: number): boolean {
    const until = this.keys.get(key);
    if (until === undefined) return false;
    this.keys.delete(key);
    return now < until;
  }

  /** Forgets keys whose outcome is recorded. */
  forget(items: readonly OutcomeWrite[]): void {
    for (const item of items) this.keys.delete(item.attempt.key);
  }
}

/** Thrown when a write that the transaction's own reads guarantee changes nothing: the batch rolls back. */
export function invariant(message: string): never {
  throw new RebillError('STORE_INVARIANT', message);
}

/** A subscription column that a transition can change: how to read it from the domain type and store it. */
interface StateColumn {
  readonly column: string;
  readonly read: (sub: Subscription) => unknown;
  /** Domain value -> stored value (default: as is). */
  readonly store?: (value: unknown) => unknown;
}

const time = (value: unknown): unknown => (value === null ? null : toDbTime(value as number));

/** The mutable columns of a subscription row, in a fixed order (bit i of a mask is column i). */
export const STATE_COLUMNS: readonly StateColumn[] = [
  { column: 'status', read: (s) => s.status },
  { column: 'termination_type', read: (s) => s.terminationType },
  { column: 'completed_cycles', read: (s) => s.completedCycles },
  { column: 'last_paid_cycle', read: (s) => s.lastPaidCycle },
  { column: 'next_action', read: (s) => s.nextAction },
  { column: 'next_cycle', read: (s) => s.nextCycle },
  { column: 'next_attempt', read: (s) => s.nextAttempt },
  { column: 'action_at', read: (s) => s.actionAt, store: time },
  { column: 'pause_at', read: (s) => s.pauseAt, store: time },
  { column: 'resume_at', read: (s) => s.resumeAt, store: time },
  { column: 'paused_at', read: (s) => s.pausedAt, store: time },
  { column: 'ended_at', read: (s) => s.endedAt, store: time },
  { column: 'work_at', read: (s) => workAt(s), store: time },
  { column: 'latest_payment_external_id', read: (s) => s.latestPaymentExternalId },
  { column: 'payment_token', read: (s) => s.paymentToken },
  { column: 'metadata', read: (s) => s.metadata, store: (m) => JSON.stringify(m) },
  { column: 'updated_at', read: (s) => s.updatedAt, store: time },
];

/** The state columns that differ between two versions of a row: a bit mask over STATE_COLUMNS and the new stored values. */
export interface ChangedColumns {
  readonly mask: number;
  readonly values: readonly unknown[];
}

/** Diffs a transition's subscription against the row it was computed from: only these columns are written. */
export function changedColumns(before: Subscription, after: Subscription): ChangedColumns {
  let mask = 0;
  const values: unknown[] = [];
  for (let i = 0; i < STATE_COLUMNS.length; i++) {
    const c = STATE_COLUMNS[i]!;
    const next = c.read(after);
    const previous = c.read(before);
    if (next === previous) continue;
    // Metadata is an object: a copy with the same keys and values is no change.
    if (c.column === 'metadata' && JSON.stringify(next) === JSON.stringify(previous)) continue;
    mask |= 1 << i;
    values.push(c.store ? c.store(next) : next);
  }
  return { mask, values };
}

/** The optional columns of an attempt update, in a fixed order (bit i of a mask is column i). */
export const ATTEMPT_UPDATE_COLUMNS: ReadonlyArray<{ readonly column: string; readonly value: (u: AttemptUpdate) => unknown }> = [
  { column: 'decline_code', value: (u) => u.declineCode },
  { column: 'hard_decline', value: (u) => (u.hardDecline === undefined ? undefined : u.hardDecline === null ? null : u.hardDecline ? 1 : 0) },
  // A settlement that knows no external id or link keeps the one stored.
  { column: 'external_id', value: (u) => (u.externalId === null ? undefined : u.externalId) },
  { column: 'link_url', value: (u) => (u.linkUrl === null ? undefined : u.linkUrl) },
  { column: 'error', value: (u) => u.error },
  { column: 'unavailable_since', value: (u) => (u.unavailableSince === undefined ? undefined : time(u.unavailableSince)) },
  { column: 'unavailable_count', value: (u) => u.unavailableCount },
];

/** The attempt as the engine knows it after an update was written (the settlement logic reads these fields). */
export function attemptAfter(attempt: AttemptInfo, update: AttemptUpdate, resend: boolean): AttemptInfo {
  return {
    ...attempt,
    state: update.state,
    sends: resend ? attempt.sends + 1 : attempt.sends,
    ...(update.unavailableSince !== undefined ? { unavailableSince: update.unavailableSince } : {}),
    ...(update.unavailableCount !== undefined ? { unavailableCount: update.unavailableCount } : {}),
  };
}
