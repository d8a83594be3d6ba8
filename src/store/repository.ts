/**
 * Repositories on kysely: everything but the engine's hot path (claim,
 * intent, outcome, release: hot-path.ts and sqlite-hot-path.ts). Every state
 * change is written with its events in one transaction (transactional
 * outbox) and bumps the row's version, so an engine outcome computed before
 * an API pause or cancel finds the row moved and settles against it instead
 * of overwriting it.
 */
import { newId } from './ids.js';
import { sql, type Transaction, type Selectable } from 'kysely';
import {
  workAt,
  type CycleWrite,
  type DomainEvent,
  type NewSubscription,
  type Subscription,
  type Transition,
  type AttemptInfo,
  type AttemptState,
  type AttemptUpdate,
  type CustomerInput,
} from '../domain/index.js';
import { createSubscription as createTransition } from '../domain/index.js';
import { RebillError } from '../errors.js';
import { dialectOf, forWrite, fromDbTime, jsonField, sqliteRowsByKeys, Statement, tableExists, toDbTime, type Db } from './db.js';
import { queueLinkEmails } from './link-emails.js';
import type { AttemptTable, Database, SubscriptionTable } from './schema.js';

export type Trx = Transaction<Database>;
export type Conn = Db | Trx;

const t = (ms: number | null): string | null => (ms === null ? null : toDbTime(ms));
const ms = (text: string | null): number | null => (text === null ? null : fromDbTime(text));

/** `version = version + 1`: every write of a subscription's state (migration 0006). */
const bumped = sql<number>`version + 1`;

/**
 * Parsed schedule snapshots by their stored text. Rows of one plan share one
 * frozen object, so the calendar's per-schedule memo (scheduleOf, dueAt) is
 * hit by object identity instead of resolving the same shape again per row.
 */
const schedules = new Map<string, Subscription['schedule']>();

function parseSchedule(text: string): Subscription['schedule'] {
  let schedule = schedules.get(text);
  if (!schedule) {
    const parsed = JSON.parse(text) as Subscription['schedule'];
    for (const value of Object.values(parsed)) if (value && typeof value === 'object') Object.freeze(value);
    schedule = Object.freeze(parsed);
    if (schedules.size >= 10_000) schedules.clear();
    schedules.set(text, schedule);
  }
  return schedule;
}

/** The metadata of most rows; frozen, as changes always build a new object (updateDetails). */
const NO_METADATA: Readonly<Record<string, string>> = Object.freeze({});

/** Every column of a subscription row, in the order subscriptionRowOf reads them. */
export const SUBSCRIPTION_COLUMNS = [
  'id',
  'external_id',
  'source',
  'plan_id',
  'plan_version',
  'customer_id',
  'payment_token',
  'description',
  'amount_minor',
  'currency',
  'mode',
  'gateway',
  'schedule',
  'status',
  'termination_type',
  'completed_cycles',
  'last_paid_cycle',
  'next_action',
  'next_cycle',
  'next_attempt',
  'action_at',
  'pause_at',
  'resume_at',
  'paused_at',
  'ended_at',
  'work_at',
  'lease_owner',
  'lease_until',
  'latest_payment_external_id',
  'metadata',
  'created_at',
  'updated_at',
  'version',
  'email_links',
] as const satisfies ReadonlyArray<keyof Selectable<SubscriptionTable>>;

/**
 * A row read as an array in SUBSCRIPTION_COLUMNS order, as the object kysely
 * would have returned: one literal (better-sqlite3 builds a row object key by
 * key, at twice the cost of the array).
 */
export function subscriptionRowOf(v: unknown[]): Selectable<SubscriptionTable> {
  return {
    id: v[0] as string,
    external_id: v[1] as string | null,
    source: v[2] as string | null,
    plan_id: v[3] as string | null,
    plan_version: v[4] as string | null,
    customer_id: v[5] as string | null,
    payment_token: v[6] as string | null,
    description: v[7] as string | null,
    amount_minor: v[8] as number,
    currency: v[9] as string,
    mode: v[10] as string,
    gateway: v[11] as string,
    schedule: v[12] as string,
    status: v[13] as string,
    termination_type: v[14] as string | null,
    completed_cycles: v[15] as number,
    last_paid_cycle: v[16] as number,
    next_action: v[17] as string,
    next_cycle: v[18] as number,
    next_attempt: v[19] as number,
    action_at: v[20] as string | null,
    pause_at: v[21] as string | null,
    resume_at: v[22] as string | null,
    paused_at: v[23] as string | null,
    ended_at: v[24] as string | null,
    work_at: v[25] as string | null,
    lease_owner: v[26] as string | null,
    lease_until: v[27] as string | null,
    latest_payment_external_id: v[28] as string | null,
    metadata: v[29] as string | null,
    created_at: v[30] as string,
    updated_at: v[31] as string,
    version: v[32] as number,
    email_links: v[33] as number,
  };
}

/** Maps a stored row to the domain type. */
export function rowToSubscription(row: Selectable<SubscriptionTable>): Subscription {
  return {
    id: row.id,
    externalId: row.external_id,
    source: row.source,
    planId: row.plan_id,
    planVersion: row.plan_version,
    customerId: row.customer_id,
    paymentToken: row.payment_token,
    description: row.description,
    amount: { amountMinor: Number(row.amount_minor), currency: row.currency },
    mode: row.mode as Subscription['mode'],
    gateway: row.gateway,
    schedule: parseSchedule(row.schedule),
    status: row.status as Subscription['status'],
    terminationType: row.termination_type as Subscription['terminationType'],
    completedCycles: Number(row.completed_cycles),
    lastPaidCycle: Number(row.last_paid_cycle),
    nextAction: row.next_action as Subscription['nextAction'],
    nextCycle: Number(row.next_cycle),
    nextAttempt: Number(row.next_attempt),
    actionAt: ms(row.action_at),
    pauseAt: ms(row.pause_at),
    resumeAt: ms(row.resume_at),
    pausedAt: ms(row.paused_at),
    endedAt: ms(row.ended_at),
    latestPaymentExternalId: row.latest_payment_external_id,
    metadata: row.metadata && row.metadata !== '{}' ? (JSON.parse(row.metadata) as Record<string, string>) : NO_METADATA,
    createdAt: fromDbTime(row.created_at),
    updatedAt: fromDbTime(row.updated_at),
  };
}

