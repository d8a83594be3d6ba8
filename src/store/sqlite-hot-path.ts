/**
 * The engine's hot path on SQLite (see hot-path.ts for the rules): prepared
 * statements in synchronous better-sqlite3 transactions, on the daemon's one
 * connection. kysely building and compiling each row's statement, and one
 * awaited promise chain per statement, cost more than SQLite itself did
 * (issue 10); here a whole claim or outcome batch is one synchronous call.
 *
 * Sharing the connection safely: every transaction here runs while holding
 * kysely's connection (`db.connection()`), so it never starts inside a kysely
 * transaction that is open between two awaits (an API request): better-sqlite3
 * would make it a savepoint of that transaction, which could then roll it back.
 * `begin immediate`, as kysely's driver does here: a CLI writer beside the
 * daemon waits its busy_timeout instead of failing.
 */
import type SQLite from 'better-sqlite3';
import type { Selectable } from 'kysely';
import { isOpenAttemptState, type AttemptInfo, type AttemptUpdate, type CycleWrite, type DomainEvent, type Subscription } from '../domain/index.js';
import { RebillError } from '../errors.js';
import { sqliteConnectionOf, sqliteImmediate, toDbTime, type Db } from './db.js';
import {
  ATTEMPT_UPDATE_COLUMNS,
  attemptAfter,
  invariant,
  NewKeys,
  changedColumns,
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
import { LINK_EMAIL_QUEUE_SQL, linkEvents } from './link-emails.js';
import { rowToAttempt, rowToSubscription, SUBSCRIPTION_COLUMNS, subscriptionRowOf } from './repository.js';
import type { AttemptTable, SubscriptionTable } from './schema.js';

type SubscriptionRow = Selectable<SubscriptionTable>;
type AttemptRow = Selectable<AttemptTable>;

const UPSERT_CYCLE_HEAD = `insert into cycles (subscription_id, cycle, due_at, status, amount_minor, currency, attempts, settled_at, created_at)
  values (?, ?, ?, ?, ?, ?, ?, ?, ?) on conflict (subscription_id, cycle) do update set status = excluded.status, `;
const UPSERT_CYCLE = `${UPSERT_CYCLE_HEAD}attempts = excluded.attempts, settled_at = excluded.settled_at where cycles.status <> 'paid'`;
const UPSERT_CYCLE_KEEP_ATTEMPTS = `${UPSERT_CYCLE_HEAD}settled_at = excluded.settled_at where cycles.status <> 'paid'`;

const NO_CHANGE = { mask: 0, values: [] as unknown[] };

/** The SQLite hot-path store of a Db opened by openDatabase (hot-paths.ts picks it, one per Db). */
export function sqliteHotPathStore(db: Db): HotPathStore {
  const sqlite = sqliteConnectionOf(db);
  if (!sqlite) throw new RebillError('DATABASE_UNSUPPORTED', 'the engine hot path needs a database opened by openDatabase');
  return new SqliteHotPathStore(db, sqlite);
}

class SqliteHotPathStore implements HotPathStore {
  private readonly statements = new Map<string, SQLite.Statement>();
  private readonly stagedEntries = new Map<string, StagedEntry>();
  /** Keys of attempt rows this store's claims inserted: their first ledger lookup needs no read. */
  private readonly newKeys = new NewKeys();
  /** Ledger lookups waiting for the next read batch. */
  private lookups: Array<{ gateway: string; key: string; resolve: (entry: string | undefined) => void; reject: (err: unknown) => void }> = [];

  /** The entries of a batch of lookups, staged or stored; and the same in a read transaction of its own (built once). */
  private readonly readEntries: (batch: ReadonlyArray<{ gateway: string; key: string }>) => Array<string | undefined>;
  private readonly readEntriesInTransaction: SQLite.Transaction<(batch: ReadonlyArray<{ gateway: string; key: string }>) => Array<string | undefined>>;

  constructor(
    private readonly db: Db,
    private readonly sqlite: SQLite.Database,
  ) {
    const read = sqlite.prepare('select entry from simulator_ledger where idempotency_key = ? and gateway = ?').pluck();
    this.readEntries = (batch) => batch.map((l) => this.stagedEntries.get(`${l.gateway}\u0000${l.key}`)?.entry ?? (read.get(l.key, l.gateway) as string | undefined));
    this.readEntriesInTransaction = sqlite.transaction(this.readEntries);
  }

  get staged(): number {
    return this.stagedEntries.size;
  }

  /** Prepared once per SQL text; a handful of texts in all (one per set of changed columns). */
  private statement(source: string): SQLite.Statement {
    let statement = this.statements.get(source);
    if (!statement) {
      statement = this.sqlite.prepare(source);
      this.statements.set(source, statement);
    }
    return statement;
  }

  /**
   * Runs `work` in one `begin immediate` transaction (sqliteImmediate); with
   * `writeStaged` (outcome commits and flushStaged), after writing the staged
   * ledger entries. They leave the stage only once committed: a failed
   * transaction writes them again next time.
   */
  private exclusive<T>(work: () => T, writeStaged = false): Promise<T> {
    if (!writeStaged) return sqliteImmediate(this.db, this.sqlite, work);
    let staged: StagedEntry[] = [];
    return sqliteImmediate(
      this.db,
      this.sqlite,
      () => {
        staged = [...this.stagedEntries.values()];
        for (const s of staged) this.writeLedgerEntry(s);
        return work();
      },
      () => {
        for (const s of staged) if (this.stagedEntries.get(s.id) === s) this.stagedEntries.delete(s.id);
      },
    );
  }

  claim(request: ClaimRequest, decide: (rows: readonly ClaimedRow[], now: number) => readonly ClaimDecision[], outcomes?: OutcomeBatch): Promise<ClaimResult> {
    if (request.limit <= 0 && !outcomes) return Promise.resolve({ now: request.now, claimed: [], written: [] });
    if (outcomes) this.newKeys.forget(outcomes.items);
    const claiming = this.exclusive(() => {
      const written = outcomes ? outcomes.items.map((item) => this.recordOne(outcomes.now, item)) : [];
      // Open attempts first (reconcile / poll: money may already be moving), then new collections:
      // a restart after a shutdown with a backlog settles what it left behind before charging
      // anyone new.
      const open = request.limit > 0 ? this.dueRows(request, request.limit, true) : [];
      const fresh = open.length < request.limit ? this.dueRows(request, request.limit - open.length, false) : [];
      const claimed: ClaimedRow[] = [...open, ...fresh].map((row) => ({ subscription: rowToSubscription(row), version: Number(row.version) }));
      if (claimed.length === 0) return { now: request.now, claimed: [], written };
      const decisions = decide(claimed, request.now);
      if (decisions.length !== claimed.length) invariant(`claim: ${decisions.length} decisions for ${claimed.length} rows`);
      return { now: request.now, claimed: claimed.map((row, i) => this.apply(row, decisions[i]!, request)), written };
    }, outcomes !== undefined);
    return claiming.then((result) => {
      this.newKeys.add(result.claimed, request.now, request.leaseMs);
      return result;
    });
  }

  /**
   * The due rows a claim takes, oldest first. Read and leased in the same
   * `begin immediate` transaction, so no other writer comes in between: each
   * row is then written once, lease and decision together (apply), instead
   * of once by an UPDATE ... RETURNING that leases it and again by its intent
   * (one row write per charge less, measured). PostgreSQL takes the same rows
   * with `FOR UPDATE SKIP LOCKED` on this read.
   */
  private dueRows(request: ClaimRequest, limit: number, openAttempts: boolean): SubscriptionRow[] {
    const now = toDbTime(request.now);
    const key = openAttempts ? 'claim:open' : 'claim:fresh';
    let statement = this.statements.get(key);
    if (!statement) {
      // Rows come back as arrays (`raw`): better-sqlite3 builds a row object property by property,
      // which cost more than reading the row (34 columns); subscriptionRowOf builds it in one literal.
      // Only work_at orders (the index does it): a tie-break column would make SQLite sort every
      // due row before the LIMIT when 100,000 fall due at the same instant.
      statement = this.sqlite
        .prepare(
          `select ${SUBSCRIPTION_COLUMNS.join(', ')} from subscriptions
           where work_at <= ? and (lease_until is null or lease_until < ?) and next_action ${openAttempts ? 'in' : 'not in'} ('reconcile', 'poll')
           order by work_at limit ?`,
        )
        .raw(true);
      this.statements.set(key, statement);
    }
    const rows = (statement.all(now, now, limit) as unknown[][]).map(subscriptionRowOf);
    return rows.sort((x, y) => (x.work_at! < y.work_at! ? -1 : x.work_at! > y.work_at! ? 1 : x.id < y.id ? -1 : x.id > y.id ? 1 : 0));
  }

  /** Writes one claimed row's lease and decision (one row write at most) inside the claim's transaction. */
  private apply(row: ClaimedRow, decision: ClaimDecision, request: ClaimRequest): Claimed {
    const { subscription: sub, version } = row;
    const lease = { token: request.token, until: toDbTime(request.now + request.leaseMs) };
    switch (decision.kind) {
      case 'begin': {
        const next = decision.transition.subscription;
        this.statement(
          `insert into attempts (idempotency_key, subscription_id, cycle, attempt, gateway, mode, state, amount_minor, currency, sends, created_at, updated_at)
           values (?, ?, ?, ?, ?, ?, 'in_flight', ?, ?, 1, ?, ?)`,
        ).run(decision.attempt.key, sub.id, decision.attempt.cycle, decision.attempt.attempt, sub.gateway, sub.mode, sub.amount.amountMinor, sub.amount.currency, toDbTime(request.now), toDbTime(request.now));
        this.writeClaimed(sub, version, next, lease);
        this.writeCycles(next, decision.transition.cycles, request.now);
        this.writeEvents(decision.transition.events, request.now);
        return { subscription: sub, decision, version: version + 1 };
      }
      case 'settle':
        // Done within the claim: no lease is left on the row (nor an expired one of a dead daemon).
        this.writeClaimed(sub, version, decision.transition.subscription, null);
        this.writeCycles(decision.transition.subscription, decision.transition.cycles, request.now);
        this.writeEvents(decision.transition.events, request.now);
        return { subscription: sub, decision, version: version + 1 };
      case 'query': {
        this.writeClaimed(sub, version, null, lease);
        const stored = this.attemptRow(decision.key);
        return { subscription: sub, decision, version, attempt: stored ? rowToAttempt(stored) : undefined };
      }
      case 'release':
        // Nothing to do now: the row is not leased at all, or only made due when a breaker lets a probe through.
        if (decision.dueAt === undefined) return { subscription: sub, decision, version };
        this.writeClaimed(sub, version, { ...sub, actionAt: decision.dueAt }, null);
        return { subscription: sub, decision, version: version + 1 };
      case 'keep':
        // Refused: leased, so it is tried again (and logged) once per lease period, not per sweep.
        this.writeClaimed(sub, version, null, lease);
        return { subscription: sub, decision, version };
    }
  }

  /**
   * One claim-time write of a row read in this transaction: the columns that
   * `after` changed (version bumped), and the lease taken (`lease`) or left
   * empty (null). `after` null: the lease alone (not a state write).
   */
  private writeClaimed(before: Subscription, version: number, after: Subscription | null, lease: { token: string; until: string } | null): void {
    const { mask, values } = after ? changedColumns(before, after) : NO_CHANGE;
    const key = `claimed:${after ? mask : -1}:${lease !== null}`;
    let statement = this.statements.get(key);
    if (!statement) {
      const set = STATE_COLUMNS.filter((_, i) => mask & (1 << i)).map((c) => `${c.column} = ?`);
      if (after) set.push('version = version + 1');
      set.push(lease ? 'lease_owner = ?, lease_until = ?' : 'lease_owner = null, lease_until = null');
      statement = this.sqlite.prepare(`update subscriptions set ${set.join(', ')} where id = ? and version = ?`);
      this.statements.set(key, statement);
    }
    const changed = lease ? statement.run(...values, lease.token, lease.until, before.id, version).changes : statement.run(...values, before.id, version).changes;
    if (changed !== 1) invariant(`claim: row ${before.id} changed inside its own claim`);
  }

  recordOutcomes(now: number, items: readonly OutcomeWrite[]): Promise<OutcomeWritten[]> {
    this.newKeys.forget(items);
    return this.exclusive(() => items.map((item) => this.recordOne(now, item)), true);
  }

  /**
   * The common case costs no read: the row is written only if it still has
   * this claim's lease and the version the engine last saw. Only when that
   * changes 0 rows is the row read again (reread).
   */
  private recordOne(now: number, item: OutcomeWrite): OutcomeWritten {
    const { subscription: sub, attempt } = item;
    const settlement = item.settle(sub, attempt, now);
    if (settlement.resend) {
      const current = this.statement('select lease_owner, version from subscriptions where id = ?').get(sub.id) as Pick<SubscriptionRow, 'lease_owner' | 'version'> | undefined;
      if (current?.lease_owner !== item.token || Number(current.version) !== item.version) return this.reread(now, item);
      this.updateAttempt(attempt, settlement.attempt, true, now);
      return { kind: 'resend', subscription: sub, version: item.version, attempt: attemptAfter(attempt, settlement.attempt, true) };
    }
    if (!this.writeState(sub, item.version, settlement.subscription, item.token)) return this.reread(now, item);
    // Every writer that settles an attempt writes its subscription in the same transaction (and so bumps
    // its version): with the version unchanged, the attempt is still as this daemon knows it.
    this.updateAttempt(attempt, settlement.attempt, false, now);
    this.writeCycles(settlement.subscription, settlement.cycles, now);
    this.writeEvents(settlement.events, now);
    return { kind: 'written', subscription: settlement.subscription, state: settlement.attempt.state, events: settlement.events };
  }

  /**
   * The row was written meanwhile, or its lease moved. A daemon that lost its
   * lease records nothing (the new owner reconciles the attempt). An attempt
   * that is no longer open was settled by a gateway callback: its answer is
   * not recorded twice, only the lease is given back. Otherwise the outcome
   * is settled against the row and attempt as stored now (an API pause or
   * cancel made meanwhile is respected).
   */
  private reread(now: number, item: OutcomeWrite): OutcomeWritten {
    const id = item.subscription.id;
    const row = this.statement('select * from subscriptions where id = ?').get(id) as SubscriptionRow | undefined;
    if (row?.lease_owner !== item.token) return { kind: 'lease_lost' };
    const stored = this.attemptRow(item.attempt.key);
    const attempt: AttemptInfo = stored ? rowToAttempt(stored) : item.attempt;
    if (!isOpenAttemptState(attempt.state)) {
      this.releaseOne(item.token, id);
      return { kind: 'already_settled', state: attempt.state };
    }
    const sub = rowToSubscription(row);
    const version = Number(row.version);
    const settlement = item.settle(sub, attempt, now);
    if (settlement.resend) {
      this.updateAttempt(attempt, settlement.attempt, true, now);
      return { kind: 'resend', subscription: sub, version, attempt: attemptAfter(attempt, settlement.attempt, true) };
    }
    if (!this.writeState(sub, version, settlement.subscription, item.token)) invariant(`outcome: row ${id} changed between its read and its write`);
    this.updateAttempt(attempt, settlement.attempt, false, now);
    this.writeCycles(settlement.subscription, settlement.cycles, now);
    this.writeEvents(settlement.events, now);
    return { kind: 'written', subscription: settlement.subscription, state: settlement.attempt.state, events: settlement.events };
  }

  /**
   * An outcome's write: the columns that differ between `before` (the row at
   * `version`) and `after`, the version bumped and the lease given back; only
   * if the row still has this lease and version. False: 0 rows changed.
   */
  private writeState(before: Subscription, version: number, after: Subscription, token: string): boolean {
    const { mask, values } = changedColumns(before, after);
    const key = `state:${mask}`;
    let statement = this.statements.get(key);
    if (!statement) {
      const set = STATE_COLUMNS.filter((_, i) => mask & (1 << i)).map((c) => `${c.column} = ?`);
      set.push('version = version + 1', 'lease_owner = null', 'lease_until = null');
      statement = this.sqlite.prepare(`update subscriptions set ${set.join(', ')} where id = ? and lease_owner = ? and version = ?`);
      this.statements.set(key, statement);
    }
    return statement.run(...values, before.id, token, version).changes === 1;
  }

  /** Writes an attempt's new state, only from the state this daemon knows (anything else is a broken invariant). */
  private updateAttempt(attempt: AttemptInfo, update: AttemptUpdate, resend: boolean, now: number): void {
    let mask = 0;
    const values: unknown[] = [update.state];
    for (let i = 0; i < ATTEMPT_UPDATE_COLUMNS.length; i++) {
      const value = ATTEMPT_UPDATE_COLUMNS[i]!.value(update);
      if (value === undefined) continue;
      mask |= 1 << i;
      values.push(value);
    }
    const key = `attempt:${mask}:${resend}`;
    let statement = this.statements.get(key);
    if (!statement) {
      const set = ['state = ?', ...ATTEMPT_UPDATE_COLUMNS.filter((_, i) => mask & (1 << i)).map((c) => `${c.column} = ?`)];
      if (resend) set.push('sends = sends + 1');
      set.push('updated_at = ?');
      statement = this.sqlite.prepare(`update attempts set ${set.join(', ')} where idempotency_key = ? and state = ?`);
      this.statements.set(key, statement);
    }
    const changed = statement.run(...values, toDbTime(now), attempt.key, attempt.state).changes;
    if (changed !== 1) invariant(`attempt ${attempt.key} is no longer ${attempt.state} although its subscription row was not written meanwhile`);
  }

  /** Upserts cycle history rows; a paid cycle never goes back to any other status. */
  private writeCycles(sub: Subscription, cycles: readonly CycleWrite[], now: number): void {
    for (const c of cycles) {
      // A write without an attempt count (a cycle marked skipped) keeps the attempts already made.
      const statement = this.statement(c.attempts !== undefined ? UPSERT_CYCLE : UPSERT_CYCLE_KEEP_ATTEMPTS);
      statement.run(sub.id, c.cycle, toDbTime(c.dueAt), c.status, sub.amount.amountMinor, sub.amount.currency, c.attempts ?? 0, c.settledAt == null ? null : toDbTime(c.settledAt), toDbTime(now));
    }
  }

  /** Inserts events, and queues the link e-mail of each `payment_link.sent` whose subscription opts in (link-emails.ts). */
  private writeEvents(events: readonly DomainEvent[], now: number): void {
    if (events.length === 0) return;
    const statement = this.statement('insert into events (type, subscription_id, cycle, attempt, occurred_at, payload) values (?, ?, ?, ?, ?, ?)');
    for (const e of events) statement.run(e.type, e.subscriptionId, e.cycle ?? null, e.attempt ?? null, toDbTime(e.at), JSON.stringify(e.data));
    const links = linkEvents(events);
    if (links.length === 0) return;
    const at = toDbTime(now);
    const queue = this.statement(LINK_EMAIL_QUEUE_SQL);
    for (const e of links) queue.run(e.data.idempotencyKey, at, at, at, e.subscriptionId);
  }

  private attemptRow(key: string): AttemptRow | undefined {
    return this.statement('select * from attempts where idempotency_key = ?').get(key) as AttemptRow | undefined;
  }

  /** Gives back one lease `token` holds; with `dueAt`, the row's work moves to that instant (a state write: version bumped). */
  private releaseOne(token: string, id: string, dueAt?: number): void {
    if (dueAt === undefined) {
      this.statement('update subscriptions set lease_owner = null, lease_until = null where id = ? and lease_owner = ?').run(id, token);
      return;
    }
    const at = toDbTime(dueAt);
    this.statement('update subscriptions set lease_owner = null, lease_until = null, action_at = ?, work_at = ?, version = version + 1 where id = ? and lease_owner = ?').run(at, at, id, token);
  }

  release(token: string, ids: readonly string[], dueAt?: number): Promise<void> {
    if (ids.length === 0) return Promise.resolve();
    return this.exclusive(() => {
      for (const id of ids) this.releaseOne(token, id, dueAt);
    });
  }

  extendLeases(leases: readonly HeldLease[], now: number, leaseMs: number): Promise<void> {
    if (leases.length === 0) return Promise.resolve();
    const until = toDbTime(now + leaseMs);
    return this.exclusive(() => {
      const extend = this.statement('update subscriptions set lease_until = ? where id = ? and lease_owner = ?');
      for (const l of leases) extend.run(until, l.id, l.token);
    });
  }

  stageLedgerEntry(gateway: string, key: string, entry: string, at: number): void {
    const id = `${gateway}\u0000${key}`;
    this.stagedEntries.set(id, { id, gateway, key, entry, at });
  }

  ledgerEntry(gateway: string, key: string, now: number): Promise<string | undefined> {
    const staged = this.stagedEntries.get(`${gateway}\u0000${key}`);
    if (staged) return Promise.resolve(staged.entry);
    if (this.newKeys.take(key, now)) return Promise.resolve(undefined);
    return new Promise((resolve, reject) => {
      this.lookups.push({ gateway, key, resolve, reject });
      // A promise job, not queueMicrotask (which builds an AsyncResource per call).
      if (this.lookups.length === 1) void Promise.resolve().then(() => this.readLedger());
    });
  }

  /**
   * Answers the ledger lookups made meanwhile (the simulator's concurrent calls) in one read
   * transaction: in WAL mode a read outside a transaction costs several times the lookup itself.
   * Only this store writes the ledger, inside its own transactions, so reading without kysely's
   * connection is safe; inside an open kysely transaction the reads simply join it.
   */
  private readLedger(): void {
    const batch = this.lookups;
    this.lookups = [];
    let answers: Array<string | undefined>;
    try {
      answers = this.sqlite.inTransaction ? this.readEntries(batch) : this.readEntriesInTransaction.deferred(batch);
    } catch (err) {
      for (const l of batch) l.reject(err);
      return;
    }
    batch.forEach((l, i) => l.resolve(answers[i]));
  }

  async ledgerEntries(gateway: string): Promise<string[]> {
    await this.flushStaged();
    const rows = this.statement('select entry from simulator_ledger where gateway = ? order by created_at').all(gateway) as Array<{ entry: string }>;
    return rows.map((r) => r.entry);
  }

  async flushStaged(): Promise<void> {
    if (this.stagedEntries.size > 0) await this.exclusive(() => undefined, true);
  }

  /** Inserts or replaces an entry (a pending payment settling replaces its entry). */
  private writeLedgerEntry(s: StagedEntry): void {
    this.statement(
      'insert into simulator_ledger (idempotency_key, gateway, entry, created_at) values (?, ?, ?, ?) on conflict (idempotency_key) do update set entry = excluded.entry',
    ).run(s.key, s.gateway, s.entry, toDbTime(s.at));
  }
}
