/**
 * Read queries of the admin surface (the service layer behind `rebill status`,
 * `rebill subscriptions` and the future `/v1` API): filtered lists in a stable
 * keyset order, the customers they reference, failure counts and the schema
 * version. Nothing here writes.
 */
import { sql, type Selectable } from 'kysely';
import { migrations } from '../../migrations/index.js';
import type { Subscription } from '../domain/index.js';
import { fromDbTime, sqliteRowsByKeys, tableExists, toDbTime, type Db } from './db.js';
import { rowToSubscription, SUBSCRIPTION_COLUMNS, subscriptionRowOf } from './repository.js';
import type { AttemptTable, CustomerTable, Database } from './schema.js';
import type { Kysely, Transaction } from 'kysely';

type Conn = Kysely<Database> | Transaction<Database>;


/**
 * A keyset position: the (created_at, id) of the last row of a page. Rows are
 * listed in ascending (created_at, id) order, which never changes for a row,
 * so a page boundary is neither skipped nor repeated by later inserts.
 */
export interface Keyset {
  readonly createdAt: number;
  readonly id: string;
}

/** Filters of a subscription list (all optional; combined with AND). */
export interface SubscriptionRowFilter {
  readonly status?: Subscription['status'];
  readonly planId?: string;
  readonly source?: string;
  readonly externalId?: string;
  /** The customer's email, exact. */
  readonly email?: string;
}

/** Up to `limit` subscriptions after `after` in (created_at, id) order. */
export async function listSubscriptionRows(db: Conn, filter: SubscriptionRowFilter, limit: number, after?: Keyset): Promise<Subscription[]> {
  let q = db.selectFrom('subscriptions').selectAll('subscriptions');
  if (filter.status !== undefined) q = q.where('subscriptions.status', '=', filter.status);
  if (filter.planId !== undefined) q = q.where('subscriptions.plan_id', '=', filter.planId);
  if (filter.source !== undefined) q = q.where('subscriptions.source', '=', filter.source);
  if (filter.externalId !== undefined) q = q.where('subscriptions.external_id', '=', filter.externalId);
  if (filter.email !== undefined) {
    const email = filter.email;
    q = q.where('subscriptions.customer_id', 'in', (eb) => eb.selectFrom('customers').select('customers.id').where('customers.email', '=', email));
  }
  if (after) {
    const at = toDbTime(after.createdAt);
    q = q.where((eb) => eb.or([eb('subscriptions.created_at', '>', at), eb.and([eb('subscriptions.created_at', '=', at), eb('subscriptions.id', '>', after.id)])]));
  }
  const rows = await q.orderBy('subscriptions.created_at').orderBy('subscriptions.id').limit(limit).execute();
  return rows.map(rowToSubscription);
}

/** A stored attempt with every column the charge object shows. */
export interface AttemptRecord {
  readonly key: string;
  readonly subscriptionId: string;
  readonly cycle: number;
  readonly attempt: number;
  readonly gateway: string;
  readonly mode: 'charge' | 'link';
  readonly state: string;
  readonly amountMinor: number;
  readonly currency: string;
  readonly declineCode: string | null;
  readonly hardDecline: boolean | null;
  readonly externalId: string | null;
  readonly linkUrl: string | null;
  readonly createdAt: number;
  readonly updatedAt: number;
}

/** The columns of an attempt that its record shows. */
const ATTEMPT_RECORD_COLUMNS = [
  'idempotency_key',
  'subscription_id',
  'cycle',
  'attempt',
  'gateway',
  'mode',
  'state',
  'amount_minor',
  'currency',
  'decline_code',
  'hard_decline',
  'external_id',
  'link_url',
  'created_at',
  'updated_at',
] as const satisfies ReadonlyArray<keyof Selectable<AttemptTable>>;

