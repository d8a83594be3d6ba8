/**
 * Dispatch: each started attempt (or status query) goes through p-queue
 * (concurrency + rate limit) to its gateway with its idempotency key, then
 * its outcome goes to the group-commit writer. Recording does not hold a
 * gateway slot (it waits for the commit instead), so the queue's concurrency
 * is spent on gateway calls only. A `not_found` answer to a status query
 * sends the same key again, under the same lease.
 *
 * Calls that have not started when the engine stops are never made: their
 * leases are given back due now, and the next start settles them with the
 * same key (their attempt rows say in_flight, the pointer `reconcile`).
 */
import PQueue from 'p-queue';
import type { Logger } from 'pino';
import type { Clock } from '../clock.js';
import { iso, type AttemptInfo, type CollectionPolicy, type DomainEvent, type Outcome, type Subscription } from '../domain/index.js';
import { GatewayUnavailableError, type CollectRequest, type Gateway, type GatewayResult, type StatusResult } from '../gateways/gateway.js';
import type { HeldLease } from '../store/index.js';
import type { CircuitBreakers } from './circuit.js';
import type { Holdings } from './holdings.js';
import { TimeSlicer } from './time-slice.js';
import { logSkipped, moneyFields } from './log-lines.js';
import type { EngineObserver } from './observer.js';
import type { GroupCommitWriter } from './writer.js';

/** A gateway call to make for a row this engine holds. */
export interface Job {
  readonly kind: 'send' | 'status';
  /** The row as this engine last wrote it (intent) or claimed it (status query), and its version then. */
  readonly subscription: Subscription;
  readonly version: number;
  /** The claim token that holds the row's lease. */
  readonly token: string;
  readonly attempt: AttemptInfo;
  /** Fresh sends: the instant the attempt became due, for the scheduling lag. */
  readonly dueAt?: number;
}

export interface DispatcherDeps {
  readonly gateways: ReadonlyMap<string, Gateway>;
  readonly circuits: CircuitBreakers;
  readonly writer: GroupCommitWriter;
  readonly holdings: Holdings;
  /** Stamps the scheduling lag. */
  readonly clock: Clock;
  /** Durations: elapsed time, not the wall clock. */
  readonly elapsedMs: () => number;
  readonly observe: Required<EngineObserver>;
  readonly logger: Logger;
  readonly policy: CollectionPolicy;
  readonly concurrency: number;
  /** Calls started per second; null: unlimited. */
  readonly ratePerSecond: number | null;
}

/** What a stop left behind: calls never made, and calls still out when the drain ran out. */
export interface DrainReport {
  readonly unsent: number;
  readonly abandonedInFlight: number;
}

export class Dispatcher {
  private readonly queue: PQueue;
  /** Jobs whose call has not started yet: subscription id -> claim token (given back on stop). */
  private readonly unstarted = new Map<string, string>();
  /** Jobs between their enqueue and their recorded outcome, by subscription id. */
  private readonly jobs = new Map<string, Promise<void>>();
  /** The claim token of each job in `jobs`: the leases the heartbeat extends (and only these). */
  private readonly tokens = new Map<string, string>();
  gatewayCalls = 0;
  outcomesRecorded = 0;
  queueHighWater = 0;

  /** Gateway calls started and not yet returned. */
  private calling = 0;

  /** Answers that come back in microtasks (the simulator) must not keep the event loop from turning. */
  private readonly slicer: TimeSlicer;

  constructor(private readonly deps: DispatcherDeps) {
    this.slicer = new TimeSlicer(deps.clock, deps.elapsedMs);
    this.queue = new PQueue({
      concurrency: deps.concurrency,
      ...(deps.ratePerSecond ? { intervalCap: Math.max(1, Math.floor(deps.ratePerSecond)), interval: 1000, carryoverIntervalCount: true } : {}),
    });
    // The last answer of a batch is written at once: no other outcome is on its way.
    deps.writer.flushWhenIdle(() => this.calling === 0 && this.queue.size === 0);
  }

  /** Runs a job in the background; the holdings are given back when its outcome is recorded. */
  enqueue(job: Job): void {
    const id = job.subscription.id;
    const running = this.run(job)
      .catch((err: unknown) => {
        this.deps.logger.error({ err, subscriptionId: id }, 'dispatch job failed; the lease will expire and the row be reconciled');
        this.deps.holdings.drop(1);
      })
      .finally(() => {
        if (this.jobs.get(id) !== running) return;
        this.jobs.delete(id);
        this.tokens.delete(id);
      });
    this.jobs.set(id, running);
    this.tokens.set(id, job.token);
  }

