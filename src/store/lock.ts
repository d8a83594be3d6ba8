/**
 * One daemon per SQLite file (SPEC section 4).
 *
 * The lock is a write lock that SQLite takes on a small side database,
 * `<db>.lock`, held (`BEGIN IMMEDIATE`, never committed) for the daemon's whole
 * life. Why this and not a pid file created with O_EXCL: SQLite's lock is a
 * POSIX advisory lock, which the kernel drops the instant the holder dies,
 * `kill -9` included, so there is no stale lock to detect and take over. A pid
 * file needs a liveness check of the recorded pid, which lies in containers:
 * after a restart the new daemon is pid 1 again (or some other process has the
 * old pid), so a dead holder looks alive, or a live one in another pid
 * namespace looks dead. Here the pid is only what the message names; the
 * kernel decides who holds the file.
 *
 * A write lock on a rollback-journal database still lets others read it, so a
 * second daemon can read the holder's pid from the `holder` row while the lock
 * is held. The main database is not locked at all: read-only commands and
 * `subscriptions import` keep working beside the daemon.
 */
import { hostname } from 'node:os';
import SQLite from 'better-sqlite3';
import { RebillError } from '../errors.js';
import { checkDatabasePath, openError } from './db.js';

export interface DaemonLock {
  /** The lock file, `<db>.lock`. */
  readonly file: string;
  /** Gives the lock up (at shutdown; process death does the same). */
  release(): void;
}

interface Holder {
  pid: number;
  host: string;
  started_at: string;
}

const sleepSync = (ms: number) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);

/**
 * Takes the daemon lock of the SQLite file `dbFile`, or throws DATABASE_LOCKED
 * naming the pid (and host) of the daemon that holds it. Never waits for the
 * holder: a second daemon must fail at once, not queue behind the first.
 */
export function acquireDaemonLock(dbFile: string, startedAt: string, pid = process.pid): DaemonLock {
  const file = `${dbFile}.lock`;
  checkDatabasePath(dbFile);
  let lock: SQLite.Database;
  try {
    lock = new SQLite(file);
  } catch (err) {
    throw openError(file, err);
  }
  try {
    lock.pragma('journal_mode = DELETE');
    lock.pragma('busy_timeout = 0');
    lock.exec('CREATE TABLE IF NOT EXISTS holder (pid INTEGER NOT NULL, host TEXT NOT NULL, started_at TEXT NOT NULL)');
  } catch (err) {
    // Two daemons creating the file at the same instant: the loser sees it busy.
    if ((err as { code?: unknown }).code !== 'SQLITE_BUSY') {
      lock.close();
      throw err;
    }
  }
  const me: Holder = { pid, host: hostname(), started_at: startedAt };
  let lastSeen: Holder | undefined;
  // The holder row is written in a short transaction before the lock is taken for good; a daemon
  // that finds the lock busy inside that instant reads the previous row, so it looks again briefly.
  for (let tries = 0; tries < 40; tries++) {
    if (tryBegin(lock)) {
      lock.prepare('DELETE FROM holder').run();
      lock.prepare('INSERT INTO holder (pid, host, started_at) VALUES (?, ?, ?)').run(me.pid, me.host, me.started_at);
      lock.exec('COMMIT');
      if (tryBegin(lock)) {
        const row = readHolder(lock);
        if (row && row.pid === me.pid && row.host === me.host && row.started_at === me.started_at) {
          return {
            file,
            release: () => {
              if (lock.open) {
                if (lock.inTransaction) lock.exec('ROLLBACK');
                lock.close();
              }
            },
          };
        }
        lock.exec('ROLLBACK');
      }
    } else {
      lastSeen = readHolder(lock) ?? lastSeen;
      if (lastSeen && (lastSeen.host !== me.host || (lastSeen.pid !== pid && processAlive(lastSeen.pid)))) break;
    }
    sleepSync(25);
  }
  lock.close();
  const who = !lastSeen
    ? 'another process'
    : lastSeen.host !== me.host
      ? `pid ${lastSeen.pid} on ${lastSeen.host} (running since ${lastSeen.started_at})`
      : lastSeen.pid !== pid && processAlive(lastSeen.pid)
        ? `pid ${lastSeen.pid} (running since ${lastSeen.started_at})`
        : `a process in another container or pid namespace (it recorded pid ${lastSeen.pid}, started ${lastSeen.started_at})`;
  throw new RebillError(
    'DATABASE_LOCKED',
    `database ${dbFile} is in use by another rebill daemon: ${who} holds ${file}; a SQLite database serves one daemon`,
  );
}

function tryBegin(lock: SQLite.Database): boolean {
  try {
    lock.exec('BEGIN IMMEDIATE');
    return true;
  } catch (err) {
    if ((err as { code?: unknown }).code === 'SQLITE_BUSY') return false;
    throw err;
  }
}

function readHolder(lock: SQLite.Database): Holder | undefined {
  try {
    return lock.prepare('SELECT pid, host, started_at FROM holder LIMIT 1').get() as Holder | undefined;
  } catch (err) {
    // The holder is inside its short write of the row, or has not created the table yet.
    if ((err as { code?: unknown }).code === 'SQLITE_BUSY' || /no such table/.test(String((err as Error).message))) return undefined;
    throw err;
  }
}

/** Whether a process with this pid exists on this host (EPERM: it exists but belongs to someone else). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
