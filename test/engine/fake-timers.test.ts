/**
 * The daemon's own wake-up loop (`engine.start()`) on the real `systemClock`,
 * with Date and the timer functions replaced by @sinonjs/fake-timers: the
 * loop arms a (fake) timer for the earliest due instant, and `tickAsync`
 * moves simulated time through months of billing. The simulator gateway
 * keeps its ledger in the same SQLite file, as under `rebill run`.
 *
 * setImmediate stays real: fake-timers yields to it between timers, and
 * better-sqlite3 + kysely settle entirely in microtasks, so every step the
 * engine takes after a timer fires is finished before time moves on.
 */
import FakeTimers from '@sinonjs/fake-timers';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { systemClock } from '../../src/clock.js';
import { cancel, pause, resume, type CollectionPolicy } from '../../src/domain/index.js';
import { daemonGateways, type Engine, type EngineOptions } from '../../src/engine/index.js';
import type { Gateway } from '../../src/gateways/index.js';
import { getSubscription, updateSubscription } from '../../src/store/index.js';
import {
  FAKED_TIMERS,
  stopUnderFakeTimers,
  addSubscription,
  attemptsOf,
  cyclesOf,
  daemonEngine,
  eventsOf,
  iso,
  ledgerOf,
  ms,
  openTempDb,
  policy,
  type TempDb,
} from '../support/engine-harness.js';

const DAY = 86_400_000;
type InstalledClock = ReturnType<typeof FakeTimers.install>;


let t: TempDb;
let clock: InstalledClock | null = null;
let engine: Engine | null = null;

beforeEach(async () => {
  t = await openTempDb();
});

/** engine.stop() under fake timers: its drain timeout is a fake timer, so time is moved until it resolves. */
const stopEngine = (e: Engine, drainMs = 0) => stopUnderFakeTimers(e, clock, drainMs);

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

/** Replaces Date and the timer functions, starting at `startIso` (once per test). */
function installClock(startIso: string): InstalledClock {
  clock ??= FakeTimers.install({ now: ms(startIso), toFake: [...FAKED_TIMERS] });
  return clock;
}

/** Installs fake timers at `startIso` (unless already installed) and starts the engine's wake-up loop on the real systemClock. */
function startDaemon(
  startIso: string,
  options: Partial<EngineOptions> & { policy?: CollectionPolicy } = {},
  extra: Parameters<typeof daemonEngine>[3] = {},
): Engine {
  installClock(startIso);
  // A long cap on sleeps: the loop must wake because it armed a timer for the due instant, not by polling.
  engine = daemonEngine(t.db, systemClock, { maxSleepMs: 60 * DAY, ...options }, extra);
  engine.start();
  return engine;
}

/** Moves simulated time to `target`, firing every timer on the way and letting the engine finish each step. */
async function advanceTo(target: string): Promise<void> {
  const delta = ms(target) - Date.now();
  if (delta < 0) throw new Error(`cannot go back to ${target} from ${iso(Date.now())}`);
  await clock!.tickAsync(delta);
}

/** An operator/API action at the current simulated instant, then a kick (as the HTTP layer does). */
async function act(id: string, change: Parameters<typeof updateSubscription>[3]): Promise<void> {
  await updateSubscription(t.db, id, Date.now(), change);
  engine!.kick();
}

async function create(id: string, paymentToken: string, startDate: string, extra: { endDate?: string } = {}, plan: Parameters<typeof addSubscription>[3] = {}) {
  await addSubscription(t.db, Date.now(), { id, paymentToken, startDate, ...extra }, plan);
  engine?.kick();
}

/** `at` minus `due`, for "started within a second of the due instant". */
const lag = (at: number, due: string) => at - ms(due);

