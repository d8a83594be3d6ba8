/**
 * Initial schema. Never edit once released: add a new numbered migration.
 *
 * Portable SQL only (SQLite and PostgreSQL): instants are fixed-width UTC ISO
 * text (`2025-01-31T00:00:00.000Z`, so text order is time order), money is
 * integer minor units, JSON is text. The one dialect difference, an
 * auto-incrementing key for the outbox, is chosen by `serialKeyType`.
 */
import { sql, type Kysely } from 'kysely';
import { serialKeyType } from './dialect.js';

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('customers')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('email', 'text')
    .addColumn('phone', 'text')
    .addColumn('first_name', 'text')
    .addColumn('last_name', 'text')
    .addColumn('created_at', 'text', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('customers_email').on('customers').column('email').execute();
  await db.schema.createIndex('customers_phone').on('customers').column('phone').execute();

  await db.schema
    .createTable('subscriptions')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('external_id', 'text')
    .addColumn('source', 'text')
    .addColumn('plan_id', 'text')
    .addColumn('plan_version', 'text')
    .addColumn('customer_id', 'text', (c) => c.references('customers.id'))
    .addColumn('payment_token', 'text')
    .addColumn('description', 'text')
    .addColumn('amount_minor', 'bigint', (c) => c.notNull())
    .addColumn('currency', 'text', (c) => c.notNull())
    .addColumn('mode', 'text', (c) => c.notNull())
    .addColumn('gateway', 'text', (c) => c.notNull())
    // The schedule snapshot (every, sendOnHour, timezone, monthEnd, trial, startDate, endDate, maxCycles, backfill).
    .addColumn('schedule', 'text', (c) => c.notNull())
    .addColumn('status', 'text', (c) => c.notNull())
    .addColumn('termination_type', 'text')
    .addColumn('completed_cycles', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('last_paid_cycle', 'integer', (c) => c.notNull().defaultTo(0))
    // The work pointer: what happens next to which cycle/attempt, and when.
    .addColumn('next_action', 'text', (c) => c.notNull())
    .addColumn('next_cycle', 'integer', (c) => c.notNull())
    .addColumn('next_attempt', 'integer', (c) => c.notNull())
    .addColumn('action_at', 'text')
    .addColumn('pause_at', 'text')
    .addColumn('resume_at', 'text')
    .addColumn('paused_at', 'text')
    .addColumn('ended_at', 'text')
    // min(action_at, pause_at, resume_at): the one indexed column a sweep scans.
    .addColumn('work_at', 'text')
    .addColumn('lease_owner', 'text')
    .addColumn('lease_until', 'text')
    .addColumn('latest_payment_external_id', 'text')
    .addColumn('metadata', 'text')
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addColumn('updated_at', 'text', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('subscriptions_work').on('subscriptions').columns(['work_at']).where('work_at', 'is not', null).execute();
  // The few rows some daemon holds: found without scanning every subscription (wake-up timer, heartbeat).
  await db.schema.createIndex('subscriptions_leased').on('subscriptions').columns(['lease_owner']).where('lease_owner', 'is not', null).execute();
  await db.schema.createIndex('subscriptions_status_plan').on('subscriptions').columns(['status', 'plan_id']).execute();
  // A second live subscription for the same (source, externalId) is impossible.
  await db.schema
    .createIndex('subscriptions_external')
    .on('subscriptions')
    .columns(['source', 'external_id'])
    .unique()
    .where(sql.ref('external_id'), 'is not', null)
    .where(sql.ref('status'), '<>', 'terminated')
    .execute();

  await db.schema
    .createTable('cycles')
    .addColumn('subscription_id', 'text', (c) => c.notNull().references('subscriptions.id'))
    .addColumn('cycle', 'integer', (c) => c.notNull())
    .addColumn('due_at', 'text', (c) => c.notNull())
    .addColumn('status', 'text', (c) => c.notNull())
    .addColumn('amount_minor', 'bigint', (c) => c.notNull())
    .addColumn('currency', 'text', (c) => c.notNull())
    .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('settled_at', 'text')
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addPrimaryKeyConstraint('cycles_pk', ['subscription_id', 'cycle'])
    .execute();

  await db.schema
    .createTable('attempts')
    .addColumn('idempotency_key', 'text', (c) => c.primaryKey())
    .addColumn('subscription_id', 'text', (c) => c.notNull().references('subscriptions.id'))
    .addColumn('cycle', 'integer', (c) => c.notNull())
    .addColumn('attempt', 'integer', (c) => c.notNull())
    .addColumn('gateway', 'text', (c) => c.notNull())
    .addColumn('mode', 'text', (c) => c.notNull())
    .addColumn('state', 'text', (c) => c.notNull())
    .addColumn('amount_minor', 'bigint', (c) => c.notNull())
    .addColumn('currency', 'text', (c) => c.notNull())
    .addColumn('decline_code', 'text')
    .addColumn('hard_decline', 'integer')
    .addColumn('external_id', 'text')
    .addColumn('link_url', 'text')
    .addColumn('error', 'text')
    // How many times this key went to the gateway (a re-send after "not found" reuses the key).
    .addColumn('sends', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addColumn('updated_at', 'text', (c) => c.notNull())
    .addUniqueConstraint('attempts_cycle_attempt', ['subscription_id', 'cycle', 'attempt'])
    .execute();
  // The last line of defence against a double charge: one capture per cycle, enforced by the database.
  await db.schema
    .createIndex('attempts_one_capture_per_cycle')
    .on('attempts')
    .columns(['subscription_id', 'cycle'])
    .unique()
    .where(sql.ref('state'), '=', 'captured')
    .execute();

  await db.schema
    .createTable('events')
    .addColumn('id', serialKeyType(db), (c) => c.primaryKey())
    .addColumn('type', 'text', (c) => c.notNull())
    .addColumn('subscription_id', 'text')
    .addColumn('cycle', 'integer')
    .addColumn('attempt', 'integer')
    .addColumn('occurred_at', 'text', (c) => c.notNull())
    .addColumn('payload', 'text', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('events_subscription').on('events').columns(['subscription_id', 'id']).execute();

  await db.schema
    .createTable('simulator_ledger')
    .addColumn('idempotency_key', 'text', (c) => c.primaryKey())
    .addColumn('gateway', 'text', (c) => c.notNull())
    .addColumn('entry', 'text', (c) => c.notNull())
    .addColumn('created_at', 'text', (c) => c.notNull())
    .execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  for (const table of ['simulator_ledger', 'events', 'attempts', 'cycles', 'subscriptions', 'customers']) {
    await db.schema.dropTable(table).execute();
  }
}