  /**
   * The rows this engine holds now (a call queued, out, or its outcome not yet
   * recorded), with their claim tokens: the heartbeat extends these leases. A
   * row whose job failed (its outcome could not be recorded) is not among
   * them: its lease runs out, and the row is reconciled by whoever claims it.
   */
  heldLeases(): HeldLease[] {
    return [...this.tokens].map(([id, token]) => ({ id, token }));
  }

  /** Waits until every job started so far has recorded its outcome. */
  async settled(): Promise<void> {
    const { writer } = this.deps;
    while (this.jobs.size) {
      await writer.flush();
      await Promise.race([Promise.all(this.jobs.values()), new Promise((resolve) => setImmediate(resolve))]);
    }
    await writer.flush();
  }

  /**
   * Stops: calls not started are never made (their leases are given back,
   * due now, by `giveBack`); calls in flight get `drainMs` to finish and be
   * recorded. Says what is left for the next start to reconcile.
   */
  async stop(drainMs: number, giveBack: (token: string, ids: string[]) => Promise<void>): Promise<DrainReport> {
    this.queue.clear();
    const unsent = this.unstarted.size;
    const byToken = new Map<string, string[]>();
    for (const [id, token] of this.unstarted) {
      byToken.set(token, [...(byToken.get(token) ?? []), id]);
      this.jobs.delete(id); // its call was cleared and will never be made
      this.tokens.delete(id);
    }
    this.deps.holdings.drop(unsent);
    for (const [token, ids] of byToken) {
      for (let i = 0; i < ids.length; i += 500) await giveBack(token, ids.slice(i, i + 500));
    }
    this.unstarted.clear();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const pending = new Set(this.jobs.values());
    for (const job of pending) void job.finally(() => pending.delete(job));
    await Promise.race([
      Promise.all(this.jobs.values()),
      new Promise<void>((resolve) => {
        timer = setTimeout(resolve, drainMs);
      }),
    ]);
    clearTimeout(timer);
    await this.deps.writer.flush();
    return { unsent, abandonedInFlight: pending.size };
  }

  private async run(job: Job): Promise<void> {
    const { writer, holdings, logger, policy } = this.deps;
    let { kind, subscription, version, attempt } = job;
    let dueAt = job.dueAt;
    // A re-send after "not found" goes round this loop once more with the same key.
    for (;;) {
      // Until its call starts, the row is given back at stop: a re-send too, which queues behind the calls out.
      this.unstarted.set(subscription.id, job.token);
      const outcome = await this.dispatch(subscription, attempt, kind, dueAt);
      const result = await writer.record({ token: job.token, subscription, version, attempt, outcome, policy });
      this.outcomesRecorded++;
      if (result.kind === 'resend') {
        kind = 'send';
        dueAt = undefined; // a re-send after reconciliation: its lag is the outage's, not the scheduler's
        ({ subscription, version, attempt } = result);
        continue;
      }
      if (result.kind === 'already_settled') {
        // A gateway callback recorded this attempt while the call was out: its answer is not recorded twice.
        logger.info({ subscriptionId: subscription.id, key: attempt.key, state: result.state, outcome: outcome.kind }, 'attempt already settled (by a gateway callback); answer not recorded again');
      }
      if (result.kind === 'written') this.logWritten(result.subscription, attempt, outcome, result.state, result.events);
      holdings.finish(1);
      return;
    }
  }

  private logWritten(s: Subscription, attempt: AttemptInfo, outcome: Outcome, state: string, events: readonly DomainEvent[]): void {
    const { logger, observe } = this.deps;
    logSkipped(logger, observe, s.id, events);
    if (!logger.isLevelEnabled('info')) return;
    // One literal per line (no spreads): this line is written for every charge.
    const money = moneyFields(s, attempt.cycle);
    logger.info(
      {
        subscriptionId: s.id,
        cycle: attempt.cycle,
        attempt: attempt.attempt,
        outcome: outcome.kind,
        state,
        amount: money.amount,
        currency: money.currency,
        dueAt: money.dueAt,
        declineCode: outcome.kind === 'declined' ? outcome.code : undefined,
        hardDecline: outcome.kind === 'declined' ? outcome.hard : undefined,
        error: outcome.kind === 'unavailable' ? outcome.error : undefined,
        externalId: outcome.kind === 'captured' || outcome.kind === 'pending' ? outcome.externalId : undefined,
        key: attempt.key,
        status: s.status,
        next: s.nextAction,
        nextAt: s.actionAt === null ? null : iso(s.actionAt),
      },
      `attempt ${state}`,
    );
  }

