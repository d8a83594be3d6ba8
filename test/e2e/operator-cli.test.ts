/**
 * Issue 8 item 6: `rebill status`, `rebill subscriptions list` and
 * `rebill subscriptions show` as an operator runs them, beside a real
 * `rebill run` daemon that holds the database's lock: read-only, no lock
 * taken, one JSON document with --json, exit 2 for a bad flag, 1 for an
 * unknown id, a missing database or an old schema, and quiet under `| head -1`.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { bin, root, runCli, withoutRebillEnv } from '../support/cli.js';
import { startDaemon } from './support/daemon.js';
import { attempts, todayUtc, waitFor, writeConfig } from './support/processes.js';
import { e2eSuite } from './support/suite.js';

const newDir = e2eSuite('operator-cli');

/** Enough rows that the table outgrows a pipe's buffer, so `| head -1` really closes it on a writer. */
const BULK = 800;
const SPECIAL = [
  { id: 'a-captured', paymentToken: 'tok_ok', customer: { email: 'ann@example.com' } },
  { id: 'a-soft', paymentToken: 'tok_insufficient' },
  { id: 'a-hard', paymentToken: 'tok_stolen' },
];

/** A daemon config in `dir`: the simulator gateway, a sweep every second, the three special seeds and BULK more. */
function operatorConfig(dir: string, bulk = BULK): { config: string; dbFile: string } {
  const dbFile = path.join(dir, 'rebill.db');
  const today = todayUtc();
  const config = writeConfig(path.join(dir, 'rebill.yaml'), {
    database: { url: `sqlite:${dbFile}` },
    gateways: { sim: { type: 'simulator' } },
    scheduler: { sweep: '* * * * * *' },
    // Another helper adds an HTTP server to `run`: port 0 on loopback keeps parallel daemons apart.
    http: { host: '127.0.0.1', port: 0 },
    logging: { level: 'info' },
    plans: [
      { id: 'monthly', description: 'Monthly', amount: '9.99', currency: 'USD', every: 'MONTH', gateway: 'sim' },
      { id: 'later', description: 'Later', amount: '1.00', currency: 'EUR', every: 'MONTH', gateway: 'sim' },
    ],
    subscriptions: [
      ...SPECIAL.map((s) => ({ ...s, planId: 'monthly', startDate: today })),
      ...Array.from({ length: bulk }, (_, i) => ({ id: `b-${String(i).padStart(4, '0')}`, planId: 'later', paymentToken: 'tok_ok', startDate: '2199-01-01' })),
    ],
  });
  return { config, dbFile };
}

const cli = (args: readonly string[], env: Record<string, string> = {}) => runCli(args, { cleanRebillEnv: true, env });

/** Runs the CLI, reads one line of stdout, then closes the pipe (as `| head -1` does) and waits for the exit. */
function headOne(args: readonly string[]): Promise<{ line: string; code: number | null; signal: NodeJS.Signals | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [bin, ...args], { cwd: root, env: { ...withoutRebillEnv(), TZ: 'UTC', NODE_OPTIONS: '' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let buffered = '';
    let line: string | undefined;
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    child.stdout.setEncoding('utf8').on('data', (s: string) => {
      if (line !== undefined) return;
      buffered += s;
      const newline = buffered.indexOf('\n');
      if (newline < 0) return;
      line = buffered.slice(0, newline);
      child.stdout.destroy();
    });
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ line: line ?? '', code, signal, stderr }));
  });
}

