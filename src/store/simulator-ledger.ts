/**
 * Storage for the built-in simulator gateway's own ledger, so a restarted
 * daemon that re-sends a key gets the original result, as from a real
 * gateway. Entries are opaque JSON here; the simulator owns their shape.
 */
import { toDbTime, type Db } from './db.js';

/** Reads one ledger entry (JSON) by idempotency key. */
export async function getLedgerEntry(db: Db, gateway: string, key: string): Promise<string | undefined> {
  const row = await db.selectFrom('simulator_ledger').select('entry').where('idempotency_key', '=', key).where('gateway', '=', gateway).executeTakeFirst();
  return row?.entry;
}

/** Inserts or replaces an entry; committed (and, at synchronous=FULL, fsynced) when it resolves. */
export async function putLedgerEntry(db: Db, gateway: string, key: string, entry: string, now: number): Promise<void> {
  await db
    .insertInto('simulator_ledger')
    .values({ idempotency_key: key, gateway, entry, created_at: toDbTime(now) })
    .onConflict((oc) => oc.column('idempotency_key').doUpdateSet({ entry }))
    .execute();
}

/** Every entry of one simulator gateway, oldest first. */
export async function listLedgerEntries(db: Db, gateway: string): Promise<string[]> {
  const rows = await db.selectFrom('simulator_ledger').select('entry').where('gateway', '=', gateway).orderBy('created_at').execute();
  return rows.map((r) => r.entry);
}