/** An attempt read as an array in ATTEMPT_RECORD_COLUMNS order (see sqliteRowsByKeys). */
function attemptRowOf(v: unknown[]): Pick<Selectable<AttemptTable>, (typeof ATTEMPT_RECORD_COLUMNS)[number]> {
  return {
    idempotency_key: v[0] as string,
    subscription_id: v[1] as string,
    cycle: v[2] as number,
    attempt: v[3] as number,
    gateway: v[4] as string,
    mode: v[5] as string,
    state: v[6] as string,
    amount_minor: v[7] as number,
    currency: v[8] as string,
    decline_code: v[9] as string | null,
    hard_decline: v[10] as number | null,
    external_id: v[11] as string | null,
    link_url: v[12] as string | null,
    created_at: v[13] as string,
    updated_at: v[14] as string,
  };
}

function rowToRecord(row: Pick<Selectable<AttemptTable>, (typeof ATTEMPT_RECORD_COLUMNS)[number]>): AttemptRecord {
  return {
    key: row.idempotency_key,
    subscriptionId: row.subscription_id,
    cycle: Number(row.cycle),
    attempt: Number(row.attempt),
    gateway: row.gateway,
    mode: row.mode as AttemptRecord['mode'],
    state: row.state,
    amountMinor: Number(row.amount_minor),
    currency: row.currency,
    declineCode: row.decline_code,
    hardDecline: row.hard_decline === null ? null : Number(row.hard_decline) === 1,
    externalId: row.external_id,
    linkUrl: row.link_url,
    createdAt: fromDbTime(row.created_at),
    updatedAt: fromDbTime(row.updated_at),
  };
}

/** Filters of an attempt list. */
export interface AttemptRowFilter {
  readonly subscriptionId?: string;
  readonly state?: string;
  /** Attempts created at or after this instant. */
  readonly since?: number;
}

/** Up to `limit` attempts after `after` in (created_at, idempotency key) order. */
export async function listAttemptRows(db: Conn, filter: AttemptRowFilter, limit: number, after?: Keyset): Promise<AttemptRecord[]> {
  let q = db.selectFrom('attempts').selectAll();
  if (filter.subscriptionId !== undefined) q = q.where('subscription_id', '=', filter.subscriptionId);
  if (filter.state !== undefined) q = q.where('state', '=', filter.state);
  if (filter.since !== undefined) q = q.where('created_at', '>=', toDbTime(filter.since));
  if (after) {
    const at = toDbTime(after.createdAt);
    q = q.where((eb) => eb.or([eb('created_at', '>', at), eb.and([eb('created_at', '=', at), eb('idempotency_key', '>', after.id)])]));
  }
  const rows = await q.orderBy('created_at').orderBy('idempotency_key').limit(limit).execute();
  return rows.map(rowToRecord);
}

/** The subscriptions with these ids (unknown ids are absent). */
export async function subscriptionsByIds(db: Conn, ids: readonly string[]): Promise<Subscription[]> {
  const unique = [...new Set(ids)];
  const byKeys = sqliteRowsByKeys(db, 'subscriptions', SUBSCRIPTION_COLUMNS, 'id', unique, subscriptionRowOf);
  if (byKeys) return (await byKeys).map(rowToSubscription);
  const out: Subscription[] = [];
  for (let i = 0; i < unique.length; i += 500) {
    const rows = await db.selectFrom('subscriptions').selectAll().where('id', 'in', unique.slice(i, i + 500)).execute();
    out.push(...rows.map(rowToSubscription));
  }
  return out;
}

/** The attempts with these idempotency keys, by key. */
export async function attemptsByKeys(db: Conn, keys: readonly string[]): Promise<Map<string, AttemptRecord>> {
  const out = new Map<string, AttemptRecord>();
  const unique = [...new Set(keys)];
  const byKeys = sqliteRowsByKeys(db, 'attempts', ATTEMPT_RECORD_COLUMNS, 'idempotency_key', unique, attemptRowOf);
  if (byKeys) {
    for (const row of await byKeys) out.set(row.idempotency_key, rowToRecord(row));
    return out;
  }
  for (let i = 0; i < unique.length; i += 500) {
    const rows = await db.selectFrom('attempts').select(ATTEMPT_RECORD_COLUMNS).where('idempotency_key', 'in', unique.slice(i, i + 500)).execute();
    for (const row of rows) out.set(row.idempotency_key, rowToRecord(row));
  }
  return out;
}

