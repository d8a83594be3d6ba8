/**
 * Damage for SQLite files in tests: many pages of filler rows, then garbage
 * written over one page, as a bad disk or a torn copy would leave it.
 */
import { closeSync, openSync, writeSync } from 'node:fs';
import Database from 'better-sqlite3';

/** Adds ~1 MB of filler rows (so the file has many pages) and checkpoints the WAL into the main file. */
export function fillPages(file: string): void {
  const db = new Database(file);
  db.exec('CREATE TABLE IF NOT EXISTS filler (x TEXT)');
  const insert = db.prepare('INSERT INTO filler VALUES (?)');
  db.transaction(() => {
    for (let i = 0; i < 2000; i++) insert.run('x'.repeat(500));
  })();
  db.pragma('wal_checkpoint(TRUNCATE)');
  db.close();
}

/** Writes garbage over page `page` (0-based, 4 KiB pages) of a SQLite file that no connection has open. */
export function corruptPage(file: string, page: number): void {
  const fd = openSync(file, 'r+');
  try {
    writeSync(fd, Buffer.alloc(4096, 0xa5), 0, 4096, 4096 * page);
  } finally {
    closeSync(fd);
  }
}
