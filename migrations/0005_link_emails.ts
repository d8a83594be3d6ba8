/**
 * Payment-link e-mails (issue 9, item 2). A subscription opts in with
 * `email_links` (its plan's `emailLinks`, or its own for an inline schedule).
 * One `link_emails` row per attempt whose link is to be e-mailed, inserted in
 * the same transaction that records the attempt `pending` with its link and
 * writes `payment_link.sent`, so a crash never loses an e-mail to send; the
 * sender updates it with every try (`pending` -> `sent` | `failed` |
 * `skipped`).
 *
 * Never edit once released: add a new numbered migration.
 */
import type { Kysely } from 'kysely';

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .alterTable('subscriptions')
    .addColumn('email_links', 'integer', (c) => c.notNull().defaultTo(0))
    .execute();
  await db.schema
    .createTable('link_emails')
    // The attempt's idempotency key: one e-mail per attempt, carrying that attempt's one link.
    .addColumn('attempt_key', 'text', (c) => c.primaryKey())
    .addColumn('subscription_id', 'text', (c) => c.notNull())
    .addColumn('state', 'text', (c) => c.notNull()) // pending | sent | failed | skipped
    .addColumn('tries', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('next_try_at', 'text')
    .addColumn('last_try_at', 'text')
    .addColumn('last_error', 'text')
    .addColumn('recipient', 'text')
    // The Message-ID header (derived from the attempt key) and the server's answer to DATA.
    .addColumn('message_id', 'text')
    .addColumn('smtp_response', 'text')
    .addColumn('sent_at', 'text')
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addColumn('updated_at', 'text', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('link_emails_due').on('link_emails').columns(['state', 'next_try_at']).execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('link_emails').execute();
  await db.schema.alterTable('subscriptions').dropColumn('email_links').execute();
}
