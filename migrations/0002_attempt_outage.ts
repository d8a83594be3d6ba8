/**
 * Outage bookkeeping on attempts (SPEC section 6, "Gateway unavailability is
 * not a decline"). An attempt whose outcome is unknown is re-sent with the
 * same key, with a backoff, and counts as a failed attempt only once the
 * outage has lasted `retry.unavailableHours`. The outage is measured from the
 * attempt's first unavailable outcome, which is not its `created_at` (a
 * pending payment may have waited days before its gateway went down), and the
 * backoff doubles with each unavailable outcome: both need a column.
 *
 * Never edit once released: add a new numbered migration.
 */
import type { Kysely } from 'kysely';

export async function up(db: Kysely<any>): Promise<void> {
  // When the current run of unavailable outcomes began (null: the gateway's last word was an answer).
  await db.schema.alterTable('attempts').addColumn('unavailable_since', 'text').execute();
  // Unavailable outcomes in that run: the backoff exponent.
  await db.schema
    .alterTable('attempts')
    .addColumn('unavailable_count', 'integer', (c) => c.notNull().defaultTo(0))
    .execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('attempts').dropColumn('unavailable_count').execute();
  await db.schema.alterTable('attempts').dropColumn('unavailable_since').execute();
}
