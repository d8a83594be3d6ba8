/**
 * Graceful shutdown and start-up of `rebill run` as a real child process
 * (SPEC section 10: "migrate, then run the daemon until SIGTERM/SIGINT (drains
 * in-flight work, then exits 0)"; exit 78 for an invalid config), against
 * `rebill fake-gateway` (CoolPay over HTTP on 127.0.0.1) and a SQLite file.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { assertExactlyOnce, countByState, cycleOneAttempts, daemonConfig, READY, startDaemon, withFakeGateway, type SeedSpec } from './support/daemon.js';
import {
  attempts,
  exitWithin,
  logLines,
  readDb,
  sleep,
  spawnRebill,
  subscriptions,
  todayUtc,
  waitFor,
  writeConfig,
  type Child,
  type FakeGatewayProcess,
} from './support/processes.js';
import { e2eSuite } from './support/suite.js';

const newDir = e2eSuite('drain');

function seeds(prefix: string, count: number, token: string): SeedSpec[] {
  return Array.from({ length: count }, (_, i) => ({ id: `${prefix}-${String(i).padStart(2, '0')}`, token }));
}

/** The keys of cycle 1, attempt 1 the gateway has a payment for (in any state): the attempts that were started. */
async function seenByGateway(gateway: FakeGatewayProcess, ids: readonly string[]): Promise<Set<string>> {
  const seen = new Set<string>();
  for (const id of ids) if ((await gateway.payments(`${id}:1:1`)).length) seen.add(`${id}:1:1`);
  return seen;
}

/** SIGTERM, then the exit: code 0 within `withinMs`. Returns how long the drain took. */
async function terminate(daemon: Child, withinMs: number): Promise<number> {
  daemon.kill('SIGTERM');
  const exit = await exitWithin(daemon, withinMs + 15_000);
  expect({ code: exit.code, signal: exit.signal }, daemon.stderr()).toEqual({ code: 0, signal: null });
  expect(exit.ms, `exit ${exit.ms} ms after SIGTERM`).toBeLessThan(withinMs);
  return exit.ms;
}

