/**
 * Issue 7, engine items: the clock guard (item 1), skipped cycles made visible
 * (item 6), failing sweeps backing off (item 9), open attempts claimed before
 * new collections (item 10) and the operator's log lines (item 19). The loop
 * runs on the real systemClock with Date, timers and performance.now()
 * replaced by @sinonjs/fake-timers: `tickAsync` moves wall and monotonic time
 * together, `setSystemTime` steps the wall clock alone (a clock jump).
 */
import FakeTimers from '@sinonjs/fake-timers';
import { sql } from 'kysely';
import type { DestinationStream } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { systemClock, VirtualClock } from '../../src/clock.js';
import type { Engine, EngineOptions } from '../../src/engine/index.js';
import { createLogger } from '../../src/logger.js';
import { claimDue, getSubscription, nextWorkAt } from '../../src/store/index.js';
import { RebillError } from '../../src/errors.js';
import { addSubscription, attemptsOf, cyclesOf, daemonEngine, eventsOf, FAKED_TIMERS, stopUnderFakeTimers, ms, openTempDb, policy, type TempDb } from '../support/engine-harness.js';

const DAY = 86_400_000;
type InstalledClock = ReturnType<typeof FakeTimers.install>;

/** A pino destination that keeps every record. */
function capture(): DestinationStream & { records(): Array<Record<string, unknown>>; text(): string } {
  const lines: string[] = [];
  return {
    write(line: string) {
      lines.push(line);
    },
    records: () => lines.flatMap((chunk) => chunk.split('\n').filter(Boolean)).map((l) => JSON.parse(l) as Record<string, unknown>),
    text: () => lines.join(''),
  };
}

let t: TempDb;
let clock: InstalledClock | null = null;
let engine: Engine | null = null;

beforeEach(async () => {
  t = await openTempDb();
});

afterEach(async () => {
  try {
    if (engine) await stopEngine(engine);
  } finally {
    engine = null;
    clock?.uninstall();
    clock = null;
    await t.close();
  }
});

const stopEngine = (e: Engine, drainMs = 0) => stopUnderFakeTimers(e, clock, drainMs);

function startDaemon(startIso: string, out: DestinationStream, options: Partial<EngineOptions> = {}): Engine {
  clock ??= FakeTimers.install({ now: ms(startIso), toFake: [...FAKED_TIMERS] });
  engine = daemonEngine(t.db, systemClock, { maxSleepMs: 60_000, ...options }, { logger: createLogger({ destination: out, level: 'info' }) });
  engine.start();
  return engine;
}

/** `n` seconds of the daemon's per-second cron sweep (`scheduler.sweep: '* * * * * *'` kicks the loop). */
async function cronSeconds(e: Engine, n: number): Promise<void> {
  for (let i = 0; i < n; i++) {
    e.kick();
    await clock!.tickAsync(1_000);
  }
}

const msgs = (out: ReturnType<typeof capture>, pattern: RegExp) => out.records().filter((r) => pattern.test(String(r.msg)));

