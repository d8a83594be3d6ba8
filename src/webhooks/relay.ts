/**
 * The outbox relay (SPEC section 8): sends the outbox's events to each
 * configured webhook endpoint, Standard Webhooks signed, at least once, in
 * event order per (endpoint, subscription). Each endpoint runs its own loop:
 * it scans the outbox past its cursor in batches (creating delivery rows),
 * then claims the heads of its pending streams (the earliest pending event of
 * each subscription), leasing them so no other claim takes them, and sends
 * them with bounded concurrency over keep-alive connections (the undici pool
 * the gateway adapters use, gateways/http-connections.ts), pipelined:
 * requests go on while the answers received are recorded (and the next heads
 * claimed) in one commit per batch. A failure reschedules
 * that delivery with backoff and jitter, holding back only that
 * subscription's stream on that endpoint; past maxAgeHours after the event it
 * is marked `failed` (kept for redelivery) and the stream moves on.
 *
 * Several daemons on one PostgreSQL database each run every endpoint's loop:
 * the leases keep one sender per stream at a time (store/webhooks.ts).
 */
import { createHash, createHmac } from 'node:crypto';
import { hostname } from 'node:os';
import type { Logger } from 'pino';
import { WEBHOOK_EVENT_TYPES, type WebhookConfig } from '../config/index.js';
import type { Clock } from '../clock.js';
import { parseForwardDuration } from '../calendar/index.js';
import { ConnectionPool } from '../gateways/http-connections.js';
import { renderEvents } from '../service/index.js';
import {
  dialectOf,
  ensureWebhookEndpoint,
  eventsByIds,
  lastEventId,
  nextDeliveryAt,
  recordAndClaim,
  releaseDeliveryLeases,
  scanOutbox,
  type ClaimedDelivery,
  type Db,
  type DeliveryState,
  type RecordedAttempt,
} from '../store/index.js';

/** How long an idle endpoint trusts its earliest-retry instant before reading it again. */
const RECHECK_MS = 5_000;

/** The longest an answer waits for others to share its commit. */
const RECORD_DELAY_MS = 20;

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

/**
 * The Standard Webhooks signature of a message (SPEC section 8): `v1,` and
 * the base64 HMAC-SHA256 of `id.timestamp.body` under the secret's key.
 * node:crypto's, not the standardwebhooks package's pure-JS SHA-256 (about
 * 6x the CPU per delivery, the relay's largest cost after the request
 * itself); the tests verify with that package.
 */
export function webhookSignature(key: Buffer, msgId: string, seconds: number, body: string): string {
  return `v1,${createHmac('sha256', key).update(`${msgId}.${seconds}.${body}`).digest('base64')}`;
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
  /** `tick()`: deliveries claimed, sent and recorded in one pass (default 256). */
  readonly passSize?: number;
  /** Deliveries one endpoint's loop holds claimed at once: queued, in flight, answered or being recorded (default 16 x concurrency). */
  readonly window?: number;
  /** Answers recorded (and heads claimed) per commit (default 8 x concurrency; fewer answers when nothing else is in flight, or after RECORD_DELAY_MS). */
  readonly recordBatch?: number;
  /** How long a claim holds its stream heads (default: the endpoint's timeout for each round of requests they may wait behind, plus one, plus 30 s). */
  readonly leaseMs?: number;
  /** This relay's name on the heads it claims (default host:pid:random, as the engine's). */
  readonly owner?: string;
  /** How often an endpoint looks for new events and due retries when nothing else wakes it, idle or waiting on slow requests (default 200 ms). */
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
  /**
   * Registers the endpoints (a new one starts at the outbox's current end). Call before writing events it should see.
   * SQLite (one daemon per file): gives back every lease left by a previous run, so its heads are sent again at once.
   */
  init(): Promise<void>;
  /** One pass over every enabled endpoint: scan, then claim, send and record what is due. Returns the attempts made. */
  tick(): Promise<number>;
  /** Runs each endpoint's loop until stop(). */
  start(): void;
  /** Wakes idle loops (new events were written). */
  kick(): void;
  /**
   * Stops the loops; requests in flight are abandoned: their heads and those
   * not yet sent are given back (pending, sent again by whichever relay
   * claims them next); answers already received are recorded.
   */
  stop(): Promise<void>;
  readonly endpoints: readonly { readonly id: string; readonly url: string; readonly enabled: boolean }[];
}

