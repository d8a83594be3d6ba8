/**
 * SQL of webhook delivery (SPEC section 8, migration 0004): per endpoint, a
 * cursor into the outbox and one delivery row per subscribed event; every
 * attempt is recorded. The relay (src/webhooks) decides what to send when.
 */
import type SQLite from 'better-sqlite3';
import { sql, type Selectable, type Transaction } from 'kysely';
import { forWrite, fromDbTime, sqliteConnectionOf, sqliteImmediate, toDbTime, usesDatabaseClock, type Db } from './db.js';
import { databaseNow, dueWorkNow } from './postgres-hot-path.js';
import { ownedBy, type Conn } from './repository.js';
import type { Database, WebhookDeliveryTable } from './schema.js';

export type DeliveryState = 'pending' | 'delivered' | 'failed';

export interface DeliveryRow {
  readonly endpointId: string;
  readonly eventId: number;
  readonly subscriptionId: string | null;
  readonly eventType: string;
  readonly eventAt: number;
  readonly state: DeliveryState;
  readonly attempts: number;
  readonly nextAttemptAt: number | null;
  readonly lastAttemptAt: number | null;
  readonly lastStatus: number | null;
  readonly lastDurationMs: number | null;
  readonly lastError: string | null;
  readonly deliveredAt: number | null;
}

/** A claimed stream head: what sending it needs (its webhook-id, attempt number and maxAgeHours). */
export type ClaimedDelivery = Pick<DeliveryRow, 'eventId' | 'attempts' | 'eventAt'>;

/** The columns a claim returns, as ClaimedDelivery in that order. */
const CLAIMED_COLUMNS = 'webhook_deliveries.event_id, webhook_deliveries.attempts, webhook_deliveries.event_at';

function claimedOf(r: { event_id: number; attempts: number; event_at: string }): ClaimedDelivery {
  return { eventId: Number(r.event_id), attempts: Number(r.attempts), eventAt: fromDbTime(r.event_at) };
}

const byEventId = (x: ClaimedDelivery, y: ClaimedDelivery) => x.eventId - y.eventId;

const ms = (text: string | null): number | null => (text === null ? null : fromDbTime(text));

function toRow(r: Selectable<WebhookDeliveryTable>): DeliveryRow {
  return {
    endpointId: r.endpoint_id,
    eventId: Number(r.event_id),
    subscriptionId: r.subscription_id,
    eventType: r.event_type,
    eventAt: fromDbTime(r.event_at),
    state: r.state as DeliveryState,
    attempts: Number(r.attempts),
    nextAttemptAt: ms(r.next_attempt_at),
    lastAttemptAt: ms(r.last_attempt_at),
    lastStatus: r.last_status === null ? null : Number(r.last_status),
    lastDurationMs: r.last_duration_ms === null ? null : Number(r.last_duration_ms),
    lastError: r.last_error,
    deliveredAt: ms(r.delivered_at),
  };
}

/**
 * Registers an endpoint (idempotent). A new endpoint starts at `startCursor`
 * (the outbox's current end: it receives the events written from now on).
 */
export async function ensureWebhookEndpoint(db: Db, id: string, url: string, startCursor: number, now: number): Promise<void> {
  await db
    .insertInto('webhook_endpoints')
    .values({ id, url, cursor: startCursor, created_at: toDbTime(now), updated_at: toDbTime(now) })
    .onConflict((oc) => oc.column('id').doNothing())
    .execute();
}

/**
 * Moves an endpoint's cursor over the next `limit` outbox events: the events
 * `matches` accepts get a pending delivery row (due now), in one transaction
 * with the cursor's move, so a crash neither loses nor doubles a row.
 * Returns how many events were scanned (`limit`: more may follow).
 * PostgreSQL: the endpoint row is locked for the transaction, so daemons
 * sharing the endpoint scan it one at a time (the next one reads the cursor
 * this one moved).
 */