describe('clock guard (item 1)', () => {
  it('a +400-day wall-clock step starts nothing and fails health until the clock is back; then the schedule is intact', async () => {
    const out = capture();
    const e = startDaemon('2025-01-01T00:00:00Z', out);
    await addSubscription(t.db, Date.now(), { id: 'jump', paymentToken: 'tok_ok', startDate: '2025-01-01' }, { sendOnHour: 0 });
    e.kick();
    await clock!.tickAsync(2_000);
    expect((await cyclesOf(t.db, 'jump')).map((c) => [c.cycle, c.status])).toEqual([[1, 'paid']]);
    expect(e.health()).toMatchObject({ ok: true, clockGuard: { ok: true, reason: null, since: null } });

    // The wall clock steps 400 days ahead for 6 s (monotonic time moves 6 s).
    const trueNow = () => ms('2025-01-01T00:00:00Z') + performance.now();
    clock!.setSystemTime(trueNow() + 400 * DAY);
    await cronSeconds(e, 6);
    const held = e.health();
    expect(held.ok).toBe(false);
    expect(held.clockGuard).toMatchObject({ ok: false, reason: expect.stringMatching(/jumped ahead by 3456\d{4} s/) });
    expect(held.clockGuard.since! - trueNow()).toBeLessThan(10_000);
    expect(e.stats().clockGuard.ok).toBe(false);
    expect(msgs(out, /^clock jump/)).toHaveLength(1);
    expect(msgs(out, /^clock jump/)[0]).toMatchObject({ level: 50 });

    // Back in line with elapsed time: collecting again, nothing skipped, the next charge a month away.
    clock!.setSystemTime(trueNow());
    await cronSeconds(e, 3);
    expect(e.health().ok).toBe(true);
    expect(msgs(out, /^clock back in line/)).toHaveLength(1);
    expect((await cyclesOf(t.db, 'jump')).map((c) => [c.cycle, c.status])).toEqual([[1, 'paid']]);
    expect(await eventsOf(t.db, 'jump', 'cycle.skipped')).toEqual([]);
    const sub = await getSubscription(t.db, 'jump');
    expect({ next: sub.nextAction, cycle: sub.nextCycle, at: new Date(sub.actionAt!).toISOString() }).toEqual({ next: 'collect', cycle: 2, at: '2025-02-01T00:00:00.000Z' });
    expect(new Date(sub.updatedAt).getUTCFullYear()).toBe(2025);
    expect((await attemptsOf(t.db, 'jump')).map((a) => a.key)).toEqual(['jump:1:1']);
  });

  it('a backward step holds too, the loop keeps sleeping (no spin) and stop returns at once while it holds', async () => {
    const out = capture();
    const e = startDaemon('2025-03-01T00:00:00Z', out);
    await addSubscription(t.db, Date.now(), { id: 'back', paymentToken: 'tok_ok', startDate: '2025-03-02' }, { sendOnHour: 0 });
    await clock!.tickAsync(1_000);
    clock!.setSystemTime(Date.now() - 30 * DAY);
    await cronSeconds(e, 2);
    expect(e.health().clockGuard).toMatchObject({ ok: false, reason: expect.stringMatching(/went back/) });
    // While it holds the loop re-checks about once a second, with no database work: a busy loop would
    // never return control to tickAsync, and a multi-day sleep would not notice the clock coming back.
    const sweeps = e.stats().sweeps;
    await clock!.tickAsync(ms('2025-03-02T00:00:05Z') - ms('2025-03-01T00:00:03Z'));
    expect(e.stats().sweeps).toBe(sweeps);
    expect(await attemptsOf(t.db, 'back')).toEqual([]);
    const report = await stopEngine(e);
    engine = null;
    expect(report).toMatchObject({ drained: true, attemptsStarted: 0, leftForReconciliation: 0 });
  });

  it('a start whose clock is earlier than the latest stored change refuses, naming both instants', async () => {
    const at = ms('2025-06-01T12:00:00Z');
    await addSubscription(t.db, at, { id: 'later', paymentToken: 'tok_ok', startDate: '2025-07-01' });
    const early = daemonEngine(t.db, new VirtualClock(at - DAY));
    const refused = await early.checkStartClock().then(
      () => null,
      (err: unknown) => err,
    );
    expect(refused).toBeInstanceOf(RebillError);
    expect(refused).toMatchObject({ code: 'CLOCK_BEHIND_STORE', message: expect.stringContaining('2025-05-31T12:00:00Z') });
    expect((refused as Error).message).toContain('2025-06-01T12:00:00Z');
    await expect(daemonEngine(t.db, new VirtualClock(at)).checkStartClock()).resolves.toBeUndefined();
  });
});