describe('a year of monthly billing on the real loop', () => {
  it('Jan 31 monthly at 10:00 captures exactly 12 times, on the clamped month ends, within a second of each due instant', async () => {
    const due = [
      '2025-01-31', '2025-02-28', '2025-03-31', '2025-04-30', '2025-05-31', '2025-06-30',
      '2025-07-31', '2025-08-31', '2025-09-30', '2025-10-31', '2025-11-30', '2025-12-31',
    ].map((d) => `${d}T10:00:00.000Z`);
    startDaemon('2025-01-01T00:00:00Z');
    await create('jan31', 'tok_ok', '2025-01-31', {}, { sendOnHour: 10 });

    await advanceTo('2026-01-01T00:00:00Z');

    const captures = await eventsOf(t.db, 'jan31', 'charge.succeeded');
    expect(captures.map((e) => e.cycle)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
    captures.forEach((e, i) => {
      expect(lag(e.atMs, due[i]!), `cycle ${i + 1} captured at ${e.at}`).toBeGreaterThanOrEqual(0);
      expect(lag(e.atMs, due[i]!), `cycle ${i + 1} captured at ${e.at}`).toBeLessThan(1000);
      expect(e.data).toMatchObject({ amount: '9.99', currency: 'USD', status: 'captured' });
    });

    const attempts = await attemptsOf(t.db, 'jan31');
    expect(attempts).toHaveLength(12);
    expect(attempts.every((a) => a.state === 'captured' && a.attempt === 1 && a.sends === 1)).toBe(true);
    attempts.forEach((a, i) => expect(lag(a.createdAt, due[i]!)).toBeLessThan(1000));
    expect(attempts.map((a) => a.key)).toEqual(due.map((_, i) => `jan31:${i + 1}:1`));

    const cycles = await cyclesOf(t.db, 'jan31');
    expect(cycles.map((c) => [c.cycle, c.dueAt, c.status])).toEqual(due.map((d, i) => [i + 1, d, 'paid']));

    // The gateway saw each key once and captured it once.
    const ledger = await ledgerOf(t.db, 'jan31');
    expect(ledger.map((l) => l.result)).toEqual(Array(12).fill('captured'));

    const sub = await getSubscription(t.db, 'jan31');
    expect(sub).toMatchObject({ status: 'active', completedCycles: 12, nextCycle: 13, nextAction: 'collect', actionAt: ms('2026-01-31T10:00:00Z') });
    // Timer-driven, not polling: a handful of sweeps per cycle (the 24.8-day setTimeout cap adds a re-arm on long months).
    expect(engine!.stats().sweeps).toBeLessThan(100);
  });
});

describe('simulator token paths', () => {
  it('tok_ok: one attempt, captured at the due instant', async () => {
    startDaemon('2025-01-01T00:00:00Z');
    await create('ok', 'tok_ok', '2025-01-15');
    await advanceTo('2025-01-16T00:00:00Z');
    const attempts = await attemptsOf(t.db, 'ok');
    expect(attempts.map((a) => [a.key, a.state])).toEqual([['ok:1:1', 'captured']]);
    expect(lag(attempts[0]!.createdAt, '2025-01-15T00:00:00Z')).toBeLessThan(1000);
    expect((await eventsOf(t.db, 'ok')).map((e) => e.type)).toEqual(['subscription.created', 'charge.succeeded']);
  });

  it('tok_insufficient: attempts at due, +P1D and +P1D+P3D, then payment_failed and terminated with paymentCancel', async () => {
    startDaemon('2025-01-01T00:00:00Z');
    await create('poor', 'tok_insufficient', '2025-01-15');
    await advanceTo('2025-03-01T00:00:00Z');

    const attempts = await attemptsOf(t.db, 'poor');
    expect(attempts.map((a) => [a.cycle, a.attempt, a.state, a.declineCode, a.hard])).toEqual([
      [1, 1, 'rejected', 'insufficient_funds', false],
      [1, 2, 'rejected', 'insufficient_funds', false],
      [1, 3, 'rejected', 'insufficient_funds', false],
    ]);
    const expected = ['2025-01-15T00:00:00Z', '2025-01-16T00:00:00Z', '2025-01-19T00:00:00Z'];
    attempts.forEach((a, i) => {
      expect(lag(a.createdAt, expected[i]!), `attempt ${i + 1} at ${iso(a.createdAt)}`).toBeGreaterThanOrEqual(0);
      expect(lag(a.createdAt, expected[i]!), `attempt ${i + 1} at ${iso(a.createdAt)}`).toBeLessThan(1000);
    });

    const events = await eventsOf(t.db, 'poor');
    expect(events.map((e) => e.type)).toEqual([
      'subscription.created',
      'charge.failed',
      'charge.failed',
      'charge.failed',
      'subscription.payment_failed',
      'subscription.cancelled',
    ]);
    expect(events.filter((e) => e.type === 'charge.failed').map((e) => e.data.willRetry)).toEqual([true, true, false]);
    expect(events[1]!.data.nextAttemptAt).toMatch(/^2025-01-16T00:00:00/);
    expect(events[4]).toMatchObject({ cycle: 1, attempt: 3, data: { declineCode: 'insufficient_funds', attempts: 3, action: 'terminate' } });

    const sub = await getSubscription(t.db, 'poor');
    expect(sub).toMatchObject({ status: 'terminated', terminationType: 'paymentCancel', nextAction: 'none' });
    expect((await cyclesOf(t.db, 'poor')).map((c) => [c.cycle, c.status, c.attempts])).toEqual([[1, 'failed', 3]]);
    // Terminated: cycle 2 (Feb 15) is never attempted.
    expect(await ledgerOf(t.db, 'poor')).toHaveLength(3);
  });

  it('tok_stolen: a hard decline makes exactly one attempt and terminates', async () => {
    startDaemon('2025-01-01T00:00:00Z');
    await create('stolen', 'tok_stolen', '2025-01-15');
    await advanceTo('2025-03-01T00:00:00Z');

    const attempts = await attemptsOf(t.db, 'stolen');
    expect(attempts.map((a) => [a.key, a.state, a.declineCode, a.hard])).toEqual([['stolen:1:1', 'rejected', 'stolen_card', true]]);
    const failed = await eventsOf(t.db, 'stolen', 'charge.failed');
    expect(failed.map((e) => e.data)).toEqual([expect.objectContaining({ hardDecline: true, willRetry: false, nextAttemptAt: null })]);
    expect(await eventsOf(t.db, 'stolen', 'subscription.payment_failed')).toHaveLength(1);
    expect(await getSubscription(t.db, 'stolen')).toMatchObject({ status: 'terminated', terminationType: 'paymentCancel' });
  });

  it('tok_flaky_2: declines the first two attempts of every cycle, so each cycle is captured on attempt 3', async () => {
    startDaemon('2025-01-01T00:00:00Z');
    await create('flaky', 'tok_flaky_2', '2025-01-15');
    await advanceTo('2025-03-01T00:00:00Z');

    const attempts = await attemptsOf(t.db, 'flaky');
    expect(attempts.map((a) => [a.cycle, a.attempt, a.state, a.declineCode])).toEqual([
      [1, 1, 'rejected', 'do_not_honor'],
      [1, 2, 'rejected', 'do_not_honor'],
      [1, 3, 'captured', null],
      [2, 1, 'rejected', 'do_not_honor'],
      [2, 2, 'rejected', 'do_not_honor'],
      [2, 3, 'captured', null],
    ]);
    // Cycle 2 keeps the anchor's date (Feb 15) even though cycle 1 was paid late (Jan 19).
    expect(lag(attempts[3]!.createdAt, '2025-02-15T00:00:00Z')).toBeLessThan(1000);
    expect(lag(attempts[5]!.createdAt, '2025-02-19T00:00:00Z')).toBeLessThan(1000);
    expect((await cyclesOf(t.db, 'flaky')).map((c) => [c.cycle, c.status, c.attempts])).toEqual([
      [1, 'paid', 3],
      [2, 'paid', 3],
    ]);
    expect((await eventsOf(t.db, 'flaky', 'charge.succeeded')).map((e) => [e.cycle, e.attempt])).toEqual([
      [1, 3],
      [2, 3],
    ]);
    expect(await getSubscription(t.db, 'flaky')).toMatchObject({ status: 'active', completedCycles: 2 });
  });

  it('tok_timeout: the lost answer is recorded unknown, then a status query settles it captured without a second charge', async () => {
    startDaemon('2025-01-01T00:00:00Z', { policy: policy('terminate', { reconcileMs: 30_000 }) });
    await create('lost', 'tok_timeout', '2025-01-15');

    await advanceTo('2025-01-15T00:00:01Z');
    let attempts = await attemptsOf(t.db, 'lost');
    expect(attempts.map((a) => [a.key, a.state])).toEqual([['lost:1:1', 'unknown']]);
    expect(await getSubscription(t.db, 'lost')).toMatchObject({ nextAction: 'reconcile', nextCycle: 1, nextAttempt: 1 });
    expect(await eventsOf(t.db, 'lost', 'charge.succeeded')).toHaveLength(0);

    await advanceTo('2025-01-16T00:00:00Z');
    attempts = await attemptsOf(t.db, 'lost');
    expect(attempts.map((a) => [a.key, a.state, a.sends])).toEqual([['lost:1:1', 'captured', 1]]);
    // The gateway saw the key once and captured once: no re-send, no new attempt number.
    expect(await ledgerOf(t.db, 'lost')).toEqual([{ key: 'lost:1:1', result: 'captured' }]);
    const captured = await eventsOf(t.db, 'lost', 'charge.succeeded');
    expect(captured).toHaveLength(1);
    // Reconciled reconcileMs after the lost answer.
    expect(lag(captured[0]!.atMs, '2025-01-15T00:00:30Z')).toBeGreaterThanOrEqual(0);
    expect(lag(captured[0]!.atMs, '2025-01-15T00:00:30Z')).toBeLessThan(1000);
    expect((await cyclesOf(t.db, 'lost')).map((c) => [c.cycle, c.status])).toEqual([[1, 'paid']]);
    expect(await getSubscription(t.db, 'lost')).toMatchObject({ status: 'active', completedCycles: 1, nextCycle: 2, nextAction: 'collect' });
  });

  it('tok_pending: charge.pending first, then captured by polling the gateway', async () => {
    startDaemon('2025-01-01T00:00:00Z', { policy: policy('terminate', { pollMs: 300_000 }) });
    await create('slowbank', 'tok_pending', '2025-01-15');

    await advanceTo('2025-01-15T00:01:00Z');
    expect((await attemptsOf(t.db, 'slowbank')).map((a) => a.state)).toEqual(['pending']);
    expect((await cyclesOf(t.db, 'slowbank')).map((c) => c.status)).toEqual(['pending']);
    // The poll is due pollMs after the pending answer was recorded (at once, or after the writer's 2 ms batching delay).
    const polled = await getSubscription(t.db, 'slowbank');
    expect(polled.nextAction).toBe('poll');
    expect(polled.actionAt! - ms('2025-01-15T00:05:00Z')).toBeGreaterThanOrEqual(0);
    expect(polled.actionAt! - ms('2025-01-15T00:05:00Z')).toBeLessThanOrEqual(2);

    await advanceTo('2025-01-16T00:00:00Z');
    const events = await eventsOf(t.db, 'slowbank');
    expect(events.map((e) => e.type)).toEqual(['subscription.created', 'charge.pending', 'charge.succeeded']);
    expect(lag(events[1]!.atMs, '2025-01-15T00:00:00Z')).toBeLessThan(1000);
    expect(lag(events[2]!.atMs, '2025-01-15T00:05:00Z')).toBeGreaterThanOrEqual(0);
    expect(lag(events[2]!.atMs, '2025-01-15T00:05:00Z')).toBeLessThan(1000);
    expect((await attemptsOf(t.db, 'slowbank')).map((a) => [a.key, a.state])).toEqual([['slowbank:1:1', 'captured']]);
    expect(await ledgerOf(t.db, 'slowbank')).toEqual([{ key: 'slowbank:1:1', result: 'captured' }]);
    expect((await cyclesOf(t.db, 'slowbank')).map((c) => c.status)).toEqual(['paid']);
  });

  it('link mode: the payment link is sent at the due instant and the cycle is paid when a status poll finds it paid', async () => {
    startDaemon('2025-01-01T00:00:00Z', { policy: policy('terminate', { pollMs: 300_000 }) });
    await addSubscription(t.db, Date.now(), { id: 'link', paymentToken: null, startDate: '2025-01-15' }, { mode: 'link' });
    engine!.kick();
    await advanceTo('2025-01-16T00:00:00Z');

    const events = await eventsOf(t.db, 'link');
    expect(events.map((e) => e.type)).toEqual(['subscription.created', 'payment_link.sent', 'charge.succeeded']);
    expect(events[1]!.data).toMatchObject({ mode: 'link', linkUrl: expect.stringContaining('link%3A1%3A1') });
    expect(lag(events[1]!.atMs, '2025-01-15T00:00:00Z')).toBeLessThan(1000);
    expect(lag(events[2]!.atMs, '2025-01-15T00:05:00Z')).toBeLessThan(1000);
    expect((await attemptsOf(t.db, 'link')).map((a) => [a.key, a.state])).toEqual([['link:1:1', 'captured']]);
  });

  it('link mode: an unpaid link is re-sent up to the attempt count, then payment_failed', async () => {
    startDaemon('2025-01-01T00:00:00Z');
    await addSubscription(t.db, Date.now(), { id: 'unpaid', paymentToken: 'tok_insufficient', startDate: '2025-01-15' }, { mode: 'link' });
    engine!.kick();
    await advanceTo('2025-03-01T00:00:00Z');

    expect((await attemptsOf(t.db, 'unpaid')).map((a) => [a.attempt, a.state])).toEqual([
      [1, 'rejected'],
      [2, 'rejected'],
      [3, 'rejected'],
    ]);
    expect((await eventsOf(t.db, 'unpaid', 'payment_link.sent')).map((e) => e.attempt)).toEqual([1, 2, 3]);
    expect(await eventsOf(t.db, 'unpaid', 'subscription.payment_failed')).toHaveLength(1);
    expect(await getSubscription(t.db, 'unpaid')).toMatchObject({ status: 'terminated', terminationType: 'paymentCancel' });
  });

  it('retry.onFinalFailure pause: after the last failed attempt the subscription is paused and nothing more is tried', async () => {
    startDaemon('2025-01-01T00:00:00Z', { policy: policy('pause') });
    await create('paused', 'tok_insufficient', '2025-01-15');
    await advanceTo('2025-04-01T00:00:00Z');

    expect(await attemptsOf(t.db, 'paused')).toHaveLength(3);
    const sub = await getSubscription(t.db, 'paused');
    expect(sub).toMatchObject({ status: 'paused', terminationType: null, resumeAt: null });
    expect(lag(sub.pausedAt!, '2025-01-19T00:00:00Z')).toBeLessThan(1000);
    const events = await eventsOf(t.db, 'paused');
    expect(events.slice(-2).map((e) => [e.type, e.data.action ?? e.data.reason])).toEqual([
      ['subscription.payment_failed', 'pause'],
      ['subscription.paused', 'payment_failed'],
    ]);
    expect((await cyclesOf(t.db, 'paused')).map((c) => [c.cycle, c.status])).toEqual([[1, 'failed']]);
  });

  it('retry.onFinalFailure keep: the failed cycle is given up and the next cycle is collected on its own date', async () => {
    startDaemon('2025-01-01T00:00:00Z', { policy: policy('keep') });
    await create('kept', 'tok_insufficient', '2025-01-15');
    await advanceTo('2025-03-01T00:00:00Z');

    const attempts = await attemptsOf(t.db, 'kept');
    expect(attempts.map((a) => [a.cycle, a.attempt, a.state])).toEqual([
      [1, 1, 'rejected'],
      [1, 2, 'rejected'],
      [1, 3, 'rejected'],
      [2, 1, 'rejected'],
      [2, 2, 'rejected'],
      [2, 3, 'rejected'],
    ]);
    expect(lag(attempts[3]!.createdAt, '2025-02-15T00:00:00Z')).toBeLessThan(1000);
    expect((await cyclesOf(t.db, 'kept')).map((c) => [c.cycle, c.status])).toEqual([
      [1, 'failed'],
      [2, 'failed'],
    ]);
    expect((await eventsOf(t.db, 'kept', 'subscription.payment_failed')).map((e) => [e.cycle, e.data.action])).toEqual([
      [1, 'keep'],
      [2, 'keep'],
    ]);
    expect(await getSubscription(t.db, 'kept')).toMatchObject({ status: 'active', terminationType: null, nextCycle: 3, nextAction: 'collect' });
  });
});

describe('dispatch under simulated time', () => {
  it('ratePerSecond 50 spreads 120 charges due at the same instant over three seconds of simulated time', async () => {
    startDaemon('2025-01-01T00:00:00Z', { ratePerSecond: 50, concurrency: 16, queueBound: 500 });
    for (let i = 0; i < 120; i++) await addSubscription(t.db, Date.now(), { id: `r${String(i).padStart(3, '0')}`, paymentToken: 'tok_ok', startDate: '2025-01-15' });
    engine!.kick();
    await advanceTo('2025-01-15T00:01:00Z');

    const rows = await t.db.selectFrom('simulator_ledger').select('entry').execute();
    const calledAt = rows.map((r) => (JSON.parse(r.entry) as { createdAt: number }).createdAt - ms('2025-01-15T00:00:00Z'));
    expect(calledAt).toHaveLength(120);
    const perSecond = new Map<number, number>();
    for (const at of calledAt) perSecond.set(Math.floor(at / 1000), (perSecond.get(Math.floor(at / 1000)) ?? 0) + 1);
    expect([...perSecond.entries()].sort((a, b) => a[0] - b[0])).toEqual([
      [0, 50],
      [1, 50],
      [2, 20],
    ]);
    const captured = await t.db.selectFrom('attempts').select((eb) => eb.fn.countAll<number>().as('n')).where('state', '=', 'captured').executeTakeFirstOrThrow();
    expect(Number(captured.n)).toBe(120);
  });

  it('a gateway call longer than the lease keeps its lease through the heartbeat and is captured once', async () => {
    // tok_slow_200000 answers after 200 s of (fake) time; the lease is 120 s, the heartbeat every 40 s.
    startDaemon('2025-01-01T00:00:00Z', { leaseMs: 120_000 });
    await create('slow', 'tok_slow_200000', '2025-01-15');
    await advanceTo('2025-01-15T00:02:30Z');
    expect((await attemptsOf(t.db, 'slow')).map((a) => a.state)).toEqual(['in_flight']);
    const leased = await t.db.selectFrom('subscriptions').select(['lease_owner', 'lease_until']).where('id', '=', 'slow').executeTakeFirstOrThrow();
    expect(leased.lease_owner).toMatch(/^test-engine\//);
    expect(Date.parse(leased.lease_until!)).toBeGreaterThan(Date.now());

    await advanceTo('2025-01-15T00:10:00Z');
    const attempts = await attemptsOf(t.db, 'slow');
    expect(attempts.map((a) => [a.key, a.state, a.sends])).toEqual([['slow:1:1', 'captured', 1]]);
    const captured = await eventsOf(t.db, 'slow', 'charge.succeeded');
    expect(captured).toHaveLength(1);
    expect(lag(captured[0]!.atMs, '2025-01-15T00:03:20Z')).toBeGreaterThanOrEqual(0);
    expect(lag(captured[0]!.atMs, '2025-01-15T00:03:20Z')).toBeLessThan(1000);
    expect(await ledgerOf(t.db, 'slow')).toEqual([{ key: 'slow:1:1', result: 'captured' }]);
    expect(await getSubscription(t.db, 'slow')).toMatchObject({ nextAction: 'collect', nextCycle: 2 });
  });
});

describe('kicks that carry a due instant', () => {
  it('wake a sleeping loop only for work due before it wakes by itself; work due later is found when it does', async () => {
    startDaemon('2025-01-01T00:00:00Z', { maxSleepMs: 10 * DAY });
    await advanceTo('2025-01-01T00:00:01Z');
    const sweeps = () => engine!.stats().sweeps;
    const before = sweeps();

    // The loop sleeps until Jan 11: work due in March, or none at all, does not wake it.
    await addSubscription(t.db, Date.now(), { id: 'march', paymentToken: 'tok_ok', startDate: '2025-03-01' });
    engine!.kick((await getSubscription(t.db, 'march')).actionAt);
    engine!.kick(null);
    await advanceTo('2025-01-01T00:00:02Z');
    expect(sweeps()).toBe(before);

    // Work due on Jan 5 does: the loop sweeps now and arms its timer for it.
    await addSubscription(t.db, Date.now(), { id: 'jan5', paymentToken: 'tok_ok', startDate: '2025-01-05' });
    const jan5 = (await getSubscription(t.db, 'jan5')).actionAt!;
    engine!.kick(jan5);
    await advanceTo('2025-01-01T00:00:03Z');
    expect(sweeps()).toBeGreaterThan(before);

    await advanceTo('2025-03-02T00:00:00Z');
    const [jan5Capture] = await eventsOf(t.db, 'jan5', 'charge.succeeded');
    expect(jan5Capture!.atMs - jan5).toBeGreaterThanOrEqual(0);
    expect(jan5Capture!.atMs - jan5).toBeLessThan(1000);
    const march = await eventsOf(t.db, 'march', 'charge.succeeded');
    expect(march.map((e) => e.cycle)).toEqual([1]);
    expect(lag(march[0]!.atMs, '2025-03-01T00:00:00Z')).toBeLessThan(DAY);
  });
});

describe('pause and resume', () => {
  it('charges nothing while paused; on resume the next cycle is the first due at or after the resume instant, the missed ones skipped', async () => {
    startDaemon('2025-01-01T00:00:00Z');
    await create('p', 'tok_ok', '2025-01-15');
    await advanceTo('2025-01-20T00:00:00Z');
    await act('p', (sub) => pause(sub, {}, Date.now()));

    await advanceTo('2025-03-20T10:00:00Z');
    expect(await eventsOf(t.db, 'p', 'charge.succeeded')).toHaveLength(1);
    expect(await attemptsOf(t.db, 'p')).toHaveLength(1);
    await act('p', (sub) => resume(sub, Date.now()));

    await advanceTo('2025-05-01T00:00:00Z');
    const captures = await eventsOf(t.db, 'p', 'charge.succeeded');
    expect(captures.map((e) => e.cycle)).toEqual([1, 4]);
    expect(lag(captures[1]!.atMs, '2025-04-15T00:00:00Z')).toBeLessThan(1000);
    expect((await cyclesOf(t.db, 'p')).map((c) => [c.cycle, c.status])).toEqual([
      [1, 'paid'],
      [2, 'skipped'],
      [3, 'skipped'],
      [4, 'paid'],
    ]);
    expect((await eventsOf(t.db, 'p')).map((e) => e.type)).toEqual([
      'subscription.created',
      'charge.succeeded',
      'subscription.paused',
      'subscription.resumed',
      // Issue 7 item 6: the cycles due while paused are skipped visibly.
      'cycle.skipped',
      'cycle.skipped',
      'charge.succeeded',
    ]);
  });

  it('resuming exactly on a due instant collects that cycle at once', async () => {
    startDaemon('2025-01-01T00:00:00Z');
    await create('edge', 'tok_ok', '2025-01-15');
    await advanceTo('2025-01-20T00:00:00Z');
    await act('edge', (sub) => pause(sub, {}, Date.now()));
    await advanceTo('2025-03-15T00:00:00Z');
    await act('edge', (sub) => resume(sub, Date.now()));
    await advanceTo('2025-03-16T00:00:00Z');

    const captures = await eventsOf(t.db, 'edge', 'charge.succeeded');
    expect(captures.map((e) => e.cycle)).toEqual([1, 3]);
    expect(lag(captures[1]!.atMs, '2025-03-15T00:00:00Z')).toBeLessThan(1000);
    expect((await cyclesOf(t.db, 'edge')).map((c) => c.status)).toEqual(['paid', 'skipped', 'paid']);
  });

  it('pausing mid-retry stops the retries; on resume the unfinished cycle is recorded skipped and keeps its attempt count', async () => {
    startDaemon('2025-01-01T00:00:00Z');
    await create('mid', 'tok_flaky_1', '2025-01-15');
    await advanceTo('2025-01-15T12:00:00Z');
    await act('mid', (sub) => pause(sub, {}, Date.now()));
    await advanceTo('2025-02-20T00:00:00Z');
    expect(await attemptsOf(t.db, 'mid')).toHaveLength(1);
    await act('mid', (sub) => resume(sub, Date.now()));
    await advanceTo('2025-03-17T00:00:00Z');

    expect((await attemptsOf(t.db, 'mid')).map((a) => [a.key, a.state])).toEqual([
      ['mid:1:1', 'rejected'],
      ['mid:3:1', 'rejected'],
      ['mid:3:2', 'captured'],
    ]);
    expect((await cyclesOf(t.db, 'mid')).map((c) => [c.cycle, c.status, c.attempts])).toEqual([
      [1, 'skipped', 1],
      [2, 'skipped', 0],
      [3, 'paid', 2],
    ]);
  });

  it('a scheduled pause (pauseAt on a due instant) wins over that charge, and the scheduled resumeAt restarts collection by itself', async () => {
    startDaemon('2025-01-01T00:00:00Z');
    await create('sched', 'tok_ok', '2025-01-15');
    await advanceTo('2025-01-20T00:00:00Z');
    await act('sched', (sub) => pause(sub, { pauseAt: ms('2025-02-15T00:00:00Z'), resumeAt: ms('2025-03-10T00:00:00Z') }, Date.now()));
    expect(await getSubscription(t.db, 'sched')).toMatchObject({ status: 'active', pauseAt: ms('2025-02-15T00:00:00Z') });

    await advanceTo('2025-02-20T00:00:00Z');
    expect(await getSubscription(t.db, 'sched')).toMatchObject({ status: 'paused', resumeAt: ms('2025-03-10T00:00:00Z') });
    expect(await attemptsOf(t.db, 'sched')).toHaveLength(1);

    await advanceTo('2025-04-01T00:00:00Z');
    const events = await eventsOf(t.db, 'sched');
    expect(events.map((e) => e.type)).toEqual([
      'subscription.created',
      'charge.succeeded',
      'subscription.paused',
      'subscription.resumed',
      'cycle.skipped',
      'charge.succeeded',
    ]);
    expect(lag(events[2]!.atMs, '2025-02-15T00:00:00Z')).toBeLessThan(1000);
    expect(lag(events[3]!.atMs, '2025-03-10T00:00:00Z')).toBeLessThan(1000);
    expect(events[4]).toMatchObject({ cycle: 2, data: { reason: 'paused', dueAt: '2025-02-15T00:00:00Z' } });
    expect(events[5]!.cycle).toBe(3);
    expect(lag(events[5]!.atMs, '2025-03-15T00:00:00Z')).toBeLessThan(1000);
    expect((await cyclesOf(t.db, 'sched')).map((c) => [c.cycle, c.status])).toEqual([
      [1, 'paid'],
      [2, 'skipped'],
      [3, 'paid'],
    ]);
  });
});

describe('cancel', () => {
  it('at period end: stopped now, no further charge, terminated with userCancel at the period end instant', async () => {
    startDaemon('2025-01-01T00:00:00Z');
    await create('c', 'tok_ok', '2025-01-15');
    await advanceTo('2025-01-20T00:00:00Z');
    await act('c', (sub) => cancel(sub, { atPeriodEnd: true }, Date.now()));
    expect(await getSubscription(t.db, 'c')).toMatchObject({ status: 'stopped', terminationType: null });

    await advanceTo('2025-04-01T00:00:00Z');
    const sub = await getSubscription(t.db, 'c');
    expect(sub).toMatchObject({ status: 'terminated', terminationType: 'userCancel', nextAction: 'none' });
    expect(lag(sub.endedAt!, '2025-02-15T00:00:00Z')).toBeGreaterThanOrEqual(0);
    expect(lag(sub.endedAt!, '2025-02-15T00:00:00Z')).toBeLessThan(1000);
    expect(await attemptsOf(t.db, 'c')).toHaveLength(1);
    const cancelled = await eventsOf(t.db, 'c', 'subscription.cancelled');
    expect(cancelled.map((e) => e.data)).toEqual([
      expect.objectContaining({ atPeriodEnd: true, terminationType: 'userCancel', endsAt: '2025-02-15T00:00:00Z' }),
      expect.objectContaining({ atPeriodEnd: true, terminationType: 'userCancel' }),
    ]);
    expect(lag(cancelled[1]!.atMs, '2025-02-15T00:00:00Z')).toBeLessThan(1000);
  });

  it('immediately: terminated with userCancel now and never charged again', async () => {
    startDaemon('2025-01-01T00:00:00Z');
    await create('now', 'tok_ok', '2025-01-15');
    await advanceTo('2025-01-20T00:00:00Z');
    await act('now', (sub) => cancel(sub, {}, Date.now()));
    await advanceTo('2025-04-01T00:00:00Z');

    const sub = await getSubscription(t.db, 'now');
    expect(sub).toMatchObject({ status: 'terminated', terminationType: 'userCancel', endedAt: ms('2025-01-20T00:00:00Z') });
    expect(await attemptsOf(t.db, 'now')).toHaveLength(1);
  });

  it.each([
    ['immediately', false],
    ['at period end', true],
  ] as const)('%s while a retry is scheduled: no further attempt, and the cycle is closed as failed instead of left collecting', async (_name, atPeriodEnd) => {
    startDaemon('2025-01-01T00:00:00Z');
    await create('dun', 'tok_insufficient', '2025-01-15');
    await advanceTo('2025-01-15T12:00:00Z');
    expect(await getSubscription(t.db, 'dun')).toMatchObject({ nextAction: 'collect', nextAttempt: 2 });
    await act('dun', (sub) => cancel(sub, { atPeriodEnd }, Date.now()));
    await advanceTo('2025-04-01T00:00:00Z');

    expect((await attemptsOf(t.db, 'dun')).map((a) => [a.key, a.state])).toEqual([['dun:1:1', 'rejected']]);
    expect(await getSubscription(t.db, 'dun')).toMatchObject({ status: 'terminated', terminationType: 'userCancel', nextAction: 'none' });
    expect((await cyclesOf(t.db, 'dun')).map((c) => [c.cycle, c.status, c.attempts])).toEqual([[1, 'failed', 1]]);
  });
});

describe('the end of a schedule', () => {
  it('a cycle due ON endDate is charged, then subscription.finished when that last period runs out', async () => {
    startDaemon('2025-01-01T00:00:00Z');
    await create('ends', 'tok_ok', '2025-01-15', { endDate: '2025-04-15' });
    await advanceTo('2025-07-01T00:00:00Z');

    const captures = await eventsOf(t.db, 'ends', 'charge.succeeded');
    expect(captures.map((e) => e.at.slice(0, 10))).toEqual(['2025-01-15', '2025-02-15', '2025-03-15', '2025-04-15']);
    const finished = await eventsOf(t.db, 'ends', 'subscription.finished');
    expect(finished).toHaveLength(1);
    expect(finished[0]!.atMs).toBeGreaterThan(captures[3]!.atMs);
    expect(lag(finished[0]!.atMs, '2025-05-15T00:00:00Z')).toBeLessThan(1000);
    expect(await getSubscription(t.db, 'ends')).toMatchObject({ status: 'terminated', terminationType: 'finished', completedCycles: 4 });
    expect(await attemptsOf(t.db, 'ends')).toHaveLength(4);
  });

  it('maxCycles 3 charges three cycles and then finishes', async () => {
    startDaemon('2025-01-01T00:00:00Z');
    await create('three', 'tok_ok', '2025-01-15', {}, { maxCycles: 3 });
    await advanceTo('2025-07-01T00:00:00Z');

    expect((await eventsOf(t.db, 'three', 'charge.succeeded')).map((e) => e.cycle)).toEqual([1, 2, 3]);
    expect((await eventsOf(t.db, 'three')).at(-1)).toMatchObject({ type: 'subscription.finished', data: { terminationType: 'finished' } });
    expect(await getSubscription(t.db, 'three')).toMatchObject({ status: 'terminated', terminationType: 'finished', completedCycles: 3 });
    expect((await cyclesOf(t.db, 'three')).map((c) => c.status)).toEqual(['paid', 'paid', 'paid']);
  });
});

describe('calendar rules on the real loop', () => {
  it('a start date in the past collects the current period at once, records earlier cycles as skipped and keeps the anchor dates', async () => {
    startDaemon('2025-04-20T12:00:00Z');
    await create('late', 'tok_ok', '2025-01-15');
    await advanceTo('2025-05-16T00:00:00Z');

    const captures = await eventsOf(t.db, 'late', 'charge.succeeded');
    expect(captures.map((e) => e.cycle)).toEqual([4, 5]);
    expect(lag(captures[0]!.atMs, '2025-04-20T12:00:00Z')).toBeLessThan(1000);
    expect(lag(captures[1]!.atMs, '2025-05-15T00:00:00Z')).toBeLessThan(1000);
    expect((await cyclesOf(t.db, 'late')).map((c) => [c.cycle, c.status])).toEqual([
      [1, 'skipped'],
      [2, 'skipped'],
      [3, 'skipped'],
      [4, 'paid'],
      [5, 'paid'],
    ]);
  });

  it('a P14D trial moves cycle 1 to anchor + 14 days and later cycles follow the shifted anchor', async () => {
    startDaemon('2025-01-01T00:00:00Z');
    await create('trial', 'tok_ok', '2025-01-01', {}, { trial: 'P14D' });
    await advanceTo('2025-01-14T23:59:59Z');
    expect(await attemptsOf(t.db, 'trial')).toHaveLength(0);
    await advanceTo('2025-03-01T00:00:00Z');

    const captures = await eventsOf(t.db, 'trial', 'charge.succeeded');
    expect(captures.map((e) => [e.cycle, e.at.slice(0, 10)])).toEqual([
      [1, '2025-01-15'],
      [2, '2025-02-15'],
    ]);
  });

  it('10:00 Europe/Berlin is charged at 09:00Z in winter and 08:00Z in summer time', async () => {
    startDaemon('2025-03-01T00:00:00Z');
    await create('berlin', 'tok_ok', '2025-03-15', {}, { sendOnHour: 10, timezone: 'Europe/Berlin' });
    await advanceTo('2025-11-16T00:00:00Z');

    const due = [
      '2025-03-15T09:00:00Z', '2025-04-15T08:00:00Z', '2025-05-15T08:00:00Z', '2025-06-15T08:00:00Z', '2025-07-15T08:00:00Z',
      '2025-08-15T08:00:00Z', '2025-09-15T08:00:00Z', '2025-10-15T08:00:00Z', '2025-11-15T09:00:00Z',
    ];
    const captures = await eventsOf(t.db, 'berlin', 'charge.succeeded');
    expect(captures).toHaveLength(due.length);
    captures.forEach((e, i) => {
      expect(lag(e.atMs, due[i]!), `cycle ${i + 1} at ${e.at}`).toBeGreaterThanOrEqual(0);
      expect(lag(e.atMs, due[i]!), `cycle ${i + 1} at ${e.at}`).toBeLessThan(1000);
    });
  });
});

describe('a daemon that dies with a charge in flight', () => {
  it.each([
    ['before the gateway saw the key: the next daemon re-sends the same key once', false, 2],
    ['after the gateway captured, before the answer was recorded: the next daemon only asks', true, 1],
  ] as const)('%s', async (_name, gatewayCaptured, sends) => {
    installClock('2025-01-01T00:00:00Z');
    await create('crash', 'tok_ok', '2025-01-15');
    // Daemon A: its gateway call never returns (the process is gone), after the charge went through or before.
    const real = daemonGateways(t.db, systemClock, { sim: { type: 'simulator' } }).get('sim')!;
    const dying: Gateway = {
      name: 'sim',
      async charge(request) {
        if (gatewayCaptured) await real.charge(request);
        return new Promise(() => undefined);
      },
      sendLink: (request) => real.sendLink(request),
      status: (key, request) => real.status(key, request),
    };
    const daemonA = startDaemon('2025-01-01T00:00:00Z', { leaseMs: 120_000 }, { owner: 'daemon-a', gateways: new Map([['sim', dying]]) });
    await advanceTo('2025-01-15T00:00:01Z');
    expect((await attemptsOf(t.db, 'crash')).map((a) => [a.key, a.state])).toEqual([['crash:1:1', 'in_flight']]);
    // "Kill" A: its loop and heartbeat stop, its lease stays on the row until it expires.
    expect(await stopEngine(daemonA)).toMatchObject({ drained: false });
    const lease = await t.db.selectFrom('subscriptions').select(['lease_owner', 'lease_until']).where('id', '=', 'crash').executeTakeFirstOrThrow();
    expect(lease.lease_owner).toMatch(/^daemon-a\//);

    // Daemon B takes over once the lease has expired.
    startDaemon('2025-01-01T00:00:00Z', { leaseMs: 120_000 }, { owner: 'daemon-b' });
    await advanceTo('2025-01-15T01:00:00Z');

    expect((await attemptsOf(t.db, 'crash')).map((a) => [a.key, a.state, a.sends])).toEqual([['crash:1:1', 'captured', sends]]);
    expect(await ledgerOf(t.db, 'crash')).toEqual([{ key: 'crash:1:1', result: 'captured' }]);
    const captured = await eventsOf(t.db, 'crash', 'charge.succeeded');
    expect(captured).toHaveLength(1);
    expect(lag(captured[0]!.atMs, '2025-01-15T00:02:00Z')).toBeGreaterThanOrEqual(0);
    expect(lag(captured[0]!.atMs, '2025-01-15T00:02:00Z')).toBeLessThan(1000);
    expect(await getSubscription(t.db, 'crash')).toMatchObject({ nextCycle: 2, nextAction: 'collect', completedCycles: 1 });
  });
});
