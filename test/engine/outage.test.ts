/**
 * Gateway outages on the daemon's real wake-up loop (SPEC section 6,
 * "Gateway unavailability is not a decline"), with Date and the timers
 * replaced by @sinonjs/fake-timers as in fake-timers.test.ts: days of outage
 * pass in simulated time. An outage never terminates a customer within
 * retry.unavailableHours, the same key is re-sent (only after a status query
 * said the gateway never saw it), and the cycle is captured exactly once when
 * the gateway is back. The per-gateway circuit breaker holds new attempts
 * while open without the loop spinning on them.
 */
import FakeTimers from '@sinonjs/fake-timers';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { systemClock } from '../../src/clock.js';
import { daemonGateways, type Engine, type EngineOptions } from '../../src/engine/index.js';
import { GatewayUnavailableError, type Gateway } from '../../src/gateways/index.js';
import { getSubscription } from '../../src/store/index.js';
import { addSubscription, attemptsOf, cyclesOf, daemonEngine, eventsOf, FAKED_TIMERS, ledgerOf, ms, openTempDb, policy, type TempDb } from '../support/engine-harness.js';

const HOUR = 3_600_000;

let t: TempDb;
let clock: ReturnType<typeof FakeTimers.install> | null = null;
let engine: Engine | null = null;

beforeEach(async () => {
  t = await openTempDb();
});

afterEach(async () => {
  try {
    if (engine) {
      let done = false;
      const stopped = engine.stop(0).finally(() => {
        done = true;
      });
      while (clock && !done) await clock.tickAsync(10);
      await stopped;
    }
  } finally {
    engine = null;
    clock?.uninstall();
    clock = null;
    await t.close();
  }
});

interface Call {
  readonly kind: 'charge' | 'status';
  readonly key: string;
  readonly at: number;
}

/**
 * The `sim` gateway of the daemon behind a switch: while `down`, every call
 * (send and status query) fails as a connection refused would, before it
 * reaches the simulator. Every call is recorded.
 */
function switchableSim(initiallyDown: boolean) {
  const sim = daemonGateways(t.db, systemClock, { sim: { type: 'simulator' } }).get('sim')!;
  const calls: Call[] = [];
  const state = { down: initiallyDown };
  const refuse = () => {
    if (state.down) throw new GatewayUnavailableError('switchable gateway: ECONNREFUSED');
  };
  const gateway: Gateway = {
    name: 'sim',
    async charge(request) {
      calls.push({ kind: 'charge', key: request.idempotencyKey, at: Date.now() });
      refuse();
      return sim.charge(request);
    },
    async sendLink(request) {
      calls.push({ kind: 'charge', key: request.idempotencyKey, at: Date.now() });
      refuse();
      return sim.sendLink(request);
    },
    async status(key, request) {
      calls.push({ kind: 'status', key, at: Date.now() });
      refuse();
      return sim.status(key, request);
    },
  };
  return { gateways: new Map([['sim', gateway]]), calls, state };
}

function startDaemon(startIso: string, gateways: ReadonlyMap<string, Gateway>, options: Partial<EngineOptions> = {}): Engine {
  clock ??= FakeTimers.install({ now: ms(startIso), toFake: [...FAKED_TIMERS] });
  engine = daemonEngine(t.db, systemClock, { maxSleepMs: 60 * 86_400_000, ...options }, { gateways });
  engine.start();
  return engine;
}

async function advanceTo(target: string): Promise<void> {
  const delta = ms(target) - Date.now();
  if (delta < 0) throw new Error(`cannot go back to ${target}`);
  await clock!.tickAsync(delta);
}

async function create(id: string, paymentToken: string, startDate: string): Promise<void> {
  await addSubscription(t.db, Date.now(), { id, paymentToken, startDate });
  engine?.kick();
}