describe('skipped cycles are visible (item 6)', () => {
  it('catch-up after downtime and cycles due during a retry write cycle.skipped events with a reason, and one log line each', async () => {
    const out = capture();
    const vclock = new VirtualClock(ms('2025-01-01T00:00:00Z'));
    const e = daemonEngine(t.db, vclock, { policy: policy('keep') }, { logger: createLogger({ destination: out, level: 'info' }) });
    await addSubscription(t.db, vclock.now(), { id: 'down', paymentToken: 'tok_ok', startDate: '2025-01-10' }, { sendOnHour: 0 });
    await addSubscription(t.db, vclock.now(), { id: 'retry', paymentToken: 'tok_insufficient', startDate: '2025-01-01' }, { sendOnHour: 0, every: { unit: 'day', count: 1 } });
    // The daemon is "down" until Apr 20: cycles 1-3 of `down` (Jan 10, Feb 10, Mar 10) are caught up, 4 (Apr 10) collected.
    await e.sweepUntilIdle();
    vclock.set(ms('2025-04-20T00:00:00Z'));
    await e.sweepUntilIdle();
    const down = await eventsOf(t.db, 'down', 'cycle.skipped');
    expect(down.map((ev) => [ev.cycle, ev.data])).toEqual([
      [1, { reason: 'catch_up', dueAt: '2025-01-10T00:00:00Z' }],
      [2, { reason: 'catch_up', dueAt: '2025-02-10T00:00:00Z' }],
      [3, { reason: 'catch_up', dueAt: '2025-03-10T00:00:00Z' }],
    ]);
    expect((await cyclesOf(t.db, 'down')).map((c) => [c.cycle, c.status])).toEqual([
      [1, 'skipped'],
      [2, 'skipped'],
      [3, 'skipped'],
      [4, 'paid'],
    ]);
    const downLine = msgs(out, /skipped/).filter((r) => r.subscriptionId === 'down');
    expect(downLine).toEqual([
      expect.objectContaining({ level: 40, msg: 'cycles 1-3 skipped (catch_up)', cycles: '1-3', count: 3, reason: 'catch_up', firstDueAt: '2025-01-10T00:00:00Z', lastDueAt: '2025-03-10T00:00:00Z' }),
    ]);

    // Every skipped cycle row has its event.
    for (const id of ['down', 'retry']) {
      const skippedRows = (await cyclesOf(t.db, id)).filter((c) => c.status === 'skipped').map((c) => c.cycle);
      expect((await eventsOf(t.db, id, 'cycle.skipped')).map((ev) => ev.cycle)).toEqual(skippedRows);
    }
    // `retry` (daily, always declined, onFinalFailure keep): attempt 2 on Apr 20, attempt 3 on Apr 23;
    // the daily cycles that fell due meanwhile are skipped when cycle 1 gives up.
    while ((await nextWorkAt(t.db))! <= ms('2025-04-23T12:00:00Z')) {
      vclock.set(Math.max((await nextWorkAt(t.db))!, vclock.now() + 1));
      await e.sweepUntilIdle();
    }
    const retry = await eventsOf(t.db, 'retry', 'cycle.skipped');
    const afterRetry = retry.filter((ev) => ev.data.reason === 'due_during_retry');
    expect(afterRetry.map((ev) => ev.cycle)).toEqual(Array.from({ length: 111 }, (_, i) => i + 2));
    expect(msgs(out, /skipped \(due_during_retry\)$/).filter((r) => r.subscriptionId === 'retry')).toEqual([
      expect.objectContaining({ cycles: '2-112', count: 111, reason: 'due_during_retry', firstDueAt: '2025-01-02T00:00:00Z', lastDueAt: '2025-04-22T00:00:00Z' }),
    ]);
  });
});

