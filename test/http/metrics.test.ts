/**
 * The `/metrics` registry (SPEC section 9, issue 8 item 3) on a real SQLite
 * file and the real engine on a virtual clock: the series and values after a
 * few captures, a decline, a gateway outage and a catch-up that skips cycles;
 * `promtool check metrics` on the text; the shipped alert rules and Grafana
 * dashboard checked against the names the registry really exposes.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { pino, type DestinationStream } from 'pino';
import type { MetricObjectWithValues, MetricValue } from 'prom-client';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { VirtualClock, type Clock } from '../../src/clock.js';
import { createEngine, daemonGateways, type EngineObserver, type EngineOptions } from '../../src/engine/index.js';
import type { GatewayConfig } from '../../src/config/index.js';
import { createMetrics, type Metrics } from '../../src/http/index.js';
import { addSubscription, attemptsOf, engineOptions, eventsOf, ms, openTempDb, silentLogger, type TempDb } from '../support/engine-harness.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const ALERTS = `${ROOT}deploy/prometheus/alerts.yml`;
const ALERT_TESTS = `${ROOT}deploy/prometheus/alerts.test.yml`;
const DASHBOARD = `${ROOT}deploy/grafana/rebill-dashboard.json`;

/** promtool from Debian's `prometheus` package, when on PATH. */
const promtool = spawnSync('promtool', ['--version'], { encoding: 'utf8' }).status === 0;

const T0 = ms('2025-01-01T00:00:00Z');
/** The engine first sweeps 90 s after the due instant: every fresh send has 90 s of scheduling lag. */
const FIRST_SWEEP = T0 + 90_000;

const SIMULATORS = { sim: { type: 'simulator' }, sim2: { type: 'simulator' } } as unknown as Record<string, GatewayConfig>;

type Json = MetricObjectWithValues<MetricValue<string>>;

/** The value of one series (labels matched exactly on the keys given). */
function value(json: Json[], name: string, labels: Record<string, string> = {}): number | undefined {
  const metric = json.find((m) => m.name === name || (String(m.type) === 'histogram' && name.startsWith(m.name)));
  const sample = metric?.values.find(
    (v) => ((v as { metricName?: string }).metricName ?? metric.name) === name && Object.entries(labels).every(([k, l]) => String(v.labels[k]) === l),
  );
  return sample?.value;
}

