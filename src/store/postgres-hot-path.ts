/**
 * The engine's hot path on PostgreSQL (see hot-path.ts for the rules every
 * implementation keeps). Several daemons share one database, so:
 *
 * - Time is the database's. Each transaction reads `clock_timestamp()` once
 *   and judges everything in it by that instant: what is due, lease expiry,
 *   the intent's and the outcome's timestamps. A daemon whose own clock is
 *   off can neither steal a live lease nor charge early.
 * - A claim selects due rows `FOR UPDATE SKIP LOCKED`: two daemons claiming
 *   at once get disjoint rows without waiting on each other, and a row
 *   another daemon is writing is simply left for later.
 * - Batches are one statement each (`unnest` of arrays): the attempt rows of
 *   a claim, the subscription rows' new state, cycles, events, attempt
 *   outcomes. A PostgreSQL update writes a whole new row version whatever
 *   columns change (MVCC), so every state column is written; what keeps an
 *   outcome from overwriting someone else's write is its condition
 *   `lease_owner = token AND version = v`.
 * - Outbox ids must increase in commit order (SPEC section 8), which a
 *   sequence alone does not give when transactions overlap: every
 *   transaction takes the outbox lock (`lockOutbox`) just before it inserts
 *   events, so ids are handed out and committed one transaction at a time.
 */
import { CompiledQuery, type Selectable, type Transaction } from 'kysely';
import { isOpenAttemptState, type AttemptInfo, type AttemptUpdate, type CycleWrite, type DomainEvent, type Settlement, type Subscription } from '../domain/index.js';
import { toDbTime, usesDatabaseClock, type Db } from './db.js';
import {
  ATTEMPT_UPDATE_COLUMNS,
  attemptAfter,
  invariant,
  NewKeys,
  STATE_COLUMNS,
  type Claimed,
  type ClaimDecision,
  type ClaimedRow,
  type ClaimRequest,
  type ClaimResult,
  type HeldLease,
  type HotPathStore,
  type OutcomeBatch,
  type OutcomeWrite,
  type OutcomeWritten,
  type StagedEntry,
} from './hot-path.js';
import { linkEvents } from './link-emails.js';
import { lockOutbox, rowToAttempt, rowToSubscription } from './repository.js';
import type { AttemptTable, Database, SubscriptionTable } from './schema.js';

type Trx = Transaction<Database>;
type SubscriptionRow = Selectable<SubscriptionTable>;
type AttemptRow = Selectable<AttemptTable>;

async function query<R>(trx: Trx | Db, text: string, params: readonly unknown[] = []): Promise<R[]> {
  return (await trx.executeQuery<R>(CompiledQuery.raw(text, [...params]))).rows;
}

/** The database's clock now, in epoch ms: the one instant of a transaction. */
export async function databaseNow(conn: Trx | Db): Promise<number> {
  const [row] = await query<{ ms: string | number }>(conn, 'select floor(extract(epoch from clock_timestamp()) * 1000)::bigint as ms');
  return Number(row!.ms);
}

/**
 * The instant that judges due work and leases: the database's clock when the
 * Db runs on it (PostgreSQL, by default), else the caller's `callerNow`. Read
 * in `conn` (a transaction) when given.
 */
export function dueWorkNow(db: Db, callerNow: number, conn: Trx | Db = db): Promise<number> {
  return usesDatabaseClock(db) ? databaseNow(conn) : Promise.resolve(callerNow);
}

/** `set col = v.col, ...` over every state column, for the unnest updates. */
const STATE_SET = STATE_COLUMNS.map((c) => `${c.column} = v.${c.column}`).join(', ');
/** `$1::text[], $2::int[], ...`: the state columns' array parameters, numbered from `first`. */
function stateTypes(first: number): string {
  return STATE_COLUMNS.map((c, i) => `$${first + i}::${INTEGER_COLUMNS.has(c.column) ? 'int' : 'text'}[]`).join(', ');
}
const INTEGER_COLUMNS = new Set(['completed_cycles', 'last_paid_cycle', 'next_cycle', 'next_attempt']);