/** The mutable columns of a subscription row (everything a transition can change). */
function stateColumns(sub: Subscription) {
  return {
    status: sub.status,
    termination_type: sub.terminationType,
    completed_cycles: sub.completedCycles,
    last_paid_cycle: sub.lastPaidCycle,
    next_action: sub.nextAction,
    next_cycle: sub.nextCycle,
    next_attempt: sub.nextAttempt,
    action_at: t(sub.actionAt),
    pause_at: t(sub.pauseAt),
    resume_at: t(sub.resumeAt),
    paused_at: t(sub.pausedAt),
    ended_at: t(sub.endedAt),
    work_at: t(workAt(sub)),
    latest_payment_external_id: sub.latestPaymentExternalId,
    payment_token: sub.paymentToken,
    metadata: JSON.stringify(sub.metadata),
    updated_at: toDbTime(sub.updatedAt),
  };
}

export class NotFoundError extends RebillError {}

/** Upserts cycle history rows; a paid cycle never goes back to any other status. */
async function writeCycles(trx: Trx, sub: Subscription, cycles: readonly CycleWrite[], now: number): Promise<void> {
  for (const c of cycles) {
    const values = {
      subscription_id: sub.id,
      cycle: c.cycle,
      due_at: toDbTime(c.dueAt),
      status: c.status,
      amount_minor: sub.amount.amountMinor,
      currency: sub.amount.currency,
      attempts: c.attempts ?? 0,
      settled_at: t(c.settledAt ?? null),
      created_at: toDbTime(now),
    };
    await trx
      .insertInto('cycles')
      .values(values)
      .onConflict((oc) =>
        oc
          .columns(['subscription_id', 'cycle'])
          // A write without an attempt count (a cycle marked skipped) keeps the attempts already made.
          .doUpdateSet({ status: values.status, ...(c.attempts !== undefined ? { attempts: values.attempts } : {}), settled_at: values.settled_at })
          .where('cycles.status', '<>', 'paid'),
      )
      .execute();
  }
}

/**
 * A plain multi-row insert of rows that all have the keys of the first, without
 * kysely's per-value parsing and compiling (a third of seeding 100k
 * subscriptions went there). The SQL text depends only on the table, the
 * columns and the row count: it is built once and kept (the same string each
 * time, so the statement cache finds its prepared statement without hashing
 * a new text).
 */
async function insertRows(trx: Trx, table: keyof Database, rows: ReadonlyArray<Record<string, unknown>>, perStatement: number): Promise<void> {
  if (rows.length === 0) return;
  const columns = Object.keys(rows[0]!);
  for (let i = 0; i < rows.length; i += perStatement) {
    const chunk = rows.slice(i, i + perStatement);
    const params: unknown[] = [];
    for (const row of chunk) for (const column of columns) params.push(row[column] ?? null);
    await insertStatement(table, columns, chunk.length).run(trx, params);
  }
}

const insertStatements = new Map<string, Statement>();

function insertStatement(table: string, columns: readonly string[], count: number): Statement {
  const key = `${count} ${table} ${columns.join(' ')}`;
  let statement = insertStatements.get(key);
  if (statement === undefined) {
    const tuple = `(${columns.map(() => '?').join(', ')})`;
    statement = new Statement(`insert into "${table}" (${columns.map((c) => `"${c}"`).join(', ')}) values ${new Array<string>(count).fill(tuple).join(', ')}`);
    if (insertStatements.size >= 1_000) insertStatements.clear();
    insertStatements.set(key, statement);
  }
  return statement;
}

/** The outbox row of an event. */
function eventRow(e: DomainEvent) {
  return {
    type: e.type,
    subscription_id: e.subscriptionId,
    cycle: e.cycle ?? null,
    attempt: e.attempt ?? null,
    occurred_at: toDbTime(e.at),
    payload: JSON.stringify(e.data),
  };
}

/** Any number that identifies rebill's outbox lock among the database's advisory locks. */
const OUTBOX_LOCK = 0x7265_6269; // "rebi"

/**
 * Takes the outbox lock for the rest of the transaction (PostgreSQL; SQLite
 * already runs one writer at a time); a second take in the same transaction
 * is free. Event ids must increase in the order
 * events are committed, or a relay that read past id 101 would never see an
 * id 100 committed after it (SPEC section 8); a sequence alone gives no such
 * order when transactions overlap. Every transaction that inserts events
 * takes this lock right before, so ids are handed out and committed one
 * transaction at a time.
 */
export async function lockOutbox(trx: Trx): Promise<void> {
  if (dialectOf(trx) === 'postgres') await sql`select pg_advisory_xact_lock(${OUTBOX_LOCK})`.execute(trx);
}

async function writeEvents(trx: Trx, events: readonly DomainEvent[]): Promise<void> {
  if (events.length === 0) return;
  await lockOutbox(trx);
  await insertRows(trx, 'events', events.map(eventRow), events.length);
}

/**
 * Writes a transition: the subscription's new state, its cycle rows and its
 * events, inside the caller's transaction. `lease` decides what happens to
 * the row's lease: `release` (the engine is done with it), `keep` (an attempt
 * is in flight) or `ignore` (an API call: the lease belongs to whoever holds it).
 */
export async function writeTransition(trx: Trx, transition: Transition, now: number, lease: 'release' | 'keep' | 'ignore'): Promise<void> {
  await writeTransitions(trx, [transition], now, lease);
}