export async function scanOutbox(db: Db, endpointId: string, matches: (type: string) => boolean, limit: number, now: number): Promise<number> {
  const relay = sqliteRelay(db);
  if (relay) return relay.exclusive(() => relay.scan(endpointId, matches, limit, now));
  return db.transaction().execute(async (trx) => {
    const endpoint = await forWrite(trx, trx.selectFrom('webhook_endpoints').select('cursor').where('id', '=', endpointId)).executeTakeFirstOrThrow();
    const events = await trx
      .selectFrom('events')
      .select(['id', 'type', 'subscription_id', 'occurred_at'])
      .where('id', '>', Number(endpoint.cursor))
      .orderBy('id')
      .limit(limit)
      .execute();
    if (events.length === 0) return 0;
    // Due now by the clock that claims judge it by (claimIn): the database's, unless the Db runs on the
    // caller's. Stamped with this host's, a host ahead of the database held every new delivery back by
    // as much (up to maxClockJumpSeconds).
    const at = toDbTime(await dueWorkNow(db, now, trx));
    const rows = events
      .filter((e) => matches(e.type))
      .map((e) => ({
        endpoint_id: endpointId,
        event_id: Number(e.id),
        subscription_id: e.subscription_id,
        event_type: e.type,
        event_at: e.occurred_at,
        state: 'pending',
        attempts: 0,
        next_attempt_at: at,
        created_at: at,
        updated_at: at,
      }));
    for (let i = 0; i < rows.length; i += 100) {
      await trx.insertInto('webhook_deliveries').values(rows.slice(i, i + 100)).onConflict((oc) => oc.doNothing()).execute();
    }
    await trx.updateTable('webhook_endpoints').set({ cursor: Number(events.at(-1)!.id), updated_at: at }).where('id', '=', endpointId).execute();
    return events.length;
  });
}

/**
 * Whether pending row `d` is the head of its stream: no earlier pending event
 * of the same subscription on the same endpoint (events without a
 * subscription are each their own stream).
 */
const IS_HEAD = `not exists (
  select 1 from webhook_deliveries e
  where e.endpoint_id = d.endpoint_id and e.state = 'pending' and e.subscription_id = d.subscription_id and e.event_id < d.event_id
)`;
const isHead = sql.raw(IS_HEAD);

/**
 * Claims up to `limit` due stream heads of an endpoint for `owner`, in event
 * order: a head is due when its next attempt has come and nobody holds a
 * lease on it that runs past now. Each claimed row is leased to `owner`
 * until now + `leaseMs`, in one statement: no other claim (another daemon's,
 * or this daemon's next) takes it, and the later events of its subscription
 * are not heads while it is pending. Rows another daemon is claiming at
 * the same moment are skipped (`FOR UPDATE SKIP LOCKED`), and now is the
 * database's clock unless the Db runs on the caller's. PostgreSQL only: SQLite
 * runs the same claim as a prepared statement (SqliteRelay.claim).
 */
async function claimIn(trx: Transaction<Database>, endpointId: string, owner: string, claim: DeliveryClaim): Promise<ClaimedDelivery[]> {
  const at = claim.databaseClock ? await databaseNow(trx) : claim.now;
  const nowText = toDbTime(at);
  // The picked rows in a materialized CTE: as `event_id in (select ... limit n)`, PostgreSQL may run the
  // subquery again per row and lease more than `limit` heads.
  const rows = await sql<Parameters<typeof claimedOf>[0]>`
    with picked as materialized (
      select d.event_id from webhook_deliveries d
      where d.endpoint_id = ${endpointId} and d.state = 'pending' and d.next_attempt_at <= ${nowText}
        and (d.lease_until is null or d.lease_until <= ${nowText}) and ${isHead}
      order by d.event_id
      limit ${claim.limit}
      for update skip locked
    )
    update webhook_deliveries set lease_owner = ${owner}, lease_until = ${toDbTime(at + claim.leaseMs)}
    from picked
    where webhook_deliveries.endpoint_id = ${endpointId} and webhook_deliveries.event_id = picked.event_id
    returning ${sql.raw(CLAIMED_COLUMNS)}`.execute(trx);
  return rows.rows.map(claimedOf).sort(byEventId);
}