/** Each state column of each row, column-major, as the unnest parameters want them. */
function stateArrays(subs: readonly Subscription[]): unknown[][] {
  return STATE_COLUMNS.map((c) => subs.map((s) => (c.store ? c.store(c.read(s)) : c.read(s))));
}

/** One claimed row's state write: the version read, the new state, and the lease it keeps (null: none). */
interface ClaimWrite {
  readonly before: Subscription;
  readonly version: number;
  readonly after: Subscription;
  readonly lease: { readonly owner: string; readonly until: string } | null;
}

/** One row's outcome write: the lease (claim token) and version it must still have, and its new state. */
interface StateWrite {
  readonly token: string;
  readonly before: Subscription;
  readonly version: number;
  readonly after: Subscription;
}

class PostgresHotPathStore implements HotPathStore {
  private readonly stagedEntries = new Map<string, StagedEntry>();
  /** Keys of attempt rows this store's claims inserted: their first ledger lookup needs no read. */
  private readonly newKeys = new NewKeys();
  /** Ledger lookups waiting for the next batched query (lookUpLedger). */
  private lookups: Array<{ gateway: string; key: string; resolve: (entry: string | undefined) => void; reject: (err: unknown) => void }> = [];

  /** false: the instants the engine passes in are used instead of the server's clock (OpenOptions.time). */
  private readonly databaseClock: boolean;

  constructor(private readonly db: Db) {
    this.databaseClock = usesDatabaseClock(db);
  }

  get staged(): number {
    return this.stagedEntries.size;
  }

  /**
   * One transaction at the database's instant. With `writeStaged` (outcome commits and flushStaged:
   * the writer runs them one at a time), the staged ledger entries are written first and leave the
   * stage once committed. Claims and lease writes leave them alone: they overlap an outcome commit on
   * another connection, and both upserting the same keys made one wait for the other's commit on the
   * key index (23 ms per ledger statement on average, 45 ms in claims, measured).
   */
  private async transaction<T>(callerNow: number, work: (trx: Trx, now: number) => Promise<T>, writeStaged = false): Promise<T> {
    const staged = writeStaged ? [...this.stagedEntries.values()] : [];
    const result = await this.db.transaction().execute(async (trx) => {
      const now = this.databaseClock ? await databaseNow(trx) : callerNow;
      if (staged.length) await this.writeLedgerEntries(trx, staged);
      return work(trx, now);
    });
    for (const s of staged) if (this.stagedEntries.get(s.id) === s) this.stagedEntries.delete(s.id);
    return result;
  }

  async claim(request: ClaimRequest, decide: (rows: readonly ClaimedRow[], now: number) => readonly ClaimDecision[], outcomes?: OutcomeBatch): Promise<ClaimResult> {
    if (request.limit <= 0 && !outcomes) return { now: request.now, claimed: [], written: [] };
    if (outcomes) this.newKeys.forget(outcomes.items);
    const result = await this.transaction(
      request.now,
      async (trx, now) => {
        // The outcomes first: their rows' leases are given back before the due rows are read.
        const written = outcomes ? await this.recordIn(trx, this.databaseClock ? now : outcomes.now, outcomes.items) : [];
        // Open attempts first (reconcile / poll: money may already be moving), then new collections.
        const open = request.limit > 0 ? await this.claimRows(trx, now, request.limit, true) : [];
        const fresh = open.length < request.limit ? await this.claimRows(trx, now, request.limit - open.length, false) : [];
        const rows: ClaimedRow[] = [...open, ...fresh].map((row) => ({ subscription: rowToSubscription(row), version: Number(row.version) }));
        if (rows.length === 0) return { now, claimed: [], written };
        const decisions = decide(rows, now);
        if (decisions.length !== rows.length) invariant(`claim: ${decisions.length} decisions for ${rows.length} rows`);
        return { now, claimed: await this.applyDecisions(trx, request.token, now, now + request.leaseMs, rows, decisions), written };
      },
      outcomes !== undefined,
    );
    // By the caller's clock, as the lookups are (the lease itself is judged by the database's).
    this.newKeys.add(result.claimed, request.now, request.leaseMs);
    return result;
  }