/** Due instants of a subscription's cycle rows, by cycle number (an attempt's `dueAt`). */
export async function cycleDueDates(db: Conn, subscriptionIds: readonly string[]): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  const ids = [...new Set(subscriptionIds)];
  const byKeys = sqliteRowsByKeys(db, 'cycles', ['subscription_id', 'cycle', 'due_at'], 'subscription_id', ids, (v) => ({ subscription_id: v[0] as string, cycle: v[1] as number, due_at: v[2] as string }));
  if (byKeys) {
    for (const r of await byKeys) out.set(`${r.subscription_id}:${Number(r.cycle)}`, fromDbTime(r.due_at));
    return out;
  }
  for (let i = 0; i < ids.length; i += 500) {
    const rows = await db.selectFrom('cycles').select(['subscription_id', 'cycle', 'due_at']).where('subscription_id', 'in', ids.slice(i, i + 500)).execute();
    for (const r of rows) out.set(`${r.subscription_id}:${Number(r.cycle)}`, fromDbTime(r.due_at));
  }
  return out;
}

/** The customers with these ids, by id. */
export async function customersById(db: Conn, ids: readonly string[]): Promise<Map<string, Selectable<CustomerTable>>> {
  const out = new Map<string, Selectable<CustomerTable>>();
  const unique = [...new Set(ids)];
  const byKeys = sqliteRowsByKeys(db, 'customers', ['id', 'email', 'phone', 'first_name', 'last_name', 'created_at'], 'id', unique, (v) => ({
    id: v[0] as string,
    email: v[1] as string | null,
    phone: v[2] as string | null,
    first_name: v[3] as string | null,
    last_name: v[4] as string | null,
    created_at: v[5] as string,
  }));
  if (byKeys) {
    for (const r of await byKeys) out.set(r.id, r);
    return out;
  }
  for (let i = 0; i < unique.length; i += 500) {
    const rows = await db.selectFrom('customers').selectAll().where('id', 'in', unique.slice(i, i + 500)).execute();
    for (const r of rows) out.set(r.id, r);
  }
  return out;
}

/** Rejected attempts (declines) whose outcome was recorded at or after `since`. */
export async function rejectedAttemptsSince(db: Conn, since: number): Promise<{ count: number; hard: number }> {
  const row = await db
    .selectFrom('attempts')
    .select((eb) => [eb.fn.countAll<number>().as('n'), eb.fn.sum<number>(sql<number>`case when hard_decline = 1 then 1 else 0 end`).as('hard')])
    .where('state', '=', 'rejected')
    .where('updated_at', '>=', toDbTime(since))
    .executeTakeFirst();
  return { count: Number(row?.n ?? 0), hard: Number(row?.hard ?? 0) };
}

/** Attempts by state (only the states present). */
export async function countAttemptsByState(db: Conn): Promise<Record<string, number>> {
  const rows = await db.selectFrom('attempts').select(['state', (eb) => eb.fn.countAll<number>().as('n')]).groupBy('state').execute();
  return Object.fromEntries(rows.map((r) => [r.state, Number(r.n)]));
}

/** How many events the outbox holds. */
export async function countEvents(db: Conn): Promise<number> {
  const row = await db.selectFrom('events').select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirst();
  return Number(row?.n ?? 0);
}

/**
 * The migrations this build knows that the database has not applied (all of
 * them for a database that was never migrated). A reader that must not
 * migrate (the operator CLI beside a daemon) refuses an old schema with this.
 */
export async function pendingMigrations(db: Db): Promise<string[]> {
  const known = Object.keys(migrations);
  if (!(await tableExists(db, 'kysely_migration'))) return known;
  const applied = await sql<{ name: string }>`select name from kysely_migration`.execute(db);
  const done = new Set(applied.rows.map((r) => r.name));
  return known.filter((name) => !done.has(name));
}
