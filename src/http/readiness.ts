/**
 * Readiness (`GET /readyz`, SPEC section 9): from a snapshot of the daemon's
 * state to an `application/health+json` document (IETF draft
 * "Health Check Response Format for HTTP APIs"). Pure: the probes gather the
 * inputs (probes.ts), this decides, so every rule is unit-tested without a
 * daemon.
 */
import type { CircuitView, EngineHealth } from '../engine/index.js';

/** The media type of the document. */
export const HEALTH_JSON = 'application/health+json';

export type HealthStatus = 'pass' | 'warn' | 'fail';

/** One entry of `checks[name]` (the draft allows several per name; rebill gives one). */
export interface CheckResult {
  readonly status: HealthStatus;
  readonly observedValue: number | string;
  readonly observedUnit?: string;
  readonly time: string;
  readonly output?: string;
}

/** The document: overall status (the worst check) and the checks by `component:measurement` name. */
export interface HealthDocument {
  readonly status: HealthStatus;
  readonly description: string;
  readonly checks: Readonly<Record<string, readonly CheckResult[]>>;
}

/** The sweep is failing readiness after this many intervals without one (SPEC section 9)... */
export const SWEEP_FAIL_INTERVALS = 3;
/** ...but never sooner than this: an every-second sweep must not flap on one slow second. */
export const SWEEP_FAIL_MIN_MS = 10_000;
/** The oldest due item warns after this many sweep intervals of waiting, and never sooner than BACKLOG_WARN_MIN_MS. */
export const BACKLOG_WARN_INTERVALS = 5;
export const BACKLOG_WARN_MIN_MS = 60_000;
/** The oldest undelivered webhook event warns once it is this old (a retry schedule's first steps fit well inside). */
export const WEBHOOK_BACKLOG_WARN_MS = 15 * 60_000;
/** Queue saturation (held / bound) that warns. */
export const QUEUE_WARN_RATIO = 0.9;
/** Sweeps failed in a row that fail readiness (fewer warn: one failure is retried with backoff). */
export const SWEEP_FAILURES_FAIL = 3;

/** Everything readiness looks at, read at one instant. */
export interface ReadinessInputs {
  /** Wall-clock now (epoch ms). */
  readonly now: number;
  readonly database: { readonly ok: boolean; readonly ms: number; readonly error: string | null };
  /** How often a sweep should happen: the cron's interval, capped by the engine's longest sleep. */
  readonly sweepIntervalMs: number;
  /** The engine's last sweep (epoch ms); null: none yet. */
  readonly lastSweepAt: number | null;
  /** When the engine started (the age of "no sweep yet"). */
  readonly startedAt: number;
  readonly health: EngineHealth;
  /** Subscriptions held in memory, and the most it may hold. */
  readonly active: number;
  readonly queueBound: number;
  readonly circuits: readonly CircuitView[];
  /** Due work waiting in the database; null when the database did not answer. */
  readonly backlog: { readonly count: number; readonly oldestDueAt: number | null } | null;
  /** Enabled webhook endpoints, and their undelivered (pending) deliveries with the oldest one's event instant (null: database down). */
  readonly webhooks: { readonly endpoints: number; readonly backlog: { readonly pending: number; readonly oldestAt: number | null } | null };
}