/** What to claim: up to `limit` heads due at `now` (the caller's clock), each leased for `leaseMs`. */
export interface DeliveryClaim {
  readonly now: number;
  readonly limit: number;
  readonly leaseMs: number;
  /** Set by recordAndClaim: whether "now" is the database's clock. */
  readonly databaseClock?: boolean;
}

/**
 * The earliest next attempt among an endpoint's pending stream heads, or
 * null. Leases are not counted: a head another daemon holds may be recorded
 * (and its successor become claimable) at any moment, not at its lease's end.
 */
export async function nextDeliveryAt(db: Db, endpointId: string): Promise<number | null> {
  const row = await sql<{ at: string | null }>`
    select min(d.next_attempt_at) as at from webhook_deliveries d
    where d.endpoint_id = ${endpointId} and d.state = 'pending' and ${isHead}`.execute(db);
  return ms(row.rows[0]?.at ?? null);
}

/** Gives leases back (the heads become claimable now): an owner's on one endpoint (a relay stopping; `eventIds`: only those), or every lease (SQLite at start: one daemon per file, so any lease is a dead one's). */
export async function releaseDeliveryLeases(db: Db, which: { owner: string; endpointId?: string; eventIds?: readonly number[] } | 'all'): Promise<number> {
  let q = db.updateTable('webhook_deliveries').set({ lease_owner: null, lease_until: null }).where('lease_owner', 'is not', null);
  if (which !== 'all') q = q.where('lease_owner', '=', which.owner);
  if (which !== 'all' && which.endpointId !== undefined) q = q.where('endpoint_id', '=', which.endpointId);
  if (which !== 'all' && which.eventIds) q = q.where('event_id', 'in', which.eventIds.length > 0 ? [...which.eventIds] : [-1]);
  const result = await q.executeTakeFirst();
  return Number(result.numUpdatedRows);
}

/** The relays holding delivery leases whose owner starts with `prefix` (this host's daemons, for recovery at start). */
export async function deliveryLeaseOwners(db: Db, prefix: string): Promise<string[]> {
  const rows = await db.selectFrom('webhook_deliveries').select('lease_owner').distinct().where(ownedBy(prefix)).execute();
  return rows.map((r) => r.lease_owner!);
}

/** One attempt's outcome. */
export interface AttemptOutcome {
  readonly at: number;
  readonly status: number | null;
  readonly durationMs: number;
  readonly error: string | null;
  /** delivered, or pending with `nextAttemptAt`, or failed (past maxAgeHours). */
  readonly state: DeliveryState;
  readonly nextAttemptAt: number | null;
}

/** One recorded attempt: which delivery, its number, its outcome. */
export interface RecordedAttempt {
  readonly eventId: number;
  readonly attempt: number;
  readonly outcome: AttemptOutcome;
}

/** Rows per multi-row statement (9 parameters a row: far below either dialect's limit). */
const RECORD_CHUNK = 500;

/**
 * One commit of an endpoint's relay: records `attempts` (answers received)
 * and their deliveries' new states, then claims the next due heads (those
 * just delivered may have made their subscriptions' next events heads), all
 * in one transaction: one commit per batch, and a crash before it only means
 * the batch is sent again (same webhook-id). An attempt is recorded only
 * where `owner` still holds its delivery's lease (which it gives back): one
 * whose lease ran out and was claimed by another daemon is that daemon's to
 * send again (at least once). Returns how many attempts were recorded and
 * the heads claimed.
 */
export async function recordAndClaim(
  db: Db,
  endpointId: string,
  owner: string,
  attempts: readonly RecordedAttempt[],
  claim: DeliveryClaim | null,
): Promise<{ recorded: number; claimed: ClaimedDelivery[] }> {
  if (attempts.length === 0 && (claim === null || claim.limit <= 0)) return { recorded: 0, claimed: [] };
  const relay = sqliteRelay(db);
  if (relay) {
    return relay.exclusive(() => {
      let recorded = 0;
      for (const a of attempts) recorded += relay.record(endpointId, owner, a);
      return { recorded, claimed: claim && claim.limit > 0 ? relay.claim(endpointId, owner, claim) : [] };
    });
  }
  const databaseClock = usesDatabaseClock(db);
  return db.transaction().execute(async (trx) => {
    let recorded = 0;
    for (let i = 0; i < attempts.length; i += RECORD_CHUNK) recorded += await recordIn(trx, endpointId, owner, attempts.slice(i, i + RECORD_CHUNK));
    const claimed = claim && claim.limit > 0 ? await claimIn(trx, endpointId, owner, { ...claim, databaseClock }) : [];
    return { recorded, claimed };
  });
}

