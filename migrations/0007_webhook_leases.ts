/**
 * Leased webhook stream heads (issue 11, item 3): several daemons on one
 * PostgreSQL database share an endpoint's deliveries. A daemon claims due
 * stream heads (the earliest pending delivery of a subscription) by setting
 * `lease_owner` and `lease_until` on them; while a head is leased no other
 * daemon sends it, and the later events of its subscription wait behind it
 * (they are not heads). The outcome is written only where the lease is still
 * the daemon's own; a lease that runs out (a dead daemon) makes the head
 * claimable again (the same webhook-id: at least once). The relay on SQLite
 * uses the same columns: a claimed head is one in flight.
 *
 * Never edit once released: add a new numbered migration.
 */
import { sql, type Kysely } from 'kysely';

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('webhook_deliveries').addColumn('lease_owner', 'text').execute();
  await db.schema.alterTable('webhook_deliveries').addColumn('lease_until', 'text').execute();
  // The few leased rows among millions of delivered ones, for releasing a daemon's leases.
  await db.schema.createIndex('webhook_deliveries_leased').on('webhook_deliveries').column('lease_owner').where(sql.ref('lease_owner'), 'is not', null).execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropIndex('webhook_deliveries_leased').execute();
  await db.schema.alterTable('webhook_deliveries').dropColumn('lease_until').execute();
  await db.schema.alterTable('webhook_deliveries').dropColumn('lease_owner').execute();
}