/** Sample names in Prometheus text (histograms give _bucket, _sum, _count). */
function sampleNames(text: string): Set<string> {
  return new Set(text.split('\n').filter((l) => l && !l.startsWith('#')).map((l) => l.split(/[{ ]/)[0]!));
}

/** Every rebill_ metric name a PromQL expression mentions. */
function referencedNames(expr: string): string[] {
  return expr.match(/\brebill_[a-z0-9_]+/g) ?? [];
}

/** The harness's engine on `clock` (lease owner `metrics-test`) with an observer and a logger of the test's choice. */
function observedEngine(t: TempDb, clock: Clock, observer: EngineObserver, options: Partial<EngineOptions> = {}, logger = silentLogger) {
  return createEngine({ db: t.db, clock, gateways: daemonGateways(t.db, clock, SIMULATORS), logger, owner: 'metrics-test', options: engineOptions(options), observer });
}

/** Four subscriptions on two simulators: a capture, a decline, a 5xx outage (circuit opens at once) and a catch-up over missed cycles. */
async function scenario(t: TempDb, clock: VirtualClock, metrics: Metrics) {
  const engine = observedEngine(t, clock, metrics.engineObserver, { circuit: { failureThreshold: 1 } });
  metrics.attach(engine);
  await addSubscription(t.db, ms('2024-10-01T00:00:00Z'), { id: 'late', paymentToken: 'tok_ok', startDate: '2024-10-01' });
  await addSubscription(t.db, clock.now(), { id: 'ok', paymentToken: 'tok_ok', startDate: '2025-01-01' });
  await addSubscription(t.db, clock.now(), { id: 'poor', paymentToken: 'tok_insufficient', startDate: '2025-01-01' });
  await addSubscription(t.db, clock.now(), { id: 'down', paymentToken: 'tok_5xx', startDate: '2025-01-01' }, { gateway: 'sim2' });
  return engine;
}

describe('metrics registry', () => {
  let t: TempDb;
  beforeEach(async () => {
    t = await openTempDb({}, { name: 'metrics' });
  });
  afterEach(async () => {
    await t.close();
  });

  it('before the first sweep: due backlog 4, oldest due age from the earliest due instant, every gateway series at zero', async () => {
    const clock = new VirtualClock(FIRST_SWEEP);
    const metrics = createMetrics({ db: t.db, clock, queueBound: 100, gateways: ['sim', 'sim2'] });
    await scenario(t, clock, metrics);
    const json = (await metrics.registry.getMetricsAsJSON()) as Json[];
    expect(value(json, 'rebill_due_backlog')).toBe(4);
    expect(value(json, 'rebill_oldest_due_age_seconds')).toBe((FIRST_SWEEP - ms('2024-10-01T00:00:00Z')) / 1000);
    expect(value(json, 'rebill_subscriptions', { status: 'active' })).toBe(4);
    expect(value(json, 'rebill_last_sweep_timestamp_seconds')).toBe(0);
    for (const gateway of ['sim', 'sim2']) {
      for (const outcome of ['captured', 'declined', 'pending', 'not_found', 'unavailable']) expect(value(json, 'rebill_attempts_total', { gateway, outcome })).toBe(0);
      expect(value(json, 'rebill_gateway_circuit_state', { gateway })).toBe(0);
    }
  });

  it('after a sweep: captures, a decline and an outage by gateway, 90 s scheduling lag, skipped cycles, an open circuit, the queue and the last sweep', async () => {
    const clock = new VirtualClock(FIRST_SWEEP);
    const metrics = createMetrics({ db: t.db, clock, queueBound: 100, gateways: ['sim', 'sim2'] });
    const engine = await scenario(t, clock, metrics);
    await engine.sweepUntilIdle();
    metrics.observeHttp('/v1/subscriptions/:id', 'get', 200, 0.004);
    metrics.observeHttp('/v1/subscriptions/:id', 'GET', 200, 0.02);
    metrics.observeHttp('/readyz', 'GET', 503, 0.001);
    metrics.authFailure();

    expect((await attemptsOf(t.db, 'ok')).map((a) => a.state)).toEqual(['captured']);
    const skippedEvents = await eventsOf(t.db, 'late', 'cycle.skipped');
    const json = (await metrics.registry.getMetricsAsJSON()) as Json[];
    expect(value(json, 'rebill_attempts_total', { gateway: 'sim', outcome: 'captured' })).toBe(2);
    expect(value(json, 'rebill_attempts_total', { gateway: 'sim', outcome: 'declined' })).toBe(1);
    expect(value(json, 'rebill_attempts_total', { gateway: 'sim2', outcome: 'unavailable' })).toBe(1);
    expect(value(json, 'rebill_attempts_total', { gateway: 'sim2', outcome: 'captured' })).toBe(0);
    expect(value(json, 'rebill_attempt_duration_seconds_count', { gateway: 'sim' })).toBe(3);
    expect(value(json, 'rebill_attempt_duration_seconds_count', { gateway: 'sim2' })).toBe(1);
    // Three fresh sends on sim, each started 90 s after its due instant (the catch-up collects the current cycle, due at T0 too).
    expect(value(json, 'rebill_scheduling_lag_seconds_count', { gateway: 'sim' })).toBe(3);
    expect(value(json, 'rebill_scheduling_lag_seconds_sum', { gateway: 'sim' })).toBe(270);
    expect(value(json, 'rebill_scheduling_lag_seconds_bucket', { gateway: 'sim', le: '60' })).toBe(0);
    expect(value(json, 'rebill_scheduling_lag_seconds_bucket', { gateway: 'sim', le: '120' })).toBe(3);
    expect(skippedEvents.length).toBeGreaterThan(0);
    const reason = String(skippedEvents[0]!.data.reason);
    expect(value(json, 'rebill_skipped_cycles_total', { reason })).toBe(skippedEvents.length);
    expect(value(json, 'rebill_gateway_circuit_state', { gateway: 'sim' })).toBe(0);
    expect(value(json, 'rebill_gateway_circuit_state', { gateway: 'sim2' })).toBe(2);
    expect(value(json, 'rebill_due_backlog')).toBe(0);
    expect(value(json, 'rebill_oldest_due_age_seconds')).toBe(0);
    expect(value(json, 'rebill_subscriptions', { status: 'active' })).toBe(4);
    expect(value(json, 'rebill_queue_size')).toBe(0);
    expect(value(json, 'rebill_queue_bound')).toBe(100);
    expect(value(json, 'rebill_last_sweep_timestamp_seconds')).toBe(FIRST_SWEEP / 1000);
    expect(value(json, 'rebill_clock_guard_holding')).toBe(0);
    expect(value(json, 'rebill_sweep_consecutive_failures')).toBe(0);
    const sweeps = value(json, 'rebill_sweeps_total', { result: 'ok' })!;
    expect(sweeps).toBeGreaterThanOrEqual(1);
    expect(value(json, 'rebill_sweeps_total', { result: 'failed' })).toBe(0);
    expect(value(json, 'rebill_sweep_duration_seconds_count')).toBe(sweeps);
    expect(value(json, 'rebill_http_requests_total', { route: '/v1/subscriptions/:id', method: 'GET', status: '200' })).toBe(2);
    expect(value(json, 'rebill_http_requests_total', { route: '/readyz', method: 'GET', status: '503' })).toBe(1);
    expect(value(json, 'rebill_http_request_duration_seconds_count', { route: '/v1/subscriptions/:id', method: 'GET', status: '200' })).toBe(2);
    expect(value(json, 'rebill_http_auth_failures_total')).toBe(1);
    // Process defaults carry the prefix too.
    expect(value(json, 'rebill_process_cpu_user_seconds_total')).toBeGreaterThan(0);
  });

  it('a clock guard that holds reads 1, and a sweep held by it is not counted as a sweep', async () => {
    let wall = FIRST_SWEEP;
    let mono = 0;
    const clock: Clock = { now: () => wall, monotonic: () => mono, sleepUntil: async () => {} };
    const metrics = createMetrics({ db: t.db, clock, queueBound: 10, gateways: ['sim', 'sim2'] });
    const engine = observedEngine(t, clock, metrics.engineObserver);
    metrics.attach(engine);
    await engine.sweep();
    wall += 400 * 86_400_000; // the wall clock steps 400 days; elapsed time does not
    mono += 1000;
    await engine.sweep();
    const json = (await metrics.registry.getMetricsAsJSON()) as Json[];
    expect(value(json, 'rebill_clock_guard_holding')).toBe(1);
    expect(value(json, 'rebill_sweeps_total', { result: 'ok' })).toBe(1);
    expect(value(json, 'rebill_last_sweep_timestamp_seconds')).toBe(FIRST_SWEEP / 1000);
  });

  it('an observer whose every callback throws breaks nothing: the charges are made, and each failing callback is logged once', async () => {
    const lines: string[] = [];
    const destination: DestinationStream = { write: (l: string) => void lines.push(l) };
    const clock = new VirtualClock(FIRST_SWEEP);
    const boom = () => {
      throw new Error('observer bug');
    };
    const observer: EngineObserver = { gatewayCallStarted: boom, attemptFinished: boom, sweepFinished: boom, cyclesSkipped: boom };
    const engine = observedEngine(t, clock, observer, {}, pino({ level: 'info' }, destination));
    await addSubscription(t.db, ms('2024-10-01T00:00:00Z'), { id: 'late', paymentToken: 'tok_ok', startDate: '2024-10-01' });
    for (const id of ['a', 'b', 'c']) await addSubscription(t.db, clock.now(), { id, paymentToken: 'tok_ok', startDate: '2025-01-01' });
    await engine.sweepUntilIdle();
    for (const id of ['late', 'a', 'b', 'c']) expect((await attemptsOf(t.db, id)).map((a) => a.state)).toEqual(['captured']);
    const failures = lines.map((l) => JSON.parse(l) as { msg: string; callback?: string }).filter((r) => r.msg.startsWith('engine observer failed'));
    expect(failures.map((f) => f.callback).sort()).toEqual(['attemptFinished', 'cyclesSkipped', 'gatewayCallStarted', 'sweepFinished']);
  });

  it('a database that does not answer does not fail the scrape: its gauges read NaN', async () => {
    const clock = new VirtualClock(FIRST_SWEEP);
    const metrics = createMetrics({ db: t.db, clock, queueBound: 100, gateways: ['sim'], processMetrics: false });
    await t.db.destroy();
    const json = (await metrics.registry.getMetricsAsJSON()) as Json[];
    expect(value(json, 'rebill_due_backlog')).toBeNaN();
    expect(value(json, 'rebill_oldest_due_age_seconds')).toBeNaN();
    expect(value(json, 'rebill_subscriptions', { status: 'active' })).toBeNaN();
    expect(value(json, 'rebill_queue_bound')).toBe(100);
    if (promtool) {
      // prom-client writes NaN as `Nan`; the Prometheus parser reads it case-insensitively.
      const r = spawnSync('promtool', ['check', 'metrics'], { input: await metrics.registry.metrics(), encoding: 'utf8' });
      expect(r.stdout + r.stderr).toBe('');
    }
    t = await openTempDb({}, { name: 'metrics' }); // afterEach closes this one
  });
});

describe('promtool and the shipped monitoring files', () => {
  let t: TempDb;
  let text: string;
  beforeEach(async () => {
    t = await openTempDb({}, { name: 'metrics' });
    const clock = new VirtualClock(FIRST_SWEEP);
    const metrics = createMetrics({ db: t.db, clock, queueBound: 100, gateways: ['sim', 'sim2'] });
    const engine = await scenario(t, clock, metrics);
    await engine.sweepUntilIdle();
    metrics.observeHttp('/readyz', 'GET', 200, 0.001);
    metrics.authFailure();
    text = await metrics.registry.metrics();
  });
  afterEach(async () => {
    await t.close();
  });

  it.skipIf(!promtool)(`promtool check metrics prints nothing and exits 0${promtool ? '' : ' (SKIPPED: promtool not on PATH; apt-get install prometheus)'}`, () => {
    const r = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
    expect(r.stdout + r.stderr).toBe('');
    expect(r.status).toBe(0);
  });

  it.skipIf(!promtool)(`promtool check rules accepts deploy/prometheus/alerts.yml${promtool ? '' : ' (SKIPPED: promtool not on PATH)'}`, () => {
    const r = spawnSync('promtool', ['check', 'rules', ALERTS], { encoding: 'utf8' });
    expect(r.stderr).toBe('');
    expect(r.status, r.stdout).toBe(0);
  });

  it.skipIf(!promtool)(`promtool test rules: each alert fires on the series it is written for${promtool ? '' : ' (SKIPPED: promtool not on PATH)'}`, () => {
    const r = spawnSync('promtool', ['test', 'rules', ALERT_TESTS], { encoding: 'utf8' });
    expect(r.status, r.stdout + r.stderr).toBe(0);
  });

  it('the alert rules cover daemon down, readiness (clock guard, failing and stale sweeps), backlog, lag, declines and circuits, naming only metrics the registry exposes', () => {
    type Rule = { alert?: string; record?: string; expr: string; for?: string; labels?: { severity?: string }; annotations?: Record<string, string> };
    const doc = parseYaml(readFileSync(ALERTS, 'utf8')) as { groups: Array<{ rules: Rule[] }> };
    const all = doc.groups.flatMap((g) => g.rules);
    const names = sampleNames(text);
    for (const rule of all) for (const name of referencedNames(String(rule.expr))) expect(names, `${rule.alert ?? rule.record}: ${name}`).toContain(name);
    const rules = all.filter((r): r is Rule & { alert: string } => r.alert !== undefined);
    for (const rule of rules) {
      expect(rule.for, rule.alert).toMatch(/^\d+[smh]$/);
      expect(rule.labels?.severity, rule.alert).toMatch(/^(critical|warning|info)$/);
      expect(rule.annotations?.summary, rule.alert).toBeTruthy();
      expect(rule.annotations?.description, rule.alert).toBeTruthy();
    }
    expect(rules.map((r) => r.alert).sort()).toEqual(
      ['RebillBacklogGrowing', 'RebillClockGuardHolding', 'RebillDeclineRateSpike', 'RebillDown', 'RebillGatewayCircuitOpen', 'RebillSchedulingLagHigh', 'RebillSweepStale', 'RebillSweepsFailing'].sort(),
    );
  });

  it('the Grafana dashboard parses and every metric its panels query exists in the registry output', () => {
    const dashboard = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as { title: string; uid: string; schemaVersion: number; panels: Array<{ title: string; type: string; targets?: Array<{ expr: string }> }> };
    expect(dashboard.title).toBeTruthy();
    expect(dashboard.uid).toBeTruthy();
    expect(dashboard.schemaVersion).toBeGreaterThan(30);
    const names = sampleNames(text);
    const queried = new Set<string>();
    for (const panel of dashboard.panels.filter((p) => p.type !== 'row')) {
      expect(panel.targets?.length, panel.title).toBeGreaterThan(0);
      for (const target of panel.targets ?? []) for (const name of referencedNames(target.expr)) queried.add(name);
    }
    for (const name of queried) expect(names, name).toContain(name);
    for (const base of ['rebill_attempts_total', 'rebill_scheduling_lag_seconds_bucket', 'rebill_due_backlog', 'rebill_oldest_due_age_seconds', 'rebill_sweep_duration_seconds_bucket', 'rebill_gateway_circuit_state', 'rebill_subscriptions', 'rebill_http_requests_total']) {
      expect([...queried], base).toContain(base);
    }
  });
});
