/**
 * Issue 7 engine items against real processes: `rebill run` with its wall
 * clock stepped by a `node --import` shim (item 1), and a shutdown with a
 * backlog, then a restart that settles what was left before new charges
 * (item 10). Fake CoolPay over HTTP on 127.0.0.1, SQLite files in temp dirs.
 */
import { describe, expect, it } from 'vitest';
import { clockShift } from './support/clock-shift.js';
import { assertExactlyOnce, countByState, cycleOneAttempts, daemonConfig, READY, withFakeGateway, type SeedSpec } from './support/daemon.js';
import path from 'node:path';
import { attempts, cycles, exitWithin, logLines, readDb, sleep, spawnRebill, subscriptions, waitFor, writeConfig, type Child, type FakeGatewayProcess } from './support/processes.js';
import { e2eSuite } from './support/suite.js';

const newDir = e2eSuite('engine-faults');
const DAY = 86_400_000;

function seeds(prefix: string, count: number, token: string): SeedSpec[] {
  return Array.from({ length: count }, (_, i) => ({ id: `${prefix}-${String(i).padStart(2, '0')}`, token }));
}

async function start(config: string, logFile: string, env: Record<string, string> = {}): Promise<Child> {
  const daemon = spawnRebill(['run', '--config', config], { logFile, env });
  await daemon.waitForStdout(READY, 30_000);
  return daemon;
}

const lines = (daemon: Child, msg: RegExp) => logLines(daemon.stdout()).filter((l) => msg.test(String(l.msg)));

async function seenByGateway(gateway: FakeGatewayProcess, ids: readonly string[]): Promise<Set<string>> {
  const seen = new Set<string>();
  for (const id of ids) if ((await gateway.payments(`${id}:1:1`)).length) seen.add(`${id}:1:1`);
  return seen;
}

const skippedEvents = (dbFile: string) => readDb(dbFile, (db) => db.prepare("SELECT subscription_id, cycle FROM events WHERE type = 'cycle.skipped' ORDER BY id").all());