describe('failing sweeps back off (item 9)', () => {
  it('a full database (max_page_count) backs off and logs the error once, not per batch; when space returns every charge is made once', async () => {
    const out = capture();
    clock = FakeTimers.install({ now: ms('2025-01-01T00:00:00Z'), toFake: [...FAKED_TIMERS] });
    for (let i = 0; i < 400; i++) await addSubscription(t.db, Date.now(), { id: `full-${String(i).padStart(3, '0')}`, paymentToken: 'tok_ok', startDate: '2025-01-01' }, { sendOnHour: 0 });
    // The engine's own connection (the harness shares it) can grow the file no further: SQLITE_FULL.
    const pages = Number((await sql<{ page_count: number }>`pragma page_count`.execute(t.db)).rows[0]!.page_count);
    await sql.raw(`pragma max_page_count = ${pages}`).execute(t.db);
    const e = startDaemon('2025-01-01T00:00:00Z', out, { queueBound: 20, leaseMs: 60_000 });
    await clock.tickAsync(20_000);
    const failures = msgs(out, /^sweep failed/);
    expect(failures.length).toBeGreaterThanOrEqual(1);
    expect(failures.length).toBeLessThanOrEqual(2);
    expect(String((failures[0]!.err as { message?: string }).message)).toMatch(/full/i);
    expect(e.health()).toMatchObject({ ok: false, sweep: { ok: false } });
    expect(e.health().sweep.failures).toBeLessThan(12);
    expect(await t.db.selectFrom('attempts').select('idempotency_key').execute()).toEqual([]);

    // Space returns: within the backoff cap plus a lease, everything is charged exactly once.
    await sql.raw('pragma max_page_count = 1073741823').execute(t.db);
    await clock.tickAsync(3 * 60_000);
    expect(e.health()).toMatchObject({ ok: true, sweep: { ok: true, failures: 0 } });
    expect(msgs(out, /^sweeps work again/)).toHaveLength(1);
    const attempts = await t.db.selectFrom('attempts').select(['idempotency_key', 'state']).execute();
    expect(attempts).toHaveLength(400);
    expect(attempts.every((a) => a.state === 'captured' && a.idempotency_key.endsWith(':1:1'))).toBe(true);
  });
});

describe('open attempts first (item 10)', () => {
  it('claimDue takes reconcile/poll rows before new collections that are due earlier', async () => {
    const now = ms('2025-02-01T00:00:00Z');
    // Fresh: cycle 1 due Jan 15, waiting since then (a backlog).
    for (let i = 0; i < 6; i++) await addSubscription(t.db, now, { id: `fresh-${i}`, paymentToken: 'tok_ok', startDate: '2025-01-15' }, { sendOnHour: 0 });
    for (let i = 0; i < 3; i++) await addSubscription(t.db, now, { id: `open-${i}`, paymentToken: 'tok_ok', startDate: '2025-01-01' }, { sendOnHour: 0 });
    // The open ones were left in flight by a daemon that stopped: due now, later than the fresh ones.
    await t.db
      .updateTable('subscriptions')
      .set({ next_action: 'reconcile', action_at: '2025-02-01T00:00:00.000Z', work_at: '2025-02-01T00:00:00.000Z' })
      .where('id', 'like', 'open-%')
      .execute();
    const claimed = await claimDue(t.db, 'o/1', now, 4, 60_000);
    expect(claimed.map((s) => s.id)).toEqual(['open-0', 'open-1', 'open-2', 'fresh-0']);
  });
});

describe('operator logs (item 19)', () => {
  it('attempt lines carry amount, currency and the cycle due instant; a sweep that did work logs one summary line; no token', async () => {
    const out = capture();
    const e = startDaemon('2025-01-01T00:00:00Z', out);
    await addSubscription(t.db, Date.now(), { id: 'log-ok', paymentToken: 'tok_ok', startDate: '2025-01-01' }, { sendOnHour: 0 });
    e.kick();
    await clock!.tickAsync(2_000);
    const attempt = msgs(out, /^attempt /).find((r) => r.subscriptionId === 'log-ok');
    expect(attempt).toMatchObject({ amount: '9.99', currency: 'USD', dueAt: '2025-01-01T00:00:00Z', cycle: 1, attempt: 1, outcome: 'captured' });
    const sweeps = msgs(out, /^sweep$/);
    expect(sweeps[0]).toMatchObject({ claimed: 1, started: 1, reconciling: 0, skippedCycles: 0, nextWakeAt: expect.any(String) });
    expect(out.text()).not.toContain('tok_ok');
  });
});