  /**
   * Locks up to `limit` due rows in work_at order for this transaction. SKIP
   * LOCKED: rows another daemon is claiming or writing right now are left to
   * it, not waited for. The lease is written with each row's decision
   * (applyDecisions), in one row write: a lease-only update here and the
   * decision's write after it made two new versions of every claimed row
   * (PostgreSQL rewrites the whole row and, as work_at and lease_owner are
   * indexed, every index), as the SQLite store found too.
   */
  private async claimRows(trx: Trx, now: number, limit: number, openAttempts: boolean): Promise<SubscriptionRow[]> {
    const at = toDbTime(now);
    const rows = await query<SubscriptionRow>(
      trx,
      `select * from subscriptions
       where work_at <= $1 and (lease_until is null or lease_until < $1) and next_action ${openAttempts ? 'in' : 'not in'} ('reconcile', 'poll')
       order by work_at limit $2 for update skip locked`,
      [at, limit],
    );
    const order = (r: SubscriptionRow) => `${r.work_at ?? ''}\u0000${r.id}`;
    return rows.sort((x, y) => (order(x) < order(y) ? -1 : order(x) > order(y) ? 1 : 0));
  }

  /**
   * Writes a claim's decisions and leases, one row write each at most (the
   * rows are locked by claimRows): one statement per kind of write for the
   * whole batch.
   */
  private async applyDecisions(trx: Trx, token: string, now: number, leaseUntil: number, rows: readonly ClaimedRow[], decisions: readonly ClaimDecision[]): Promise<Claimed[]> {
    const at = toDbTime(now);
    const lease = { owner: token, until: toDbTime(leaseUntil) };
    const begins: Array<{ row: ClaimedRow; decision: Extract<ClaimDecision, { kind: 'begin' }> }> = [];
    const written: ClaimWrite[] = [];
    /** Rows leased with no state write: a status query to make, or a refusal tried again when the lease expires. */
    const leased: string[] = [];
    const cycles: Array<{ sub: Subscription; cycles: readonly CycleWrite[] }> = [];
    const events: DomainEvent[] = [];
    const queries: string[] = [];
    const releases = new Map<number, string[]>();
    rows.forEach((row, i) => {
      const d = decisions[i]!;
      switch (d.kind) {
        case 'begin':
          begins.push({ row, decision: d });
          written.push({ before: row.subscription, version: row.version, after: d.transition.subscription, lease });
          cycles.push({ sub: d.transition.subscription, cycles: d.transition.cycles });
          events.push(...d.transition.events);
          break;
        case 'settle':
          // Done within the claim: no lease is left on the row (nor an expired one of a dead daemon).
          written.push({ before: row.subscription, version: row.version, after: d.transition.subscription, lease: null });
          cycles.push({ sub: d.transition.subscription, cycles: d.transition.cycles });
          events.push(...d.transition.events);
          break;
        case 'query':
          leased.push(row.subscription.id);
          queries.push(d.key);
          break;
        case 'release':
          // Nothing to do now: the row is not leased at all, or only made due when a breaker lets a probe through.
          if (d.dueAt !== undefined) releases.set(d.dueAt, [...(releases.get(d.dueAt) ?? []), row.subscription.id]);
          break;
        case 'keep':
          leased.push(row.subscription.id);
          break;
      }
    });
    if (begins.length) {
      await query(
        trx,
        `insert into attempts (idempotency_key, subscription_id, cycle, attempt, gateway, mode, state, amount_minor, currency, sends, created_at, updated_at)
         select k, s, c, a, g, m, 'in_flight', amt, cur, 1, $9, $9 from unnest($1::text[], $2::text[], $3::int[], $4::int[], $5::text[], $6::text[], $7::bigint[], $8::text[]) as v(k, s, c, a, g, m, amt, cur)`,
        [
          begins.map((b) => b.decision.attempt.key),
          begins.map((b) => b.row.subscription.id),
          begins.map((b) => b.decision.attempt.cycle),
          begins.map((b) => b.decision.attempt.attempt),
          begins.map((b) => b.row.subscription.gateway),
          begins.map((b) => b.row.subscription.mode),
          begins.map((b) => b.row.subscription.amount.amountMinor),
          begins.map((b) => b.row.subscription.amount.currency),
          at,
        ],
      );
    }
    // The claim holds these rows locked (FOR UPDATE above): nobody can have written them since.
    if ((await this.writeClaimedStates(trx, written)) !== written.length) invariant('claim: a row changed inside its own claim');
    if (leased.length) {
      await query(trx, 'update subscriptions set lease_owner = $1, lease_until = $2 where id = any($3::text[])', [lease.owner, lease.until, leased]);
    }
    await this.writeCycles(trx, cycles, now);
    for (const [dueAt, ids] of releases) {
      // A state write (the work instant moves): version bumped; an expired lease of a dead daemon is cleared.
      await query(trx, 'update subscriptions set lease_owner = null, lease_until = null, action_at = $2, work_at = $2, version = version + 1 where id = any($1::text[])', [ids, toDbTime(dueAt)]);
    }
    const attempts = queries.length ? await this.attemptRows(trx, queries) : new Map<string, AttemptRow>();
    await this.writeEvents(trx, events, now);
    return rows.map((row, i) => {
      const decision = decisions[i]!;
      const { subscription, version } = row;
      switch (decision.kind) {
        case 'begin':
        case 'settle':
          return { subscription, decision, version: version + 1 };
        case 'query': {
          const stored = attempts.get(decision.key);
          return { subscription, decision, version, attempt: stored ? rowToAttempt(stored) : undefined };
        }
        case 'release':
          return { subscription, decision, version: decision.dueAt === undefined ? version : version + 1 };
        case 'keep':
          return { subscription, decision, version };
      }
    });
  }

