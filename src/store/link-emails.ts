/**
 * SQL of payment-link e-mails (migration 0005): the row queued with the link,
 * the due rows with everything a message needs, each try's outcome, and the
 * reads behind the charge object, metrics and start-up checks.
 */
import { sql, type Kysely, type Transaction } from 'kysely';
import type { DomainEvent } from '../domain/index.js';
import { columnExists, fromDbTime, toDbTime } from './db.js';
import type { Database } from './schema.js';

type Conn = Kysely<Database> | Transaction<Database>;

/** Where a link e-mail stands. `skipped` and `failed` are final: neither is tried again. */
export type LinkEmailState = 'pending' | 'sent' | 'failed' | 'skipped';

/**
 * Queues one e-mail per `payment_link.sent` event of a subscription whose
 * links are e-mailed, due now, inside the caller's transaction (the one that
 * records the link). Keyed by the attempt, so an event seen twice queues one
 * e-mail; a subscription that does not opt in queues nothing.
 */
export async function queueLinkEmails(trx: Transaction<Database>, events: readonly DomainEvent[], now: number): Promise<void> {
  const links = linkEvents(events);
  if (links.length === 0) return;
  const ids = [...new Set(links.map((e) => e.subscriptionId))];
  const optedIn = new Set<string>();
  for (let i = 0; i < ids.length; i += 500) {
    const rows = await trx.selectFrom('subscriptions').select('id').where('id', 'in', ids.slice(i, i + 500)).where('email_links', '=', 1).execute();
    for (const row of rows) optedIn.add(row.id);
  }
  const at = toDbTime(now);
  const rows = links
    .filter((e) => optedIn.has(e.subscriptionId))
    .map((e) => ({ attempt_key: e.data.idempotencyKey as string, subscription_id: e.subscriptionId, state: 'pending', next_try_at: at, created_at: at, updated_at: at }));
  for (let i = 0; i < rows.length; i += 100) {
    await trx
      .insertInto('link_emails')
      .values(rows.slice(i, i + 100))
      .onConflict((oc) => oc.column('attempt_key').doNothing())
      .execute();
  }
}

/**
 * The events that queue a link e-mail (one per attempt, keyed by its
 * idempotency key) if their subscription opts in: queueLinkEmails and the
 * engine's hot-path stores, which write the same rows in their own SQL
 * (LINK_EMAIL_QUEUE_SQL), all ask this.
 */
export function linkEvents(events: readonly DomainEvent[]): Array<DomainEvent & { readonly data: { readonly idempotencyKey: string } }> {
  return events.filter((e): e is DomainEvent & { data: { idempotencyKey: string } } => e.type === 'payment_link.sent' && typeof e.data.idempotencyKey === 'string');
}

/**
 * The hot paths' statement for one link event, with `?` parameters (attempt
 * key, the instant three times, subscription id): a row only if the
 * subscription e-mails its links, none if the attempt already has one.
 */
export const LINK_EMAIL_QUEUE_SQL = `insert into link_emails (attempt_key, subscription_id, state, next_try_at, created_at, updated_at)
  select ?, id, 'pending', ?, ?, ? from subscriptions where id = ? and email_links = 1
  on conflict (attempt_key) do nothing`;

/**
 * Makes every subscription on a plan follow the plan's current `emailLinks`
 * (a notification setting, not a billing term: unlike the amount, an edit
 * applies to existing subscriptions). Inline schedules (no plan) keep their
 * own. Returns how many subscriptions changed.
 */
export async function syncPlanEmailLinks(db: Conn, plans: ReadonlyArray<{ readonly id: string; readonly emailLinks: boolean }>): Promise<number> {
  const on = plans.filter((p) => p.emailLinks).map((p) => p.id);
  // One pass over the table: `plan_id in (on)` is the wanted value; only rows that differ are written.
  const wanted = on.length > 0 ? sql<number>`case when plan_id in (${sql.join(on)}) then 1 else 0 end` : sql<number>`0`;
  const result = await db.updateTable('subscriptions').set({ email_links: wanted }).where('plan_id', 'is not', null).where('email_links', '<>', wanted).executeTakeFirst();
  return Number(result.numUpdatedRows);
}

/**
 * Live subscriptions with an inline schedule that e-mail their links (they
 * need notifications.email); 0 on a database not yet migrated to 0005, where
 * nothing can have opted in (`check-config` reads it without migrating).
 */
export async function inlineEmailLinkSubscriptions(db: Conn): Promise<number> {
  if (!(await columnExists(db, 'subscriptions', 'email_links'))) return 0;
  const row = await db
    .selectFrom('subscriptions')
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .where('plan_id', 'is', null)
    .where('email_links', '=', 1)
    .where('status', '<>', 'terminated')
    .executeTakeFirst();
  return Number(row?.n ?? 0);
}

/** A due e-mail with what its message is made of. */
export interface DueLinkEmail {
  readonly attemptKey: string;
  readonly subscriptionId: string;
  readonly tries: number;
  readonly createdAt: number;
  /** The attempt's state now: only a `pending` attempt's link is still open. */
  readonly attemptState: string;
  readonly linkUrl: string | null;
  readonly amountMinor: number;
  readonly currency: string;
  readonly cycle: number;
  readonly dueAt: number | null;
  readonly timezone: string;
  readonly description: string | null;
  readonly planId: string | null;
  readonly email: string | null;
  readonly firstName: string | null;
  readonly lastName: string | null;
}