interface Endpoint {
  readonly id: string;
  readonly config: WebhookConfig;
  /** The signing key: the bytes of the secret's base64 after `whsec_` (the config checked its form). */
  readonly key: Buffer;
  readonly scheduleMs: readonly number[];
  /** Keep-alive connections: one per delivery in flight, so about `concurrency`. */
  readonly connections: ConnectionPool;
  /** The URL's path and query, and its credentials' Authorization header (URL parsed once). */
  readonly path: string;
  readonly auth: readonly string[];
}

/**
 * One endpoint's deliveries between claim and record. Claimed heads queue
 * here and go out `concurrency` at a time as requests finish; the answers
 * received are recorded, and the next heads claimed, in one commit per batch
 * while the requests go on: sending never waits for the slowest request of a
 * batch, nor for a commit.
 */
interface Pipeline {
  /** Claimed heads not sent yet, with their bodies. */
  readonly queue: Array<{ readonly delivery: ClaimedDelivery; readonly body: string }>;
  inFlight: number;
  /** Answers received, not recorded yet. */
  readonly done: RecordedAttempt[];
  /** Heads claimed and not yet recorded or given back. */
  held: number;
  /** When the oldest answer in `done` arrived (monotonic ms), for RECORD_DELAY_MS. */
  doneSince: number;
  timer: NodeJS.Timeout | undefined;
  /** Called whenever something finishes (a request, a timer, kick, stop): the loop re-checks what it waits for. */
  progress: () => void;
}