  /**
   * A claim's state writes, with the lease each row gets (or none): rows this
   * transaction locked, checked against the version read. Returns the rows written.
   */
  private async writeClaimedStates(trx: Trx, rows: ReadonlyArray<ClaimWrite>): Promise<number> {
    if (rows.length === 0) return 0;
    const n = STATE_COLUMNS.length;
    const result = await query<{ id: string }>(
      trx,
      `update subscriptions s set ${STATE_SET}, version = s.version + 1, lease_owner = v.lease_owner, lease_until = v.lease_until
       from unnest(${stateTypes(1)}, $${n + 1}::text[], $${n + 2}::int[], $${n + 3}::text[], $${n + 4}::text[])
         as v(${STATE_COLUMNS.map((c) => c.column).join(', ')}, row_id, row_version, lease_owner, lease_until)
       where s.id = any($${n + 1}::text[]) and s.id = v.row_id and s.version = v.row_version
       returning s.id`,
      [
        ...stateArrays(rows.map((r) => r.after)),
        rows.map((r) => r.before.id),
        rows.map((r) => r.version),
        rows.map((r) => r.lease?.owner ?? null),
        rows.map((r) => r.lease?.until ?? null),
      ],
    );
    return result.length;
  }

  /**
   * Outcomes: writes the new state of many rows in one statement, each only if
   * it still has the lease of its `token` and the version the engine saw;
   * bumps the version and gives the lease back. Returns `<id>\0<token>`
   * of the rows written. An outcome batch holds rows of several claims: one
   * statement for all of them (one per claim token was about two per batch).
   */
  private async writeStates(trx: Trx, rows: ReadonlyArray<StateWrite>): Promise<Set<string>> {
    if (rows.length === 0) return new Set();
    const n = STATE_COLUMNS.length;
    // One unnest call over every array, so the arrays' elements pair up by position.
    const result = await query<{ id: string; lease_token: string }>(
      trx,
      `update subscriptions s set ${STATE_SET}, version = s.version + 1, lease_owner = null, lease_until = null
       from unnest(${stateTypes(1)}, $${n + 1}::text[], $${n + 2}::int[], $${n + 3}::text[])
         as v(${STATE_COLUMNS.map((c) => c.column).join(', ')}, row_id, row_version, row_token)
       where s.id = any($${n + 1}::text[]) and s.id = v.row_id and s.lease_owner = v.row_token and s.version = v.row_version
       returning s.id, v.row_token as lease_token`,
      [...stateArrays(rows.map((r) => r.after)), rows.map((r) => r.before.id), rows.map((r) => r.version), rows.map((r) => r.token)],
    );
    return new Set(result.map((r) => `${r.id}\u0000${r.lease_token}`));
  }