/** Pending e-mails whose next try has come (`next_try_at <= now`), oldest first. */
export async function dueLinkEmails(db: Conn, now: number, limit: number): Promise<DueLinkEmail[]> {
  const rows = await db
    .selectFrom('link_emails as le')
    .innerJoin('attempts as a', 'a.idempotency_key', 'le.attempt_key')
    .innerJoin('subscriptions as s', 's.id', 'le.subscription_id')
    .leftJoin('customers as c', 'c.id', 's.customer_id')
    .leftJoin('cycles as cy', (join) => join.onRef('cy.subscription_id', '=', 'a.subscription_id').onRef('cy.cycle', '=', 'a.cycle'))
    .select([
      'le.attempt_key',
      'le.subscription_id',
      'le.tries',
      'le.created_at',
      'a.state as attempt_state',
      'a.link_url',
      'a.amount_minor',
      'a.currency',
      'a.cycle',
      'cy.due_at',
      's.schedule',
      's.description',
      's.plan_id',
      'c.email',
      'c.first_name',
      'c.last_name',
    ])
    .where('le.state', '=', 'pending')
    .where('le.next_try_at', '<=', toDbTime(now))
    .orderBy('le.next_try_at')
    .orderBy('le.attempt_key')
    .limit(limit)
    .execute();
  return rows.map((r) => ({
    attemptKey: r.attempt_key,
    subscriptionId: r.subscription_id,
    tries: Number(r.tries),
    createdAt: fromDbTime(r.created_at),
    attemptState: r.attempt_state,
    linkUrl: r.link_url,
    amountMinor: Number(r.amount_minor),
    currency: r.currency,
    cycle: Number(r.cycle),
    dueAt: r.due_at === null ? null : fromDbTime(r.due_at),
    timezone: (JSON.parse(r.schedule) as { timezone?: string }).timezone ?? 'UTC',
    description: r.description,
    planId: r.plan_id,
    email: r.email,
    firstName: r.first_name,
    lastName: r.last_name,
  }));
}

/** The outcome of one try (or of the decision not to try). */
export interface LinkEmailTry {
  readonly attemptKey: string;
  readonly at: number;
  /** `pending`: failed, tried again at nextTryAt. */
  readonly state: LinkEmailState;
  /** false for a `skipped` decision that made no SMTP conversation (the try count stays). */
  readonly counted: boolean;
  readonly nextTryAt: number | null;
  readonly error: string | null;
  readonly recipient: string | null;
  readonly messageId: string | null;
  readonly smtpResponse: string | null;
}

/** Records tries in one transaction (one commit per sender pass). */
export async function recordLinkEmailTries(db: Kysely<Database>, tries: readonly LinkEmailTry[]): Promise<void> {
  if (tries.length === 0) return;
  await db.transaction().execute(async (trx) => {
    for (const t of tries) {
      const at = toDbTime(t.at);
      await trx
        .updateTable('link_emails')
        .set({
          state: t.state,
          ...(t.counted ? { tries: sql<number>`tries + 1`, last_try_at: at } : {}),
          next_try_at: t.nextTryAt === null ? null : toDbTime(t.nextTryAt),
          last_error: t.error,
          ...(t.recipient !== null ? { recipient: t.recipient } : {}),
          ...(t.messageId !== null ? { message_id: t.messageId } : {}),
          ...(t.smtpResponse !== null ? { smtp_response: t.smtpResponse } : {}),
          ...(t.state === 'sent' ? { sent_at: at } : {}),
          updated_at: at,
        })
        .where('attempt_key', '=', t.attemptKey)
        // Only a pending row moves: a row settled meanwhile (another process) keeps its outcome.
        .where('state', '=', 'pending')
        .execute();
    }
  });
}

/** The earliest next try of any pending e-mail (null: none pending). */
export async function nextLinkEmailAt(db: Conn): Promise<number | null> {
  const row = await db.selectFrom('link_emails').select((eb) => eb.fn.min('next_try_at').as('at')).where('state', '=', 'pending').executeTakeFirst();
  return row?.at ? fromDbTime(row.at as string) : null;
}

/** A link e-mail as the charge object shows it. */
export interface LinkEmailRecord {
  readonly state: LinkEmailState;
  readonly tries: number;
  readonly recipient: string | null;
  readonly lastTryAt: number | null;
  readonly nextTryAt: number | null;
  readonly sentAt: number | null;
  readonly messageId: string | null;
  readonly error: string | null;
}

/** The e-mails of these attempts, by attempt key (attempts without one are absent). */
export async function linkEmailsByKeys(db: Conn, keys: readonly string[]): Promise<Map<string, LinkEmailRecord>> {
  const out = new Map<string, LinkEmailRecord>();
  for (let i = 0; i < keys.length; i += 500) {
    const rows = await db.selectFrom('link_emails').selectAll().where('attempt_key', 'in', keys.slice(i, i + 500)).execute();
    for (const r of rows) {
      out.set(r.attempt_key, {
        state: r.state as LinkEmailState,
        tries: Number(r.tries),
        recipient: r.recipient,
        lastTryAt: r.last_try_at === null ? null : fromDbTime(r.last_try_at),
        nextTryAt: r.next_try_at === null ? null : fromDbTime(r.next_try_at),
        sentAt: r.sent_at === null ? null : fromDbTime(r.sent_at),
        messageId: r.message_id,
        error: r.last_error,
      });
    }
  }
  return out;
}

/** Pending link e-mails: how many, and the creation instant of the oldest (metrics, start-up warning). */
export async function linkEmailBacklog(db: Conn): Promise<{ pending: number; oldestAt: number | null }> {
  const row = await db
    .selectFrom('link_emails')
    .select((eb) => [eb.fn.countAll<number>().as('n'), eb.fn.min('created_at').as('oldest')])
    .where('state', '=', 'pending')
    .executeTakeFirst();
  const oldest = row?.oldest as string | null | undefined;
  return { pending: Number(row?.n ?? 0), oldestAt: oldest ? fromDbTime(oldest) : null };
}
