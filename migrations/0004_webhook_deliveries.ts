/**
 * Webhook delivery (SPEC section 8): one row per configured endpoint (its id is
 * a hash of the URL, so config order may change) with a cursor into the
 * outbox, one row per (endpoint, event) the endpoint subscribes to, and one
 * row per delivery attempt (status, duration, error).
 *
 * Never edit once released: add a new numbered migration. (Edited once, for
 * PostgreSQL, which no release ran it on: the SQL it runs on SQLite is the
 * same as released; test/store/sqlite-schema.test.ts holds that schema.)
 */
import type { Kysely } from 'kysely';
import { eventIdType, isPostgres, serialKeyType } from './dialect.js';

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('webhook_endpoints')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('url', 'text', (c) => c.notNull())
    // The last outbox event id scanned for this endpoint: later events get delivery rows in batches.
    .addColumn('cursor', eventIdType(db), (c) => c.notNull())
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addColumn('updated_at', 'text', (c) => c.notNull())
    .execute();
  await db.schema
    .createTable('webhook_deliveries')
    .addColumn('endpoint_id', 'text', (c) => c.notNull())
    .addColumn('event_id', eventIdType(db), (c) => c.notNull())
    .addColumn('subscription_id', 'text')
    .addColumn('event_type', 'text', (c) => c.notNull())
    .addColumn('event_at', 'text', (c) => c.notNull())
    .addColumn('state', 'text', (c) => c.notNull()) // pending | delivered | failed
    .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('next_attempt_at', 'text')
    .addColumn('last_attempt_at', 'text')
    .addColumn('last_status', 'integer')
    .addColumn('last_duration_ms', 'integer')
    .addColumn('last_error', 'text')
    .addColumn('delivered_at', 'text')
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addColumn('updated_at', 'text', (c) => c.notNull())
    .addPrimaryKeyConstraint('webhook_deliveries_pk', ['endpoint_id', 'event_id'])
    .execute();
  await db.schema.createIndex('webhook_deliveries_stream').on('webhook_deliveries').columns(['endpoint_id', 'state', 'subscription_id', 'event_id']).execute();
  await db.schema.createIndex('webhook_deliveries_queue').on('webhook_deliveries').columns(['endpoint_id', 'state', 'event_id']).execute();
  await db.schema.createIndex('webhook_deliveries_state').on('webhook_deliveries').columns(['state', 'event_id']).execute();
  await db.schema
    .createTable('webhook_attempts')
    .addColumn('id', serialKeyType(db), (c) => (isPostgres(db) ? c.primaryKey() : c.primaryKey().autoIncrement()))
    .addColumn('endpoint_id', 'text', (c) => c.notNull())
    .addColumn('event_id', eventIdType(db), (c) => c.notNull())
    .addColumn('attempt', 'integer', (c) => c.notNull())
    .addColumn('at', 'text', (c) => c.notNull())
    .addColumn('status', 'integer')
    .addColumn('duration_ms', 'integer', (c) => c.notNull())
    .addColumn('error', 'text')
    .execute();
  await db.schema.createIndex('webhook_attempts_delivery').on('webhook_attempts').columns(['endpoint_id', 'event_id']).execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('webhook_attempts').execute();
  await db.schema.dropTable('webhook_deliveries').execute();
  await db.schema.dropTable('webhook_endpoints').execute();
}