  async recordOutcomes(callerNow: number, items: readonly OutcomeWrite[]): Promise<OutcomeWritten[]> {
    if (items.length === 0) return [];
    this.newKeys.forget(items);
    return this.transaction(callerNow, (trx, now) => this.recordIn(trx, now, items), true);
  }

  /** Records a batch of outcomes in `trx` at `now` (recordOutcomes, or a claim that carries them). */
  private async recordIn(trx: Trx, now: number, items: readonly OutcomeWrite[]): Promise<OutcomeWritten[]> {
    const results: Array<OutcomeWritten | undefined> = new Array(items.length);
    const settlements = items.map((item) => item.settle(item.subscription, item.attempt, now));
    // The common case, in one statement per table: rows still leased by this claim at the version it saw.
    const direct = items.map((item, i) => ({ item, settlement: settlements[i]!, index: i })).filter((x) => !x.settlement.resend);
    const written = await this.writeOutcomeStates(trx, direct);
    const attemptUpdates: Array<{ attempt: AttemptInfo; update: AttemptUpdate; resend: boolean }> = [];
    const cycles: Array<{ sub: Subscription; cycles: readonly CycleWrite[] }> = [];
    const events: DomainEvent[] = [];
    for (const { item, settlement, index } of direct) {
      if (!written.has(`${item.subscription.id}\u0000${item.token}`)) continue;
      attemptUpdates.push({ attempt: item.attempt, update: settlement.attempt, resend: false });
      cycles.push({ sub: settlement.subscription, cycles: settlement.cycles });
      events.push(...settlement.events);
      results[index] = { kind: 'written', subscription: settlement.subscription, state: settlement.attempt.state, events: settlement.events };
    }
    // Everything else, one row at a time under a row lock: re-sends, and rows written or re-leased meanwhile (rare).
    for (let i = 0; i < items.length; i++) {
      if (results[i]) continue;
      const one = await this.reread(trx, now, items[i]!);
      results[i] = one.result;
      if (one.attempt) attemptUpdates.push(one.attempt);
      if (one.cycles) cycles.push(one.cycles);
      events.push(...(one.events ?? []));
    }
    await this.updateAttempts(trx, attemptUpdates, now);
    await this.writeCycles(trx, cycles, now);
    await this.writeEvents(trx, events, now);
    return results as OutcomeWritten[];
  }

  /** writeStates for outcomes, which may come from several claims (tokens): returns `<id>\0<token>` of the rows written. */
  private writeOutcomeStates(trx: Trx, rows: ReadonlyArray<{ item: OutcomeWrite; settlement: Settlement }>): Promise<Set<string>> {
    return this.writeStates(
      trx,
      rows.map(({ item, settlement }) => ({ token: item.token, before: item.subscription, version: item.version, after: settlement.subscription })),
    );
  }

