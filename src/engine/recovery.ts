/**
 * Recovery at start: leases held by dead daemons on this host are expired so
 * their in-flight attempts are reconciled (and their webhook deliveries sent) at once (the next sweep asks the
 * gateway about the same key), and a clock behind the stored changes refuses
 * to collect. The reconciliation itself is ordinary claiming: a row whose
 * pointer says `reconcile` is claimed first and its status query made.
 */
import { hostname } from 'node:os';
import type { Logger } from 'pino';
import type { Clock } from '../clock.js';
import { iso } from '../domain/index.js';
import { RebillError } from '../errors.js';
import { databaseNow, deliveryLeaseOwners, dueWorkNow, expireLeases, latestChangeAt, leaseOwners, processAlive, releaseDeliveryLeases, usesDatabaseClock, type Db } from '../store/index.js';

/**
 * Expires leases held by dead processes on this host (a daemon killed with
 * SIGKILL, or this container's previous run), so their in-flight attempts are
 * reconciled now instead of after leaseSeconds. Returns how many rows.
 */
export async function recoverDeadOwners(db: Db, owner: string, now: number, logger: Logger): Promise<number> {
  const host = `${hostname()}:`;
  const dead = new Set<string>();
  // Engine claims are `<daemon>/<n>`; a relay leases delivery stream heads as `<daemon>` (run passes both the same id).
  for (const claim of [...(await leaseOwners(db, host)), ...(await deliveryLeaseOwners(db, host))]) {
    const daemon = claim.split('/')[0]!;
    if (daemon === owner) continue;
    const pid = Number(daemon.slice(host.length).split(':')[0]);
    // Our own pid under another name is a previous run of this process slot (pid 1 in a container).
    if (Number.isInteger(pid) && (pid === process.pid || !processAlive(pid))) dead.add(daemon);
  }
  let expired = 0;
  let deliveries = 0;
  // PostgreSQL judges leases and due work by its own clock: expired by this host's, which may run
  // ahead of it by up to maxClockJumpSeconds, a dead daemon's lease was set to end (and its rows made
  // due) in the database's future, beyond even the lease it had.
  const at = dead.size > 0 ? await dueWorkNow(db, now) : now;
  for (const daemon of dead) {
    expired += await expireLeases(db, `${daemon}/`, at);
    // Its webhook stream heads go back at once (sent again with the same webhook-id), not when their lease runs out.
    deliveries += await releaseDeliveryLeases(db, { owner: daemon });
  }
  if (expired) logger.warn({ expired, owners: [...dead] }, 'expired the leases of dead daemons; their in-flight attempts will be reconciled');
  if (deliveries) logger.warn({ deliveries, owners: [...dead] }, 'gave back the webhook deliveries dead daemons held; they are sent again');
  return expired;
}

/**
 * Start check (SPEC section 6): throws CLOCK_BEHIND_STORE when the clock
 * reads earlier than the latest change stored (by more than the clock-jump
 * limit): the clock went back, or another host with a clock ahead wrote last.
 * On PostgreSQL, whose clock judges due work, it throws CLOCK_SKEW when this
 * host's clock and the database's are further apart than that limit.
 */
export async function checkStartClock(db: Db, clock: Clock, maxClockJumpMs: number): Promise<void> {
  const now = clock.now();
  if (usesDatabaseClock(db)) {
    // Several daemons share the database's clock for due work and leases; one whose own clock is far
    // off would still stamp logs, metrics and circuit breakers wrongly, and says a host is misconfigured.
    const databaseAt = await databaseNow(db);
    if (Math.abs(now - databaseAt) > maxClockJumpMs) {
      throw new RebillError(
        'CLOCK_SKEW',
        `refusing to collect: the clock reads ${iso(now)}, the database's ${iso(databaseAt)}, more than scheduler.maxClockJumpSeconds (${maxClockJumpMs / 1000} s) apart; fix this host's clock (NTP) and start again`,
      );
    }
    return;
  }
  const latest = await latestChangeAt(db);
  if (latest !== null && now + maxClockJumpMs < latest) {
    throw new RebillError(
      'CLOCK_BEHIND_STORE',
      `refusing to collect: the clock reads ${iso(now)}, earlier than the latest change stored in the database (${iso(latest)}) by more than scheduler.maxClockJumpSeconds (${maxClockJumpMs / 1000} s); fix the clock (or wait until it passes that instant) and start again`,
    );
  }
}
