/**
 * Work that one daemon at a time may do across every daemon on one database
 * (the link e-mail sender): "at least once" survives the sender's death
 * because another daemon takes over. (The webhook relay shares its
 * endpoints' work instead: leased stream heads, store/webhooks.ts.)
 *
 * PostgreSQL: a session advisory lock, taken with `pg_try_advisory_lock` on a
 * connection of its own (not from the daemon's pool, which the engine and the
 * API need) held for as long as the work runs. When the daemon dies, its
 * session ends and the server drops the lock, so a waiting daemon (which
 * retries every `retryMs`) takes over; nothing to expire or clean up.
 * SQLite: one daemon per file already (store/lock.ts), so the work just runs.
 */
import { dialectOf, sessionConnection, type Db } from './db.js';

/** How often a daemon that did not get the lock asks again. */
export const EXCLUSIVE_RETRY_MS = 5_000;

/**
 * Runs `work` while holding the lock called `name`; a daemon that does not
 * get it waits and asks again until `stopped()` says to give up. Resolves
 * when `work` resolves (or when stopped before it ever ran).
 */
export async function runExclusively(
  db: Db,
  name: string,
  work: () => Promise<void>,
  options: { stopped: () => boolean; wait: (ms: number) => Promise<void>; retryMs?: number; onWaiting?: () => void },
): Promise<void> {
  if (dialectOf(db) !== 'postgres') return work();
  let told = false;
  while (!options.stopped()) {
    let ran = false;
    try {
      const session = await sessionConnection(db);
      try {
        const { rows } = await session.query<{ ok: boolean }>('select pg_try_advisory_lock(hashtext($1)) as ok', [name]);
        if (rows[0]?.ok) {
          ran = true;
          await work();
        }
      } finally {
        // Ending the session drops its lock.
        await session.end().catch(() => undefined);
      }
    } catch (err) {
      // The work's own errors are its own; a session that cannot be had is tried again later.
      if (ran) throw err;
    }
    if (ran) return;
    if (!told) options.onWaiting?.();
    told = true;
    await options.wait(options.retryMs ?? EXCLUSIVE_RETRY_MS);
  }
}
