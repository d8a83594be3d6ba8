/**
 * The hot-path store of a Db, for the dialect underneath it: one per Db,
 * shared by the engine and the simulator gateways built on the same Db, so a
 * ledger entry the simulator stages is written by the engine's next commit.
 */
import { dialectOf, type Db } from './db.js';
import type { Subscription } from '../domain/index.js';
import type { HotPathStore } from './hot-path.js';
import { postgresHotPathStore } from './postgres-hot-path.js';
import { sqliteHotPathStore } from './sqlite-hot-path.js';

const stores = new WeakMap<Db, HotPathStore>();

export function hotPathStore(db: Db): HotPathStore {
  let store = stores.get(db);
  if (!store) {
    store = dialectOf(db) === 'postgres' ? postgresHotPathStore(db) : sqliteHotPathStore(db);
    stores.set(db, store);
  }
  return store;
}

/**
 * Leases up to `limit` due rows to `owner` for `leaseMs` (open attempts
 * first, then by work_at) and decides nothing else for them: the engine's own
 * claim, with every row kept leased. For tools and tests.
 */
export async function claimDue(db: Db, owner: string, now: number, limit: number, leaseMs: number): Promise<Subscription[]> {
  const { claimed } = await hotPathStore(db).claim({ token: owner, now, limit, leaseMs }, (rows) => rows.map(() => ({ kind: 'keep' }) as const));
  return claimed.map((c) => c.subscription);
}