  /**
   * One outcome whose row was not written by the batch statement (or a
   * re-send): the row is read under a lock and the outcome settled against
   * it, as the SQLite store's reread does. A lost lease records nothing; an
   * attempt a gateway callback settled meanwhile is not recorded twice.
   */
  private async reread(
    trx: Trx,
    now: number,
    item: OutcomeWrite,
  ): Promise<{
    result: OutcomeWritten;
    attempt?: { attempt: AttemptInfo; update: AttemptUpdate; resend: boolean };
    cycles?: { sub: Subscription; cycles: readonly CycleWrite[] };
    events?: readonly DomainEvent[];
  }> {
    const id = item.subscription.id;
    const [row] = await query<SubscriptionRow>(trx, 'select * from subscriptions where id = $1 for update', [id]);
    if (row?.lease_owner !== item.token) return { result: { kind: 'lease_lost' } };
    const stored = (await this.attemptRows(trx, [item.attempt.key])).get(item.attempt.key);
    const attempt: AttemptInfo = stored ? rowToAttempt(stored) : item.attempt;
    if (!isOpenAttemptState(attempt.state)) {
      await this.releaseRows(trx, item.token, [id]);
      return { result: { kind: 'already_settled', state: attempt.state } };
    }
    const sub = rowToSubscription(row);
    const version = Number(row.version);
    const settlement = item.settle(sub, attempt, now);
    if (settlement.resend) {
      return {
        result: { kind: 'resend', subscription: sub, version, attempt: attemptAfter(attempt, settlement.attempt, true) },
        attempt: { attempt, update: settlement.attempt, resend: true },
      };
    }
    const written = await this.writeStates(trx, [{ token: item.token, before: sub, version, after: settlement.subscription }]);
    if (!written.has(`${id}\u0000${item.token}`)) invariant(`outcome: row ${id} changed between its locked read and its write`);
    return {
      result: { kind: 'written', subscription: settlement.subscription, state: settlement.attempt.state, events: settlement.events },
      attempt: { attempt, update: settlement.attempt, resend: false },
      cycles: { sub: settlement.subscription, cycles: settlement.cycles },
      events: settlement.events,
    };
  }

  /**
   * Writes attempts' new states in one statement, each only from the state
   * this daemon knows. An optional column a settlement leaves undefined keeps
   * what is stored (a `set_<column>` flag per row says which were given).
   */
  private async updateAttempts(trx: Trx, updates: ReadonlyArray<{ attempt: AttemptInfo; update: AttemptUpdate; resend: boolean }>, now: number): Promise<void> {
    if (updates.length === 0) return;
    const columns = ATTEMPT_UPDATE_COLUMNS;
    const params: unknown[] = [
      updates.map((u) => u.attempt.key),
      updates.map((u) => u.attempt.state),
      updates.map((u) => u.update.state),
      updates.map((u) => u.resend),
      toDbTime(now),
    ];
    const sets: string[] = [];
    const unnestTypes = ['$1::text[]', '$2::text[]', '$3::text[]', '$4::boolean[]'];
    const unnestNames = ['k', 'expected', 'next', 'resend'];
    columns.forEach((c, i) => {
      const values = updates.map((u) => c.value(u.update));
      const type = c.column === 'hard_decline' || c.column === 'unavailable_count' ? 'int' : 'text';
      params.push(values.map((v) => (v === undefined ? null : v)), values.map((v) => v !== undefined));
      unnestTypes.push(`$${params.length - 1}::${type}[]`, `$${params.length}::boolean[]`);
      unnestNames.push(`v${i}`, `s${i}`);
      sets.push(`${c.column} = case when v.s${i} then v.v${i} else a.${c.column} end`);
    });
    const rows = await query<{ k: string }>(
      trx,
      `update attempts a set state = v.next, ${sets.join(', ')}, sends = a.sends + case when v.resend then 1 else 0 end, updated_at = $5
       from unnest(${unnestTypes.join(', ')}) as v(${unnestNames.join(', ')})
       where a.idempotency_key = any($1::text[]) and a.idempotency_key = v.k and a.state = v.expected
       returning a.idempotency_key as k`,
      params,
    );
    if (rows.length !== updates.length) {
      const done = new Set(rows.map((r) => r.k));
      const lost = updates.find((u) => !done.has(u.attempt.key));
      invariant(`attempt ${lost?.attempt.key} is no longer ${lost?.attempt.state} although its subscription row was not written meanwhile`);
    }
  }

