/**
 * The per-gateway circuit breaker (SPEC section 6) on a virtual clock:
 * 10 unavailable calls in a row open it, new attempts are refused for 30 s,
 * then exactly one probe goes; an answer closes it, a failed probe reopens it.
 */
import { describe, expect, it } from 'vitest';
import { VirtualClock } from '../../src/clock.js';
import { CircuitBreakers } from '../../src/engine/index.js';

const T0 = Date.parse('2025-03-01T00:00:00Z');

function breakers() {
  const clock = new VirtualClock(T0);
  return { clock, circuits: new CircuitBreakers(clock) };
}

describe('circuit breaker', () => {
  it('stays closed through 9 failures, and a decline-like answer resets the count', () => {
    const { circuits } = breakers();
    for (let i = 0; i < 9; i++) circuits.recordFailure('coolpay');
    expect(circuits.state('coolpay')).toBe('closed');
    expect(circuits.allowAttempt('coolpay')).toBe(true);
    circuits.recordAnswer('coolpay');
    for (let i = 0; i < 9; i++) circuits.recordFailure('coolpay');
    expect(circuits.views()).toEqual([{ gateway: 'coolpay', state: 'closed', since: T0, consecutiveFailures: 9, reopenAt: null }]);
  });

  it('opens on the 10th failure in a row, refuses attempts for 30 s, then lets exactly one probe through', () => {
    const { clock, circuits } = breakers();
    for (let i = 0; i < 10; i++) circuits.recordFailure('coolpay');
    expect(circuits.views()).toEqual([{ gateway: 'coolpay', state: 'open', since: T0, consecutiveFailures: 10, reopenAt: T0 + 30_000 }]);
    expect(circuits.allowAttempt('coolpay')).toBe(false);
    expect(circuits.retryAt('coolpay')).toBe(T0 + 30_000);
    // Other gateways are not affected.
    expect(circuits.allowAttempt('sim')).toBe(true);

    clock.set(T0 + 29_999);
    expect(circuits.allowAttempt('coolpay')).toBe(false);
    clock.set(T0 + 30_000);
    expect(circuits.state('coolpay')).toBe('half_open');
    expect(circuits.allowAttempt('coolpay')).toBe(true);
    // The probe is out: nobody else until it reports (or is given up after another 30 s).
    expect(circuits.allowAttempt('coolpay')).toBe(false);
    expect(circuits.retryAt('coolpay')).toBe(T0 + 60_000);

    clock.set(T0 + 31_000);
    circuits.recordAnswer('coolpay');
    expect(circuits.views()).toEqual([{ gateway: 'coolpay', state: 'closed', since: T0 + 31_000, consecutiveFailures: 0, reopenAt: null }]);
    expect(circuits.allowAttempt('coolpay')).toBe(true);
    expect(circuits.allowAttempt('coolpay')).toBe(true);
  });

  it('a failed probe opens it again for another 30 s', () => {
    const { clock, circuits } = breakers();
    for (let i = 0; i < 10; i++) circuits.recordFailure('coolpay');
    clock.set(T0 + 30_000);
    expect(circuits.allowAttempt('coolpay')).toBe(true);
    clock.set(T0 + 35_000);
    circuits.recordFailure('coolpay');
    expect(circuits.views()[0]).toMatchObject({ state: 'open', since: T0 + 35_000, consecutiveFailures: 11, reopenAt: T0 + 65_000 });
    expect(circuits.allowAttempt('coolpay')).toBe(false);
    clock.set(T0 + 65_000);
    expect(circuits.allowAttempt('coolpay')).toBe(true);
  });

  it('status queries that fail while it is open do not push the probe further away; one that is answered closes it', () => {
    const { clock, circuits } = breakers();
    for (let i = 0; i < 10; i++) circuits.recordFailure('coolpay');
    clock.set(T0 + 20_000);
    circuits.recordFailure('coolpay');
    expect(circuits.retryAt('coolpay')).toBe(T0 + 30_000);
    clock.set(T0 + 25_000);
    circuits.recordAnswer('coolpay');
    expect(circuits.state('coolpay')).toBe('closed');
    expect(circuits.retryAt('coolpay')).toBeNull();
  });

  it('a probe that never reports back is replaced after another 30 s', () => {
    const { clock, circuits } = breakers();
    for (let i = 0; i < 10; i++) circuits.recordFailure('coolpay');
    clock.set(T0 + 30_000);
    expect(circuits.allowAttempt('coolpay')).toBe(true);
    clock.set(T0 + 59_999);
    expect(circuits.allowAttempt('coolpay')).toBe(false);
    clock.set(T0 + 60_000);
    expect(circuits.allowAttempt('coolpay')).toBe(true);
  });

  it('a tracked gateway is listed (closed) before its first call', () => {
    const { circuits } = breakers();
    circuits.track('coolpay');
    expect(circuits.views()).toEqual([{ gateway: 'coolpay', state: 'closed', since: T0, consecutiveFailures: 0, reopenAt: null }]);
  });

  it('thresholds are configurable and validated', () => {
    const clock = new VirtualClock(T0);
    const circuits = new CircuitBreakers(clock, { failureThreshold: 2, openMs: 1_000 });
    circuits.recordFailure('g');
    circuits.recordFailure('g');
    expect(circuits.views()[0]).toMatchObject({ state: 'open', reopenAt: T0 + 1_000 });
    expect(() => new CircuitBreakers(clock, { failureThreshold: 0 })).toThrow(TypeError);
  });
});
