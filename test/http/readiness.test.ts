/**
 * evaluateReadiness (SPEC section 9, issue 8 item 2): each check broken on its
 * own, from a healthy snapshot, and the document's overall status follows.
 */
import { describe, expect, it } from 'vitest';
import { evaluateReadiness, worst, type ReadinessInputs } from '../../src/http/index.js';

const NOW = Date.parse('2026-03-01T12:00:00Z');

function healthy(overrides: Partial<ReadinessInputs> = {}): ReadinessInputs {
  return {
    now: NOW,
    database: { ok: true, ms: 0.4, error: null },
    sweepIntervalMs: 60_000,
    lastSweepAt: NOW - 5_000,
    startedAt: NOW - 3_600_000,
    health: { ok: true, clockGuard: { ok: true, reason: null, since: null }, sweep: { ok: true, failures: 0, error: null } },
    active: 0,
    queueBound: 500,
    circuits: [{ gateway: 'cp', state: 'closed', since: NOW - 60_000, consecutiveFailures: 0, reopenAt: null }],
    backlog: { count: 0, oldestDueAt: null },
    webhooks: { endpoints: 0, backlog: { pending: 0, oldestAt: null } },
    ...overrides,
  };
}

const only = (input: ReadinessInputs, name: string) => evaluateReadiness(input).checks[name]![0]!;