describe('a gateway outage is not a decline', () => {
  it('tok_5xx past P1D + P3D: the same key is re-sent (30 s, then 1 min doubling to 1 h) and no attempt is spent until unavailableHours; the customer is never terminated', async () => {
    const sw = switchableSim(false);
    startDaemon('2025-01-01T00:00:00Z', sw.gateways);
    await create('five', 'tok_5xx', '2025-01-15');

    // 71 h into the outage: one attempt, one key, many sends, nothing failed.
    await advanceTo('2025-01-17T23:00:00Z');
    const sends = sw.calls.filter((c) => c.kind === 'charge');
    expect(new Set(sends.map((c) => c.key))).toEqual(new Set(['five:1:1']));
    const gapsSeconds = sends.slice(1, 10).map((c, i) => Math.round((c.at - sends[i]!.at) / 1000));
    expect(gapsSeconds).toEqual([30, 60, 120, 240, 480, 960, 1920, 3600, 3600]);
    // Every re-send came right after a status query that said "not found".
    sends.slice(1).forEach((send) => {
      const before = sw.calls[sw.calls.indexOf(send) - 1]!;
      expect(before).toMatchObject({ kind: 'status', key: 'five:1:1' });
    });
    let attempts = await attemptsOf(t.db, 'five');
    expect(attempts.map((a) => [a.key, a.state])).toEqual([['five:1:1', 'unknown']]);
    expect(attempts[0]!.sends).toBe(sends.length);
    expect(await eventsOf(t.db, 'five', 'charge.failed')).toEqual([]);
    expect(await getSubscription(t.db, 'five')).toMatchObject({ status: 'active', nextCycle: 1, nextAttempt: 1, nextAction: 'reconcile' });

    // Past 72 h the outage counts as ONE soft failed attempt; the next goes after P1D with the next key.
    await advanceTo('2025-01-18T01:30:00Z');
    const failed = await eventsOf(t.db, 'five', 'charge.failed');
    expect(failed.map((e) => [e.attempt, e.data.declineCode, e.data.hardDecline, e.data.willRetry])).toEqual([[1, 'gateway_unavailable', false, true]]);
    expect(failed[0]!.atMs - ms('2025-01-15T00:00:00Z')).toBeGreaterThanOrEqual(72 * HOUR);
    expect(await getSubscription(t.db, 'five')).toMatchObject({ status: 'active', nextAttempt: 2, nextAction: 'collect' });

    // Five days in (longer than P1D + P3D): still active, never terminated, attempt 2 in its own outage.
    await advanceTo('2025-01-20T00:00:00Z');
    expect(await getSubscription(t.db, 'five')).toMatchObject({ status: 'active', terminationType: null });
    expect(await eventsOf(t.db, 'five', 'subscription.cancelled')).toEqual([]);
    expect(await eventsOf(t.db, 'five', 'subscription.payment_failed')).toEqual([]);
    attempts = await attemptsOf(t.db, 'five');
    expect(attempts.map((a) => [a.key, a.state])).toEqual([
      ['five:1:1', 'rejected'],
      ['five:1:2', 'unknown'],
    ]);
    expect(await ledgerOf(t.db, 'five')).toEqual([]);
  });

  it('a gateway down (sends and status queries fail) for longer than P1D + P3D, then back: never terminated, the same key re-sent, captured exactly once', async () => {
    const sw = switchableSim(true);
    startDaemon('2025-01-01T00:00:00Z', sw.gateways, { policy: policy('terminate', { unavailableMs: 120 * HOUR }) });
    await create('down', 'tok_ok', '2025-01-15');

    await advanceTo('2025-01-19T12:00:00Z');
    // While it is down only status queries go: nothing is re-sent before the gateway says it never saw the key.
    expect(sw.calls.filter((c) => c.kind === 'charge').map((c) => c.key)).toEqual(['down:1:1']);
    expect(sw.calls.filter((c) => c.kind === 'status').length).toBeGreaterThan(50);
    expect(await eventsOf(t.db, 'down', 'charge.failed')).toEqual([]);
    expect(await getSubscription(t.db, 'down')).toMatchObject({ status: 'active', nextAttempt: 1 });

    sw.state.down = false;
    await advanceTo('2025-01-19T14:00:00Z');
    expect(sw.calls.filter((c) => c.kind === 'charge').map((c) => c.key)).toEqual(['down:1:1', 'down:1:1']);
    expect(await ledgerOf(t.db, 'down')).toEqual([{ key: 'down:1:1', result: 'captured' }]);
    expect(await eventsOf(t.db, 'down', 'charge.succeeded')).toHaveLength(1);
    expect((await cyclesOf(t.db, 'down')).map((c) => [c.cycle, c.status])).toEqual([[1, 'paid']]);
    expect((await attemptsOf(t.db, 'down')).map((a) => [a.key, a.state, a.sends])).toEqual([['down:1:1', 'captured', 2]]);
    expect(await getSubscription(t.db, 'down')).toMatchObject({ status: 'active', completedCycles: 1, nextCycle: 2 });
  });
});

