/**
 * `rebill check-config` as operators and CI run it: a real `node bin/rebill.js`
 * child process (SPEC section 10). bin/ runs dist/, which `npm test` builds first.
 */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { exitWithin, killAll, logLines, spawnRebill } from '../e2e/support/processes.js';
import { root, runCli, type CliRun } from '../support/cli.js';
import { fileTempDir } from '../support/temp.js';

const tmp = fileTempDir('check-config');
/** A gateways: section, placed last so that the lines above keep their numbers. */
const SIM = 'gateways: { sim: { type: simulator } }';

/** Runs the CLI without the caller's REBILL_* variables, which would otherwise override settings. */
/**
 * The CLI with the temp dir as its working directory, so a config without a
 * `database:` section resolves the default ./data/rebill.db there, never to a
 * database an earlier `npm start` left in the repository (check-config reads it).
 */
function rebill(args: string[], env: Record<string, string> = {}, cwd = tmp): Promise<CliRun> {
  return runCli(args, { env, cleanRebillEnv: true, cwd });
}

function file(name: string, lines: string[]): string {
  const path = join(tmp, name);
  writeFileSync(path, `${lines.join('\n')}\n`);
  return path;
}

afterAll(killAll);

describe('rebill check-config', () => {
  it('exits 0 on the example config/rebill.yaml and summarises it', async () => {
    const run = await rebill(['check-config', '--config', 'config/rebill.yaml'], {}, root);
    // The example bills through the simulator (issue 7, SPEC section 7: run and check-config say so).
    expect(run.stderr).toBe('config/rebill.yaml: warning: gateway sim is a simulator: no money moves; plans using it are marked paid without charging anyone\n');
    expect(run.stdout).toBe('config OK: 3 plans, 1 gateways (config/rebill.yaml)\n');
    expect(run.code).toBe(0);
  });

  it('uses REBILL_CONFIG when --config is not given', async () => {
    const path = file('via-env.yaml', ['plans:', '  - { id: p, amount: "1", currency: USD, every: MONTH }', SIM]);
    const run = await rebill(['check-config'], { REBILL_CONFIG: path });
    expect(run.stdout).toBe(`config OK: 1 plans, 1 gateways (${path})\n`);
    // REBILL_CONFIG is not an override: no warning names it.
    expect(run.stderr).not.toMatch(/REBILL_CONFIG/);
    expect(run.code).toBe(0);
  });

  it('exits 78 naming file, line and key path of an unknown key', async () => {
    const path = file('typo.yaml', ['plans:', '  - id: p', '    amount: "1.00"', '    currency: USD', '    every: MONTH', '    sendOnHuor: 3', SIM]);
    const run = await rebill(['check-config', '--config', path]);
    expect(run.code).toBe(78);
    expect(run.stdout).toBe('');
    expect(run.stderr).toBe(`${path}:6:5: plans[0].sendOnHuor: unknown key (did you mean sendOnHour?)\n1 problem in ${path}\n`);
  });

  it('exits 78 listing every problem, one per line, then a count', async () => {
    const path = file('two.yaml', [
      'plans:',
      '  - id: p',
      '    amount: "1.001"',
      '    currency: EUR',
      '    every: MONTH',
      '  - id: q',
      '    amount: "2"',
      '    currency: EUR',
      '    every: { unit: month, count: 0 }',
      SIM,
    ]);
    const run = await rebill(['check-config', '--config', path]);
    expect(run.code).toBe(78);
    expect(run.stderr.split('\n')).toEqual([
      `${path}:3:13: plans[0].amount: "1.001" has 3 decimals; EUR allows 2`,
      `${path}:9:34: plans[1].every.count: expected a whole number >= 1; got 0`,
      `2 problems in ${path}`,
      '',
    ]);
  });

  it('exits 78 with one problem for a file that does not exist', async () => {
    const path = join(tmp, 'missing.yaml');
    const run = await rebill(['check-config', '--config', path]);
    expect(run.code).toBe(78);
    expect(run.stderr).toBe(`${path}: cannot read configuration: file not found\n1 problem in ${path}\n`);
  });

  // Issue 7, item 4 (SPEC section 7): no implicit gateway.
  it('exits 78 naming the plan and its line when no gateway is configured; run refuses the same file', async () => {
    const dir = join(tmp, 'no-gateway');
    mkdirSync(dir, { recursive: true });
    const path = join(dir, 'rebill.yaml');
    writeFileSync(path, [`database: { url: "sqlite:${join(dir, 'rebill.db')}" }`, 'plans:', '  - { id: gold, amount: "9.99", currency: USD, every: MONTH }', ''].join('\n'));
    const check = await rebill(['check-config', '--config', path]);
    expect(check.code).toBe(78);
    expect(check.stderr).toMatch(new RegExp(`^${path.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:3:5: plans\\[0\\]\\.gateway: no gateway to charge through`));
    const run = await rebill(['run', '--config', path]);
    expect(run.code).toBe(78);
    expect(run.stderr).toContain(':3:5: plans[0].gateway: no gateway to charge through');
    expect(existsSync(join(dir, 'rebill.db')), 'nothing started').toBe(false);
  });

  // Issue 7, item 14: a mistyped secret is never echoed.
  it('describes a mistyped apiKey or paymentToken by its kind, never its value', async () => {
    const path = file('secrets.yaml', [
      'gateways:',
      '  cp: { type: coolpay, baseUrl: "http://127.0.0.1:9", apiKey: 12345678 }',
      'plans:',
      '  - { id: p, amount: "1", currency: USD, every: MONTH }',
      'subscriptions:',
      '  - { id: s1, planId: p, paymentToken: 12345, startDate: "2025-01-01" }',
    ]);
    const run = await rebill(['check-config', '--config', path]);
    expect(run.code).toBe(78);
    expect(run.stderr.split('\n')).toEqual([
      `${path}:2:63: gateways.cp.apiKey: expected a string; got a number`,
      `${path}:6:40: subscriptions[0].paymentToken: expected a string; got a number`,
      `2 problems in ${path}`,
      '',
    ]);
    expect(run.stderr + run.stdout).not.toMatch(/12345/);
  });

  // Issue 7, item 15: unknown REBILL_* variables are warned about; both key spellings work.
  it('warns about a misspelt REBILL_ section with a suggestion, accepts both key spellings, exits 0', async () => {
    const path = file('env.yaml', ['plans:', '  - { id: p, amount: "1", currency: USD, every: MONTH }', SIM]);
    const run = await rebill(['check-config', '--config', path], {
      REBILL_DATABSE_URL: 'sqlite:/nowhere.db',
      REBILL_SCHEDULER_LEASE_SECONDS: '200',
      REBILL_SCHEDULER_LEASESECONDS: '200',
    });
    expect(run.code).toBe(0);
    expect(run.stderr.split('\n')).toEqual([
      `${path}: warning: environment variable REBILL_DATABSE_URL is not a rebill setting and is ignored (did you mean REBILL_DATABASE_URL?)`,
      `${path}: warning: gateway sim is a simulator: no money moves; plans using it are marked paid without charging anyone`,
      '',
    ]);
    const bad = await rebill(['check-config', '--config', path], { REBILL_SCHEDULER_LEASESECONDS: '0' });
    expect(bad.code).toBe(78);
    expect(bad.stderr).toContain('$REBILL_SCHEDULER_LEASESECONDS: scheduler.leaseSeconds: expected a whole number >= 1; got 0');
  });

  // Issue 7, items 4 and 15: run logs the same warnings check-config prints.
  it('run logs the simulator and unknown-variable warnings at start', async () => {
    const dir = join(tmp, 'run-warnings');
    mkdirSync(dir, { recursive: true });
    const path = join(dir, 'rebill.yaml');
    writeFileSync(path, [`database: { url: "sqlite:${join(dir, 'rebill.db')}" }`, 'http: { host: 127.0.0.1, port: 0 }', 'plans:', '  - { id: p, amount: "1", currency: USD, every: MONTH }', SIM, ''].join('\n'));
    const daemon = spawnRebill(['run', '--config', path], { env: { REBILL_DATABSE_URL: 'sqlite:/nowhere.db' } });
    try {
      await daemon.waitForStdout(/"msg":"rebill ready"/, 30_000);
    } finally {
      daemon.kill('SIGTERM');
      await exitWithin(daemon, 30_000);
    }
    const warnings = logLines(daemon.stdout()).filter((l) => l.level === 40).map((l) => l.msg);
    expect(warnings).toEqual([
      'environment variable REBILL_DATABSE_URL is not a rebill setting and is ignored (did you mean REBILL_DATABASE_URL?)',
      'gateway sim is a simulator: no money moves; plans using it are marked paid without charging anyone',
    ]);
  }, 60_000);
});