/**
 * writeTransition for a batch: one row update and its cycles each, then one
 * insert for all the events. A `payment_link.sent` event of a subscription
 * that e-mails its links also queues that e-mail here, in the same
 * transaction: every path that records a link (an outcome, a callback) comes
 * through this function, and a crash can never keep the link but lose its e-mail.
 */
export async function writeTransitions(trx: Trx, transitions: readonly Transition[], now: number, lease: 'release' | 'keep' | 'ignore'): Promise<void> {
  const leaseColumns = lease === 'release' ? { lease_owner: null, lease_until: null } : {};
  for (const transition of transitions) {
    const sub = transition.subscription;
    // Every state write bumps the version: an engine outcome computed from the row as it was then
    // (its conditional write names that version) finds it moved and settles against this one.
    await trx.updateTable('subscriptions').set({ ...stateColumns(sub), ...leaseColumns, version: bumped }).where('id', '=', sub.id).execute();
    await writeCycles(trx, sub, transition.cycles, now);
  }
  const events = transitions.flatMap((t) => t.events);
  for (let i = 0; i < events.length; i += 100) await writeEvents(trx, events.slice(i, i + 100));
  await queueLinkEmails(trx, events, now);
}

type CustomerRow = Selectable<Database['customers']>;

/** The row of a new customer (resolveCustomer and the batch's resolver alike). */
function customerRow(id: string, customer: CustomerInput, createdAt: string): CustomerRow {
  return { id, email: customer.email ?? null, phone: customer.phone ?? null, first_name: customer.firstName ?? null, last_name: customer.lastName ?? null, created_at: createdAt };
}

const CUSTOMER_BY = {
  id: new Statement('select * from "customers" where "id" = ?'),
  email: new Statement('select * from "customers" where "email" = ? order by "created_at" limit 1'),
  phone: new Statement('select * from "customers" where "phone" = ? order by "created_at" limit 1'),
};

/**
 * Finds a customer by id, then email, then phone; creates one otherwise
 * (SPEC section 5). Returns its row, or null for no customer.
 */
async function resolveCustomer(trx: Trx, customer: CustomerInput | null | undefined, now: number): Promise<CustomerRow | null> {
  if (!customer) return null;
  for (const [column, value] of [['id', customer.id], ['email', customer.email], ['phone', customer.phone]] as const) {
    if (!value) continue;
    const found = await CUSTOMER_BY[column].first<CustomerRow>(trx, [value]);
    if (found) return found;
  }
  if (!customer.id && !customer.email && !customer.phone && !customer.firstName && !customer.lastName) return null;
  const row = customerRow(customer.id ?? newId('cus_', now), customer, toDbTime(now));
  await insertRows(trx, 'customers', [row], 1);
  return row;
}

/**
 * resolveCustomer for a batch: the customers the batch may match are read
 * with one query per 500 ids / emails / phones, and the new ones are inserted
 * together (`insertNew`, before the subscriptions that reference them). The
 * rules are resolveCustomer's: by id, then email, then phone (oldest first),
 * else a new customer; a customer created earlier in the batch is found too.
 */
async function customerResolver(
  trx: Trx,
  inputs: ReadonlyArray<CustomerInput | null | undefined>,
  now: number,
): Promise<{ resolve(customer: CustomerInput | null | undefined): string | null; insertNew(): Promise<void> }> {
  const wanted = { id: new Set<string>(), email: new Set<string>(), phone: new Set<string>() };
  for (const c of inputs) {
    if (c?.id) wanted.id.add(c.id);
    if (c?.email) wanted.email.add(c.email);
    if (c?.phone) wanted.phone.add(c.phone);
  }
  const found = { id: new Map<string, string>(), email: new Map<string, string>(), phone: new Map<string, string>() };
  for (const column of ['id', 'email', 'phone'] as const) {
    const values = [...wanted[column]];
    for (let i = 0; i < values.length; i += 500) {
      const rows = await trx.selectFrom('customers').select(['id', column]).where(column, 'in', values.slice(i, i + 500)).orderBy('created_at').execute();
      for (const row of rows) {
        const key = (row as Record<string, string | null>)[column]!;
        if (!found[column].has(key)) found[column].set(key, row.id);
      }
    }
  }
  const created: CustomerRow[] = [];
  const createdAt = toDbTime(now);
  return {
    resolve(customer) {
      if (!customer) return null;
      const hit =
        (customer.id ? found.id.get(customer.id) : undefined) ??
        (customer.email ? found.email.get(customer.email) : undefined) ??
        (customer.phone ? found.phone.get(customer.phone) : undefined);
      if (hit) return hit;
      if (!customer.id && !customer.email && !customer.phone && !customer.firstName && !customer.lastName) return null;
      const id = customer.id ?? newId('cus_', now);
      created.push(customerRow(id, customer, createdAt));
      found.id.set(id, id);
      if (customer.email && !found.email.has(customer.email)) found.email.set(customer.email, id);
      if (customer.phone && !found.phone.has(customer.phone)) found.phone.set(customer.phone, id);
      return id;
    },
    async insertNew() {
      await insertRows(trx, 'customers', created, 500);
    },
  };
}

export interface CreateResult {
  readonly subscription: Subscription;
  /** false when an existing subscription was returned (same id, or same live source+externalId). */
  readonly created: boolean;
  /** The subscription's customer row when this create found or inserted it (null: none); absent when not read here. */
  readonly customer?: CustomerRow | null;
}

/**
 * Creates a subscription, idempotently: the same id, or the same
 * (source, externalId) as a subscription that is not terminated, returns the
 * existing row instead of a duplicate.
 */
export async function createSubscription(db: Db, input: NewInput, now: number): Promise<CreateResult> {
  return db.transaction().execute((trx) => createSubscriptionIn(trx, input, now));
}

