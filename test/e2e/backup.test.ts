/**
 * Issue 9 item 5: `rebill backup FILE` beside a running daemon, and restoring
 * the copy (stop the daemon, put the file back, start it). The copy is
 * consistent (one commit's state: PRAGMA integrity_check, the same
 * subscriptions), a single file, made without the daemon's lock, and never
 * written over an existing file unless --force.
 */
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { runCli } from '../support/cli.js';
import { startDaemon } from './support/daemon.js';
import { attempts, readDb, todayUtc, waitFor, writeConfig } from './support/processes.js';
import { e2eSuite } from './support/suite.js';

const newDir = e2eSuite('backup');
const SUBSCRIPTIONS = 300;

function backupConfig(dir: string): { config: string; dbFile: string } {
  const dbFile = path.join(dir, 'rebill.db');
  const today = todayUtc();
  const config = writeConfig(path.join(dir, 'rebill.yaml'), {
    database: { url: `sqlite:${dbFile}` },
    gateways: { sim: { type: 'simulator' } },
    // A short drain: the restored daemon is stopped while it reconciles the copy's in-flight attempts.
    scheduler: { sweep: '* * * * * *', drainSeconds: 2 },
    logging: { level: 'info' },
    plans: [{ id: 'monthly', description: 'Monthly', amount: '9.99', currency: 'USD', every: 'MONTH', gateway: 'sim' }],
    // Half are due today, so the daemon is writing attempts while the copy is taken.
    subscriptions: Array.from({ length: SUBSCRIPTIONS }, (_, i) => ({
      id: `s-${String(i).padStart(3, '0')}`,
      planId: 'monthly',
      paymentToken: 'tok_ok',
      startDate: i % 2 ? today : '2199-01-01',
    })),
  });
  return { config, dbFile };
}

const cli = (args: readonly string[]) => runCli(args, { cleanRebillEnv: true });

function inspect(file: string): { integrity: string; subscriptions: number; journal: string } {
  const db = new Database(file, { readonly: true, fileMustExist: true });
  try {
    return {
      integrity: db.pragma('integrity_check', { simple: true }) as string,
      subscriptions: (db.prepare('select count(*) as n from subscriptions').get() as { n: number }).n,
      journal: db.pragma('journal_mode', { simple: true }) as string,
    };
  } finally {
    db.close();
  }
}

describe('rebill backup', () => {
  it('copies the live database beside a running daemon; the copy is whole and restores', async () => {
    const dir = newDir('live');
    const { config, dbFile } = backupConfig(dir);
    const daemon = await startDaemon(config, path.join(dir, 'rebill.log'));
    await waitFor(() => attempts(dbFile).length > 0 || undefined, { timeoutMs: 30_000, describe: () => 'no attempt recorded yet' });

    const backup = path.join(dir, 'backups', 'rebill-copy.db');
    fs.mkdirSync(path.dirname(backup));
    const run = await cli(['backup', backup, '--config', config]);
    expect(run.stderr).toBe('');
    expect(run.stdout).toMatch(new RegExp(`^backup written: ${backup} \\(\\d+ bytes, ${SUBSCRIPTIONS} subscriptions\\) from ${dbFile}\\n$`));
    expect(run.code).toBe(0);
    expect(daemon.alive()).toBe(true); // no lock taken from it, nothing stopped

    const copy = inspect(backup);
    expect(copy).toEqual({ integrity: 'ok', subscriptions: SUBSCRIPTIONS, journal: 'delete' });
    expect(readDb(dbFile, (db) => (db.prepare('select count(*) as n from subscriptions').get() as { n: number }).n)).toBe(SUBSCRIPTIONS);
    // One self-contained file: no -wal or -shm, and no temporary file left beside it.
    expect(fs.readdirSync(path.dirname(backup))).toEqual(['rebill-copy.db']);

    // Restore: stop the daemon, replace the database (and its -wal/-shm) with the copy, start again.
    daemon.kill('SIGTERM');
    expect((await daemon.exited).code).toBe(0);
    const attemptsInCopy = readDb(backup, (db) => (db.prepare('select count(*) as n from attempts').get() as { n: number }).n);
    for (const suffix of ['', '-wal', '-shm']) fs.rmSync(dbFile + suffix, { force: true });
    fs.copyFileSync(backup, dbFile);
    const restored = await startDaemon(config, path.join(dir, 'rebill.log'));
    expect(readDb(dbFile, (db) => (db.prepare('select count(*) as n from subscriptions').get() as { n: number }).n)).toBe(SUBSCRIPTIONS);
    expect(readDb(dbFile, (db) => (db.prepare('select count(*) as n from attempts').get() as { n: number }).n)).toBeGreaterThanOrEqual(attemptsInCopy);
    restored.kill('SIGTERM');
    expect((await restored.exited).code).toBe(0);
  }, 90_000);

  it('refuses to overwrite an existing file unless --force; 78 for a bad config; 1 and nothing created without a database', async () => {
    const dir = newDir('refuse');
    const { config, dbFile } = backupConfig(dir);
    expect((await cli(['migrate', '--config', config])).code).toBe(0);
    const target = path.join(dir, 'existing.db');
    fs.writeFileSync(target, 'keep me');

    const refused = await cli(['backup', target, '--config', config]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toBe(`backup failed: backup file ${target} already exists: choose another name, or pass --force to replace it\n`);
    expect(fs.readFileSync(target, 'utf8')).toBe('keep me');

    const forced = await cli(['backup', target, '--force', '--config', config]);
    expect(forced.code).toBe(0);
    expect(inspect(target).integrity).toBe('ok');

    const badConfig = writeConfig(path.join(dir, 'bad.yaml'), { database: { url: `sqlite:${dbFile}` }, plans: [] });
    expect((await cli(['backup', path.join(dir, 'x.db'), '--config', badConfig])).code).toBe(78);

    const missing = writeConfig(path.join(dir, 'missing.yaml'), { ...readYaml(config), database: { url: `sqlite:${path.join(dir, 'none', 'rebill.db')}` } });
    const none = await cli(['backup', path.join(dir, 'y.db'), '--config', missing]);
    expect(none.code).toBe(1);
    expect(none.stderr).toMatch(/^backup failed: no database at .*none\/rebill\.db: nothing to back up/);
    expect(fs.existsSync(path.join(dir, 'none'))).toBe(false);
    expect(fs.existsSync(path.join(dir, 'y.db'))).toBe(false);

    expect((await cli(['backup', '--config', config])).code).toBe(2); // FILE is required
  }, 60_000);
});

function readYaml(file: string): Record<string, unknown> {
  return parse(fs.readFileSync(file, 'utf8')) as Record<string, unknown>;
}
