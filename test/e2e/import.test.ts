/**
 * Issue 9 item 3: `rebill subscriptions import FILE.csv [--dry-run]
 * [--report F]` as an operator runs it (SPEC sections 10 and 11): the
 * summary on stdout, one `line N: field: reason` per problem on stderr, the
 * report CSV, exit 0 / 1 / 2 / 78, plain progress lines without a TTY, and an
 * import beside a running daemon that holds the database's lock, whose sweep
 * then charges the imported line that is due.
 */
import fs from 'node:fs';
import path from 'node:path';
import { parse } from 'csv-parse/sync';
import { describe, expect, it } from 'vitest';
import { runCli } from '../support/cli.js';
import { startDaemon } from './support/daemon.js';
import { attempts, readDb, todayUtc, waitFor, writeConfig } from './support/processes.js';
import { e2eSuite } from './support/suite.js';

const newDir = e2eSuite('import');

const cli = (args: readonly string[]) => runCli(args, { cleanRebillEnv: true });

/** A config in `dir` (simulator gateway, every-second sweep, one monthly plan) and its database file. */
function importConfig(dir: string): { config: string; dbFile: string } {
  const dbFile = path.join(dir, 'rebill.db');
  const config = writeConfig(path.join(dir, 'rebill.yaml'), {
    database: { url: `sqlite:${dbFile}` },
    gateways: { sim: { type: 'simulator' } },
    scheduler: { sweep: '* * * * * *' },
    http: { host: '127.0.0.1', port: 0 },
    logging: { level: 'info' },
    plans: [{ id: 'monthly', description: 'Monthly', amount: '9.99', currency: 'USD', every: 'MONTH', gateway: 'sim' }],
  });
  return { config, dbFile };
}

async function migrated(dir: string): Promise<{ config: string; dbFile: string }> {
  const files = importConfig(dir);
  expect((await cli(['migrate', '--config', files.config])).code).toBe(0);
  return files;
}

function ids(dbFile: string): string[] {
  return readDb(dbFile, (db) => (db.prepare('SELECT id FROM subscriptions ORDER BY id').all() as Array<{ id: string }>).map((r) => r.id));
}

function writeCsv(dir: string, name: string, lines: readonly string[]): string {
  const file = path.join(dir, name);
  fs.writeFileSync(file, `${lines.join('\n')}\n`);
  return file;
}

const HEADER = 'id,planId,paymentToken,startDate,customer.email,amount,currency,every';

