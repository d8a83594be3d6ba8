/**
 * The outbox relay (SPEC section 8): sends the outbox's events to each
 * configured webhook endpoint, Standard Webhooks signed, at least once, in
 * event order per (endpoint, subscription). Each endpoint runs its own loop:
 * it scans the outbox past its cursor in batches (creating delivery rows),
 * then sends the heads of its pending streams (the earliest pending event of
 * each subscription) with bounded concurrency, over keep-alive connections
 * (node:http keep-alive agents). A failure reschedules that delivery with backoff and
 * jitter, holding back only that subscription's stream on that endpoint;
 * past maxAgeHours after the event it is marked `failed` (kept for
 * redelivery) and the stream moves on.
 */
import { createHash } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import type { Logger } from 'pino';
import { Webhook } from 'standardwebhooks';
import { WEBHOOK_EVENT_TYPES, type WebhookConfig } from '../config/index.js';
import type { Clock } from '../clock.js';
import { parseForwardDuration } from '../calendar/index.js';
import { renderEvents } from '../service/index.js';
import {
  dueDeliveries,
  ensureWebhookEndpoint,
  eventsByIds,
  lastEventId,
  nextDeliveryAt,
  recordDeliveryAttempts,
  scanOutbox,
  type Db,
  type DeliveryRow,
  type DeliveryState,
  type RecordedAttempt,
  runExclusively,
} from '../store/index.js';

/** How long an idle endpoint trusts its earliest-retry instant before reading it again. */
const RECHECK_MS = 5_000;

/** An endpoint's stable id: a hash of its URL (config order may change). */
export function endpointId(url: string): string {
  return `we_${createHash('sha256').update(url).digest('hex').slice(0, 16)}`;
}

/** Whether an endpoint's `events` filter takes an event type (`*` = every subscribable type). */
export function eventMatches(filter: readonly string[], type: string): boolean {
  for (const f of filter) {
    if (f === '*') return (WEBHOOK_EVENT_TYPES as readonly string[]).includes(type);
    if (f === type) return true;
    if (f.endsWith('.*') && type.startsWith(f.slice(0, -1))) return true;
  }
  return false;
}

/**
 * The delay before retry number `failures` (1 = after the first failure):
 * the schedule's step (the last one repeats), times a jitter factor in
 * [0.75, 1.25).
 */
export function retryDelayMs(scheduleMs: readonly number[], failures: number, random: () => number): number {
  const step = scheduleMs[Math.min(failures, scheduleMs.length) - 1]!;
  return Math.round(step * (0.75 + 0.5 * random()));
}

/** What the relay reports as it goes (metrics). */
export interface RelayObserver {
  attempt?(endpoint: string, outcome: DeliveryState | 'retry', durationMs: number): void;
}

export interface RelayOptions {
  /** Outbox events scanned per batch (default 500). */
  readonly batchSize?: number;
  /** Deliveries in flight per endpoint (default 16). */
  readonly concurrency?: number;
  /** Deliveries sent per pass and recorded in one commit (default 256). */
  readonly passSize?: number;
  /** How often an idle endpoint looks for new events (default 200 ms). */
  readonly pollMs?: number;
  readonly random?: () => number;
}

export interface RelayDeps {
  readonly db: Db;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly webhooks: readonly WebhookConfig[];
  readonly observer?: RelayObserver;
  readonly options?: RelayOptions;
}

export interface Relay {
  /** Registers the endpoints (a new one starts at the outbox's current end). Call before writing events it should see. */
  init(): Promise<void>;
  /** One pass over every enabled endpoint: scan, then send what is due. Returns the attempts made. */
  tick(): Promise<number>;
  /** Runs each endpoint's loop until stop(). */
  start(): void;
  /** Wakes idle loops (new events were written). */
  kick(): void;
  /** Stops the loops; requests in flight are abandoned (left pending, sent again at the next start). */
  stop(): Promise<void>;
  readonly endpoints: readonly { readonly id: string; readonly url: string; readonly enabled: boolean }[];
}