/** Builds the document; its status is the worst of the checks. */
export function evaluateReadiness(input: ReadinessInputs): HealthDocument {
  const time = new Date(input.now).toISOString();
  const check = (status: HealthStatus, observedValue: number | string, observedUnit: string | undefined, output?: string): CheckResult[] => [
    { status, observedValue, ...(observedUnit ? { observedUnit } : {}), time, ...(output ? { output } : {}) },
  ];
  const checks: Record<string, CheckResult[]> = {};

  const db = input.database;
  checks['database:responseTime'] = check(db.ok ? 'pass' : 'fail', db.ms, 'ms', db.error ?? undefined);

  const since = input.lastSweepAt ?? input.startedAt;
  const age = Math.max(0, input.now - since);
  const sweepLimit = Math.max(SWEEP_FAIL_INTERVALS * input.sweepIntervalMs, SWEEP_FAIL_MIN_MS);
  checks['scheduler:lastSweep'] = check(
    age > sweepLimit ? 'fail' : 'pass',
    seconds(age),
    's',
    age > sweepLimit
      ? `${input.lastSweepAt === null ? 'no sweep since the start' : 'no sweep'} for ${seconds(age)} s (interval ${seconds(input.sweepIntervalMs)} s, limit ${seconds(sweepLimit)} s)`
      : undefined,
  );

  const sweep = input.health.sweep;
  const sweepStatus: HealthStatus = sweep.failures >= SWEEP_FAILURES_FAIL ? 'fail' : sweep.failures > 0 ? 'warn' : 'pass';
  checks['scheduler:sweepFailures'] = check(sweepStatus, sweep.failures, undefined, sweep.failures > 0 ? `the last ${sweep.failures} sweeps failed${sweep.error ? `: ${sweep.error}` : ''}` : undefined);

  const guard = input.health.clockGuard;
  checks['clock:guard'] = check(guard.ok ? 'pass' : 'fail', guard.ok ? 'ok' : 'holding', undefined, guard.ok ? undefined : `no attempt starts: ${guard.reason ?? 'the wall clock jumped'}`);

  const ratio = input.queueBound > 0 ? input.active / input.queueBound : 0;
  checks['queue:saturation'] = check(
    ratio >= QUEUE_WARN_RATIO ? 'warn' : 'pass',
    Math.round(ratio * 1000) / 1000,
    'ratio',
    ratio >= QUEUE_WARN_RATIO ? `${input.active} of ${input.queueBound} subscriptions held in memory; more due work waits in the database` : undefined,
  );

  const tripped = input.circuits.filter((c) => c.state !== 'closed');
  checks['gateway:circuit'] = check(
    tripped.length > 0 ? 'warn' : 'pass',
    tripped.length,
    'open',
    tripped.length > 0 ? tripped.map((c) => `gateway ${c.gateway} circuit ${c.state.replace('_', '-')} after ${c.consecutiveFailures} failures in a row`).join('; ') : undefined,
  );

  if (input.backlog === null) {
    checks['backlog:oldestDue'] = check('fail', 'unknown', undefined, 'the database did not answer');
  } else {
    const wait = input.backlog.oldestDueAt === null ? 0 : Math.max(0, input.now - input.backlog.oldestDueAt);
    const limit = Math.max(BACKLOG_WARN_INTERVALS * input.sweepIntervalMs, BACKLOG_WARN_MIN_MS);
    checks['backlog:oldestDue'] = check(
      wait > limit ? 'warn' : 'pass',
      seconds(wait),
      's',
      wait > limit ? `${input.backlog.count} due items; the oldest has waited ${seconds(wait)} s` : undefined,
    );
  }

  const hooks = input.webhooks;
  if (hooks.endpoints === 0) {
    checks['webhooks:backlog'] = check('pass', 0, 'events', 'no webhooks configured');
  } else if (hooks.backlog === null) {
    checks['webhooks:backlog'] = check('fail', 'unknown', undefined, 'the webhook backlog could not be read');
  } else {
    const age = hooks.backlog.oldestAt === null ? 0 : Math.max(0, input.now - hooks.backlog.oldestAt);
    const late = age > WEBHOOK_BACKLOG_WARN_MS;
    checks['webhooks:backlog'] = check(
      late ? 'warn' : 'pass',
      seconds(age),
      's',
      late ? `${hooks.backlog.pending} webhook deliveries pending; the oldest event has waited ${seconds(age)} s` : undefined,
    );
  }

  return { status: worst(Object.values(checks).map((c) => c[0]!.status)), description: 'rebill readiness', checks };
}

/** fail > warn > pass. */
export function worst(statuses: readonly HealthStatus[]): HealthStatus {
  return statuses.includes('fail') ? 'fail' : statuses.includes('warn') ? 'warn' : 'pass';
}

function seconds(ms: number): number {
  return Math.round(ms / 100) / 10;
}
