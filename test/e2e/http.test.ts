/**
 * Issue 8, items 1 and 2, against a real `rebill run`: the bound address in
 * the ready line, /readyz failing for each thing that breaks in a live
 * process (the database locked by another process, the database file moved
 * away or replaced by a directory, the wall clock stepped) and recovering,
 * and SIGTERM closing the HTTP server before the engine drains.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { clockShift } from './support/clock-shift.js';
import { daemonConfig, READY, withFakeGateway } from './support/daemon.js';
import { exitWithin, logLines, root, spawnRebill, waitFor, type Child } from './support/processes.js';
import { e2eSuite } from './support/suite.js';

const newDir = e2eSuite('http');
const DAY = 86_400_000;

interface Readiness {
  status: number;
  retryAfter: string | null;
  body: { status: string; checks: Record<string, Array<{ status: string; output?: string }>> };
}

async function readyz(address: string): Promise<Readiness> {
  const response = await fetch(`http://${address}/readyz`);
  expect(response.headers.get('content-type')).toMatch(/^application\/health\+json/);
  return { status: response.status, retryAfter: response.headers.get('retry-after'), body: (await response.json()) as Readiness['body'] };
}

const check = (r: Readiness, name: string) => r.body.checks[name]![0]!;

/** Waits until /readyz answers `status` (200 or 503) and returns that answer. */
function readyzBecomes(address: string, status: number, timeoutMs = 30_000): Promise<Readiness> {
  let last: Readiness | undefined;
  return waitFor(
    async () => {
      last = await readyz(address);
      return last.status === status ? last : undefined;
    },
    { timeoutMs, intervalMs: 200, describe: () => `last /readyz: ${JSON.stringify(last)}` },
  );
}

async function startDaemon(config: string, logFile: string, env: Record<string, string> = {}): Promise<{ daemon: Child; address: string }> {
  const daemon = spawnRebill(['run', '--config', config], { logFile, env });
  await daemon.waitForStdout(READY, 30_000);
  const ready = logLines(daemon.stdout()).find((l) => l.msg === 'rebill ready')!;
  expect(ready.http).toMatch(/^127\.0\.0\.1:\d+$/);
  return { daemon, address: String(ready.http) };
}

/** Another process holding `BEGIN EXCLUSIVE` on `dbFile` until release() (closing its stdin). */
async function holdExclusiveLock(dbFile: string): Promise<{ release(): Promise<void> }> {
  const script = `
    const Database = require('better-sqlite3');
    const db = new Database(${JSON.stringify(dbFile)});
    db.exec('BEGIN EXCLUSIVE');
    process.stdout.write('locked\\n');
    process.stdin.on('end', () => { db.exec('ROLLBACK'); db.close(); process.exit(0); });
    process.stdin.resume();`;
  const child: ChildProcess = spawn(process.execPath, ['-e', script], { cwd: root, stdio: ['pipe', 'pipe', 'inherit'] });
  await new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', (chunk: Buffer) => chunk.toString().includes('locked') && resolve());
    child.once('exit', (code) => reject(new Error(`lock holder exited with ${code}`)));
  });
  return {
    release: () =>
      new Promise<void>((resolve) => {
        child.once('exit', () => resolve());
        child.stdin!.end();
      }),
  };
}