  /** One gateway call through the queue; resolves to what was learned. */
  private dispatch(sub: Subscription, attempt: AttemptInfo, kind: Job['kind'], dueAt?: number): Promise<Outcome> {
    const call = this.queue.add(async () => {
      this.unstarted.delete(sub.id);
      this.gatewayCalls++;
      this.calling++;
      try {
        await this.slicer.yieldIfBusy();
        return await this.callGateway(sub, attempt, kind, dueAt);
      } finally {
        this.calling--;
      }
    }) as Promise<Outcome>;
    const depth = this.queue.size + this.queue.pending;
    if (depth > this.queueHighWater) this.queueHighWater = depth;
    return call;
  }

  private async callGateway(sub: Subscription, attempt: AttemptInfo, kind: Job['kind'], dueAt?: number): Promise<Outcome> {
    const { gateways, circuits, observe, logger, clock, elapsedMs } = this.deps;
    const gateway = gateways.get(sub.gateway);
    if (!gateway) return { kind: 'unavailable', error: `gateway "${sub.gateway}" is not configured` };
    const request = requestOf(sub, attempt);
    const key = attempt.key;
    observe.gatewayCallStarted({ gateway: sub.gateway, kind, lagSeconds: dueAt === undefined ? null : Math.max(0, clock.now() - dueAt) / 1000 });
    const startedAt = elapsedMs();
    const finished = (outcome: Outcome): Outcome => {
      observe.attemptFinished({ gateway: sub.gateway, kind, outcome: outcome.kind, seconds: Math.max(0, elapsedMs() - startedAt) / 1000 });
      return outcome;
    };
    try {
      const outcome = kind === 'status' ? fromStatus(await gateway.status(key, request)) : outcomeOfResult(attempt.mode === 'link' ? await gateway.sendLink(request) : await gateway.charge(request));
      if (circuits.recordAnswer(sub.gateway)) logger.info({ gateway: sub.gateway }, 'circuit closed: the gateway answers again');
      return finished(outcome);
    } catch (err) {
      if (circuits.recordFailure(sub.gateway)) {
        const view = circuits.views().find((c) => c.gateway === sub.gateway);
        logger.error(
          { gateway: sub.gateway, consecutiveFailures: view?.consecutiveFailures, reopenAt: view?.reopenAt == null ? null : iso(view.reopenAt) },
          'circuit open: the gateway failed its last calls in a row; no new attempts on it until the probe',
        );
      }
      if (!(err instanceof GatewayUnavailableError)) logger.warn({ err, subscriptionId: sub.id, key }, 'gateway call failed unexpectedly; outcome unknown');
      return finished({ kind: 'unavailable', error: err instanceof Error ? `${(err as { code?: string }).code ?? 'ERROR'}: ${err.message}` : String(err) });
    }
  }
}

function requestOf(sub: Subscription, attempt: AttemptInfo): CollectRequest {
  return {
    idempotencyKey: attempt.key,
    subscriptionId: sub.id,
    cycle: attempt.cycle,
    attempt: attempt.attempt,
    amount: sub.amount,
    description: sub.description ?? sub.planId ?? sub.id,
    paymentToken: sub.paymentToken,
    customer: {},
  };
}

/** A gateway's answer as the Outcome the settlement logic takes (a send, a status query or a callback). */
export function outcomeOfResult(result: GatewayResult): Outcome {
  switch (result.kind) {
    case 'captured':
      return { kind: 'captured', externalId: result.externalId };
    case 'declined':
      return result.externalId === undefined
        ? { kind: 'declined', code: result.code, hard: result.hard }
        : { kind: 'declined', code: result.code, hard: result.hard, externalId: result.externalId };
    case 'pending':
      return result.linkUrl === undefined ? { kind: 'pending', externalId: result.externalId } : { kind: 'pending', externalId: result.externalId, linkUrl: result.linkUrl };
  }
}

function fromStatus(result: StatusResult): Outcome {
  return result.kind === 'not_found' ? { kind: 'not_found' } : outcomeOfResult(result);
}