/** One multi-row UPDATE of the deliveries `owner` still holds, then the attempt rows of those it changed. */
async function recordIn(trx: Transaction<Database>, endpointId: string, owner: string, chunk: readonly RecordedAttempt[]): Promise<number> {
  const values = sql.join(
    chunk.map(({ eventId, attempt, outcome: o }) => {
      const at = toDbTime(o.at);
      return sql`(${eventId}, ${o.state}, ${attempt}, ${o.nextAttemptAt === null ? null : toDbTime(o.nextAttemptAt)}, ${at}, ${o.status}, ${o.durationMs}, ${o.error}, ${o.state === 'delivered' ? at : null})`;
    }),
  );
  // The VALUES columns are untyped parameters (text to PostgreSQL): the casts give the columns' types.
  const changed = await sql<{ event_id: number }>`
    with v (event_id, state, attempts, next_attempt_at, at, status, duration_ms, error, delivered_at) as (values ${values})
    update webhook_deliveries set
      state = v.state, attempts = cast(v.attempts as integer), next_attempt_at = v.next_attempt_at, last_attempt_at = v.at,
      last_status = cast(v.status as integer), last_duration_ms = cast(v.duration_ms as integer), last_error = v.error,
      delivered_at = v.delivered_at, updated_at = v.at, lease_owner = null, lease_until = null
    from v
    where webhook_deliveries.endpoint_id = ${endpointId} and webhook_deliveries.event_id = cast(v.event_id as bigint)
      and webhook_deliveries.lease_owner = ${owner}
    returning webhook_deliveries.event_id`.execute(trx);
  const kept = new Set(changed.rows.map((r) => Number(r.event_id)));
  const rows = chunk
    .filter((a) => kept.has(a.eventId))
    .map((a) => ({ endpoint_id: endpointId, event_id: a.eventId, attempt: a.attempt, at: toDbTime(a.outcome.at), status: a.outcome.status, duration_ms: a.outcome.durationMs, error: a.outcome.error }));
  for (let j = 0; j < rows.length; j += 100) await trx.insertInto('webhook_attempts').values(rows.slice(j, j + 100)).execute();
  return rows.length;
}

/**
 * The relay's writes on SQLite: the statements of scanOutbox and
 * recordAndClaim above, prepared once, each batch one synchronous
 * better-sqlite3 transaction (as the engine's hot path,
 * sqlite-hot-path.ts): kysely compiling a multi-row statement per batch, and
 * one awaited round per statement, cost more than SQLite running them. The
 * SQL says the same as the kysely statements, row by row; only one daemon
 * uses a SQLite file, so there is nothing to lock.
 */
class SqliteRelay {
  private readonly cursor: SQLite.Statement<[string], number>;
  /** Rows as arrays (id, type, subscription_id, occurred_at): 500 a batch. */
  private readonly events: SQLite.Statement<[number, number], [number, string, string | null, string]>;
  private readonly insertDelivery: SQLite.Statement<[string, number, string | null, string, string, string, string, string]>;
  private readonly moveCursor: SQLite.Statement<[number, string, string]>;
  /** Positional parameters: binding them by name cost 1.3 us more per delivery. */
  private readonly recordDelivery: SQLite.Statement<[DeliveryState, number, string | null, string, number | null, number, string | null, string | null, string, string, number, string]>;
  private readonly insertAttempt: SQLite.Statement<[string, number, number, string, number | null, number, string | null]>;
  private readonly claimHeads: SQLite.Statement<[{ endpointId: string; now: string; owner: string; until: string; limit: number }], Parameters<typeof claimedOf>[0]>;

