/**
 * The hot-path store of a Db, for the dialect underneath it: one per Db,
 * shared by the engine and the simulator gateways built on the same Db, so a
 * ledger entry the simulator stages is written by the engine's next commit.
 */
import { dialectOf, type Db } from './db.js';
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
