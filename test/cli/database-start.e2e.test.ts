/**
 * What `run`, `migrate` and `check-config` say about the database before
 * anything starts (issue 7 items 5, 15, 16, 20): real `node bin/rebill.js`
 * processes on real SQLite files in a temp dir.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { requireBuild, runCli, type CliRun } from '../support/cli.js';
import { corruptPage, fillPages } from '../support/sqlite-faults.js';
import { fileTempDir } from '../support/temp.js';

const tmp = fileTempDir('db-start');

function rebill(args: string[]): Promise<CliRun> {
  requireBuild();
  return runCli(args, { cleanRebillEnv: true });
}

/** A config file `<dir>/<name>.yaml` on `dbUrl`, with gateways and plans as given, and seed s1..s<seeds> on plan `p1`. */
function config(dir: string, name: string, dbUrl: string, options: { gateways?: string[]; plans?: string[]; seeds?: number } = {}): string {
  const gateways = options.gateways ?? ['gw'];
  const plans = options.plans ?? ['p1', 'p2'];
  const lines = [
    `database: { url: "${dbUrl}" }`,
    'scheduler: { sweep: "0 0 1 1 *" }',
    'gateways:',
    ...gateways.map((g) => `  ${g}: { type: simulator }`),
    'plans:',
    ...plans.map((p) => `  - { id: ${p}, amount: "9.99", currency: USD, every: MONTH, gateway: ${gateways[0]} }`),
    ...(options.seeds ? ['subscriptions:'] : []),
    ...Array.from({ length: options.seeds ?? 0 }, (_, i) => `  - { id: s${i + 1}, planId: ${plans[0]}, paymentToken: tok_ok, startDate: "2099-01-01" }`),
    // Last, so the line numbers the tests expect stay put; loopback on a free port, never 8080.
    'http: { host: 127.0.0.1, port: 0 }',
  ];
  const file = join(dir, `${name}.yaml`);
  writeFileSync(file, `${lines.join('\n')}\n`);
  return file;
}

function dir(name: string): string {
  const path = join(tmp, name);
  mkdirSync(path);
  return path;
}

/** A database at `<where>/rebill.db` with `seeds` live subscriptions on plan p1, seeded by a real `rebill run` stopped with SIGTERM. */
async function seeded(where: string, seeds: number, gateways = ['gw']): Promise<string> {
  const url = `sqlite:${join(where, 'rebill.db')}`;
  const file = config(where, 'seed', url, { seeds, gateways });
  const { spawnRebill, exitWithin } = await import('../e2e/support/processes.js');
  const daemon = spawnRebill(['run', '--config', file]);
  await daemon.waitForStdout(/"msg":"rebill ready"/, 30_000);
  daemon.kill('SIGTERM');
  expect((await exitWithin(daemon, 30_000)).code).toBe(0);
  return url;
}

describe('rebill --version', () => {
  it('prints the package.json version and exits 0', async () => {
    const { version } = (await import('../../package.json', { with: { type: 'json' } })).default as { version: string };
    const run = await rebill(['--version']);
    expect(run).toEqual({ code: 0, stdout: `${version}\n`, stderr: '' });
  });
});