describe('rebill run: SIGTERM drain (child processes, SQLite, fake CoolPay over HTTP)', () => {
  it('drains attempts in flight on SIGTERM: exits 0 within drainSeconds, every one recorded captured; a restart charges nothing again', async () => {
    const { dir, dbFile, logFile, gateway } = await withFakeGateway(newDir('drain'));
    const subs = seeds('drain', 6, 'tok_slow_1500');
    const ids = subs.map((s) => s.id);
    const drainSeconds = 10;
    const config = daemonConfig(dir, gateway, subs, { leaseSeconds: 5, concurrency: 8, ratePerSecond: 200, drainSeconds }, { timeoutSeconds: 3 });

    const daemon = await startDaemon(config, logFile);
    // In flight: the intent is committed (in_flight in the database) and the gateway is working on it.
    await waitFor(() => (cycleOneAttempts(dbFile).filter((a) => a.state === 'in_flight').length === ids.length ? true : undefined), { timeoutMs: 20_000 });
    await waitFor(async () => ((await seenByGateway(gateway, ids)).size === ids.length ? true : undefined), { timeoutMs: 10_000 });
    expect(await gateway.ledger(), 'nothing captured before SIGTERM').toEqual([]);

    const ms = await terminate(daemon, drainSeconds * 1000);
    const rows = cycleOneAttempts(dbFile);
    expect(countByState(rows)).toEqual({ captured: ids.length });
    expect(subscriptions(dbFile).filter((s) => s.lease_owner !== null), 'leases left behind').toEqual([]);
    const stopped = logLines(daemon.stdout()).find((l) => typeof l.msg === 'string' && l.msg.startsWith('stopped'));
    expect(stopped).toMatchObject({ drained: true, msg: 'stopped cleanly' });
    await assertExactlyOnce(gateway, dbFile, ids);
    console.log(`e2e drain: ${ids.length} attempts in flight drained ${ms} ms after SIGTERM (drainSeconds ${drainSeconds})`);

    // A restart finds nothing due: cycle 2 is a month away, and nothing is left to reconcile.
    const again = await startDaemon(config, logFile);
    await sleep(2_500);
    await terminate(again, drainSeconds * 1000);
    await assertExactlyOnce(gateway, dbFile, ids);
    expect(cycleOneAttempts(dbFile)).toEqual(rows);
  }, 90_000);

  it('with more due work than concurrency: in-flight attempts finish, unstarted claims are given back, and a restart charges each subscription once', async () => {
    const { dir, dbFile, logFile, gateway } = await withFakeGateway(newDir('drain-queued'));
    const subs = seeds('queued', 12, 'tok_slow_1500');
    const ids = subs.map((s) => s.id);
    const drainSeconds = 10;
    const config = daemonConfig(dir, gateway, subs, { leaseSeconds: 5, concurrency: 4, ratePerSecond: 200, drainSeconds }, { timeoutSeconds: 3 });

    const daemon = await startDaemon(config, logFile);
    await waitFor(() => (cycleOneAttempts(dbFile).filter((a) => a.state === 'in_flight').length === ids.length ? true : undefined), { timeoutMs: 20_000 });
    await waitFor(async () => ((await seenByGateway(gateway, ids)).size >= 4 ? true : undefined), { timeoutMs: 10_000 });
    await terminate(daemon, drainSeconds * 1000);

    const started = await seenByGateway(gateway, ids);
    expect(started.size, 'attempts the gateway saw (the concurrency)').toBe(4);
    const rows = cycleOneAttempts(dbFile);
    for (const a of rows) {
      // Started -> drained to its outcome. Never sent -> still an intent, to be settled by the next daemon.
      expect(a.state, a.idempotency_key).toBe(started.has(a.idempotency_key) ? 'captured' : 'in_flight');
    }
    const now = Date.now();
    for (const sub of subscriptions(dbFile)) {
      expect(sub.lease_owner, `${sub.id} lease`).toBeNull();
      if (!started.has(`${sub.id}:1:1`)) {
        // Given back due now, so the next daemon settles it at once rather than after the lease.
        expect(sub.next_action, sub.id).toBe('reconcile');
        expect(Date.parse(sub.action_at!), sub.id).toBeLessThanOrEqual(now);
      }
    }

    const again = await startDaemon(config, logFile);
    await waitFor(() => (cycleOneAttempts(dbFile).every((a) => a.state === 'captured') ? true : undefined), {
      timeoutMs: 30_000,
      describe: () => JSON.stringify(countByState(cycleOneAttempts(dbFile))),
    });
    await terminate(again, drainSeconds * 1000);
    await assertExactlyOnce(gateway, dbFile, ids);
  }, 90_000);

  it('stops waiting after drainSeconds when a gateway call is slower, still exits 0, and the next start settles that attempt without a second charge', async () => {
    const { dir, dbFile, logFile, gateway } = await withFakeGateway(newDir('drain-deadline'));
    const subs = seeds('deadline', 3, 'tok_slow_5000');
    const ids = subs.map((s) => s.id);
    const drainSeconds = 1;
    const config = daemonConfig(dir, gateway, subs, { leaseSeconds: 10, concurrency: 8, ratePerSecond: 200, drainSeconds }, { timeoutSeconds: 8 });

    const daemon = await startDaemon(config, logFile);
    await waitFor(async () => ((await seenByGateway(gateway, ids)).size === ids.length ? true : undefined), { timeoutMs: 20_000 });
    // The calls have about 5 s to go; the daemon may wait 1 s. Allow 2 s more for closing the database and exiting.
    const ms = await terminate(daemon, drainSeconds * 1000 + 2_000);
    const stopped = logLines(daemon.stdout()).find((l) => typeof l.msg === 'string' && l.msg.startsWith('stopped'));
    expect(stopped).toMatchObject({ drained: false });
    console.log(`e2e drain: gave up on 5 s gateway calls ${ms} ms after SIGTERM (drainSeconds ${drainSeconds}); states ${JSON.stringify(countByState(cycleOneAttempts(dbFile)))}`);

    const again = await startDaemon(config, logFile);
    await waitFor(() => (cycleOneAttempts(dbFile).every((a) => a.state === 'captured') ? true : undefined), {
      timeoutMs: 30_000,
      describe: () => JSON.stringify(countByState(cycleOneAttempts(dbFile))),
    });
    await terminate(again, 15_000);
    await assertExactlyOnce(gateway, dbFile, ids);
  }, 90_000);
});

