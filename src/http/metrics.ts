/**
 * The `/metrics` registry (SPEC section 9): Prometheus metrics with the
 * `rebill_` prefix and base units (seconds, `_total` counters), on a registry
 * of their own (never prom-client's global one: tests and a future multi-engine
 * process build many).
 *
 * Three kinds of sources:
 * - events pushed by the engine through the observer (`engineObserver`):
 *   gateway calls, their duration and scheduling lag, sweeps, skipped cycles;
 * - events pushed by the HTTP server (`observeHttp`, `authFailure`);
 * - state read at scrape time (`collect()`): due backlog and subscriptions by
 *   status from the database, queue, circuits, clock guard and last sweep from
 *   the engine. Reading at scrape time means no timer runs and a value is never
 *   older than the scrape.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { Clock } from '../clock.js';
import type { Outcome } from '../domain/index.js';
import type { CircuitState, Engine, EngineObserver } from '../engine/index.js';
import type { LinkEmailObserver, LinkEmailOutcome } from '../notifications/index.js';
import { countByStatus, dueBacklog, linkEmailBacklog, webhookBacklog, type Db, type DueBacklog } from '../store/index.js';

/** Prefix of every metric, the process defaults included. */
export const METRIC_PREFIX = 'rebill_';

/** What the scrape-time gauges read from the engine. */
export type EngineView = Pick<Engine, 'stats' | 'health' | 'circuits'>;

export interface MetricsDeps {
  readonly db: Db;
  /** The clock the engine runs on: "due now" for the backlog is judged on it. */
  readonly clock: Clock;
  /** The engine's queue bound (EngineOptions.queueBound). */
  readonly queueBound: number;
  /** Configured gateway names: their series exist (at zero) before the first call, so rate() works at once. */
  readonly gateways: readonly string[];
  /**
   * The engine, for queue size, circuits, clock guard and last sweep. Optional
   * because the engine takes `engineObserver` at construction: create the
   * metrics first, then the engine, then `attach(engine)`.
   */
  readonly engine?: EngineView;
  /** false: no process/Node.js default metrics (default true). */
  readonly processMetrics?: boolean;
  /** Enabled webhook endpoint ids (hashes of their URLs, never the URL): their series exist from the start. */
  readonly webhookEndpoints?: readonly string[];
}

/** What the webhook relay reports (its RelayObserver). */
export interface WebhookObserver {
  attempt(endpoint: string, outcome: 'delivered' | 'retry' | 'failed' | 'pending', durationMs: number): void;
}

export interface Metrics {
  readonly registry: Registry;
  /**
   * Counts one HTTP request. `route` is the route template (`/v1/subscriptions/:id`),
   * never the raw URL (one series per id would exhaust Prometheus); requests
   * that matched no route are reported as `unmatched` by the caller.
   */
  observeHttp(route: string, method: string, status: number, seconds: number): void;
  /** Counts one failed authentication (missing, unknown or wrong-scope token). */
  authFailure(): void;
  /** Pass as `EngineDeps.observer`. */
  readonly engineObserver: EngineObserver;
  /** Pass as the relay's observer. */
  readonly webhookObserver: WebhookObserver;
  /** Pass as the link e-mail sender's observer. */
  readonly linkEmailObserver: LinkEmailObserver;
  /** Gives the scrape-time gauges their engine (when it was not in deps). */
  attach(engine: EngineView): void;
}

/** Gateway answers, in the order the dashboard lists them. */
const OUTCOMES: ReadonlyArray<Outcome['kind']> = ['captured', 'declined', 'pending', 'not_found', 'unavailable'];
const CIRCUIT_VALUE: Record<CircuitState, number> = { closed: 0, half_open: 1, open: 2 };
const STATUSES = ['active', 'paused', 'stopped', 'terminated'] as const;