describe('rebill subscriptions import', () => {
  it('imports a good file (exit 0), and a second run of it says existing and stores nothing new', async () => {
    const dir = newDir('good');
    const { config, dbFile } = await migrated(dir);
    const file = writeCsv(dir, 'subs.csv', [HEADER, 's-1,monthly,tok_ok,2030-01-15,ann@example.com,,,', 's-2,,tok_ok,2030-01-31,bob@example.com,12.50,EUR,MONTH']);
    const first = await cli(['subscriptions', 'import', file, '--config', config]);
    expect(first).toMatchObject({ code: 0, stderr: '' });
    expect(first.stdout).toBe('imported 2, existing 0, rejected 0 (2 lines)\n');
    expect(ids(dbFile)).toEqual(['s-1', 's-2']);

    const second = await cli(['subscriptions', 'import', file, '--config', config, '--json']);
    expect(second).toMatchObject({ code: 0, stderr: '' });
    expect(JSON.parse(second.stdout)).toEqual({ lines: 2, imported: 0, existing: 2, rejected: 0, dryRun: false });
    expect(ids(dbFile)).toEqual(['s-1', 's-2']);
  });

  it('rejects bad lines (exit 1) on stderr and in the report, storing only the good lines', async () => {
    const dir = newDir('bad');
    const { config, dbFile } = await migrated(dir);
    const file = writeCsv(dir, 'subs.csv', [
      HEADER,
      'g-1,monthly,tok_ok,2030-01-15,ann@example.com,,,',
      'b-1,monthly,tok_ok,2030-01-15,x,,,',
      'b-2,,tok_ok,2030-01-15,,"1,5",USD,FORTNIGHT',
      'g-2,monthly,tok_ok,,,,,',
    ]);
    const report = path.join(dir, 'rejected.csv');
    const run = await cli(['subscriptions', 'import', file, '--config', config, '--report', report]);
    expect(run.code).toBe(1);
    expect(run.stdout).toBe('imported 2, existing 0, rejected 2 (4 lines)\n');
    const errors = run.stderr.trim().split('\n');
    expect(errors[0]).toBe('line 3: customer.email: expected an email address; got "x"');
    expect(errors.slice(1).every((l) => l.startsWith('line 4: '))).toBe(true);
    expect(errors.some((l) => l.startsWith('line 4: every: '))).toBe(true);
    expect(ids(dbFile)).toEqual(['g-1', 'g-2']);

    const rows = parse(fs.readFileSync(report, 'utf8'), { columns: true }) as Array<Record<string, string>>;
    expect(rows.map((r) => [r.id, r.line, r['customer.email'], r.amount])).toEqual([
      ['b-1', '3', 'x', ''],
      ['b-2', '4', '', '1,5'],
    ]);
    expect(rows[0]!.errors).toBe('customer.email: expected an email address; got "x"');
    expect(rows[1]!.errors).toMatch(/every: /);
    expect(Object.keys(rows[0]!)).toEqual([...HEADER.split(','), 'line', 'errors']);
  });

  it('--dry-run validates only: nothing is stored', async () => {
    const dir = newDir('dry');
    const { config, dbFile } = await migrated(dir);
    const file = writeCsv(dir, 'subs.csv', [HEADER, 's-1,monthly,tok_ok,2030-01-15,,,,', 'b-1,monthly,,2030-01-15,,,,']);
    const run = await cli(['subscriptions', 'import', file, '--config', config, '--dry-run']);
    expect(run.code).toBe(1);
    expect(run.stdout).toBe('dry run: 1 valid, 1 rejected (2 lines); nothing written\n');
    expect(run.stderr).toBe('line 3: paymentToken: required: plan "monthly" uses mode charge\n');
    expect(ids(dbFile)).toEqual([]);
  });

  it('refuses a file with an unknown column (exit 1) before importing anything', async () => {
    const dir = newDir('column');
    const { config, dbFile } = await migrated(dir);
    const file = writeCsv(dir, 'subs.csv', ['id,planId,paymentToken,sendOnHuor', 's-1,monthly,tok_ok,9']);
    const run = await cli(['subscriptions', 'import', file, '--config', config]);
    expect(run.code).toBe(1);
    expect(run.stdout).toBe('');
    expect(run.stderr).toContain('column 4 "sendOnHuor": unknown column (did you mean sendOnHour?)');
    expect(ids(dbFile)).toEqual([]);
  });

  it('exits 2 without a file, 78 for a bad config, 1 for a missing file', async () => {
    const dir = newDir('exits');
    const { config } = await migrated(dir);
    expect((await cli(['subscriptions', 'import', '--config', config])).code).toBe(2);
    const bad = writeConfig(path.join(dir, 'bad.yaml'), { plans: [{ id: 'x' }] });
    const file = writeCsv(dir, 'subs.csv', ['id,planId,paymentToken', 's-1,monthly,tok_ok']);
    expect((await cli(['subscriptions', 'import', file, '--config', bad])).code).toBe(78);
    const missing = await cli(['subscriptions', 'import', path.join(dir, 'nope.csv'), '--config', config]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/^cannot read .*nope\.csv: /);
  });

  it('prints a plain progress line every 10,000 lines when stderr is no TTY', async () => {
    const dir = newDir('progress');
    const { config, dbFile } = await migrated(dir);
    const lines = Array.from({ length: 10_500 }, (_, i) => `p-${i},monthly,tok_ok,2030-01-15,,,,`);
    const file = writeCsv(dir, 'subs.csv', [HEADER, ...lines]);
    const run = await cli(['subscriptions', 'import', file, '--config', config]);
    expect(run.code).toBe(0);
    expect(run.stderr).toBe('read 10000 lines\n');
    expect(run.stdout).toBe('imported 10500, existing 0, rejected 0 (10500 lines)\n');
    expect(ids(dbFile)).toHaveLength(10_500);
  }, 60_000);
});

describe('import beside a running daemon', () => {
  it('writes while the daemon holds its lock, and the daemon charges an imported line that is due', async () => {
    const dir = newDir('daemon');
    const { config, dbFile } = importConfig(dir);
    const daemon = await startDaemon(config, path.join(dir, 'rebill.log'));
    expect(fs.existsSync(`${dbFile}.lock`)).toBe(true);
    const file = writeCsv(dir, 'subs.csv', [
      HEADER,
      `due-now,monthly,tok_ok,${todayUtc()},ann@example.com,,,`,
      'later,monthly,tok_ok,2199-01-01,,,,',
      `inline-due,,tok_ok,${todayUtc()},,5.00,USD,MONTH`,
    ]);
    const run = await cli(['subscriptions', 'import', file, '--config', config]);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(run.stdout).toBe('imported 3, existing 0, rejected 0 (3 lines)\n');
    const captured = await waitFor(
      () => {
        const done = attempts(dbFile).filter((a) => a.state === 'captured');
        return done.length === 2 ? done : undefined;
      },
      { timeoutMs: 30_000, describe: () => JSON.stringify(attempts(dbFile)) },
    );
    expect(captured.map((a) => [a.subscription_id, a.cycle])).toEqual([
      ['due-now', 1],
      ['inline-due', 1],
    ]);
    expect(daemon.alive()).toBe(true);
    daemon.kill('SIGTERM');
    expect((await daemon.exited).code).toBe(0);
  }, 60_000);
});