const SUBSCRIPTION_BY_ID = new Statement('select * from "subscriptions" where "id" = ?');
const LIVE_BY_EXTERNAL_ID = {
  withSource: new Statement('select * from "subscriptions" where "external_id" = ? and "source" = ? and "status" <> \'terminated\' limit 1'),
  noSource: new Statement('select * from "subscriptions" where "external_id" = ? and "source" is null and "status" <> \'terminated\' limit 1'),
};

/**
 * createSubscription inside the caller's transaction (the API stores its
 * idempotent response in the same one). Its statements are of fixed text
 * (Statement, insertRows): kysely building them cost more CPU per API create
 * than SQLite running them. `options.newId`: the input's id was made up for
 * it (newId), not given by the caller, so it is not looked up.
 */
export async function createSubscriptionIn(trx: Trx, input: NewInput, now: number, options: { readonly newId?: boolean } = {}): Promise<CreateResult> {
  // PostgreSQL: creations run one at a time from here on, so two requests with the same id or
  // externalId cannot both find nothing and both insert (the second would fail on the unique index).
  await lockOutbox(trx);
  // `newId`: the id was just made (newId), so no row has it; were one to, the insert fails on the primary key.
  const byId = options.newId ? undefined : await SUBSCRIPTION_BY_ID.first<Selectable<SubscriptionTable>>(trx, [input.id]);
  if (byId) return { subscription: rowToSubscription(byId), created: false };
  if (input.externalId) {
    const byExternal = input.source
      ? await LIVE_BY_EXTERNAL_ID.withSource.first<Selectable<SubscriptionTable>>(trx, [input.externalId, input.source])
      : await LIVE_BY_EXTERNAL_ID.noSource.first<Selectable<SubscriptionTable>>(trx, [input.externalId]);
    if (byExternal) return { subscription: rowToSubscription(byExternal), created: false };
  }
  const customer = input.customerId == null ? await resolveCustomer(trx, input.customer, now) : undefined;
  const customerId = input.customerId ?? customer?.id ?? null;
  const { customer: _customer, emailLinks = false, ...rest } = input;
  const transition = createTransition({ ...rest, customerId }, now);
  const sub = transition.subscription;
  await insertRows(trx, 'subscriptions', [subscriptionRow(sub, emailLinks)], 1);
  await writeCycles(trx, sub, transition.cycles, now);
  await writeEvents(trx, transition.events);
  return { subscription: sub, created: true, ...(customer === undefined ? {} : { customer }) };
}

/** The full row of a new subscription; `emailLinks`: its payment links are e-mailed (migration 0005). */
function subscriptionRow(sub: Subscription, emailLinks: boolean) {
  return {
    id: sub.id,
    external_id: sub.externalId,
    source: sub.source,
    plan_id: sub.planId,
    plan_version: sub.planVersion,
    customer_id: sub.customerId,
    description: sub.description,
    amount_minor: sub.amount.amountMinor,
    currency: sub.amount.currency,
    mode: sub.mode,
    gateway: sub.gateway,
    schedule: JSON.stringify(sub.schedule),
    lease_owner: null,
    lease_until: null,
    created_at: toDbTime(sub.createdAt),
    ...stateColumns(sub),
    email_links: emailLinks ? 1 : 0,
  };
}

/** What a batched create did with one input. */
export interface BatchCreateOutcome {
  readonly id: string;
  readonly created: boolean;
  /** For an input that already existed: what is stored (the input's values were not applied). */
  readonly stored?: { readonly paymentToken: string | null; readonly amountMinor: number; readonly currency: string };
}

type NewInput = Omit<NewSubscription, 'customerId'> & {
  customerId?: string | null;
  customer?: CustomerInput | null;
  /** Its payment links are e-mailed (the plan's emailLinks, or the inline schedule's); default false. */
  emailLinks?: boolean;
};

/**
 * createSubscription for many inputs in ONE transaction (config seeds at
 * start): the existing rows are read with one query per 500 ids, and the new
 * rows, cycles and events go in multi-row inserts. Same idempotency as
 * createSubscription: an existing id, or a live (source, externalId), is left
 * as it is. One transaction per seed cost an fsync each (50 s for 100k seeds).
 */
export async function createSubscriptionsBatch(db: Db, inputs: Iterable<NewInput>, now: number): Promise<BatchCreateOutcome[]> {
  return db.transaction().execute(async (trx) => {
    // As in createSubscriptionIn: daemons seeding the same config at once create each seed once.
    await lockOutbox(trx);
    const known: KnownInBatch = { byId: new Map(), byExternal: new Map() };
    const outcomes: BatchCreateOutcome[] = [];
    // Taken from `inputs` a chunk at a time: a caller can build them as they are needed (upsertSeeds).
    let chunk: NewInput[] = [];
    for (const input of inputs) {
      chunk.push(input);
      if (chunk.length < CREATE_CHUNK) continue;
      outcomes.push(...(await createChunk(trx, chunk, now, known)));
      chunk = [];
    }
    if (chunk.length > 0) outcomes.push(...(await createChunk(trx, chunk, now, known)));
    return outcomes;
  });
}

type Stored = NonNullable<BatchCreateOutcome['stored']>;

/** What a batch found stored or created so far: a later input with the same id or live externalId finds it. */
interface KnownInBatch {
  readonly byId: Map<string, Stored>;
  readonly byExternal: Map<string, Stored>;
}

/**
 * Inputs that createSubscriptionsBatch turns into rows at a time, inside its one transaction. A
 * subscription's objects (transition, rows, statement parameters) then live for a fifth of a seed
 * batch: built for all 500 at once they were still alive at most young-generation GCs, so V8
 * allocated them in the old generation from then on (allocation-site pretenuring), where they
 * stayed as garbage until the next full GC (seed-100k-memory).
 */
const CREATE_CHUNK = 100;

const externalKey = (source: string | null | undefined, externalId: string) => `${source ?? ''}\u0000${externalId}`;