  /** Upserts cycle rows in one statement per shape; a paid cycle never goes back to any other status. */
  private async writeCycles(trx: Trx, batches: ReadonlyArray<{ sub: Subscription; cycles: readonly CycleWrite[] }>, now: number): Promise<void> {
    const withAttempts: Array<{ sub: Subscription; c: CycleWrite }> = [];
    const keepAttempts: Array<{ sub: Subscription; c: CycleWrite }> = [];
    for (const { sub, cycles } of batches) for (const c of cycles) (c.attempts !== undefined ? withAttempts : keepAttempts).push({ sub, c });
    for (const [list, keep] of [
      [withAttempts, false],
      [keepAttempts, true],
    ] as const) {
      if (list.length === 0) continue;
      await query(
        trx,
        `insert into cycles (subscription_id, cycle, due_at, status, amount_minor, currency, attempts, settled_at, created_at)
         select * from unnest($1::text[], $2::int[], $3::text[], $4::text[], $5::bigint[], $6::text[], $7::int[], $8::text[], $9::text[])
         on conflict (subscription_id, cycle) do update set status = excluded.status,
           ${keep ? '' : 'attempts = excluded.attempts, '}settled_at = excluded.settled_at
         where cycles.status <> 'paid'`,
        [
          list.map((x) => x.sub.id),
          list.map((x) => x.c.cycle),
          list.map((x) => toDbTime(x.c.dueAt)),
          list.map((x) => x.c.status),
          list.map((x) => x.sub.amount.amountMinor),
          list.map((x) => x.sub.amount.currency),
          list.map((x) => x.c.attempts ?? 0),
          list.map((x) => (x.c.settledAt == null ? null : toDbTime(x.c.settledAt))),
          list.map(() => toDbTime(now)),
        ],
      );
    }
  }

  /**
   * Inserts events in one statement, in their order, under the outbox lock
   * (ids in commit order), and queues the link e-mail of each
   * `payment_link.sent` whose subscription opts in (link-emails.ts).
   */
  private async writeEvents(trx: Trx, events: readonly DomainEvent[], now: number): Promise<void> {
    if (events.length === 0) return;
    const links = linkEvents(events);
    if (links.length) {
      const at = toDbTime(now);
      await query(
        trx,
        `insert into link_emails (attempt_key, subscription_id, state, next_try_at, created_at, updated_at)
         select v.k, s.id, 'pending', $3, $3, $3 from unnest($1::text[], $2::text[]) as v(k, sid) join subscriptions s on s.id = v.sid and s.email_links = 1
         on conflict (attempt_key) do nothing`,
        [links.map((e) => e.data.idempotencyKey), links.map((e) => e.subscriptionId), at],
      );
    }
    await lockOutbox(trx);
    await query(
      trx,
      `insert into events (type, subscription_id, cycle, attempt, occurred_at, payload)
       select t, s, c, a, o, p from unnest($1::text[], $2::text[], $3::int[], $4::int[], $5::text[], $6::text[]) with ordinality as v(t, s, c, a, o, p, n) order by n`,
      [
        events.map((e) => e.type),
        events.map((e) => e.subscriptionId),
        events.map((e) => e.cycle ?? null),
        events.map((e) => e.attempt ?? null),
        events.map((e) => toDbTime(e.at)),
        events.map((e) => JSON.stringify(e.data)),
      ],
    );
  }

  private async attemptRows(trx: Trx, keys: readonly string[]): Promise<Map<string, AttemptRow>> {
    const rows = await query<AttemptRow>(trx, 'select * from attempts where idempotency_key = any($1::text[])', [keys]);
    return new Map(rows.map((r) => [r.idempotency_key, r]));
  }

  /** Gives back leases `token` holds; with `dueAt`, the rows' work moves to that instant (a state write: version bumped). */
  private async releaseRows(trx: Trx | Db, token: string, ids: readonly string[], dueAt?: number): Promise<void> {
    if (ids.length === 0) return;
    if (dueAt === undefined) {
      await query(trx, 'update subscriptions set lease_owner = null, lease_until = null where id = any($1::text[]) and lease_owner = $2', [ids, token]);
      return;
    }
    await query(
      trx,
      'update subscriptions set lease_owner = null, lease_until = null, action_at = $3, work_at = $3, version = version + 1 where id = any($1::text[]) and lease_owner = $2',
      [ids, token, toDbTime(dueAt)],
    );
  }

