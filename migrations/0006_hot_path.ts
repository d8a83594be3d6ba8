/**
 * A version on every subscription row, for the engine's conditional outcome
 * writes (issue 10). The engine remembers the version of the row it wrote at
 * the intent; its outcome write says `WHERE id = ? AND lease_owner = ? AND
 * version = ?`, so it changes the row only if nobody else (the admin API, a
 * gateway callback, a lifecycle step) wrote it meanwhile. When 0 rows change,
 * the engine re-reads the row and settles against what is stored now.
 *
 * Every write of a subscription's state bumps the version. Lease-only writes
 * (claim, heartbeat, giving a lease back without moving the row's work
 * instant) do not: the lease has its own condition (`lease_owner = ?`), and
 * a heartbeat must not send every long gateway call down the re-read path.
 *
 * Never edit once released: add a new numbered migration.
 */
import { sql, type Kysely } from 'kysely';

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .alterTable('subscriptions')
    .addColumn('version', 'integer', (c) => c.notNull().defaultTo(0))
    .execute();
  // A sweep claims open attempts (reconcile / poll) before new collections. Through the work_at
  // index alone, finding the few open ones meant visiting every due row first: with 100,000 due at
  // once, each sweep walked the whole backlog. The open rows get an index of their own.
  await db.schema
    .createIndex('subscriptions_open_work')
    .on('subscriptions')
    .column('work_at')
    .where(sql.ref('next_action'), 'in', sql`('reconcile', 'poll')`)
    .execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropIndex('subscriptions_open_work').execute();
  await db.schema.alterTable('subscriptions').dropColumn('version').execute();
}