/** Gateway calls: tens of ms to the 30 s timeouts of slow acquirers. */
const CALL_BUCKETS = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];
/** Scheduling lag: sub-second when healthy, the 60 s alert threshold, up to a day of catch-up. */
const LAG_BUCKETS = [0.1, 0.5, 1, 5, 10, 30, 60, 120, 300, 900, 3600, 21_600, 86_400];
const SWEEP_BUCKETS = [0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const HTTP_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** Builds the registry and its feeders from one dependency object. */
export function createMetrics(deps: MetricsDeps): Metrics {
  const registry = new Registry();
  let engine: EngineView | undefined = deps.engine;
  const p = METRIC_PREFIX;
  const registers = [registry];

  if (deps.processMetrics !== false) {
    collectDefaultMetrics({ register: registry, prefix: p });
    // These three are gauges named `_total`, which `promtool check metrics` rejects; the per-type
    // gauges beside them (`nodejs_active_handles{type}`, ...) carry the same numbers.
    for (const name of ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']) registry.removeSingleMetric(`${p}${name}`);
  }

  const attempts = new Counter({
    name: `${p}attempts_total`,
    help: 'Gateway calls (sends and status queries) by gateway and what the gateway answered (unavailable: timeout, 5xx, connection error).',
    labelNames: ['gateway', 'outcome'] as const,
    registers,
  });
  const attemptDuration = new Histogram({
    name: `${p}attempt_duration_seconds`,
    help: 'Duration of one gateway call (not the queue wait), by gateway.',
    labelNames: ['gateway'] as const,
    buckets: CALL_BUCKETS,
    registers,
  });
  const lag = new Histogram({
    name: `${p}scheduling_lag_seconds`,
    help: 'From the instant an attempt became due (cycle due instant or retry instant) to the start of its gateway call.',
    labelNames: ['gateway'] as const,
    buckets: LAG_BUCKETS,
    registers,
  });
  const sweepDuration = new Histogram({ name: `${p}sweep_duration_seconds`, help: 'Duration of one sweep (claim and intent writes).', buckets: SWEEP_BUCKETS, registers });
  const sweeps = new Counter({ name: `${p}sweeps_total`, help: 'Sweeps by result (ok, failed).', labelNames: ['result'] as const, registers });
  const skipped = new Counter({ name: `${p}skipped_cycles_total`, help: 'Cycles skipped by the engine, by reason.', labelNames: ['reason'] as const, registers });
  const httpRequests = new Counter({
    name: `${p}http_requests_total`,
    help: 'HTTP requests by route template, method and status code.',
    labelNames: ['route', 'method', 'status'] as const,
    registers,
  });
  const httpDuration = new Histogram({
    name: `${p}http_request_duration_seconds`,
    help: 'HTTP request duration by route template, method and status code.',
    labelNames: ['route', 'method', 'status'] as const,
    buckets: HTTP_BUCKETS,
    registers,
  });
  const authFailures = new Counter({ name: `${p}http_auth_failures_total`, help: 'Failed authentications on the admin API (missing, unknown or wrong-scope token).', registers });

  for (const gateway of deps.gateways) for (const outcome of OUTCOMES) attempts.inc({ gateway, outcome }, 0);
  for (const result of ['ok', 'failed']) sweeps.inc({ result }, 0);

  // One backlog query per scrape, shared by the two gauges that show it (they are collected concurrently).
  let backlogRead: Promise<DueBacklog | null> | null = null;
  const backlog = (): Promise<DueBacklog | null> =>
    (backlogRead ??= dueBacklog(deps.db, deps.clock.now())
      // A database that does not answer must not fail the whole scrape: the gauges read NaN (readiness reports the cause).
      .catch(() => null)
      .finally(() => {
        backlogRead = null;
      }));

  new Gauge({
    name: `${p}due_backlog`,
    help: 'Subscriptions whose next work is due now or earlier (claimed or not yet claimed).',
    registers,
    async collect() {
      const b = await backlog();
      this.set(b ? b.count : NaN);
    },
  });
  new Gauge({
    name: `${p}oldest_due_age_seconds`,
    help: 'Age of the oldest due work (0 when nothing is due).',
    registers,
    async collect() {
      const b = await backlog();
      this.set(b ? (b.oldestDueAt === null ? 0 : Math.max(0, deps.clock.now() - b.oldestDueAt) / 1000) : NaN);
    },
  });
  new Gauge({
    name: `${p}subscriptions`,
    help: 'Subscriptions by status.',
    labelNames: ['status'] as const,
    registers,
    async collect() {
      const counts = await countByStatus(deps.db).catch(() => null);
      for (const status of STATUSES) this.set({ status }, counts ? counts[status] : NaN);
    },
  });
  new Gauge({
    name: `${p}queue_size`,
    help: 'Subscriptions held in memory by the engine (claimed, queued, in flight, awaiting their write).',
    registers,
    collect() {
      if (engine) this.set(engine.stats().active);
    },
  });
  new Gauge({ name: `${p}queue_bound`, help: 'Most subscriptions the engine holds in memory at once.', registers }).set(deps.queueBound);
  new Gauge({
    name: `${p}last_sweep_timestamp_seconds`,
    help: 'Unix time of the last sweep (0: none yet). Not updated while the clock guard holds.',
    registers,
    collect() {
      const at = engine?.stats().lastSweepAt ?? null;
      this.set(at === null ? 0 : at / 1000);
    },
  });
  new Gauge({
    name: `${p}sweep_consecutive_failures`,
    help: 'Sweeps failed in a row (0: the last one worked).',
    registers,
    collect() {
      if (engine) this.set(engine.health().sweep.failures);
    },
  });
  new Gauge({
    name: `${p}clock_guard_holding`,
    help: '1 while the clock guard stops collection (wall clock jumped against elapsed time), else 0.',
    registers,
    collect() {
      if (engine) this.set(engine.health().clockGuard.ok ? 0 : 1);
    },
  });
  new Gauge({
    name: `${p}gateway_circuit_state`,
    help: 'Circuit breaker per gateway: 0 closed, 1 half_open, 2 open.',
    labelNames: ['gateway'] as const,
    registers,
    collect() {
      if (!engine) {
        for (const gateway of deps.gateways) this.set({ gateway }, 0);
        return;
      }
      for (const c of engine.circuits()) this.set({ gateway: c.gateway }, CIRCUIT_VALUE[c.state]);
    },
  });

  const hookEndpoints = deps.webhookEndpoints ?? [];
  const deliveries = new Counter({
    name: `${p}webhook_deliveries_total`,
    help: 'Webhook delivery attempts by endpoint id and outcome (delivered, retry: failed and rescheduled, failed: past maxAgeHours).',
    labelNames: ['endpoint', 'outcome'] as const,
    registers,
  });
  const deliveryDuration = new Histogram({
    name: `${p}webhook_delivery_duration_seconds`,
    help: 'Duration of one webhook delivery attempt, by endpoint id.',
    labelNames: ['endpoint'] as const,
    buckets: CALL_BUCKETS,
    registers,
  });
  for (const endpoint of hookEndpoints) for (const outcome of ['delivered', 'retry', 'failed']) deliveries.inc({ endpoint, outcome }, 0);
  let hookRead: Promise<Awaited<ReturnType<typeof webhookBacklog>> | null> | null = null;
  const hookBacklog = () =>
    (hookRead ??= webhookBacklog(deps.db, hookEndpoints)
      .catch(() => null)
      .finally(() => {
        hookRead = null;
      }));
  new Gauge({
    name: `${p}webhook_backlog`,
    help: 'Undelivered (pending) webhook deliveries, by endpoint id.',
    labelNames: ['endpoint'] as const,
    registers,
    async collect() {
      const rows = await hookBacklog();
      for (const endpoint of hookEndpoints) this.set({ endpoint }, rows ? (rows.find((r) => r.endpointId === endpoint)?.pending ?? 0) : NaN);
    },
  });
  new Gauge({
    name: `${p}webhook_oldest_undelivered_age_seconds`,
    help: 'Age of the oldest undelivered webhook event, by endpoint id (0 when none).',
    labelNames: ['endpoint'] as const,
    registers,
    async collect() {
      const rows = await hookBacklog();
      for (const endpoint of hookEndpoints) {
        const oldest = rows?.find((r) => r.endpointId === endpoint)?.oldestAt ?? null;
        this.set({ endpoint }, rows ? (oldest === null ? 0 : Math.max(0, deps.clock.now() - oldest) / 1000) : NaN);
      }
    },
  });
  const webhookObserver: WebhookObserver = {
    attempt(endpoint, outcome, durationMs) {
      deliveries.inc({ endpoint, outcome });
      deliveryDuration.observe({ endpoint }, durationMs / 1000);
    },
  };

  const LINK_EMAIL_OUTCOMES: readonly LinkEmailOutcome[] = ['sent', 'retry', 'failed', 'skipped'];
  const linkEmails = new Counter({
    name: `${p}link_emails_total`,
    help: 'Payment-link e-mail tries by outcome (sent; retry: failed and rescheduled; failed: past maxAgeHours; skipped: no address, or the link was no longer open).',
    labelNames: ['outcome'] as const,
    registers,
  });
  for (const outcome of LINK_EMAIL_OUTCOMES) linkEmails.inc({ outcome }, 0);
  new Gauge({
    name: `${p}link_emails_pending`,
    help: 'Payment-link e-mails not sent yet (due now or waiting for a retry).',
    registers,
    async collect() {
      const backlog = await linkEmailBacklog(deps.db).catch(() => null);
      this.set(backlog ? backlog.pending : NaN);
    },
  });
  const linkEmailObserver: LinkEmailObserver = {
    outcome(outcome) {
      linkEmails.inc({ outcome });
    },
  };

  const engineObserver: EngineObserver = {
    gatewayCallStarted({ gateway, kind, lagSeconds }) {
      if (kind === 'send' && lagSeconds !== null) lag.observe({ gateway }, lagSeconds);
    },
    attemptFinished({ gateway, outcome, seconds }) {
      attempts.inc({ gateway, outcome });
      attemptDuration.observe({ gateway }, seconds);
    },
    sweepFinished({ seconds, ok, held }) {
      // A held sweep claimed nothing and did no database work: it is the clock guard's metric, not a sweep.
      if (held) return;
      sweeps.inc({ result: ok ? 'ok' : 'failed' });
      sweepDuration.observe(seconds);
    },
    cyclesSkipped({ reason, count }) {
      skipped.inc({ reason }, count);
    },
  };

  return {
    registry,
    engineObserver,
    webhookObserver,
    linkEmailObserver,
    attach(next) {
      engine = next;
    },
    observeHttp(route, method, status, seconds) {
      const labels = { route, method: method.toUpperCase(), status: String(status) };
      httpRequests.inc(labels);
      httpDuration.observe(labels, seconds);
    },
    authFailure() {
      authFailures.inc();
    },
  };
}
