/**
 * Crash safety end to end (SPEC section 6, DESIGN.md "Intent, call, outcome"):
 * real `rebill run` daemons, a real SQLite file, and `rebill fake-gateway` as
 * the CoolPay gateway over real HTTP on 127.0.0.1. Daemons are SIGKILLed at
 * random moments and restarted; the gateway's ledger and the database must
 * still show exactly one charge per subscription and cycle.
 *
 * The kill schedule comes from a seeded PRNG; the seed is printed, and
 * `CRASH_SEED=<seed> npx vitest run test/e2e/crash.test.ts` replays it
 * (`CRASH_KILLS=<n>` changes the number of kill points, default 24).
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { assertExactlyOnce, countByState, cycleOneAttempts, daemonConfig, READY, startDaemon, withFakeGateway } from './support/daemon.js';
import { cycles, exitWithin, prng, readDb, sleep, spawnRebill, todayUtc, waitFor, writeConfig, type Child } from './support/processes.js';
import { e2eSuite } from './support/suite.js';

const newDir = e2eSuite('crash');

/** A spurious decline can never happen with tok_slow_*: fail at once instead of waiting for a retry days away. */
function assertNoRejection(dbFile: string): void {
  const rejected = cycleOneAttempts(dbFile).filter((a) => a.state === 'rejected');
  if (rejected.length) {
    throw new Error(`attempts rejected although the card always approves: ${rejected.map((a) => `${a.idempotency_key} (${a.decline_code}, sends ${a.sends}, ${a.error ?? ''})`).join('; ')}`);
  }
}