  constructor(
    private readonly db: Db,
    private readonly sqlite: SQLite.Database,
  ) {
    this.cursor = sqlite.prepare<[string], number>('select cursor from webhook_endpoints where id = ?').pluck();
    this.events = sqlite.prepare<[number, number], [number, string, string | null, string]>('select id, type, subscription_id, occurred_at from events where id > ? order by id limit ?').raw();
    this.insertDelivery = sqlite.prepare(
      `insert into webhook_deliveries (endpoint_id, event_id, subscription_id, event_type, event_at, state, attempts, next_attempt_at, created_at, updated_at)
       values (?, ?, ?, ?, ?, 'pending', 0, ?, ?, ?) on conflict do nothing`,
    );
    this.moveCursor = sqlite.prepare('update webhook_endpoints set cursor = ?, updated_at = ? where id = ?');
    this.recordDelivery = sqlite.prepare(
      `update webhook_deliveries set state = ?, attempts = ?, next_attempt_at = ?, last_attempt_at = ?, last_status = ?, last_duration_ms = ?,
         last_error = ?, delivered_at = ?, updated_at = ?, lease_owner = null, lease_until = null
       where endpoint_id = ? and event_id = ? and lease_owner = ?`,
    );
    this.insertAttempt = sqlite.prepare('insert into webhook_attempts (endpoint_id, event_id, attempt, at, status, duration_ms, error) values (?, ?, ?, ?, ?, ?, ?)');
    this.claimHeads = sqlite.prepare(
      `with picked as materialized (
         select d.event_id from webhook_deliveries d
         where d.endpoint_id = @endpointId and d.state = 'pending' and d.next_attempt_at <= @now
           and (d.lease_until is null or d.lease_until <= @now) and ${IS_HEAD}
         order by d.event_id
         limit @limit
       )
       update webhook_deliveries set lease_owner = @owner, lease_until = @until
       from picked
       where webhook_deliveries.endpoint_id = @endpointId and webhook_deliveries.event_id = picked.event_id
       returning ${CLAIMED_COLUMNS}`,
    );
  }

  /** Runs `work` in one `begin immediate` transaction (sqliteImmediate). */
  exclusive<T>(work: () => T): Promise<T> {
    return sqliteImmediate(this.db, this.sqlite, work);
  }

  /** scanOutbox's transaction. */
  scan(endpointId: string, matches: (type: string) => boolean, limit: number, now: number): number {
    const events = this.events.all(Number(this.cursor.get(endpointId)), limit);
    if (events.length === 0) return 0;
    const at = toDbTime(now);
    for (const [id, type, subscriptionId, occurredAt] of events) if (matches(type)) this.insertDelivery.run(endpointId, id, subscriptionId, type, occurredAt, at, at, at);
    this.moveCursor.run(events.at(-1)![0], at, endpointId);
    return events.length;
  }

  /** recordIn for one attempt: 1 when `owner` still held its delivery (and the attempt row was written), else 0. */
  record(endpointId: string, owner: string, { eventId, attempt, outcome: o }: RecordedAttempt): number {
    const at = toDbTime(o.at);
    const next = o.nextAttemptAt === null ? null : toDbTime(o.nextAttemptAt);
    const deliveredAt = o.state === 'delivered' ? at : null;
    const { changes } = this.recordDelivery.run(o.state, attempt, next, at, o.status, o.durationMs, o.error, deliveredAt, at, endpointId, eventId, owner);
    if (changes === 0) return 0;
    this.insertAttempt.run(endpointId, eventId, attempt, at, o.status, o.durationMs, o.error);
    return 1;
  }

  /** claimIn's statement (SQLite's now is always the caller's). */
  claim(endpointId: string, owner: string, claim: DeliveryClaim): ClaimedDelivery[] {
    const rows = this.claimHeads.all({ endpointId, now: toDbTime(claim.now), owner, until: toDbTime(claim.now + claim.leaseMs), limit: claim.limit });
    return rows.map(claimedOf).sort(byEventId);
  }
}