const storedOf = (r: { payment_token: string | null; amount_minor: number | bigint; currency: string }): Stored => ({
  paymentToken: r.payment_token,
  amountMinor: Number(r.amount_minor),
  currency: r.currency,
});

async function createChunk(trx: Trx, inputs: readonly NewInput[], now: number, { byId, byExternal }: KnownInBatch): Promise<BatchCreateOutcome[]> {
  const ids = inputs.map((i) => i.id);
  for (let i = 0; i < ids.length; i += 500) {
    const rows = await trx.selectFrom('subscriptions').select(['id', 'payment_token', 'amount_minor', 'currency']).where('id', 'in', ids.slice(i, i + 500)).execute();
    for (const r of rows) byId.set(r.id, storedOf(r));
  }
  const externalIds = [...new Set(inputs.flatMap((i) => (i.externalId ? [i.externalId] : [])))];
  for (let i = 0; i < externalIds.length; i += 500) {
    const rows = await trx
      .selectFrom('subscriptions')
      .select(['external_id', 'source', 'payment_token', 'amount_minor', 'currency'])
      .where('external_id', 'in', externalIds.slice(i, i + 500))
      .where('status', '<>', 'terminated')
      .execute();
    for (const r of rows) byExternal.set(externalKey(r.source, r.external_id!), storedOf(r));
  }
  const customers = await customerResolver(trx, inputs.filter((i) => !i.customerId && !byId.has(i.id)).map((i) => i.customer), now);
  const outcomes: BatchCreateOutcome[] = [];
  const transitions: Transition[] = [];
  const emailing = new Set<string>();
  for (const input of inputs) {
    const key = input.externalId ? externalKey(input.source, input.externalId) : undefined;
    const found = byId.get(input.id) ?? (key === undefined ? undefined : byExternal.get(key));
    if (found) {
      outcomes.push({ id: input.id, created: false, stored: found });
      continue;
    }
    const customerId = input.customerId ?? customers.resolve(input.customer);
    const { customer: _customer, emailLinks = false, ...rest } = input;
    const transition = createTransition({ ...rest, customerId }, now);
    const sub = transition.subscription;
    if (emailLinks) emailing.add(sub.id);
    // A later input with the same id or live externalId in this batch finds this one.
    const mine = storedOf({ payment_token: sub.paymentToken, amount_minor: sub.amount.amountMinor, currency: sub.amount.currency });
    byId.set(sub.id, mine);
    if (key !== undefined) byExternal.set(key, mine);
    transitions.push(transition);
    outcomes.push({ id: sub.id, created: true });
  }
  await customers.insertNew();
  await insertRows(
    trx,
    'subscriptions',
    transitions.map((tr) => subscriptionRow(tr.subscription, emailing.has(tr.subscription.id))),
    100,
  );
  const cycles = transitions.flatMap((tr) =>
    tr.cycles.map((c) => ({
      subscription_id: tr.subscription.id,
      cycle: c.cycle,
      due_at: toDbTime(c.dueAt),
      status: c.status,
      amount_minor: tr.subscription.amount.amountMinor,
      currency: tr.subscription.amount.currency,
      attempts: c.attempts ?? 0,
      settled_at: t(c.settledAt ?? null),
      created_at: toDbTime(now),
    })),
  );
  await insertRows(trx, 'cycles', cycles, 500);
  const events = transitions.flatMap((tr) => tr.events);
  await insertRows(trx, 'events', events.map(eventRow), 500);
  return outcomes;
}

/** Reads one subscription (locked for the rest of a PostgreSQL transaction, see forWrite), or throws NotFoundError. */
export async function getSubscription(db: Conn, id: string): Promise<Subscription> {
  const row = await forWrite(db, db.selectFrom('subscriptions').selectAll().where('id', '=', id)).executeTakeFirst();
  if (!row) throw new NotFoundError('SUBSCRIPTION_NOT_FOUND', `no subscription with id "${id}"`);
  return rowToSubscription(row);
}

/**
 * Applies an operator/API transition (pause, resume, cancel) to the current
 * row in one transaction with its events. The lease is left alone: the engine
 * re-reads the row before it writes anything.
 */
export async function updateSubscription(db: Db, id: string, now: number, change: (sub: Subscription) => Transition): Promise<Subscription> {
  return db.transaction().execute((trx) => updateSubscriptionIn(trx, id, now, change));
}

/** updateSubscription inside the caller's transaction. */
export async function updateSubscriptionIn(trx: Trx, id: string, now: number, change: (sub: Subscription) => Transition): Promise<Subscription> {
  const current = await getSubscription(trx, id);
  const transition = change(current);
  if (!isNoOp(current, transition)) await writeTransition(trx, transition, now, 'ignore');
  return transition.subscription;
}

/**
 * A transition that hands back the row it was given, with no cycle and no
 * event (asking again for what is already so): nothing is written, so the
 * version stays and an engine outcome in flight keeps its fast path.
 */
export function isNoOp(current: Subscription, transition: Transition): boolean {
  return transition.subscription === current && transition.cycles.length === 0 && transition.events.length === 0;
}

/** The contact fields of a customer that a card/contact update may change. */
export type CustomerFields = Pick<CustomerInput, 'email' | 'phone' | 'firstName' | 'lastName'>;

/**
 * Applies contact changes to a subscription's customer: the linked row is
 * updated (a customer is shared by its subscriptions, as a Stripe customer is);
 * with no customer linked yet, one is found or created by the usual rules.
 * Returns the customer id.
 */
export async function updateCustomerIn(trx: Trx, customerId: string | null, fields: CustomerFields, now: number): Promise<string | null> {
  if (customerId === null) return (await resolveCustomer(trx, fields, now))?.id ?? null;
  const set: Record<string, string | null> = {};
  if (fields.email !== undefined) set.email = fields.email;
  if (fields.phone !== undefined) set.phone = fields.phone;
  if (fields.firstName !== undefined) set.first_name = fields.firstName;
  if (fields.lastName !== undefined) set.last_name = fields.lastName;
  if (Object.keys(set).length > 0) await trx.updateTable('customers').set(set).where('id', '=', customerId).execute();
  return customerId;
}