describe('rebill run: wall-clock steps (item 1)', () => {
  it('+400 days for a few seconds: nothing skipped or charged early, the schedule intact after; SIGTERM drains during a jump; a start behind the stored changes exits 1', async () => {
    const { dir, dbFile, logFile, gateway } = await withFakeGateway(newDir('clock'));
    const shift = clockShift(dir);
    const ids = ['clock-a', 'clock-b'];
    const drainSeconds = 3;
    const config = daemonConfig(dir, gateway, ids.map((id) => ({ id, token: 'tok_ok' })), { leaseSeconds: 5, drainSeconds });

    const daemon = await start(config, logFile, shift.env);
    await waitFor(() => (cycleOneAttempts(dbFile).filter((a) => a.state === 'captured').length === 2 ? true : undefined), { timeoutMs: 20_000 });
    const before = subscriptions(dbFile).map((s) => [s.id, s.next_action, s.next_cycle, s.action_at]);

    shift.set(400 * DAY);
    await daemon.waitForStdout(/"msg":"clock jump/, 70_000);
    await sleep(4_000); // several per-second sweeps with the clock 400 days ahead
    expect(attempts(dbFile).map((a) => a.idempotency_key).sort()).toEqual(['clock-a:1:1', 'clock-b:1:1']);
    expect(skippedEvents(dbFile)).toEqual([]);

    shift.set(0);
    await daemon.waitForStdout(/"msg":"clock back in line/, 20_000);
    await sleep(2_000);
    expect(attempts(dbFile).map((a) => a.idempotency_key).sort()).toEqual(['clock-a:1:1', 'clock-b:1:1']);
    expect(cycles(dbFile).map((c) => [c.subscription_id, c.cycle, c.status])).toEqual([
      ['clock-a', 1, 'paid'],
      ['clock-b', 1, 'paid'],
    ]);
    expect(skippedEvents(dbFile)).toEqual([]);
    // Cycle 2 is still a month away, as before the jump: the pointer did not move.
    expect(subscriptions(dbFile).map((s) => [s.id, s.next_action, s.next_cycle, s.action_at])).toEqual(before);
    expect(lines(daemon, /^clock jump/)).toHaveLength(1);
    expect(lines(daemon, /^clock jump/)[0]).toMatchObject({ level: 50, clockGuard: { ok: false } });

    // A jump again, and SIGTERM while the guard holds: the drain still ends within drainSeconds.
    shift.set(30 * DAY);
    await waitFor(() => (lines(daemon, /^clock jump/).length === 2 ? true : undefined), { timeoutMs: 70_000 });
    daemon.kill('SIGTERM');
    const exit = await exitWithin(daemon, drainSeconds * 1000 + 10_000);
    expect({ code: exit.code, signal: exit.signal }, daemon.stderr()).toEqual({ code: 0, signal: null });
    expect(lines(daemon, /^stopped/).at(-1)).toMatchObject({ drained: true, leftForReconciliation: 0 });

    // A start whose clock reads a day before the latest stored change refuses to collect.
    shift.set(-DAY);
    const behind = spawnRebill(['run', '--config', config], { logFile, env: shift.env });
    const refused = await exitWithin(behind, 30_000);
    expect(refused.code, behind.stderr()).toBe(1);
    const fatal = logLines(behind.stdout()).find((l) => l.level === 60);
    const message = String((fatal?.err as { message?: string } | undefined)?.message);
    expect(message).toMatch(/^refusing to collect: the clock reads \d{4}-\d\d-\d\dT[\d:.]+Z, earlier than the latest change stored in the database \(\d{4}-\d\d-\d\dT[\d:.]+Z\)/);
    expect(behind.stdout()).not.toMatch(READY);

    shift.set(0);
    const again = await start(config, logFile, shift.env);
    again.kill('SIGTERM');
    expect((await exitWithin(again, 20_000)).code).toBe(0);
    await assertExactlyOnce(gateway, dbFile, ids);
  }, 240_000);
});

describe('rebill run: shutdown with a backlog (item 10)', () => {
  it('reports the intents it never sent, and the restart claims them before new collections that were due earlier', async () => {
    const { dir, dbFile, logFile, gateway } = await withFakeGateway(newDir('backlog'));
    const old = seeds('old', 10, 'tok_slow_1500');
    const oldIds = old.map((s) => s.id);
    const scheduler = { leaseSeconds: 5, concurrency: 2, claimBatch: 10, ratePerSecond: 200, drainSeconds: 10 };
    const config = daemonConfig(dir, gateway, old, scheduler, { timeoutSeconds: 3 });

    const daemon = await start(config, logFile);
    await waitFor(() => (cycleOneAttempts(dbFile).filter((a) => a.state === 'in_flight').length === oldIds.length ? true : undefined), { timeoutMs: 20_000 });
    await waitFor(async () => ((await seenByGateway(gateway, oldIds)).size >= 2 ? true : undefined), { timeoutMs: 10_000 });
    daemon.kill('SIGTERM');
    const exit = await exitWithin(daemon, 30_000);
    expect(exit.code, daemon.stderr()).toBe(0);
    const sent = (await seenByGateway(gateway, oldIds)).size;
    const unsent = oldIds.length - sent;
    expect(unsent).toBeGreaterThan(0);
    const stopped = lines(daemon, /^stopped/).at(-1);
    // Before: drained:true although intents were committed and never sent.
    expect(stopped).toMatchObject({
      drained: false,
      attemptsStarted: oldIds.length,
      unsent,
      abandonedInFlight: 0,
      leftForReconciliation: unsent,
      msg: `stopped; ${unsent} attempts left for reconciliation on the next start`,
    });
    expect(countByState(cycleOneAttempts(dbFile))).toEqual({ captured: sent, in_flight: unsent });

    // Ten new subscriptions whose cycle 1 has been due since midnight: older work than the left-overs.
    const fresh = seeds('new', 10, 'tok_ok');
    const all = [...old, ...fresh];
    daemonConfig(dir, gateway, all, scheduler, { timeoutSeconds: 3 });
    const again = await start(config, logFile);
    await waitFor(() => (lines(again, /^sweep$/).length ? true : undefined), { timeoutMs: 20_000 });
    expect(lines(again, /^sweep$/)[0]).toMatchObject({ claimed: 10, reconciling: unsent, started: 10 - unsent });
    await waitFor(() => (cycleOneAttempts(dbFile).length === all.length && cycleOneAttempts(dbFile).every((a) => a.state === 'captured') ? true : undefined), {
      timeoutMs: 60_000,
      describe: () => JSON.stringify(countByState(cycleOneAttempts(dbFile))),
    });
    again.kill('SIGTERM');
    expect((await exitWithin(again, 30_000)).code).toBe(0);
    await assertExactlyOnce(gateway, dbFile, all.map((s) => s.id));
  }, 180_000);
});

describe('rebill run: skipped cycles are visible (item 6)', () => {
  it('a seed whose start date is years in the past logs one line with the skipped cycle range and writes a cycle.skipped event per cycle', async () => {
    const dir = newDir('skipped');
    const dbFile = path.join(dir, 'rebill.db');
    const config = writeConfig(path.join(dir, 'rebill.yaml'), {
      database: { url: `sqlite:${dbFile}` },
      gateways: { sim: { type: 'simulator' } },
      scheduler: { sweep: '* * * * * *' },
      plans: [{ id: 'weekly', amount: '5.00', currency: 'EUR', every: 'WEEK', gateway: 'sim' }],
      // 2020-01-06 is a Monday: every Monday since is a weekly cycle; the current one is collected.
      subscriptions: [{ id: 'old-start', planId: 'weekly', paymentToken: 'tok_ok', startDate: '2020-01-06' }],
    });
    const daemon = await start(config, path.join(dir, 'rebill.log'));
    await waitFor(() => (attempts(dbFile).some((a) => a.state === 'captured') ? true : undefined), { timeoutMs: 20_000 });
    daemon.kill('SIGTERM');
    expect((await exitWithin(daemon, 20_000)).code).toBe(0);
    const skippedRows = cycles(dbFile).filter((c) => c.status === 'skipped');
    expect(skippedRows.length).toBeGreaterThan(250);
    const events = skippedEvents(dbFile) as Array<{ subscription_id: string; cycle: number }>;
    expect(events.map((e) => e.cycle)).toEqual(skippedRows.map((c) => c.cycle));
    const logged = lines(daemon, /skipped \(past_start\)$/);
    expect(logged).toEqual([
      expect.objectContaining({ subscriptionId: 'old-start', reason: 'past_start', cycles: `1-${skippedRows.length}`, count: skippedRows.length, firstDueAt: '2020-01-06T00:00:00Z' }),
    ]);
  }, 60_000);
});