const sqliteRelays = new WeakMap<SQLite.Database, SqliteRelay>();

/** The relay's SQLite statements of a Db opened by openDatabase (prepared on first use); undefined for PostgreSQL. */
function sqliteRelay(db: Db): SqliteRelay | undefined {
  const sqlite = sqliteConnectionOf(db);
  if (!sqlite) return undefined;
  let relay = sqliteRelays.get(sqlite);
  if (!relay) {
    relay = new SqliteRelay(db, sqlite);
    sqliteRelays.set(sqlite, relay);
  }
  return relay;
}

/** Every attempt of one delivery, oldest first. */
export async function listDeliveryAttempts(db: Db, endpointId: string, eventId: number) {
  const rows = await db.selectFrom('webhook_attempts').selectAll().where('endpoint_id', '=', endpointId).where('event_id', '=', eventId).orderBy('id').execute();
  return rows.map((r) => ({ attempt: Number(r.attempt), at: fromDbTime(r.at), status: r.status === null ? null : Number(r.status), durationMs: Number(r.duration_ms), error: r.error }));
}

/** Delivery rows, by endpoint then event, optionally one state (tests, the API). */
export async function listDeliveries(
  db: Conn,
  filter: { state?: DeliveryState; endpointId?: string; eventId?: number; after?: { eventId: number; endpointId: string }; limit?: number } = {},
): Promise<DeliveryRow[]> {
  let q = db.selectFrom('webhook_deliveries').selectAll();
  if (filter.state) q = q.where('state', '=', filter.state);
  if (filter.endpointId) q = q.where('endpoint_id', '=', filter.endpointId);
  if (filter.eventId !== undefined) q = q.where('event_id', '=', filter.eventId);
  const after = filter.after;
  if (after) q = q.where((eb) => eb.or([eb('event_id', '>', after.eventId), eb.and([eb('event_id', '=', after.eventId), eb('endpoint_id', '>', after.endpointId)])]));
  const rows = await q.orderBy('event_id').orderBy('endpoint_id').limit(filter.limit ?? 1000).execute();
  return rows.map(toRow);
}

/** Puts an event's deliveries back to pending, due now (redelivery); returns how many. */
export async function redeliverEvent(db: Conn, eventId: number, now: number, endpointIds?: readonly string[]): Promise<number> {
  let q = db.updateTable('webhook_deliveries').set({ state: 'pending', next_attempt_at: toDbTime(now), updated_at: toDbTime(now) }).where('event_id', '=', eventId);
  if (endpointIds) q = q.where('endpoint_id', 'in', endpointIds.length > 0 ? [...endpointIds] : ['']);
  const result = await q.executeTakeFirst();
  return Number(result.numUpdatedRows);
}

/** Per endpoint: pending deliveries and the oldest pending event's instant (the backlog). */
export async function webhookBacklog(db: Db, endpointIds?: readonly string[]): Promise<Array<{ endpointId: string; pending: number; oldestAt: number | null }>> {
  if (endpointIds?.length === 0) return [];
  let q = db.selectFrom('webhook_deliveries');
  if (endpointIds) q = q.where('endpoint_id', 'in', [...endpointIds]);
  const rows = await q
    .select((eb) => ['endpoint_id', eb.fn.countAll<number>().as('n'), eb.fn.min('event_at').as('oldest')])
    .where('state', '=', 'pending')
    .groupBy('endpoint_id')
    .execute();
  return rows.map((r) => ({ endpointId: r.endpoint_id, pending: Number(r.n), oldestAt: ms((r.oldest as string | null) ?? null) }));
}

/** Delivery rows by state, over every endpoint the database has seen. */
export async function countDeliveriesByState(db: Db): Promise<Record<DeliveryState, number>> {
  const rows = await db.selectFrom('webhook_deliveries').select((eb) => ['state', eb.fn.countAll<number>().as('n')]).groupBy('state').execute();
  const counts: Record<DeliveryState, number> = { pending: 0, delivered: 0, failed: 0 };
  for (const r of rows) counts[r.state as DeliveryState] = Number(r.n);
  return counts;
}