describe('a database that cannot be used', () => {
  it('run: a database path that is a directory says so in one line, exit 1', async () => {
    const where = dir('is-dir');
    mkdirSync(join(where, 'rebill.db'));
    const run = await rebill(['run', '--config', config(where, 'c', `sqlite:${join(where, 'rebill.db')}`)]);
    expect(run.code).toBe(1);
    expect(run.stderr).toBe(`cannot open database file ${join(where, 'rebill.db')}: it is a directory, not a file\n`);
  });

  it('migrate: a path under a regular file names the directory that cannot be created', async () => {
    const where = dir('under-file');
    writeFileSync(join(where, 'file'), 'x');
    const path = join(where, 'file', 'rebill.db');
    const run = await rebill(['migrate', '--config', config(where, 'c', `sqlite:${path}`)]);
    expect(run.code).toBe(1);
    expect(run.stderr).toBe(`cannot open database file ${path}: its directory ${join(where, 'file')} is missing and cannot be created (a component of that path is a file, not a directory)\n`);
  });

  it('migrate and run refuse a file with a corrupted page, in one line naming the file', async () => {
    const where = dir('corrupt');
    const path = join(where, 'rebill.db');
    const file = config(where, 'c', `sqlite:${path}`);
    expect((await rebill(['migrate', '--config', file])).code).toBe(0);
    fillPages(path);
    corruptPage(path, 60);
    for (const command of ['migrate', 'run']) {
      const run = await rebill([command, '--config', file]);
      expect(run.code, `${command}: ${run.stderr}`).toBe(1);
      expect(run.stderr, command).toMatch(new RegExp(`^database file ${path.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} is damaged \\([^\\n]+\\); rebill will not run on it: restore it from a backup\\n$`));
      expect(run.stderr.match(/malformed/g)?.length ?? 0, command).toBeLessThanOrEqual(1);
      expect(run.stdout, command).not.toMatch(/rebill ready/);
    }
  });
});

describe('check-config refuses what run refuses', () => {
  it('a PostgreSQL server that does not answer: check-config warns and passes the file, run exits 1 saying so; the password is never shown', async () => {
    const where = dir('postgres');
    // Port 9 (discard) on loopback: nothing listens there.
    const file = config(where, 'c', 'postgres://rebill:s3cretpw@127.0.0.1:9/rebill');
    const check = await rebill(['check-config', '--config', file]);
    expect(check.code).toBe(0);
    expect(check.stderr).toContain(`${file}: warning: database postgres://rebill:[redacted]@127.0.0.1:9/rebill not reachable (connect ECONNREFUSED 127.0.0.1:9); plans and gateways in use there were not checked\n`);
    const run = await rebill(['run', '--config', file]);
    expect(run.code).toBe(1);
    expect(run.stderr).toBe('cannot use database postgres://rebill:[redacted]@127.0.0.1:9/rebill: connect ECONNREFUSED 127.0.0.1:9\n');
    for (const out of [check.stdout, check.stderr, run.stdout, run.stderr]) expect(out).not.toContain('s3cretpw');
  });

  it('a gateway removed or renamed while live subscriptions use it: run and check-config exit 78 at the gateways: line, with the count', async () => {
    const where = dir('gateway');
    const url = await seeded(where, 3, ['gw']);
    const renamed = config(where, 'renamed', url, { gateways: ['gw2'] });
    const expected = `${renamed}:3:1: gateways: gateway "gw" was removed or renamed but 3 live subscriptions still use it (their attempts could never be sent); put it back under that name\n1 problem in ${renamed}\n`;
    for (const command of ['check-config', 'run']) {
      const run = await rebill([command, '--config', renamed]);
      expect({ code: run.code, stderr: run.stderr }, command).toEqual({ code: 78, stderr: expected });
    }
  });

  it('a plan removed while live subscriptions use it: exit 78 at the plans: line, with the count', async () => {
    const where = dir('plan');
    const url = await seeded(where, 2);
    const removed = config(where, 'removed', url, { plans: ['p2'] });
    const expected = `${removed}:5:1: plans: plan "p1" was removed but 2 live subscriptions still use it; put it back or cancel them first\n1 problem in ${removed}\n`;
    for (const command of ['check-config', 'run']) {
      const run = await rebill([command, '--config', removed]);
      expect({ code: run.code, stderr: run.stderr }, command).toEqual({ code: 78, stderr: expected });
    }
  });

  it('check-config on a database that does not exist yet neither creates it nor complains', async () => {
    const where = dir('absent');
    const path = join(where, 'data', 'rebill.db');
    const run = await rebill(['check-config', '--config', config(where, 'c', `sqlite:${path}`)]);
    expect(run.code, run.stderr).toBe(0);
    const { existsSync } = await import('node:fs');
    expect(existsSync(join(where, 'data'))).toBe(false);
  });
});
