/**
 * SQL of webhook delivery (SPEC section 8, migration 0004): per endpoint, a
 * cursor into the outbox and one delivery row per subscribed event; every
 * attempt is recorded. The relay (src/webhooks) decides what to send when.
 */
import { sql, type Selectable } from 'kysely';
import { fromDbTime, toDbTime, type Db } from './db.js';
import type { Conn } from './repository.js';
import type { WebhookDeliveryTable } from './schema.js';

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
 */
export async function scanOutbox(db: Db, endpointId: string, matches: (type: string) => boolean, limit: number, now: number): Promise<number> {
  return db.transaction().execute(async (trx) => {
    const endpoint = await trx.selectFrom('webhook_endpoints').select('cursor').where('id', '=', endpointId).executeTakeFirstOrThrow();
    const events = await trx
      .selectFrom('events')
      .select(['id', 'type', 'subscription_id', 'occurred_at'])
      .where('id', '>', Number(endpoint.cursor))
      .orderBy('id')
      .limit(limit)
      .execute();
    if (events.length === 0) return 0;
    const at = toDbTime(now);
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
 * The heads of an endpoint's pending streams: per subscription, its earliest
 * pending delivery (a later event waits for it), the ones due by `now`, in
 * event order. Events without a subscription are each their own stream.
 * `exclude`: deliveries in flight.
 */
export async function dueDeliveries(db: Db, endpointId: string, now: number, limit: number): Promise<DeliveryRow[]> {
  const rows = await sql<Parameters<typeof toRow>[0]>`
    select d.* from webhook_deliveries d
    where d.endpoint_id = ${endpointId} and d.state = 'pending' and d.next_attempt_at <= ${toDbTime(now)}
      and not exists (
        select 1 from webhook_deliveries e
        where e.endpoint_id = d.endpoint_id and e.state = 'pending' and e.subscription_id = d.subscription_id and e.event_id < d.event_id
      )
    order by d.event_id
    limit ${limit}`.execute(db);
  return rows.rows.map(toRow);
}

/** The earliest next attempt among an endpoint's pending stream heads, or null. */
export async function nextDeliveryAt(db: Db, endpointId: string): Promise<number | null> {
  const row = await sql<{ at: string | null }>`
    select min(d.next_attempt_at) as at from webhook_deliveries d
    where d.endpoint_id = ${endpointId} and d.state = 'pending'
      and not exists (
        select 1 from webhook_deliveries e
        where e.endpoint_id = d.endpoint_id and e.state = 'pending' and e.subscription_id = d.subscription_id and e.event_id < d.event_id
      )`.execute(db);
  return ms(row.rows[0]?.at ?? null);
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
  readonly endpointId: string;
  readonly eventId: number;
  readonly attempt: number;
  readonly outcome: AttemptOutcome;
}

/** Records attempts and their deliveries' new states, all in one transaction (one commit for a batch). */
export async function recordDeliveryAttempts(db: Db, attempts: readonly RecordedAttempt[]): Promise<void> {
  if (attempts.length === 0) return;
  await db.transaction().execute(async (trx) => {
    for (let i = 0; i < attempts.length; i += 100) {
      await trx
        .insertInto('webhook_attempts')
        .values(
          attempts.slice(i, i + 100).map((a) => ({
            endpoint_id: a.endpointId,
            event_id: a.eventId,
            attempt: a.attempt,
            at: toDbTime(a.outcome.at),
            status: a.outcome.status,
            duration_ms: a.outcome.durationMs,
            error: a.outcome.error,
          })),
        )
        .execute();
    }
    for (const { endpointId, eventId, attempt, outcome } of attempts) {
      const at = toDbTime(outcome.at);
      await trx
        .updateTable('webhook_deliveries')
        .set({
          state: outcome.state,
          attempts: attempt,
          next_attempt_at: outcome.nextAttemptAt === null ? null : toDbTime(outcome.nextAttemptAt),
          last_attempt_at: at,
          last_status: outcome.status,
          last_duration_ms: outcome.durationMs,
          last_error: outcome.error,
          delivered_at: outcome.state === 'delivered' ? at : null,
          updated_at: at,
        })
        .where('endpoint_id', '=', endpointId)
        .where('event_id', '=', eventId)
        .execute();
    }
  });
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