describe('evaluateReadiness', () => {
  it('a healthy daemon passes every check, in the health+json shape', () => {
    const doc = evaluateReadiness(healthy());
    expect(doc.status).toBe('pass');
    expect(Object.keys(doc.checks)).toEqual([
      'database:responseTime',
      'scheduler:lastSweep',
      'scheduler:sweepFailures',
      'clock:guard',
      'queue:saturation',
      'gateway:circuit',
      'backlog:oldestDue',
      'webhooks:backlog',
    ]);
    for (const [name, [check]] of Object.entries(doc.checks)) {
      expect(check, name).toMatchObject({ status: 'pass', time: '2026-03-01T12:00:00.000Z' });
    }
    expect(doc.checks['database:responseTime']![0]).toEqual({ status: 'pass', observedValue: 0.4, observedUnit: 'ms', time: '2026-03-01T12:00:00.000Z' });
    expect(doc.checks['webhooks:backlog']![0]).toMatchObject({ observedValue: 0, output: 'no webhooks configured' });
  });

  it('database: fails with the probe error, and the backlog is unknown', () => {
    const input = healthy({ database: { ok: false, ms: 251, error: 'database is locked by another process' }, backlog: null, webhooks: { endpoints: 0, backlog: null } });
    const doc = evaluateReadiness(input);
    expect(doc.status).toBe('fail');
    expect(doc.checks['database:responseTime']![0]).toMatchObject({ status: 'fail', observedValue: 251, output: 'database is locked by another process' });
    expect(doc.checks['backlog:oldestDue']![0]).toMatchObject({ status: 'fail' });
  });

  it('scheduler:lastSweep fails after 3 intervals without a sweep, not before', () => {
    expect(only(healthy({ lastSweepAt: NOW - 180_000 }), 'scheduler:lastSweep').status).toBe('pass');
    const stale = healthy({ lastSweepAt: NOW - 180_001 });
    expect(only(stale, 'scheduler:lastSweep')).toMatchObject({ status: 'fail', observedValue: 180, observedUnit: 's' });
    expect(evaluateReadiness(stale).status).toBe('fail');
    // No sweep at all since a start 4 minutes ago.
    expect(only(healthy({ lastSweepAt: null, startedAt: NOW - 240_000 }), 'scheduler:lastSweep')).toMatchObject({ status: 'fail', output: expect.stringMatching(/^no sweep since the start/) });
  });

  it('an every-second sweep fails only after the 10 s floor (one slow second is not an outage)', () => {
    expect(only(healthy({ sweepIntervalMs: 1_000, lastSweepAt: NOW - 9_000 }), 'scheduler:lastSweep').status).toBe('pass');
    expect(only(healthy({ sweepIntervalMs: 1_000, lastSweepAt: NOW - 10_001 }), 'scheduler:lastSweep').status).toBe('fail');
  });

  it('clock:guard fails while the guard holds collection, naming the jump', () => {
    const input = healthy({ health: { ok: false, clockGuard: { ok: false, reason: 'wall clock jumped ahead by 400 s', since: NOW }, sweep: { ok: true, failures: 0, error: null } } });
    expect(only(input, 'clock:guard')).toMatchObject({ status: 'fail', observedValue: 'holding', output: 'no attempt starts: wall clock jumped ahead by 400 s' });
    expect(evaluateReadiness(input).status).toBe('fail');
  });

  it('sweep failures warn, then fail from the third in a row', () => {
    const failing = (failures: number) => healthy({ health: { ok: false, clockGuard: { ok: true, reason: null, since: null }, sweep: { ok: false, failures, error: 'SQLITE_FULL' } } });
    expect(only(failing(1), 'scheduler:sweepFailures')).toMatchObject({ status: 'warn', output: 'the last 1 sweeps failed: SQLITE_FULL' });
    expect(evaluateReadiness(failing(2)).status).toBe('warn');
    expect(evaluateReadiness(failing(3)).status).toBe('fail');
  });

  it('queue:saturation warns from 90 % of the bound', () => {
    expect(only(healthy({ active: 449 }), 'queue:saturation').status).toBe('pass');
    const full = healthy({ active: 450 });
    expect(only(full, 'queue:saturation')).toMatchObject({ status: 'warn', observedValue: 0.9 });
    expect(evaluateReadiness(full).status).toBe('warn');
  });

  it('gateway:circuit warns while a circuit is open or half-open, naming it', () => {
    const open = healthy({ circuits: [{ gateway: 'cp', state: 'open', since: NOW, consecutiveFailures: 10, reopenAt: NOW + 30_000 }, { gateway: 'sim', state: 'closed', since: NOW, consecutiveFailures: 0, reopenAt: null }] });
    expect(only(open, 'gateway:circuit')).toMatchObject({ status: 'warn', observedValue: 1, output: 'gateway cp circuit open after 10 failures in a row' });
    expect(evaluateReadiness(open).status).toBe('warn');
    const half = healthy({ circuits: [{ gateway: 'cp', state: 'half_open', since: NOW, consecutiveFailures: 10, reopenAt: null }] });
    expect(only(half, 'gateway:circuit').output).toBe('gateway cp circuit half-open after 10 failures in a row');
  });

  it('backlog:oldestDue warns when the oldest due item waited longer than 5 intervals (at least a minute)', () => {
    expect(only(healthy({ backlog: { count: 3, oldestDueAt: NOW - 300_000 } }), 'backlog:oldestDue').status).toBe('pass');
    const late = healthy({ backlog: { count: 3, oldestDueAt: NOW - 300_001 } });
    expect(only(late, 'backlog:oldestDue')).toMatchObject({ status: 'warn', observedValue: 300, output: '3 due items; the oldest has waited 300 s' });
  });

  it('webhooks:backlog passes while the oldest undelivered event is young, warns past 15 minutes, fails when unreadable', () => {
    const now = healthy().now;
    const young = healthy({ webhooks: { endpoints: 1, backlog: { pending: 3, oldestAt: now - 60_000 } } });
    expect(only(young, 'webhooks:backlog')).toMatchObject({ status: 'pass', observedValue: 60, observedUnit: 's' });
    const empty = healthy({ webhooks: { endpoints: 1, backlog: { pending: 0, oldestAt: null } } });
    expect(only(empty, 'webhooks:backlog')).toMatchObject({ status: 'pass', observedValue: 0 });
    const late = healthy({ webhooks: { endpoints: 2, backlog: { pending: 12, oldestAt: now - 16 * 60_000 } } });
    expect(only(late, 'webhooks:backlog')).toMatchObject({ status: 'warn', observedValue: 960, output: '12 webhook deliveries pending; the oldest event has waited 960 s' });
    const unknown = healthy({ webhooks: { endpoints: 1, backlog: null } });
    expect(only(unknown, 'webhooks:backlog')).toMatchObject({ status: 'fail' });
  });

  it('worst: fail > warn > pass', () => {
    expect(worst(['pass', 'warn', 'pass'])).toBe('warn');
    expect(worst(['warn', 'fail'])).toBe('fail');
    expect(worst([])).toBe('pass');
  });
});
