/**
 * Wake-ups across daemons on one PostgreSQL database (issue 11): a daemon
 * whose API creates or changes something that may be due now kicks its own
 * engine and NOTIFYs the others, which LISTEN on a session connection of
 * their own and kick theirs, so due work is shared at once instead of at the
 * next timer or safety-net sweep (both remain: a notification is a hint and
 * may be lost while a listener reconnects).
 *
 * Notifications are coalesced: while one NOTIFY is on its way, any number of
 * further wakes send one more after it, so a burst of API writes costs a few
 * round trips, not one each. The payload is the sender's id, so a daemon
 * ignores its own.
 *
 * SQLite: one daemon per file (store/lock.ts), so there is no one to wake.
 */
import { sql } from 'kysely';
import type pg from 'pg';
import type { Logger } from 'pino';
import { dialectOf, sessionConnection, type Db } from './db.js';

/** The channel every rebill daemon on a database listens on. */
export const WAKE_CHANNEL = 'rebill_wake';

/** How long a listener that lost its connection waits before connecting again. */
const RECONNECT_MS = 1_000;

export interface WakeBus {
  /** Tells the other daemons that work may be due now (coalesced; never throws). */
  notify(): void;
  /** Resolves once the listener is connected (or right away where there is none); for tests. */
  readonly listening: Promise<void>;
  /** Stops listening; a NOTIFY on its way is awaited. */
  close(): Promise<void>;
}

export interface WakeBusOptions {
  /** This daemon's id: its own notifications are ignored. */
  readonly sender: string;
  /** Called when another daemon says work may be due. */
  readonly onWake: () => void;
  readonly logger: Logger;
  readonly reconnectMs?: number;
}

const NO_BUS: WakeBus = { notify() {}, listening: Promise.resolve(), close: async () => {} };

/** Sends one wake-up to every daemon listening on the database (PostgreSQL; nothing on SQLite). */
export async function notifyWake(db: Db, sender: string): Promise<void> {
  if (dialectOf(db) !== 'postgres') return;
  await sql`select pg_notify(${WAKE_CHANNEL}, ${sender})`.execute(db);
}

/** Listens for other daemons' wake-ups and sends this one's (PostgreSQL); a no-op bus on SQLite. */
export function openWakeBus(db: Db, options: WakeBusOptions): WakeBus {
  if (dialectOf(db) !== 'postgres') return NO_BUS;
  const { sender, onWake, logger } = options;
  const reconnectMs = options.reconnectMs ?? RECONNECT_MS;
  let closed = false;
  let client: pg.Client | null = null;
  let retry: ReturnType<typeof setTimeout> | null = null;
  let failing = false;
  let markListening: () => void = () => {};
  const listening = new Promise<void>((resolve) => (markListening = resolve));

  function lost(err: unknown): void {
    const gone = client;
    client = null;
    gone?.removeAllListeners('notification');
    void gone?.end().catch(() => undefined);
    if (closed) return;
    if (!failing) logger.warn({ error: err instanceof Error ? err.message : String(err) }, 'wake-up listener lost its connection; reconnecting (the timer and the sweep still wake this daemon)');
    failing = true;
    retry = setTimeout(() => void listen(), reconnectMs);
    retry.unref?.();
  }

  async function listen(): Promise<void> {
    retry = null;
    if (closed) return;
    let session: pg.Client;
    try {
      session = await sessionConnection(db);
    } catch (err) {
      return lost(err);
    }
    if (closed) {
      await session.end().catch(() => undefined);
      return;
    }
    client = session;
    session.on('notification', (message) => {
      if (message.channel === WAKE_CHANNEL && message.payload !== sender) onWake();
    });
    session.on('error', (err) => lost(err));
    session.on('end', () => {
      if (client === session) lost(new Error('connection ended'));
    });
    try {
      await session.query(`listen ${WAKE_CHANNEL}`);
    } catch (err) {
      return lost(err);
    }
    if (failing) logger.info('wake-up listener connected again');
    failing = false;
    // Whatever was notified while the listener was away is found by a sweep now.
    onWake();
    markListening();
  }

  // Coalescing: one NOTIFY at a time; wakes meanwhile send one more after it.
  let sending: Promise<void> | null = null;
  let again = false;
  let sendFailed = false;
  function send(): void {
    sending = notifyWake(db, sender)
      .then(
        () => {
          sendFailed = false;
        },
        (err: unknown) => {
          if (!sendFailed) logger.warn({ error: err instanceof Error ? err.message : String(err) }, 'could not wake the other daemons (they find the work at their next sweep)');
          sendFailed = true;
        },
      )
      .finally(() => {
        sending = null;
        if (again && !closed) {
          again = false;
          send();
        }
      });
  }

  void listen();
  return {
    notify() {
      if (closed) return;
      if (sending) again = true;
      else send();
    },
    listening,
    async close() {
      closed = true;
      if (retry) clearTimeout(retry);
      await sending;
      const session = client;
      client = null;
      session?.removeAllListeners();
      session?.on('error', () => {});
      await session?.end().catch(() => undefined);
    },
  };
}