describe('operator CLI beside a running daemon', () => {
  it('status, list and show read the live database while the daemon holds its lock', async () => {
    const dir = newDir('beside');
    const { config, dbFile } = operatorConfig(dir);
    const daemon = await startDaemon(config, path.join(dir, 'rebill.log'));
    // Cycle 1 of the three special seeds is due today: wait until each has an outcome.
    await waitFor(
      () => {
        const settled = attempts(dbFile).filter((a) => a.state === 'captured' || a.state === 'rejected');
        return settled.length === 3 ? settled : undefined;
      },
      { timeoutMs: 30_000, describe: () => JSON.stringify(attempts(dbFile)) },
    );
    expect(fs.existsSync(`${dbFile}.lock`)).toBe(true);

    const status = await cli(['status', '--config', config, '--json']);
    expect(status.stderr).toBe('');
    expect(status.code).toBe(0);
    const report = JSON.parse(status.stdout) as Record<string, any>;
    expect(status.stdout.trim().split('\n')).toHaveLength(1);
    expect(report.subscriptions).toEqual({ active: BULK + 2, paused: 0, stopped: 0, terminated: 1, total: BULK + 3 });
    expect(report.failuresLast24h).toMatchObject({ rejected: 2, hard: 1 });
    expect(report.attempts).toMatchObject({ captured: 1, rejected: 2 });
    expect(report.webhooks).toMatchObject({ deliveries: { pending: 0, delivered: 0, failed: 0 }, oldestPendingAt: null });

    const human = await cli(['status', '--config', config]);
    expect(human.code).toBe(0);
    expect(human.stdout).toMatch(new RegExp(`^subscriptions +${BULK + 3} \\(active ${BULK + 2}, paused 0, stopped 0, terminated 1\\)$`, 'm'));
    expect(human.stdout).toMatch(/^failures \(24 h\) +2 declined \(1 hard\)/m);

    const list = await cli(['subscriptions', 'list', '--config', config, '--plan', 'monthly', '--json']);
    expect(list.code).toBe(0);
    const page = JSON.parse(list.stdout) as { data: Array<Record<string, any>>; nextCursor: string | null };
    expect(page.nextCursor).toBeNull();
    expect(page.data.map((s) => [s.id, s.status]).sort()).toEqual([
      ['a-captured', 'active'],
      ['a-hard', 'terminated'],
      ['a-soft', 'active'],
    ]);
    expect(page.data.find((s) => s.id === 'a-captured')).toMatchObject({ customer: { email: 'ann@example.com' }, amount: '9.99', currency: 'USD', completedCycles: 1 });

    // Everything, paged internally (800+ rows is more than one 500-row page).
    const everything = JSON.parse((await cli(['subscriptions', 'list', '--config', config, '--json'])).stdout) as { data: Array<{ id: string }> };
    expect(everything.data).toHaveLength(BULK + 3);
    expect(new Set(everything.data.map((s) => s.id)).size).toBe(BULK + 3);

    const terminated = await cli(['subscriptions', 'list', '--config', config, '--status', 'terminated']);
    expect(terminated.code).toBe(0);
    const rows = terminated.stdout.trimEnd().split('\n');
    expect(rows[0]).toMatch(/^ID +STATUS +PLAN +AMOUNT +CYCLE +NEXT +NEXT AT +CUSTOMER$/);
    expect(rows.slice(1)).toHaveLength(1);
    expect(rows[1]).toMatch(/^a-hard +terminated +monthly +9\.99 USD +1 +none +- +-$/);

    const show = await cli(['subscriptions', 'show', 'a-soft', '--config', config]);
    expect(show.code).toBe(0);
    expect(show.stdout).toMatch(/^status +active$/m);
    expect(show.stdout).toMatch(/^payment token +tok_…nt$/m);
    expect(show.stdout).toMatch(/^charges \(1\)$/m);
    expect(show.stdout).toMatch(/^ {2}1 +1 +initial +rejected +9\.99 USD .* insufficient_funds: Insufficient funds$/m);
    expect(show.stdout).toMatch(/^next due dates \(5\)$/m);
    expect(show.stdout).not.toContain('tok_insufficient');

    const showJson = await cli(['subscriptions', 'show', 'a-hard', '--config', config, '--json']);
    expect(showJson.code).toBe(0);
    const detail = JSON.parse(showJson.stdout) as { subscription: Record<string, any>; charges: Array<Record<string, any>>; nextDueDates: unknown[] };
    expect(detail.subscription).toMatchObject({ id: 'a-hard', status: 'terminated', terminationType: 'paymentCancel' });
    expect(detail.charges).toEqual([expect.objectContaining({ id: 'a-hard:1:1', operation: 'initial', status: 'rejected', declineCode: 'stolen_card', hardDecline: true })]);
    expect(detail.nextDueDates).toEqual([]);
    expect(showJson.stdout).not.toContain('tok_stolen');

    const unknown = await cli(['subscriptions', 'show', 'nope', '--config', config]);
    expect(unknown).toMatchObject({ code: 1, stdout: '', stderr: 'no subscription with id "nope"\n' });

    const head = await headOne(['subscriptions', 'list', '--config', config]);
    expect(head.line).toMatch(/^ID +STATUS/);
    expect(head).toMatchObject({ code: 0, signal: null, stderr: '' });

    // The database from REBILL_DATABASE_URL, as for every command.
    fs.mkdirSync(path.join(dir, 'elsewhere'));
    const elsewhere = operatorConfig(path.join(dir, 'elsewhere'), 0);
    const viaEnv = await cli(['status', '--config', elsewhere.config, '--json'], { REBILL_DATABASE_URL: `sqlite:${dbFile}` });
    expect(viaEnv.code).toBe(0);
    expect((JSON.parse(viaEnv.stdout) as { subscriptions: { total: number } }).subscriptions.total).toBe(BULK + 3);

    // None of it disturbed the daemon or its lock.
    expect(daemon.alive()).toBe(true);
    expect(fs.existsSync(`${dbFile}.lock`)).toBe(true);
    expect(fs.existsSync(elsewhere.dbFile)).toBe(false);
  }, 90_000);
});