export function createRelay(deps: RelayDeps): Relay {
  const { db, clock, logger } = deps;
  const batchSize = deps.options?.batchSize ?? 500;
  const concurrency = deps.options?.concurrency ?? 16;
  const pollMs = deps.options?.pollMs ?? 200;
  const passSize = deps.options?.passSize ?? 256;
  const windowSize = deps.options?.window ?? 16 * concurrency;
  const recordBatch = deps.options?.recordBatch ?? 8 * concurrency;
  /** Heads claimed per commit (at most). */
  const claimBatch = Math.max(1, Math.min(windowSize, recordBatch));
  const owner = deps.options?.owner ?? `${hostname()}:${process.pid}:${Math.random().toString(36).slice(2, 8)}`;
  const random = deps.options?.random ?? Math.random;
  const endpoints: Endpoint[] = deps.webhooks.map((config) => {
    const url = new URL(config.url);
    return {
      id: endpointId(config.url),
      config,
      key: Buffer.from(config.secret.slice('whsec_'.length), 'base64'),
      scheduleMs: config.retrySchedule.map((d) => parseForwardDuration(d).toMillis()),
      connections: new ConnectionPool(url.origin),
      path: `${url.pathname}${url.search}`,
      auth: url.username ? ['authorization', `Basic ${Buffer.from(`${decodeURIComponent(url.username)}:${decodeURIComponent(url.password)}`).toString('base64')}`] : [],
    };
  });
  const active = endpoints.filter((e) => e.config.enabled);
  /**
   * A claim's lease covers the rounds of requests its heads may queue behind
   * (fewer than `concurrency` wait when the loop claims), their own round,
   * and the commit after it.
   */
  const leaseFor = (ep: Endpoint, claimed: number) => deps.options?.leaseMs ?? ep.config.timeoutSeconds * 1000 * (Math.ceil((claimed + concurrency) / concurrency) + 1) + 30_000;
  let stopping = false;
  let wake = new AbortController();
  let loops: Promise<void>[] = [];
  const elapsed = () => clock.monotonic?.() ?? clock.now();

  /** POSTs over the endpoint's keep-alive connections; resolves with the status once the answer has been read. */
  async function post(ep: Endpoint, body: string, headers: readonly string[]): Promise<number> {
    const timeoutMs = ep.config.timeoutSeconds * 1000;
    const answer = await ep.connections.request('POST', ep.path, headers, body, timeoutMs, () =>
      Object.assign(new Error(`timeout after ${ep.config.timeoutSeconds}s`), { name: 'TimeoutError' }),
    );
    return answer.status;
  }

  /** Sends one delivery; returns the attempt to record (undefined: abandoned because the relay is stopping). */
  async function send(ep: Endpoint, delivery: ClaimedDelivery, body: string): Promise<RecordedAttempt | undefined> {
    const msgId = `evt_${String(delivery.eventId).padStart(12, '0')}`;
    const attemptAt = clock.now();
    const seconds = Math.floor(attemptAt / 1000);
    const headers = [
      'content-type',
      'application/json',
      'user-agent',
      'rebill-webhooks',
      'webhook-id',
      msgId,
      'webhook-timestamp',
      String(seconds),
      'webhook-signature',
      webhookSignature(ep.key, msgId, seconds, body),
      ...ep.auth,
    ];
    const started = elapsed();
    let status: number | null = null;
    let error: string | null = null;
    try {
      status = await post(ep, body, headers);
      if (status < 200 || status > 299) error = `HTTP ${status}`;
    } catch (err) {
      const e = err as Error & { code?: string };
      error = e.name === 'TimeoutError' ? e.message : (e.code ?? e.message ?? 'network error');
    }
    if (stopping) return undefined; // stopping: not an attempt the endpoint failed
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
    return { eventId: delivery.eventId, attempt, outcome: { at: attemptAt, status, durationMs, error, state, nextAttemptAt } };
  }

  const pipelines = new Set<Pipeline>();
  function pipeline(): Pipeline {
    return { queue: [], inFlight: 0, done: [], held: 0, doneSince: 0, timer: undefined, progress: () => {} };
  }

  /** Waits until `ready` holds (or the relay stops), re-checked whenever something finishes. */
  async function until(p: Pipeline, ready: () => boolean): Promise<void> {
    while (!ready() && !stopping) await new Promise<void>((resolve) => (p.progress = resolve));
    p.progress = () => {};
  }

  /** Moves the endpoint's cursor to the outbox's end; returns the events scanned. */
  async function scan(ep: Endpoint): Promise<number> {
    const matches = (type: string) => eventMatches(ep.config.events, type);
    let scanned = 0;
    for (let n = batchSize; n === batchSize && !stopping; scanned += n) n = await scanOutbox(db, ep.id, matches, batchSize, clock.now());
    return scanned;
  }

  /**
   * One commit: records every answer received so far and claims up to
   * `limit` more heads, renders them and starts sending them. Returns how
   * many were recorded and claimed. If the commit fails, the answers stay to
   * be recorded by the next one.
   */
  async function step(ep: Endpoint, p: Pipeline, limit: number): Promise<{ recorded: number; claimed: number }> {
    const batch = p.done.splice(0);
    clearTimeout(p.timer);
    p.timer = undefined;
    let claimed: ClaimedDelivery[];
    try {
      ({ claimed } = await recordAndClaim(db, ep.id, owner, batch, limit > 0 ? { now: clock.now(), limit, leaseMs: leaseFor(ep, limit) } : null));
    } catch (err) {
      p.done.unshift(...batch);
      throw err;
    }
    p.held += claimed.length - batch.length;
    if (claimed.length > 0) {
      const bodies = new Map<number, string>();
      try {
        for (const body of await renderEvents(db, await eventsByIds(db, claimed.map((d) => d.eventId)), clock.now())) bodies.set(Number(body.id.slice(4)), JSON.stringify(body));
      } catch (err) {
        p.held -= claimed.length;
        await releaseDeliveryLeases(db, { owner, endpointId: ep.id, eventIds: claimed.map((d) => d.eventId) });
        throw err;
      }
      for (const delivery of claimed) {
        const body = bodies.get(delivery.eventId);
        if (body !== undefined) p.queue.push({ delivery, body });
        else p.held--; // its event is gone (events are never deleted); the lease runs out
      }
      pump(ep, p);
    }
    return { recorded: batch.length, claimed: claimed.length };
  }

  /** Starts queued sends up to the concurrency. */
  function pump(ep: Endpoint, p: Pipeline): void {
    while (p.inFlight < concurrency && p.queue.length > 0 && !stopping) {
      const { delivery, body } = p.queue.shift()!;
      p.inFlight++;
      void send(ep, delivery, body).then((attempt) => {
        p.inFlight--;
        if (attempt) {
          if (p.done.length === 0) {
            p.doneSince = performance.now();
            // A short batch is recorded RECORD_DELAY_MS after its first answer. The timer's firing is what
            // says so: libuv counts whole milliseconds, so it fires up to one before performance.now() has
            // counted the delay, and recordDue would then wait for another answer (up to the timeout).
            p.timer = setTimeout(() => {
              p.doneSince = -Infinity;
              p.progress();
            }, RECORD_DELAY_MS);
          }
          p.done.push(attempt);
        } else p.held--; // abandoned (stopping): given back at the end
        pump(ep, p);
        p.progress();
      });
    }
  }

  /**
   * Whether the answers received should be recorded now: a full batch, or
   * nothing else in flight, or the oldest has waited RECORD_DELAY_MS.
   * (better-sqlite3 commits synchronously, so no answer arrives during a
   * commit to make the next batch by itself: batches are gathered here.)
   */
  const recordDue = (p: Pipeline) => p.done.length > 0 && (p.done.length >= recordBatch || p.inFlight + p.queue.length === 0 || performance.now() - p.doneSince >= RECORD_DELAY_MS);

  /** `tick()` for one endpoint: scan, then claim up to passSize heads, send them and record the answers. */
  async function pass(ep: Endpoint): Promise<number> {
    await scan(ep);
    const p = pipeline();
    const { claimed } = await step(ep, p, passSize);
    await until(p, () => p.inFlight + p.queue.length === 0);
    await step(ep, p, 0);
    return claimed;
  }

  async function loop(ep: Endpoint): Promise<void> {
    const p = pipeline();
    pipelines.add(p);
    // Claims in rounds of at least `concurrency`, while fewer than that wait to be sent: the requests never run dry.
    const round = Math.min(concurrency, windowSize);
    const canClaim = () => p.queue.length < concurrency && windowSize - p.held >= round;
    // Whether the last claim found fewer heads than it asked for: claiming again waits for a commit, new events, or a retry's time.
    let exhausted = false;
    let quietUntil = 0;
    while (!stopping) {
      try {
        const signal = wake.signal;
        if ((await scan(ep)) > 0) exhausted = false;
        const limit: number = canClaim() && (!exhausted || (p.held === 0 && clock.now() >= quietUntil)) ? Math.min(windowSize - p.held, claimBatch) : 0;
        if (limit > 0 || recordDue(p)) {
          const { recorded, claimed } = await step(ep, p, limit);
          // The claim ran after the record in the same transaction: it already saw the heads the record made.
          exhausted = limit > 0 ? claimed < limit : recorded === 0 && exhausted;
          if (claimed > 0) quietUntil = 0;
          if (claimed > 0 || recorded > 0) continue;
        }
        if (p.held > 0) {
          // In flight: wait for answers to record, or room to claim into while more heads may be due. And
          // claim again after pollMs, as when idle: a slow request (up to the timeout) must not hold back
          // the new events and due retries of other subscriptions (SPEC section 8).
          const poll = new AbortController();
          let polled = false;
          void clock.sleepUntil(clock.now() + pollMs, poll.signal).then(() => {
            if (poll.signal.aborted) return;
            polled = true;
            p.progress();
          });
          await until(p, () => polled || recordDue(p) || signal.aborted || (canClaim() && !exhausted));
          poll.abort('done'); // a reason: abort() without one builds a DOMException, stack and all
          if (polled) exhausted = false;
          continue;
        }
        // Idle: the earliest retry, re-read at least every RECHECK_MS (a redelivery from another process makes a row due now).
        if (clock.now() >= quietUntil) quietUntil = Math.min((await nextDeliveryAt(db, ep.id)) ?? Infinity, clock.now() + RECHECK_MS);
        // (A claim just came back empty: never sooner than pollMs, even if a head looked due.)
        if (!stopping) await clock.sleepUntil(quietUntil > clock.now() ? Math.min(quietUntil, clock.now() + pollMs) : clock.now() + pollMs, signal);
      } catch (err) {
        if (stopping) break;
        logger.error({ err, endpoint: ep.id }, 'webhook relay pass failed; retrying');
        await clock.sleepUntil(clock.now() + 1000, wake.signal);
      }
    }
    // Stopping: what was answered is recorded; what was claimed and not answered is given back.
    pipelines.delete(p);
    clearTimeout(p.timer);
    try {
      await step(ep, p, 0);
      await releaseDeliveryLeases(db, { owner, endpointId: ep.id });
    } catch (err) {
      logger.warn({ err, endpoint: ep.id }, 'webhook relay could not record or give back its deliveries at stop; their leases run out and they are sent again');
    }
  }

  return {
    endpoints: endpoints.map((e) => ({ id: e.id, url: e.config.url, enabled: e.config.enabled })),
    async init() {
      const end = await lastEventId(db);
      for (const ep of endpoints) await ensureWebhookEndpoint(db, ep.id, ep.config.url, end, clock.now());
      if (dialectOf(db) === 'sqlite') await releaseDeliveryLeases(db, 'all');
    },
    async tick() {
      const counts = await Promise.all(active.map(pass));
      return counts.reduce((a, b) => a + b, 0);
    },
    start() {
      // Every daemon on one PostgreSQL database runs every endpoint's loop: the leases on stream heads
      // keep one sender per (endpoint, subscription) stream at a time, and order within it.
      loops = active.map((ep) => loop(ep));
    },
    kick() {
      const previous = wake;
      wake = new AbortController();
      previous.abort();
      for (const p of pipelines) p.progress();
    },
    async stop() {
      stopping = true;
      // Requests in flight are abandoned: their heads are given back and sent again.
      await Promise.all(endpoints.map((ep) => ep.connections.destroy()));
      wake.abort();
      for (const p of pipelines) p.progress();
      await Promise.all(loops);
    },
  };
}