/** Links a subscription to a customer (a PATCH that gave the first contact details). */
export async function setSubscriptionCustomer(trx: Trx, id: string, customerId: string | null): Promise<void> {
  await trx.updateTable('subscriptions').set({ customer_id: customerId, version: bumped }).where('id', '=', id).execute();
}

/** True when a customer with this id exists. */
export async function customerExists(db: Conn, id: string): Promise<boolean> {
  return (await db.selectFrom('customers').select('id').where('id', '=', id).executeTakeFirst()) !== undefined;
}

/**
 * The latest instant any change was stored at (subscriptions, attempts,
 * events), or null for an empty database: a start whose clock reads earlier
 * refuses to collect (SPEC section 6). Events are read by id (the newest
 * row), the other two by a scan that runs once at start.
 */
export async function latestChangeAt(db: Conn): Promise<number | null> {
  const subs = await db.selectFrom('subscriptions').select((eb) => eb.fn.max('updated_at').as('at')).executeTakeFirst();
  const atts = await db.selectFrom('attempts').select((eb) => eb.fn.max('updated_at').as('at')).executeTakeFirst();
  const event = await db.selectFrom('events').select('occurred_at').orderBy('id', 'desc').limit(1).executeTakeFirst();
  const times = [subs?.at, atts?.at, event?.occurred_at].filter((t): t is string => typeof t === 'string').map(fromDbTime);
  return times.length ? Math.max(...times) : null;
}

/** A row as read for the engine: its state plus who holds its lease now. */
export interface LeasedRow {
  readonly subscription: Subscription;
  readonly leaseOwner: string | null;
}

/** Reads many rows in one statement per 500 ids (inside the caller's transaction, locked as forWrite says), keyed by id. */
export async function getRows(trx: Conn, ids: readonly string[]): Promise<Map<string, LeasedRow>> {
  const out = new Map<string, LeasedRow>();
  for (let i = 0; i < ids.length; i += 500) {
    const rows = await forWrite(trx, trx.selectFrom('subscriptions').selectAll().where('id', 'in', ids.slice(i, i + 500)).orderBy('id')).execute();
    for (const row of rows) out.set(row.id, { subscription: rowToSubscription(row), leaseOwner: row.lease_owner });
  }
  return out;
}

/**
 * Gives back leases (graceful shutdown, or work that was claimed but never
 * started). With `dueNow`, the rows' pending step becomes due at that instant
 * so the next daemon picks them up at once instead of after the lease time.
 */
export async function releaseLeases(db: Db, owner: string, ids?: readonly string[], dueNow?: number): Promise<void> {
  // Moving the work instant is a state write (it bumps the version); giving back a lease alone is not.
  const due = dueNow === undefined ? {} : { action_at: toDbTime(dueNow), work_at: toDbTime(dueNow), version: bumped };
  let q = db.updateTable('subscriptions').set({ lease_owner: null, lease_until: null, ...due }).where('lease_owner', '=', owner);
  if (ids) {
    if (ids.length === 0) return;
    q = q.where('id', 'in', ids);
  }
  await q.execute();
}

/** Distinct lease owners whose name starts with `prefix` (recovery looks for dead owners on this host). */
export async function leaseOwners(db: Db, prefix: string): Promise<string[]> {
  const rows = await db.selectFrom('subscriptions').select('lease_owner').distinct().where(ownedBy(prefix)).execute();
  return rows.map((r) => r.lease_owner!);
}

/**
 * `lease_owner` starts with `prefix`, compared as text (LIKE would treat `_`
 * and `%` in a host name as wildcards and match other daemons' leases).
 * Subscriptions and webhook deliveries name their lease owner alike.
 */
export function ownedBy(prefix: string) {
  // `lease_owner IS NOT NULL` lets a partial index on leased rows narrow them first.
  return sql<boolean>`lease_owner is not null and substr(lease_owner, 1, ${prefix.length}) = ${prefix}`;
}

/** Expires every lease whose owner starts with `ownerPrefix` (its process is known to be dead). */
export async function expireLeases(db: Db, ownerPrefix: string, now: number): Promise<number> {
  const result = await db
    .updateTable('subscriptions')
    .set({ lease_until: toDbTime(now - 1) })
    .where(ownedBy(ownerPrefix))
    .executeTakeFirst();
  // Their in-flight attempts were to be reconciled when the lease ran out (beginAttempt points
  // `reconcile` at the lease's end); the owner is dead, so that is now. work_at > now implies
  // every one of its parts is later than now, so now is their new minimum.
  const nowText = toDbTime(now);
  await db
    .updateTable('subscriptions')
    .set({ action_at: nowText, work_at: nowText, version: bumped })
    .where(ownedBy(ownerPrefix))
    .where('next_action', '=', 'reconcile')
    .where('work_at', '>', nowText)
    .execute();
  return Number(result.numUpdatedRows);
}

/**
 * The earliest instant at which some row becomes claimable: its work time, or
 * its lease expiry if that is later (a leased row is someone's in-flight work
 * until then). For arming the wake-up timer, after every sweep: two indexed
 * reads (the first unleased row in work_at order, and the few leased rows)
 * instead of a scan of every subscription.
 */
export async function nextWakeAt(db: Db): Promise<number | null> {
  const unleased = await db
    .selectFrom('subscriptions')
    .select('work_at')
    .where('work_at', 'is not', null)
    .where('lease_owner', 'is', null)
    .orderBy('work_at')
    .limit(1)
    .executeTakeFirst();
  const leased = await db
    .selectFrom('subscriptions')
    .select((eb) =>
      eb.fn
        .min(eb.case().when('lease_until', '>', eb.ref('work_at')).then(eb.ref('lease_until')).else(eb.ref('work_at')).end())
        .as('at'),
    )
    .where('lease_owner', 'is not', null)
    .where('work_at', 'is not', null)
    .executeTakeFirst();
  const times = [unleased?.work_at, leased?.at as string | null | undefined].filter((t): t is string => typeof t === 'string').map(fromDbTime);
  return times.length ? Math.min(...times) : null;
}