describe('rebill run under SIGKILL (child processes, SQLite, fake CoolPay over HTTP)', () => {
  it('charges each of 200 subscriptions exactly once while the daemon is SIGKILLed at 20+ random moments and restarted', async () => {
    const started = Date.now();
    const seed = process.env.CRASH_SEED !== undefined ? Number(process.env.CRASH_SEED) >>> 0 : Math.floor(Math.random() * 2 ** 32);
    const kills = Math.max(20, Number(process.env.CRASH_KILLS ?? 24));
    console.log(`e2e crash: CRASH_SEED=${seed} (replay with CRASH_SEED=${seed} npx vitest run test/e2e/crash.test.ts)`);
    const random = prng(seed);
    const between = (lo: number, hi: number) => Math.round(lo + random() * (hi - lo));

    const { dir, dbFile, logFile, gateway } = await withFakeGateway(newDir('crash'));
    const ids = Array.from({ length: 200 }, (_, i) => `crash-${String(i).padStart(3, '0')}`);
    const config = daemonConfig(
      dir,
      gateway,
      ids.map((id) => ({ id, token: 'tok_slow_50' })),
      { leaseSeconds: 3, concurrency: 8, ratePerSecond: 200, drainSeconds: 10 },
    );

    /** Attempts some daemon left in_flight/unknown when it died: the next one must reconcile them. */
    const reconcile = new Set<string>();
    let midBatch = 0;
    let duringBoot = 0;
    for (let i = 0; i < kills; i++) {
      const daemon: Child = spawnRebill(['run', '--config', config], { logFile });
      // One kill in five lands while the daemon boots (migrate, seed, recovery); the rest while it runs.
      const boot = random() < 0.2;
      const delay = between(50, 600);
      if (boot) {
        await sleep(delay);
      } else {
        await daemon.waitForStdout(READY, 30_000);
        await sleep(delay);
      }
      if (!daemon.alive()) throw new Error(`daemon ${i + 1} exited by itself: ${JSON.stringify(await daemon.exited)}; stderr:\n${daemon.stderr()}`);
      const wasReady = READY.test(daemon.stdout());
      daemon.kill('SIGKILL');
      expect(await daemon.exited).toEqual({ code: null, signal: 'SIGKILL' });
      if (!wasReady) duringBoot++;
      if (!fs.existsSync(dbFile)) continue;
      // Killed before the first migration finished: no attempts table yet (waitFor retries the read until timeout).
      const rows = await waitFor(() => (readDb(dbFile, (db) => db.prepare("SELECT 1 FROM sqlite_master WHERE name = 'attempts'").get()) ? cycleOneAttempts(dbFile) : []), { timeoutMs: 5_000 });
      const unsettled = rows.filter((a) => a.state === 'in_flight' || a.state === 'unknown');
      for (const a of unsettled) reconcile.add(a.idempotency_key);
      if (unsettled.length) midBatch++;
      assertNoRejection(dbFile);
    }

    // The last daemon runs until every cycle-1 attempt is captured, then stops on SIGTERM.
    const last = await startDaemon(config, logFile);
    await waitFor(
      () => {
        assertNoRejection(dbFile);
        return cycleOneAttempts(dbFile).filter((a) => a.state === 'captured').length === ids.length ? true : undefined;
      },
      {
        timeoutMs: 60_000,
        intervalMs: 100,
        describe: () => {
          return `cycle-1 attempts by state ${JSON.stringify(countByState(cycleOneAttempts(dbFile)))} of ${ids.length}; log ${logFile}`;
        },
      },
    );
    last.kill('SIGTERM');
    const exit = await exitWithin(last, 15_000);
    expect({ code: exit.code, signal: exit.signal }, last.stderr()).toEqual({ code: 0, signal: null });

    await assertExactlyOnce(gateway, dbFile, ids);
    const rows = cycleOneAttempts(dbFile);
    const resent = rows.filter((a) => a.sends > 1).length;
    const secondAttempts = rows.filter((a) => a.attempt > 1).length;
    console.log(
      `e2e crash: seed ${seed}: ${kills} kill points (${duringBoot} before ready, ${midBatch} with attempts in flight); ` +
        `${reconcile.size} attempts reconciled after a kill, ${resent} re-sent with the same key, ${secondAttempts} second attempts; ` +
        `${Math.round((Date.now() - started) / 1000)} s`,
    );
    // The schedule must have exercised recovery, or this test proved nothing.
    expect(midBatch).toBeGreaterThan(0);

    gateway.child.kill('SIGTERM');
    expect((await exitWithin(gateway.child, 10_000)).code).toBe(0);
  }, 180_000);

  it('a restarted daemon reconciles the in-flight attempts of a SIGKILLed one at once, not after leaseSeconds', async () => {
    const { dir, dbFile, logFile, gateway } = await withFakeGateway(newDir('recover'));
    const ids = Array.from({ length: 40 }, (_, i) => `recover-${String(i).padStart(2, '0')}`);
    // A long lease, as in production (default 120 s): waiting it out would take a minute.
    const leaseSeconds = 60;
    const config = daemonConfig(dir, gateway, ids.map((id) => ({ id, token: 'tok_slow_300' })), { leaseSeconds, concurrency: 4, ratePerSecond: 200 });

    const first = await startDaemon(config, logFile);
    await waitFor(() => (cycleOneAttempts(dbFile).filter((a) => a.state === 'captured').length >= 4 ? true : undefined), { timeoutMs: 30_000 });
    first.kill('SIGKILL');
    await first.exited;
    const open = cycleOneAttempts(dbFile).filter((a) => a.state === 'in_flight');
    expect(open.length, 'attempts in flight when the daemon died').toBeGreaterThan(0);

    const killedAt = Date.now();
    const second = await startDaemon(config, logFile);
    await waitFor(() => (cycleOneAttempts(dbFile).filter((a) => a.state === 'captured').length === ids.length ? true : undefined), {
      timeoutMs: 50_000,
      describe: () => `${cycleOneAttempts(dbFile).filter((a) => a.state === 'captured').length} of ${ids.length} captured`,
    });
    const tookMs = Date.now() - killedAt;
    console.log(`e2e crash: ${open.length} in-flight attempts of a killed daemon settled ${tookMs} ms after the restart (lease ${leaseSeconds} s)`);
    // recoverDeadOwners exists so that a dead daemon on this host costs no lease wait.
    expect(tookMs).toBeLessThan(25_000);
    second.kill('SIGTERM');
    expect((await exitWithin(second, 15_000)).code).toBe(0);
    await assertExactlyOnce(gateway, dbFile, ids);
  }, 90_000);

  it('the simulator ledger rides on the group commit: a SIGKILL between the simulated call and its flush loses call and outcome together, and the key is re-sent once', async () => {
    // The built-in simulator keeps its ledger in the daemon's database, written by the same commit
    // as the outcome of the call it answered (not one commit per charge). A daemon killed after the
    // simulated call and before that commit leaves the attempt in_flight with no ledger entry: the
    // next daemon asks the simulator, which says not_found, and sends the same key again. Nothing
    // was recorded as charged, so nothing is charged twice.
    const seed = process.env.CRASH_SEED !== undefined ? Number(process.env.CRASH_SEED) >>> 0 : Math.floor(Math.random() * 2 ** 32);
    console.log(`e2e crash (simulator ledger): CRASH_SEED=${seed}`);
    const random = prng(seed);
    const dir = newDir('ledger');
    const dbFile = path.join(dir, 'rebill.db');
    const logFile = path.join(dir, 'rebill.log');
    const ids = Array.from({ length: 3000 }, (_, i) => `led-${String(i).padStart(4, '0')}`);
    const config = writeConfig(path.join(dir, 'rebill.yaml'), {
      database: { url: `sqlite:${dbFile}` },
      gateways: { sim: { type: 'simulator' } },
      // 1,000 calls a second: a daemon takes about 3 s over the 3,000, so a kill within 40 ms of its first
      // recorded outcome always finds claimed attempts not yet flushed, however loaded the machine (at
      // 100,000 a second a slow poll could see the whole backlog collected before the kill landed).
      scheduler: { sweep: '* * * * * *', leaseSeconds: 3, concurrency: 4, ratePerSecond: 1_000, claimBatch: 200 },
      logging: { level: 'info' },
      http: { host: '127.0.0.1', port: 0 },
      plans: [{ id: 'monthly', amount: '9.99', currency: 'USD', every: 'MONTH', gateway: 'sim' }],
      subscriptions: ids.map((id) => ({ id, planId: 'monthly', paymentToken: 'tok_ok', startDate: todayUtc() })),
    });
    const ledgerKeys = () => new Set(readDb(dbFile, (db) => (db.prepare("SELECT idempotency_key FROM simulator_ledger WHERE gateway = 'sim'").all() as Array<{ idempotency_key: string }>).map((r) => r.idempotency_key)));

    /** Attempts a kill left in_flight with no ledger entry committed: answered by the simulator and waiting for the group commit, or not sent yet. */
    const lostWithTheirLedger = new Set<string>();
    const captured = () => (fs.existsSync(dbFile) ? cycleOneAttempts(dbFile).filter((a) => a.state === 'captured').length : 0);
    for (let round = 0; round < 8 && captured() < ids.length; round++) {
      // Killed while it collects: once its first batch is recorded, within the next few batches.
      const before = captured();
      const daemon = spawnRebill(['run', '--config', config], { logFile });
      await waitFor(() => (captured() > before || !daemon.alive() ? true : undefined), { timeoutMs: 60_000, intervalMs: 5 });
      await sleep(Math.round(random() * 40));
      daemon.kill('SIGKILL');
      await daemon.exited;
      const keys = ledgerKeys();
      for (const a of cycleOneAttempts(dbFile)) {
        if (a.state === 'in_flight' && !keys.has(a.idempotency_key)) lostWithTheirLedger.add(a.idempotency_key);
        expect(a.state, `${a.idempotency_key}: the card always approves`).not.toBe('rejected');
      }
    }

    const last = await startDaemon(config, logFile);
    await waitFor(() => (captured() === ids.length ? true : undefined), {
      timeoutMs: 60_000,
      describe: () => `cycle-1 attempts by state ${JSON.stringify(countByState(cycleOneAttempts(dbFile)))} of ${ids.length}`,
    });
    last.kill('SIGTERM');
    expect((await exitWithin(last, 15_000)).code).toBe(0);

    // Exactly once: one attempt per subscription (attempt 1, its one key), captured, cycle 1 paid, one charge.succeeded,
    // and the simulator's ledger has that key once, captured.
    const rows = cycleOneAttempts(dbFile);
    expect(rows.map((a) => a.idempotency_key).sort()).toEqual(ids.map((id) => `${id}:1:1`).sort());
    expect(countByState(rows)).toEqual({ captured: ids.length });
    const ledger = readDb(dbFile, (db) => db.prepare("SELECT idempotency_key, entry FROM simulator_ledger WHERE gateway = 'sim'").all() as Array<{ idempotency_key: string; entry: string }>);
    expect(ledger.map((l) => l.idempotency_key).sort()).toEqual(ids.map((id) => `${id}:1:1`).sort());
    expect(ledger.filter((l) => (JSON.parse(l.entry) as { result: { kind: string } }).result.kind !== 'captured')).toEqual([]);
    const succeeded = readDb(dbFile, (db) => db.prepare("SELECT subscription_id, count(*) AS n FROM events WHERE type = 'charge.succeeded' AND cycle = 1 GROUP BY subscription_id").all() as Array<{ subscription_id: string; n: number }>);
    expect(succeeded.filter((e) => e.n !== 1)).toEqual([]);
    expect(succeeded).toHaveLength(ids.length);
    expect(cycles(dbFile).filter((c) => c.cycle === 1 && c.status !== 'paid')).toEqual([]);
    // The kills did leave attempts in flight with no ledger entry, and each of those keys went again: not_found, same key re-sent.
    const resent = rows.filter((a) => lostWithTheirLedger.has(a.idempotency_key));
    console.log(`e2e crash (simulator ledger): seed ${seed}: ${lostWithTheirLedger.size} attempts killed in flight with no ledger entry committed; all re-sent with the same key and captured once`);
    expect(lostWithTheirLedger.size).toBeGreaterThan(0);
    expect(resent.filter((a) => a.sends < 2)).toEqual([]);
  }, 240_000);

  it('a daemon killed during its first migration starts again (no half-applied schema)', async () => {
    const base = newDir('migrate');
    const tables = ['attempts', 'customers', 'cycles', 'events', 'simulator_ledger', 'subscriptions'];
    // Measured on these machines, the initial migration's DDL spans roughly 5..50 ms after the file appears.
    const delays = Array.from({ length: 16 }, (_, i) => i * 4);
    const problems: string[] = [];
    for (let from = 0; from < delays.length; from += 4) {
      await Promise.all(
        delays.slice(from, from + 4).map(async (delay) => {
          const dir = path.join(base, String(delay));
          fs.mkdirSync(dir);
          const dbFile = path.join(dir, 'rebill.db');
          const config = writeConfig(path.join(dir, 'rebill.yaml'), {
            database: { url: `sqlite:${dbFile}` },
            gateways: { sim: { type: 'simulator' } },
            plans: [{ id: 'monthly', amount: '9.99', currency: 'USD', every: 'MONTH' }],
          });
          const victim = spawnRebill(['migrate', '--config', config]);
          while (!fs.existsSync(dbFile) && victim.alive()) await new Promise((resolve) => setImmediate(resolve));
          await sleep(delay);
          victim.kill('SIGKILL');
          await victim.exited;
          const again = spawnRebill(['migrate', '--config', config]);
          const exit = await exitWithin(again, 30_000);
          if (exit.code !== 0) {
            problems.push(`killed ${delay} ms after the file appeared: migrate then exited ${exit.code}: ${again.stderr().trim()}`);
            return;
          }
          const present = readDb(dbFile, (db) => (db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").all() as Array<{ name: string }>).map((r) => r.name));
          const missing = tables.filter((t) => !present.includes(t));
          if (missing.length) problems.push(`killed ${delay} ms after the file appeared: tables missing after re-migrating: ${missing.join(', ')}`);
        }),
      );
    }
    expect(problems).toEqual([]);
  }, 120_000);
});