describe('rebill run: /healthz and /readyz over HTTP', () => {
  it('readiness fails while another process holds the database lock or the file is moved away or replaced by a directory, and recovers', async () => {
    const { dir, dbFile, logFile, gateway } = await withFakeGateway(newDir('db'));
    const config = daemonConfig(dir, gateway, [{ id: 'db-a', token: 'tok_ok' }], {});
    const { daemon, address } = await startDaemon(config, logFile);

    const healthy = await readyzBecomes(address, 200);
    expect(healthy.body.status).toBe('pass');
    expect(check(healthy, 'database:responseTime').status).toBe('pass');
    expect(await (await fetch(`http://${address}/healthz`)).json()).toEqual({ status: 'pass' });

    // Locked: in WAL mode reads still work, but no attempt could be recorded.
    const lock = await holdExclusiveLock(dbFile);
    const locked = await readyzBecomes(address, 503);
    expect(locked.retryAfter).toBe('5');
    expect(check(locked, 'database:responseTime')).toMatchObject({ status: 'fail', output: expect.stringMatching(/^database is locked by another process/) });
    // Liveness is not readiness: the process is fine.
    expect((await fetch(`http://${address}/healthz`)).status).toBe(200);
    await lock.release();
    await readyzBecomes(address, 200);

    // Moved away (as `rm` would leave it: SQLite keeps writing to a file no one can see), then back.
    const aside = `${dbFile}.aside`;
    fs.renameSync(dbFile, aside);
    const removed = await readyzBecomes(address, 503);
    expect(check(removed, 'database:responseTime')).toMatchObject({ status: 'fail', output: `database file ${dbFile} was removed while the daemon runs` });
    fs.mkdirSync(dbFile);
    const directory = await readyzBecomes(address, 503);
    expect(check(directory, 'database:responseTime').output).toBe(`database file ${dbFile} was replaced by a directory`);
    fs.rmdirSync(dbFile);
    fs.renameSync(aside, dbFile);
    await readyzBecomes(address, 200);

    daemon.kill('SIGTERM');
    expect((await exitWithin(daemon, 30_000)).code).toBe(0);
  }, 120_000);

  it('readiness fails with clock:guard while the wall clock is stepped 400 days ahead, and passes again once it is back', async () => {
    const { dir, logFile, gateway } = await withFakeGateway(newDir('clock'));
    const shift = clockShift(dir);
    const config = daemonConfig(dir, gateway, [], {});
    const { daemon, address } = await startDaemon(config, logFile, shift.env);
    await readyzBecomes(address, 200);

    shift.set(400 * DAY);
    await daemon.waitForStdout(/"msg":"clock jump/, 30_000);
    const held = await readyzBecomes(address, 503);
    expect(check(held, 'clock:guard')).toMatchObject({ status: 'fail', output: expect.stringMatching(/^no attempt starts: wall clock jumped ahead by \d+ s/) });

    shift.set(0);
    await daemon.waitForStdout(/"msg":"clock back in line/, 30_000);
    const back = await readyzBecomes(address, 200);
    expect(check(back, 'clock:guard').status).toBe('pass');

    daemon.kill('SIGTERM');
    expect((await exitWithin(daemon, 30_000)).code).toBe(0);
  }, 120_000);

  it('SIGTERM closes the HTTP server first: new connections are refused while the engine still drains, then exit 0', async () => {
    const { dir, logFile, gateway } = await withFakeGateway(newDir('close'));
    // One slow capture keeps the engine draining for seconds after SIGTERM.
    const config = daemonConfig(dir, gateway, [{ id: 'slow-a', token: 'tok_slow_4000' }], { drainSeconds: 20 }, { timeoutSeconds: 10 });
    const { daemon, address } = await startDaemon(config, logFile);
    await waitFor(async () => ((await gateway.payments('slow-a:1:1')).length > 0 ? true : undefined), { timeoutMs: 20_000 });
    expect((await fetch(`http://${address}/healthz`)).status).toBe(200);

    daemon.kill('SIGTERM');
    await daemon.waitForStdout(/"msg":"stopping: HTTP server closing/, 10_000);
    await waitFor(
      async () => {
        try {
          await fetch(`http://${address}/healthz`);
          return undefined;
        } catch {
          return true; // connection refused: the listener is gone
        }
      },
      { timeoutMs: 10_000, intervalMs: 50 },
    );
    const refusedWhileDraining = !logLines(daemon.stdout()).some((l) => /^stopped/.test(String(l.msg)));
    expect(refusedWhileDraining, 'the engine had already finished draining when the server closed').toBe(true);

    const exit = await exitWithin(daemon, 40_000);
    expect({ code: exit.code, signal: exit.signal }, daemon.stderr()).toEqual({ code: 0, signal: null });
    expect(logLines(daemon.stdout()).at(-1)).toMatchObject({ msg: 'stopped cleanly', drained: true, outcomesRecorded: 1 });
  }, 120_000);

  it('GET /metrics on a live daemon counts its captures and due work, and promtool check metrics reports nothing', async () => {
    const { dir, logFile, gateway } = await withFakeGateway(newDir('metrics'));
    const config = daemonConfig(dir, gateway, [{ id: 'm-a', token: 'tok_ok' }, { id: 'm-b', token: 'tok_insufficient' }], {});
    const { daemon, address } = await startDaemon(config, logFile);
    const text = await waitFor(
      async () => {
        const body = await (await fetch(`http://${address}/metrics`)).text();
        return /rebill_attempts_total\{gateway="cp",outcome="captured"\} 1\b/.test(body) && /outcome="declined"\} 1\b/.test(body) ? body : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 200, describe: () => 'no capture and decline in /metrics' },
    );
    expect(text).toMatch(/^rebill_subscriptions\{status="active"\} 2$/m);
    expect(text).toMatch(/^rebill_scheduling_lag_seconds_count\{gateway="cp"\} 2$/m);
    expect(text).toMatch(/^rebill_http_requests_total\{[^}]*route="\/metrics"[^}]*\} \d+$/m);
    expect(text).toMatch(/^rebill_process_cpu_user_seconds_total /m);
    const promtool = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
    if (promtool.error === undefined) {
      // promtool is installed (CI installs it): it must accept the page and say nothing.
      expect(promtool.status).toBe(0);
      expect(`${promtool.stdout}${promtool.stderr}`).toBe('');
    }
    daemon.kill('SIGTERM');
    expect((await exitWithin(daemon, 30_000)).code).toBe(0);
  });
});