/** The earliest work instant of any row (simulate jumps its clock there). */
export async function nextWorkAt(db: Db): Promise<number | null> {
  const row = await db.selectFrom('subscriptions').select((eb) => eb.fn.min('work_at').as('at')).where('work_at', 'is not', null).executeTakeFirst();
  return row?.at ? fromDbTime(row.at as string) : null;
}

/** The attempt row to insert when an attempt starts (state in_flight, before the gateway call). */
export interface AttemptIntent {
  readonly key: string;
  readonly subscription: Subscription;
  readonly cycle: number;
  readonly attempt: number;
}

/** Inserts in-flight attempt rows; part of the intent transaction. */
export async function insertAttempts(trx: Trx, intents: readonly AttemptIntent[], now: number): Promise<void> {
  if (intents.length === 0) return;
  const at = toDbTime(now);
  for (let start = 0; start < intents.length; start += 100) await insertAttemptRows(trx, intents.slice(start, start + 100), at);
}

async function insertAttemptRows(trx: Trx, intents: readonly AttemptIntent[], at: string): Promise<void> {
  await trx
    .insertInto('attempts')
    .values(
      intents.map((i) => ({
        idempotency_key: i.key,
        subscription_id: i.subscription.id,
        cycle: i.cycle,
        attempt: i.attempt,
        gateway: i.subscription.gateway,
        mode: i.subscription.mode,
        state: 'in_flight',
        amount_minor: i.subscription.amount.amountMinor,
        currency: i.subscription.amount.currency,
        decline_code: null,
        hard_decline: null,
        external_id: null,
        link_url: null,
        error: null,
        sends: 1,
        created_at: at,
        updated_at: at,
      })),
    )
    .execute();
}

/** Maps a stored attempt row to what the settlement logic reads. */
export function rowToAttempt(row: Selectable<AttemptTable>): AttemptInfo {
  return {
    key: row.idempotency_key,
    cycle: Number(row.cycle),
    attempt: Number(row.attempt),
    mode: row.mode as AttemptInfo['mode'],
    state: row.state as AttemptState,
    sends: Number(row.sends),
    createdAt: fromDbTime(row.created_at),
    unavailableSince: row.unavailable_since === null ? null : fromDbTime(row.unavailable_since),
    unavailableCount: Number(row.unavailable_count),
  };
}

/** An attempt with the subscription and gateway it belongs to (a gateway callback names only the key). */
export interface OwnedAttempt {
  readonly attempt: AttemptInfo;
  readonly subscriptionId: string;
  /** Config name of the gateway the attempt was sent to. */
  readonly gateway: string;
}

/** Reads an attempt and its owner by idempotency key. */
export async function findAttempt(db: Conn, key: string): Promise<OwnedAttempt | undefined> {
  const row = await db.selectFrom('attempts').selectAll().where('idempotency_key', '=', key).executeTakeFirst();
  return row ? { attempt: rowToAttempt(row), subscriptionId: row.subscription_id, gateway: row.gateway } : undefined;
}

/** Writes an attempt's new state. */
export async function updateAttempt(trx: Trx, key: string, update: AttemptUpdate, now: number, resend = false): Promise<void> {
  await trx
    .updateTable('attempts')
    .set({
      state: update.state,
      ...(update.declineCode !== undefined ? { decline_code: update.declineCode } : {}),
      ...(update.hardDecline !== undefined ? { hard_decline: update.hardDecline === null ? null : update.hardDecline ? 1 : 0 } : {}),
      ...(update.externalId !== undefined && update.externalId !== null ? { external_id: update.externalId } : {}),
      ...(update.linkUrl !== undefined && update.linkUrl !== null ? { link_url: update.linkUrl } : {}),
      ...(update.error !== undefined ? { error: update.error } : {}),
      ...(update.unavailableSince !== undefined ? { unavailable_since: update.unavailableSince === null ? null : toDbTime(update.unavailableSince) } : {}),
      ...(update.unavailableCount !== undefined ? { unavailable_count: update.unavailableCount } : {}),
      ...(resend ? { sends: sql<number>`sends + 1` } : {}),
      updated_at: toDbTime(now),
    })
    .where('idempotency_key', '=', key)
    .execute();
}

/** One stored event, as the outbox relay and `simulate` read it. */
export interface StoredEvent {
  readonly id: number;
  readonly type: string;
  readonly subscriptionId: string | null;
  readonly cycle: number | null;
  readonly attempt: number | null;
  readonly at: number;
  readonly data: Record<string, unknown>;
}

/** Filters of an event read (`GET /v1/events`): one type, or a family (`charge.*`), and one subscription. */
export interface EventFilter {
  readonly type?: string;
  readonly subscriptionId?: string;
}

/** Events after `afterId`, in id order (the outbox cursor), optionally filtered. */
export async function listEvents(db: Conn, afterId = 0, limit = 1000, filter: EventFilter = {}): Promise<StoredEvent[]> {
  let q = db.selectFrom('events').selectAll().where('id', '>', afterId);
  if (filter.type !== undefined) q = filter.type.endsWith('.*') ? q.where('type', 'like', `${filter.type.slice(0, -1)}%`) : q.where('type', '=', filter.type);
  if (filter.subscriptionId !== undefined) q = q.where('subscription_id', '=', filter.subscriptionId);
  const rows = await q.orderBy('id').limit(limit).execute();
  return rows.map(storedEvent);
}