describe('circuit breaker in the engine', () => {
  it('10 failed calls open it: collections due meanwhile are not started and the loop does not spin; once the gateway answers every cycle is captured once', async () => {
    const sw = switchableSim(true);
    startDaemon('2025-01-14T23:59:00Z', sw.gateways, { concurrency: 4 });
    for (let i = 0; i < 10; i++) await create(`first${i}`, 'tok_ok', '2025-01-15');
    await advanceTo('2025-01-15T00:00:05Z');
    expect(engine!.circuits()).toEqual([
      { gateway: 'sim', state: 'open', since: expect.any(Number), consecutiveFailures: 10, reopenAt: expect.any(Number) },
    ]);
    const openedAt = engine!.circuits()[0]!.since;
    expect(engine!.stats().circuits[0]).toMatchObject({ state: 'open' });

    // Five more fall due while it is open: no intent is written for them.
    for (let i = 0; i < 5; i++) await create(`later${i}`, 'tok_ok', '2025-01-15');
    const sweepsBefore = engine!.stats().sweeps;
    await clock!.tickAsync(openedAt + 20_000 - Date.now());
    for (let i = 0; i < 5; i++) expect(await attemptsOf(t.db, `later${i}`)).toEqual([]);
    expect(sw.calls.filter((c) => c.kind === 'charge' && c.key.startsWith('later'))).toEqual([]);
    // Held rows wait for the reopen instant instead of being claimed again and again.
    expect(engine!.stats().sweeps - sweepsBefore).toBeLessThan(10);
    expect((await getSubscription(t.db, 'later0')).actionAt).toBe(openedAt + 30_000);

    sw.state.down = false;
    await advanceTo('2025-01-15T01:00:00Z');
    expect(engine!.circuits()[0]).toMatchObject({ state: 'closed', consecutiveFailures: 0 });
    for (const id of [...Array.from({ length: 10 }, (_, i) => `first${i}`), ...Array.from({ length: 5 }, (_, i) => `later${i}`)]) {
      expect(await ledgerOf(t.db, id)).toEqual([{ key: `${id}:1:1`, result: 'captured' }]);
      expect(await eventsOf(t.db, id, 'charge.succeeded')).toHaveLength(1);
      expect(await eventsOf(t.db, id, 'charge.failed')).toEqual([]);
    }
  });
});

describe('the simulator only knows its tokens', () => {
  it.each(['tok_visa_4242', '4242424242424242', 'card_1NvXyZ2eZvKYlo2C'])('%s is declined hard (unknown_test_token) and the cycle is never marked paid', async (token) => {
    startDaemon('2025-01-01T00:00:00Z', daemonGateways(t.db, systemClock, { sim: { type: 'simulator' } }));
    await create('real', token, '2025-01-15');
    await advanceTo('2025-03-01T00:00:00Z');
    const failed = await eventsOf(t.db, 'real', 'charge.failed');
    expect(failed.map((e) => [e.cycle, e.attempt, e.data.declineCode, e.data.hardDecline])).toEqual([[1, 1, 'unknown_test_token', true]]);
    expect(await eventsOf(t.db, 'real', 'charge.succeeded')).toEqual([]);
    expect((await cyclesOf(t.db, 'real')).filter((c) => c.status === 'paid')).toEqual([]);
    expect(await getSubscription(t.db, 'real')).toMatchObject({ completedCycles: 0, lastPaidCycle: 0 });
  });
});
