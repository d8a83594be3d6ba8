/**
 * Opening SQLite files that cannot be used, and the transaction wrapper under
 * faults (issue 7 items 8, 9, 15): real files in a fresh temp dir, a second
 * real process holding the write lock, and a real SQLITE_FULL.
 */
import { spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { sql } from 'kysely';
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/index.js';
import { upsertSeeds } from '../../src/engine/index.js';
import { migrateToLatest, openDatabase, openDatabaseReadOnly, STREAMING_PAGE_CACHE_KIB, verifyDatabase, withStreamingPageCache } from '../../src/store/index.js';
import { root } from '../support/cli.js';
import { corruptPage, fillPages } from '../support/sqlite-faults.js';
import { fileTempDir } from '../support/temp.js';

const tmp = fileTempDir('open');
const NOW = Date.parse('2025-01-15T08:00:00Z');

/** A fresh directory inside this file's temp dir (removed with it). */
function sub(name: string): string {
  const dir = join(tmp, name);
  mkdirSync(dir);
  return dir;
}

/** A config with `n` seed subscriptions on one plan (sim gateway), as `run` would read it. */
function seedConfig(n: number, dbFile: string) {
  const seeds = Array.from({ length: n }, (_, i) => `  - { id: s${i}, planId: p, paymentToken: tok_ok, startDate: "2025-01-31" }`);
  const text = [`database: { url: "sqlite:${dbFile}" }`, 'gateways: { sim: { type: simulator } }', 'plans:', '  - { id: p, amount: "9.99", currency: USD, every: MONTH }', 'subscriptions:', ...seeds].join('\n');
  return parseConfig(text, join(tmp, 'seeds.yaml'), {});
}

describe('openDatabase says why a file cannot be opened', () => {
  it('a path that is a directory', () => {
    const dir = join(tmp, 'is-a-dir.db');
    mkdirSync(dir);
    expect(() => openDatabase(`sqlite:${dir}`)).toThrow(`cannot open database file ${dir}: it is a directory, not a file`);
  });

  it('a parent that is missing and cannot be created (a path component is a regular file)', () => {
    const file = join(tmp, 'plain-file');
    writeFileSync(file, 'not a directory');
    const path = join(file, 'sub', 'rebill.db');
    expect(() => openDatabase(`sqlite:${path}`)).toThrow(
      `cannot open database file ${path}: its directory ${join(file, 'sub')} is missing and cannot be created (a component of that path is a file, not a directory)`,
    );
  });

  // As root, chmod does not stop writes, so there is nothing honest to assert there.
  it.skipIf(process.getuid?.() === 0)('a directory that is not writable (skipped as root: root writes through chmod)', () => {
    const dir = join(tmp, 'read-only-dir');
    mkdirSync(dir);
    chmodSync(dir, 0o555);
    try {
      const path = join(dir, 'rebill.db');
      expect(() => openDatabase(`sqlite:${path}`)).toThrow(`cannot open database file ${path}: directory ${dir} is not writable`);
    } finally {
      chmodSync(dir, 0o755);
    }
  });

  it('openDatabaseReadOnly neither creates a missing file nor its directory', () => {
    const path = join(tmp, 'absent', 'rebill.db');
    expect(openDatabaseReadOnly(`sqlite:${path}`)).toBeUndefined();
    expect(existsSync(join(tmp, 'absent'))).toBe(false);
  });
});

describe('verifyDatabase (PRAGMA quick_check at start)', () => {
  it('refuses a file with a corrupted page, naming the file', async () => {
    const dir = sub('corrupt');
    const file = join(dir, 'rebill.db');
    const db = openDatabase(`sqlite:${file}`);
    await migrateToLatest(db);
    await verifyDatabase(db, file);
    await db.destroy();
    fillPages(file);
    corruptPage(file, 60);
    const damaged = openDatabase(`sqlite:${file}`);
    try {
      await expect(verifyDatabase(damaged, file)).rejects.toThrow(new RegExp(`^database file ${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} is damaged \\(.+\\); rebill will not run on it`));
    } finally {
      await damaged.destroy();
    }
  });
});

describe('transactions', () => {
  it('a write transaction waits for another process holding the write lock instead of failing with SQLITE_BUSY (BEGIN IMMEDIATE)', async () => {
    const dir = sub('immediate');
    const file = join(dir, 'rebill.db');
    const db = openDatabase(`sqlite:${file}`);
    await migrateToLatest(db);
    // Another process takes the write lock, says so, and commits 400 ms later.
    const holder = spawn(
      process.execPath,
      [
        '-e',
        `const D = require('better-sqlite3'); const db = new D(${JSON.stringify(file)}); db.pragma('busy_timeout = 5000');
         db.exec('BEGIN IMMEDIATE'); db.exec("INSERT INTO customers (id, created_at) VALUES ('other', '2025-01-01T00:00:00.000Z')");
         console.log('locked'); setTimeout(() => { db.exec('COMMIT'); db.close(); }, 400);`,
      ],
      { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] },
    );
    await new Promise<void>((resolve) => holder.stdout!.on('data', (d: Buffer) => d.toString().includes('locked') && resolve()));
    try {
      // Read, then write: a deferred BEGIN fails here at once with "database is locked".
      const result = await db.transaction().execute(async (trx) => {
        const before = await trx.selectFrom('customers').select('id').execute();
        await trx.insertInto('customers').values({ id: 'mine', email: null, phone: null, first_name: null, last_name: null, created_at: '2025-01-01T00:00:00.000Z' }).execute();
        return before.length;
      });
      expect(result).toBe(1);
      const ids = (await db.selectFrom('customers').select('id').orderBy('id').execute()).map((r) => r.id);
      expect(ids).toEqual(['mine', 'other']);
    } finally {
      await new Promise((resolve) => holder.once('close', resolve));
      await db.destroy();
    }
  });

  it('seeding on a full database surfaces SQLITE_FULL, not "cannot rollback - no transaction is active"', async () => {
    const dir = sub('full');
    const file = join(dir, 'rebill.db');
    const db = openDatabase(`sqlite:${file}`);
    await migrateToLatest(db);
    // The disk is "full" a few pages from now: SQLite fails the write with SQLITE_FULL and rolls back by itself.
    const pages = Number((await sql<{ page_count: number }>`pragma page_count`.execute(db)).rows[0]!.page_count);
    await sql.raw(`pragma max_page_count = ${pages + 3}`).execute(db);
    const config = seedConfig(3000, file);
    try {
      const error = await upsertSeeds(db, config.plans, config.subscriptions, NOW).then(
        () => undefined,
        (err: unknown) => err as Error & { code?: string },
      );
      expect(error, 'seeding should have failed').toBeDefined();
      expect(error!.message).toMatch(/database or disk is full/);
      expect(error!.code).toBe('SQLITE_FULL');
      expect(error!.message).not.toMatch(/cannot rollback/);
      // And the database is still usable: nothing half-written, the next transaction works.
      await sql.raw(`pragma max_page_count = 1073741823`).execute(db);
      const report = await upsertSeeds(db, config.plans, config.subscriptions, NOW);
      expect(report.created + report.existing).toBe(3000);
    } finally {
      await db.destroy();
    }
  });
});

describe('withStreamingPageCache (seeding at start)', () => {
  const cacheKib = async (db: ReturnType<typeof openDatabase>) => -Number((await sql<{ cache_size: number }>`pragma cache_size`.execute(db)).rows[0]!.cache_size);

  it('runs the load with the streaming page cache and gives the connection its own cache back, also when the load fails', async () => {
    const file = join(sub('streaming-cache'), 'rebill.db');
    const db = openDatabase(`sqlite:${file}`, { pageCacheKib: 32_768 });
    await migrateToLatest(db);
    try {
      const config = seedConfig(50, file);
      const inside: number[] = [];
      const report = await withStreamingPageCache(db, async () => {
        inside.push(await cacheKib(db));
        return upsertSeeds(db, config.plans, config.subscriptions, NOW);
      });
      expect(report.created).toBe(50);
      expect(inside).toEqual([STREAMING_PAGE_CACHE_KIB]);
      expect(await cacheKib(db)).toBe(32_768);
      await expect(withStreamingPageCache(db, () => Promise.reject(new Error('seeding failed')))).rejects.toThrow('seeding failed');
      expect(await cacheKib(db)).toBe(32_768);
    } finally {
      await db.destroy();
    }
  });
});