describe('operator CLI refusals', () => {
  it('exits 2 with the usage for a bad flag or filter value', async () => {
    const dir = newDir('flags');
    // Flags are checked before the database is opened: there is none here.
    const { config } = operatorConfig(dir, 0);
    for (const args of [
      ['subscriptions', 'list', '--config', config, '--bogus'],
      ['subscriptions', 'list', '--config', config, '--status', 'cancelled'],
      ['subscriptions', 'list', '--config', config, '--limit', '0'],
      ['subscriptions', 'list', '--config', config, '--cursor', 'not-a-cursor!'],
      ['subscriptions', 'show', '--config', config],
      ['subscriptions', 'show', 'x', '--config', config, '--count', 'many'],
      ['status', '--config', config, '--verbose'],
    ]) {
      const run = await cli(args);
      expect(run.code, args.join(' ')).toBe(2);
      expect(run.stdout).toBe('');
      expect(run.stderr).toMatch(/^error: .*\nusage: rebill (status|subscriptions (list|show))/);
    }
    const status = await cli(['subscriptions', 'list', '--config', config, '--status', 'cancelled']);
    expect(status.stderr).toContain('--status: expected one of active, paused, stopped, terminated; got "cancelled"');
  });

  it('exits 1 with one line for a missing database (creating nothing) and for an old schema', async () => {
    const dir = newDir('refusals');
    const { config, dbFile } = operatorConfig(dir, 0);
    const missing = await cli(['status', '--config', config]);
    expect(missing.code).toBe(1);
    expect(missing.stdout).toBe('');
    expect(missing.stderr.trimEnd().split('\n')).toHaveLength(1);
    expect(missing.stderr).toContain(`no database at ${dbFile}`);
    expect(fs.existsSync(dbFile)).toBe(false);

    // A SQLite file that was never migrated.
    const db = new Database(dbFile);
    db.exec('create table unrelated (x)');
    db.close();
    for (const args of [['status'], ['subscriptions', 'list'], ['subscriptions', 'show', 'x']]) {
      const old = await cli([...args, '--config', config]);
      expect(old.code, args.join(' ')).toBe(1);
      expect(old.stderr).toMatch(/^database .* has an older schema \(missing 0001_initial, 0002_attempt_outage, 0003_idempotency_keys, 0004_webhook_deliveries, 0005_link_emails, 0006_hot_path, 0007_webhook_leases\): run `rebill migrate`\n$/);
    }
  });
});