/** The events with these ids, in id order (the webhook relay renders them). */
export async function eventsByIds(db: Conn, ids: readonly number[]): Promise<StoredEvent[]> {
  if (ids.length === 0) return [];
  const byKeys = sqliteRowsByKeys(db, 'events', ['id', 'type', 'subscription_id', 'cycle', 'attempt', 'occurred_at', 'payload'], 'id', ids, (v) => ({
    id: v[0] as number,
    type: v[1] as string,
    subscription_id: v[2] as string | null,
    cycle: v[3] as number | null,
    attempt: v[4] as number | null,
    occurred_at: v[5] as string,
    payload: v[6] as string,
  }));
  if (byKeys) return (await byKeys).map(storedEvent).sort((x, y) => x.id - y.id);
  const rows = await db.selectFrom('events').selectAll().where('id', 'in', [...ids]).orderBy('id').execute();
  return rows.map(storedEvent);
}

function storedEvent(r: { id: number; type: string; subscription_id: string | null; cycle: number | null; attempt: number | null; occurred_at: string; payload: string }): StoredEvent {
  return {
    id: Number(r.id),
    type: r.type,
    subscriptionId: r.subscription_id,
    cycle: r.cycle === null ? null : Number(r.cycle),
    attempt: r.attempt === null ? null : Number(r.attempt),
    at: fromDbTime(r.occurred_at),
    data: JSON.parse(r.payload) as Record<string, unknown>,
  };
}

/** The id of the newest event (0 when there is none): a cursor for "events written since". */
export async function lastEventId(db: Conn): Promise<number> {
  const row = await db.selectFrom('events').select('id').orderBy('id', 'desc').limit(1).executeTakeFirst();
  return row ? Number(row.id) : 0;
}

/** cycle.skipped events after `afterId`, summed per subscription and reason (first `limit` groups), and how many groups in all. */
export async function skippedCyclesSince(
  db: Conn,
  afterId: number,
  limit: number,
): Promise<{ groups: Array<{ subscriptionId: string; reason: string; first: number; last: number; count: number; firstDueAt: string; lastDueAt: string }>; total: number }> {
  const base = db.selectFrom('events').where('id', '>', afterId).where('type', '=', 'cycle.skipped');
  const reason = jsonField(db, 'payload', 'reason');
  const dueAt = jsonField(db, 'payload', 'dueAt');
  const rows = await base
    .select([
      'subscription_id',
      sql<string>`${reason}`.as('reason'),
      sql<number>`min(cycle)`.as('first'),
      sql<number>`max(cycle)`.as('last'),
      sql<number>`count(*)`.as('count'),
      sql<string>`min(${dueAt})`.as('firstDueAt'),
      sql<string>`max(${dueAt})`.as('lastDueAt'),
    ])
    .groupBy(['subscription_id', reason])
    .orderBy('subscription_id')
    .limit(limit)
    .execute();
  const total = await db
    .selectFrom(base.select(['subscription_id', sql`${reason}`.as('reason')]).groupBy(['subscription_id', reason]).as('g'))
    .select((eb) => eb.fn.countAll().as('n'))
    .executeTakeFirst();
  return {
    groups: rows.map((r) => ({
      subscriptionId: r.subscription_id!,
      reason: r.reason,
      first: Number(r.first),
      last: Number(r.last),
      count: Number(r.count),
      firstDueAt: r.firstDueAt,
      lastDueAt: r.lastDueAt,
    })),
    total: Number(total?.n ?? 0),
  };
}

/** Runs `fn` in one transaction. */
export function inTransaction<T>(db: Db, fn: (trx: Trx) => Promise<T>): Promise<T> {
  return db.transaction().execute(fn);
}

/**
 * How many subscriptions that are not terminated use each value of `column`
 * (`plan_id` or `gateway`): the start-up check that a plan or gateway removed
 * from the config is not still needed.
 */
export async function liveUsage(db: Db, column: 'plan_id' | 'gateway'): Promise<Map<string, number>> {
  const rows = await db
    .selectFrom('subscriptions')
    .select([column, (eb) => eb.fn.countAll<number>().as('n')])
    .where('status', '<>', 'terminated')
    .where(column, 'is not', null)
    .groupBy(column)
    .execute();
  return new Map(rows.map((r) => [String((r as Record<string, unknown>)[column]), Number(r.n)]));
}

/** Whether the schema has been created (a read-only check of a file that may never have been migrated). */
export async function hasSubscriptionsTable(db: Db): Promise<boolean> {
  return tableExists(db, 'subscriptions');
}

/** Work that is due and not yet done: how many rows, and since when the oldest has waited (readiness, metrics, `rebill status`). */
export interface DueBacklog {
  readonly count: number;
  /** The earliest due instant among them (epoch ms), or null when nothing is due. */
  readonly oldestDueAt: number | null;
}

/** Rows whose work instant has come (`work_at <= now`), leased or not: one range scan of the work index. */
export async function dueBacklog(db: Conn, now: number): Promise<DueBacklog> {
  const row = await db
    .selectFrom('subscriptions')
    .select((eb) => [eb.fn.countAll<number>().as('n'), eb.fn.min('work_at').as('oldest')])
    .where('work_at', '<=', toDbTime(now))
    .executeTakeFirst();
  const oldest = row?.oldest as string | null | undefined;
  return { count: Number(row?.n ?? 0), oldestDueAt: oldest ? fromDbTime(oldest) : null };
}

/** Subscriptions by status (every status present, zero when none). */
export async function countByStatus(db: Conn): Promise<Record<Subscription['status'], number>> {
  const counts: Record<Subscription['status'], number> = { active: 0, paused: 0, stopped: 0, terminated: 0 };
  const rows = await db.selectFrom('subscriptions').select(['status', (eb) => eb.fn.countAll<number>().as('n')]).groupBy('status').execute();
  for (const row of rows) counts[row.status as Subscription['status']] = Number(row.n);
  return counts;
}
