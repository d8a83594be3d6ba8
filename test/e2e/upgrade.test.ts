/**
 * Issue 9 item 5: upgrading and downgrading. A database migrated by an older
 * rebill is migrated on `rebill run`; one migrated by a NEWER rebill (it has
 * a migration this build does not know) is refused by run, migrate,
 * check-config and the read-only commands with one line saying what happened
 * and what to do, and is left untouched.
 */
import path from 'node:path';
import Database from 'better-sqlite3';
import { Migrator } from 'kysely';
import { describe, expect, it } from 'vitest';
import { migrations } from '../../migrations/index.js';
import { openDatabase } from '../../src/store/index.js';
import { runCli } from '../support/cli.js';
import { READY, startDaemon } from './support/daemon.js';
import { readDb, writeConfig } from './support/processes.js';
import { e2eSuite } from './support/suite.js';

const newDir = e2eSuite('upgrade');
const cli = (args: readonly string[]) => runCli(args, { cleanRebillEnv: true });
const KNOWN = Object.keys(migrations);
const TOO_NEW = 'database was migrated by a newer rebill (unknown migrations: 0009_x); upgrade rebill or restore a backup';

function upgradeConfig(dir: string): { config: string; dbFile: string } {
  const dbFile = path.join(dir, 'rebill.db');
  const config = writeConfig(path.join(dir, 'rebill.yaml'), {
    database: { url: `sqlite:${dbFile}` },
    gateways: { sim: { type: 'simulator' } },
    logging: { level: 'info' },
    plans: [{ id: 'monthly', description: 'Monthly', amount: '9.99', currency: 'USD', every: 'MONTH', gateway: 'sim' }],
  });
  return { config, dbFile };
}

const applied = (dbFile: string) => readDb(dbFile, (db) => (db.prepare('select name from kysely_migration order by name').all() as Array<{ name: string }>).map((r) => r.name));

describe('upgrade and downgrade', () => {
  it('`rebill run` applies the migrations a database from an older rebill lacks', async () => {
    const dir = newDir('older');
    const { config, dbFile } = upgradeConfig(dir);
    const db = openDatabase(`sqlite:${dbFile}`);
    const result = await new Migrator({ db, provider: { getMigrations: async () => migrations } }).migrateTo(KNOWN[0]!);
    expect(result.error).toBeUndefined();
    await db.destroy();
    expect(applied(dbFile)).toEqual([KNOWN[0]]);

    const daemon = await startDaemon(config, path.join(dir, 'rebill.log'));
    expect(applied(dbFile)).toEqual(KNOWN);
    daemon.kill('SIGTERM');
    expect((await daemon.exited).code).toBe(0);
  }, 60_000);

  it('refuses a database migrated by a newer rebill, in one line, at run, migrate, check-config and status', async () => {
    const dir = newDir('newer');
    const { config, dbFile } = upgradeConfig(dir);
    expect((await cli(['migrate', '--config', config])).code).toBe(0);
    const db = new Database(dbFile);
    db.prepare('insert into kysely_migration (name, timestamp) values (?, ?)').run('0009_x', '2031-01-01T00:00:00.000Z');
    db.close();

    for (const command of ['migrate', 'check-config', 'status']) {
      const run = await cli([command, '--config', config]);
      expect(run.code, command).toBe(1);
      expect(run.stderr, command).toBe(command === 'migrate' ? `migrate failed: ${TOO_NEW}\n` : `${TOO_NEW}\n`);
    }
    const run = await cli(['run', '--config', config]);
    expect(run.code).toBe(1);
    expect(run.stderr).toBe(`${TOO_NEW}\n`);
    expect(run.stdout).not.toMatch(READY);
    expect(run.stdout).not.toMatch(/"level":60/); // no fatal stack trace from the migrator
    expect(applied(dbFile)).toEqual([...KNOWN, '0009_x']);
  }, 60_000);
});