describe('rebill run: start-up', () => {
  it('refuses an invalid config with exit 78, listing every problem with file:line:column and key path, before touching the database', async () => {
    const dir = newDir('invalid');
    const file = path.join(dir, 'rebill.yaml');
    fs.writeFileSync(
      file,
      [
        `database: { url: "sqlite:${path.join(dir, 'rebill.db')}" }`, // 1
        'scheduler:', // 2
        '  concurrency: 0', // 3
        'plans:', // 4
        '  - id: gold', // 5
        '    amount: "9.99"', // 6
        '    currency: USD', // 7
        '    every: { unit: fortnight, count: 1 }', // 8
        '',
      ].join('\n'),
    );
    const daemon = spawnRebill(['run', '--config', file]);
    const exit = await exitWithin(daemon, 30_000);
    expect(exit.code, daemon.stderr()).toBe(78);
    const lines = daemon.stderr().trim().split('\n');
    expect(lines).toContainEqual(expect.stringMatching(new RegExp(`^${escape(file)}:8:\\d+: plans\\[0\\]\\.every\\.unit: expected one of day, week, month, year; got "fortnight"$`)));
    expect(lines).toContainEqual(expect.stringMatching(new RegExp(`^${escape(file)}:3:\\d+: scheduler\\.concurrency: .+`)));
    expect(fs.existsSync(path.join(dir, 'rebill.db')), 'database created for an invalid config').toBe(false);
    expect(daemon.stdout()).not.toMatch(READY);
  }, 60_000);

  it('starts again on an already migrated database (migrate is idempotent) and charges nothing twice', async () => {
    const dir = newDir('restart');
    const dbFile = path.join(dir, 'rebill.db');
    const logFile = path.join(dir, 'rebill.log');
    const config = writeConfig(path.join(dir, 'rebill.yaml'), {
      database: { url: `sqlite:${dbFile}` },
      gateways: { sim: { type: 'simulator' } },
      scheduler: { sweep: '* * * * * *' },
      plans: [{ id: 'monthly', amount: '9.99', currency: 'USD', every: 'MONTH' }],
      subscriptions: [
        { id: 'restart-ok', planId: 'monthly', paymentToken: 'tok_ok', startDate: todayUtc() },
        { id: 'restart-flaky', planId: 'monthly', paymentToken: 'tok_flaky_1', startDate: todayUtc() },
      ],
    });
    const first = await startDaemon(config, logFile);
    await waitFor(() => (attempts(dbFile).length === 2 && attempts(dbFile).every((a) => a.state !== 'in_flight') ? true : undefined), { timeoutMs: 20_000 });
    await terminate(first, 10_000);
    const before = attempts(dbFile);
    expect(before.map((a) => [a.idempotency_key, a.state])).toEqual([
      ['restart-flaky:1:1', 'rejected'],
      ['restart-ok:1:1', 'captured'],
    ]);
    const migrations = () => readDb(dbFile, (db) => db.prepare('SELECT name FROM kysely_migration ORDER BY name').all());

    const applied = migrations();
    for (let run = 0; run < 2; run++) {
      const again = await startDaemon(config, logFile);
      await sleep(1_500);
      await terminate(again, 10_000);
    }
    const migrate = spawnRebill(['migrate', '--config', config]);
    expect((await exitWithin(migrate, 30_000)).code, migrate.stderr()).toBe(0);
    expect(migrate.stdout()).toMatch(/up to date/);
    expect(migrations()).toEqual(applied);
    // The flaky card's retry is a day away and the captured cycle is paid: nothing new was attempted.
    expect(attempts(dbFile)).toEqual(before);
  }, 90_000);
});

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
