/**
 * How fast this machine's disk makes a commit durable right now: one-row
 * autocommits per second at synchronous=FULL in WAL mode, as rebill's
 * database is opened. Printed at the start and the end of a run, because
 * every SQLite figure of the bench moves with it (other work on a shared
 * machine fsyncs too).
 */
import { join } from 'node:path';
import SQLite from 'better-sqlite3';

/** Durable one-row commits per second over `ms` milliseconds, in a scratch database in `dir`. */
export function commitsPerSecond(dir: string, ms = 500): number {
  const db = new SQLite(join(dir, `disk-probe-${process.pid}-${Date.now()}.db`));
  try {
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = FULL');
    db.exec('create table probe (n integer)');
    const insert = db.prepare('insert into probe (n) values (?)');
    let n = 0;
    const from = performance.now();
    while (performance.now() - from < ms) insert.run(n++);
    return n / ((performance.now() - from) / 1000);
  } finally {
    db.close();
  }
}
