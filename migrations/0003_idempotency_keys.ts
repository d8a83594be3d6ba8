/**
 * Idempotency keys of the admin API (SPEC section 9): a POST or PATCH with an
 * `Idempotency-Key` header records the key and a hash of the request, and the
 * response is stored in the SAME transaction as the change it describes, so
 * after a crash either both exist or neither does. A key whose request died
 * before committing (`state = in_progress`, `locked_until` in the past) may be
 * taken over: nothing of it was stored.
 *
 * Never edit once released: add a new numbered migration.
 */
import type { Kysely } from 'kysely';

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('idempotency_keys')
    .addColumn('key', 'text', (c) => c.primaryKey())
    // sha256 of method, route and canonical body: the same key with another request is 422.
    .addColumn('request_hash', 'text', (c) => c.notNull())
    .addColumn('method', 'text', (c) => c.notNull())
    .addColumn('path', 'text', (c) => c.notNull())
    .addColumn('state', 'text', (c) => c.notNull()) // in_progress | done
    .addColumn('response_status', 'integer')
    .addColumn('response_body', 'text')
    // The request that holds an in_progress key: its completion must still own the row.
    .addColumn('lock_token', 'text')
    .addColumn('locked_until', 'text')
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addColumn('expires_at', 'text', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('idempotency_keys_expires').on('idempotency_keys').column('expires_at').execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('idempotency_keys').execute();
}