interface Endpoint {
  readonly id: string;
  readonly config: WebhookConfig;
  readonly signer: Webhook;
  readonly scheduleMs: readonly number[];
  /** Keep-alive connections, at most `concurrency` (one per delivery in flight). */
  readonly agent: http.Agent;
}

export function createRelay(deps: RelayDeps): Relay {
  const { db, clock, logger } = deps;
  const batchSize = deps.options?.batchSize ?? 500;
  const concurrency = deps.options?.concurrency ?? 16;
  const pollMs = deps.options?.pollMs ?? 200;
  const passSize = deps.options?.passSize ?? 256;
  const random = deps.options?.random ?? Math.random;
  const endpoints: Endpoint[] = deps.webhooks.map((config) => ({
    id: endpointId(config.url),
    config,
    signer: new Webhook(config.secret),
    scheduleMs: config.retrySchedule.map((d) => parseForwardDuration(d).toMillis()),
    agent: new (config.url.startsWith('https:') ? https.Agent : http.Agent)({ keepAlive: true, maxSockets: concurrency }),
  }));
  const active = endpoints.filter((e) => e.config.enabled);
  let stopping = false;
  // Aborts the requests in flight on stop: they stay pending (unrecorded) and are sent again at the next start.
  const halt = new AbortController();
  let wake = new AbortController();
  let loops: Promise<void>[] = [];
  const elapsed = () => clock.monotonic?.() ?? clock.now();

  /** POSTs over the endpoint's keep-alive agent; resolves with the status once the body has been read. */
  function post(ep: Endpoint, body: string, headers: Record<string, string>): Promise<number> {
    const url = new URL(ep.config.url);
    const client = url.protocol === 'https:' ? https : http;
    return new Promise((resolve, reject) => {
      const signal = AbortSignal.any([AbortSignal.timeout(ep.config.timeoutSeconds * 1000), halt.signal]);
      const req = client.request(url, { method: 'POST', agent: ep.agent, headers: { ...headers, 'content-length': String(Buffer.byteLength(body)) }, signal }, (res) => {
        res.resume(); // drain: the socket goes back to the pool
        res.on('end', () => resolve(res.statusCode ?? 0));
        res.on('error', reject);
      });
      req.on('error', (err) => reject(signal.aborted && signal.reason instanceof Error ? signal.reason : err));
      req.end(body);
    });
  }

  /** Sends one delivery; returns the attempt to record (undefined: abandoned because the relay is stopping). */
  async function send(ep: Endpoint, delivery: DeliveryRow, body: string): Promise<RecordedAttempt | undefined> {
    const msgId = `evt_${String(delivery.eventId).padStart(12, '0')}`;
    const attemptAt = clock.now();
    const timestamp = new Date(Math.floor(attemptAt / 1000) * 1000);
    const headers = {
      'content-type': 'application/json',
      'user-agent': 'rebill-webhooks',
      'webhook-id': msgId,
      'webhook-timestamp': String(Math.floor(attemptAt / 1000)),
      'webhook-signature': ep.signer.sign(msgId, timestamp, body),
    };
    const started = elapsed();
    let status: number | null = null;
    let error: string | null = null;
    try {
      status = await post(ep, body, headers);
      if (status < 200 || status > 299) error = `HTTP ${status}`;
    } catch (err) {
      const e = err as Error & { code?: string };
      error = e.name === 'TimeoutError' ? `timeout after ${ep.config.timeoutSeconds}s` : (e.code ?? e.message ?? 'network error');
    }
    if (halt.signal.aborted) return undefined; // stopping: not an attempt the endpoint failed
    const durationMs = Math.max(0, Math.round(elapsed() - started));
    const attempt = delivery.attempts + 1;
    let state: DeliveryState = 'delivered';
    let nextAttemptAt: number | null = null;
    if (error !== null) {
      const next = clock.now() + retryDelayMs(ep.scheduleMs, attempt, random);
      if (next > delivery.eventAt + ep.config.maxAgeHours * 3_600_000) state = 'failed';
      else {
        state = 'pending';
        nextAttemptAt = next;
      }
      logger.warn({ endpoint: ep.id, event: msgId, attempt, status, error, state }, state === 'failed' ? 'webhook delivery failed for good (redeliver to retry)' : 'webhook delivery failed; will retry');
    }
    deps.observer?.attempt?.(ep.id, state === 'pending' ? 'retry' : state, durationMs);
    return { endpointId: ep.id, eventId: delivery.eventId, attempt, outcome: { at: attemptAt, status, durationMs, error, state, nextAttemptAt } };
  }

  /** One pass for one endpoint: scan to the outbox's end, then send the due stream heads. Returns the attempts made. */
  async function pass(ep: Endpoint, quietUntil = 0): Promise<number> {
    const matches = (type: string) => eventMatches(ep.config.events, type);
    let scanned = 0;
    for (let n = batchSize; n === batchSize && !stopping; scanned += n) n = await scanOutbox(db, ep.id, matches, batchSize, clock.now());
    // Nothing new and no stream head due before quietUntil: skip the pending-rows query (a large backlog makes it the cost of an idle poll).
    if (scanned === 0 && clock.now() < quietUntil) return 0;
    const due = await dueDeliveries(db, ep.id, clock.now(), passSize);
    if (due.length === 0) return 0;
    const bodies = new Map<number, string>();
    const rendered = await renderEvents(db, await eventsByIds(db, due.map((d) => d.eventId)), clock.now());
    for (const body of rendered) bodies.set(Number(body.id.slice(4)), JSON.stringify(body));
    let next = 0;
    const done: RecordedAttempt[] = [];
    const worker = async () => {
      while (next < due.length && !stopping) {
        const delivery = due[next++]!;
        const body = bodies.get(delivery.eventId);
        const attempt = body === undefined ? undefined : await send(ep, delivery, body);
        if (attempt) done.push(attempt);
      }
    };
    await Promise.all(Array.from({ length: Math.min(concurrency, due.length) }, worker));
    // One commit for the pass: a crash before it only means these are sent again (same webhook-id).
    await recordDeliveryAttempts(db, done);
    return due.length;
  }

  async function loop(ep: Endpoint): Promise<void> {
    let quietUntil = 0;
    while (!stopping) {
      try {
        const signal = wake.signal;
        if ((await pass(ep, quietUntil)) > 0) {
          quietUntil = 0;
          continue;
        }
        // The earliest retry, re-read at least every RECHECK_MS (a redelivery from another process makes a row due now).
        if (clock.now() >= quietUntil) quietUntil = Math.min((await nextDeliveryAt(db, ep.id)) ?? Infinity, clock.now() + RECHECK_MS);
        if (!stopping) await clock.sleepUntil(Math.min(quietUntil, clock.now() + pollMs), signal);
      } catch (err) {
        if (stopping) return;
        logger.error({ err, endpoint: ep.id }, 'webhook relay pass failed; retrying');
        await clock.sleepUntil(clock.now() + 1000, wake.signal);
      }
    }
  }

  return {
    endpoints: endpoints.map((e) => ({ id: e.id, url: e.config.url, enabled: e.config.enabled })),
    async init() {
      const end = await lastEventId(db);
      for (const ep of endpoints) await ensureWebhookEndpoint(db, ep.id, ep.config.url, end, clock.now());
    },
    async tick() {
      const counts = await Promise.all(active.map(pass));
      return counts.reduce((a, b) => a + b, 0);
    },
    start() {
      // Several daemons on one PostgreSQL database: one of them relays each endpoint at a time
      // (order per subscription needs one sender); another takes over if it dies.
      loops = active.map((ep) =>
        runExclusively(db, `rebill:webhooks:${ep.id}`, () => loop(ep), {
          stopped: () => stopping,
          wait: (ms) => clock.sleepUntil(clock.now() + ms, halt.signal),
          onWaiting: () => logger.info({ endpoint: ep.id }, 'another daemon relays this webhook endpoint; taking over if it stops'),
        }),
      );
    },
    kick() {
      const previous = wake;
      wake = new AbortController();
      previous.abort();
    },
    async stop() {
      stopping = true;
      halt.abort();
      wake.abort();
      await Promise.all(loops);
      for (const ep of endpoints) ep.agent.destroy();
    },
  };
}