  release(token: string, ids: readonly string[], dueAt?: number): Promise<void> {
    if (ids.length === 0) return Promise.resolve();
    return this.transaction(0, (trx) => this.releaseRows(trx, token, ids, dueAt));
  }

  extendLeases(leases: readonly HeldLease[], callerNow: number, leaseMs: number): Promise<void> {
    if (leases.length === 0) return Promise.resolve();
    return this.transaction(callerNow, async (trx, now) => {
      await query(
        trx,
        `update subscriptions s set lease_until = $1 from unnest($2::text[], $3::text[]) as v(id, token)
         where s.id = any($2::text[]) and s.id = v.id and s.lease_owner = v.token`,
        [toDbTime(now + leaseMs), leases.map((l) => l.id), leases.map((l) => l.token)],
      );
    });
  }

  stageLedgerEntry(gateway: string, key: string, entry: string, at: number): void {
    const id = `${gateway}\u0000${key}`;
    this.stagedEntries.set(id, { id, gateway, key, entry, at });
  }

  async ledgerEntry(gateway: string, key: string, now: number): Promise<string | undefined> {
    const staged = this.stagedEntries.get(`${gateway}\u0000${key}`);
    if (staged) return staged.entry;
    if (this.newKeys.take(key, now)) return undefined;
    return new Promise((resolve, reject) => {
      this.lookups.push({ gateway, key, resolve, reject });
      if (this.lookups.length === 1) setImmediate(() => void this.lookUpLedger());
    });
  }

  /**
   * The ledger lookups asked for in one turn of the event loop, in one query
   * (one autocommit round trip per simulated charge was a third of the
   * daemon's time on PostgreSQL). An entry staged meanwhile is the answer.
   */
  private async lookUpLedger(): Promise<void> {
    const batch = this.lookups;
    this.lookups = [];
    try {
      const rows = await query<{ idempotency_key: string; gateway: string; entry: string }>(
        this.db,
        'select idempotency_key, gateway, entry from simulator_ledger where idempotency_key = any($1::text[])',
        [[...new Set(batch.map((b) => b.key))]],
      );
      const stored = new Map(rows.map((r) => [`${r.gateway}\u0000${r.idempotency_key}`, r.entry]));
      for (const b of batch) {
        const id = `${b.gateway}\u0000${b.key}`;
        b.resolve(this.stagedEntries.get(id)?.entry ?? stored.get(id));
      }
    } catch (err) {
      for (const b of batch) b.reject(err);
    }
  }

  async ledgerEntries(gateway: string): Promise<string[]> {
    await this.flushStaged();
    const rows = await query<{ entry: string }>(this.db, 'select entry from simulator_ledger where gateway = $1 order by created_at', [gateway]);
    return rows.map((r) => r.entry);
  }

  async flushStaged(): Promise<void> {
    if (this.stagedEntries.size > 0) await this.transaction(0, async () => undefined, true);
  }

  /** Inserts or replaces entries (a pending payment settling replaces its entry). */
  private async writeLedgerEntries(trx: Trx, entries: readonly StagedEntry[]): Promise<void> {
    await query(
      trx,
      `insert into simulator_ledger (idempotency_key, gateway, entry, created_at)
       select * from unnest($1::text[], $2::text[], $3::text[], $4::text[])
       on conflict (idempotency_key) do update set entry = excluded.entry`,
      [entries.map((e) => e.key), entries.map((e) => e.gateway), entries.map((e) => e.entry), entries.map((e) => toDbTime(e.at))],
    );
  }
}

/** The PostgreSQL hot-path store of a Db (one per Db, shared by the engine and its simulator gateways). */
export function postgresHotPathStore(db: Db): HotPathStore {
  return new PostgresHotPathStore(db);
}
