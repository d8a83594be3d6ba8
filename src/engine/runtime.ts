/**
 * Wiring: from a validated configuration to a database, gateways and an
 * engine. `rebill run` and `rebill simulate` both come through here, so the
 * simulation runs the daemon's own code.
 */
import type { Logger } from 'pino';
import type { Clock } from '../clock.js';
import type { PlanConfig, RetryConfig, SchedulerConfig, SeedSubscription } from '../config/index.js';
import { subscriptionFromPlan, type CollectionPolicy, type SubscriptionRequest } from '../domain/index.js';
import { createGateways, type Gateway, type GatewayConfig, type SimLedgerEntry, type SimulatorLedger } from '../gateways/index.js';
import { RebillError } from '../errors.js';
import { createSubscriptionsBatch, hotPathStore, inlineEmailLinkSubscriptions, liveUsage, type Db } from '../store/index.js';
import { formatAmount } from '../money/index.js';
import type { EngineOptions } from './engine.js';

/**
 * The simulator's ledger kept in the daemon's own database: a daemon that
 * restarts and re-sends a key gets the original result, as from a real gateway.
 *
 * An entry is not committed on its own (that was one fsync per charge): it is
 * staged on the hot-path store and written by the engine's next outcome commit, at
 * the latest the group commit that records the outcome of the call it
 * answered. A crash between the simulated call and that commit loses the
 * entry AND the outcome together: the attempt is still in_flight, the
 * restarted daemon asks the simulator, which says not_found, and the same key
 * is sent again. Nothing was recorded as charged, so nothing is charged twice.
 */
export function databaseSimulatorLedger(db: Db, clock: Clock, gateway: string): SimulatorLedger {
  const store = hotPathStore(db);
  return {
    async get(key) {
      const text = await store.ledgerEntry(gateway, key, clock.now());
      return text === undefined ? undefined : (JSON.parse(text) as SimLedgerEntry);
    },
    async put(entry) {
      store.stageLedgerEntry(gateway, entry.key, JSON.stringify(entry), clock.now());
    },
    async list() {
      return (await store.ledgerEntries(gateway)).map((text) => JSON.parse(text) as SimLedgerEntry);
    },
  };
}

/** Gateways for the daemon; simulators keep their ledger in the database. */
export function daemonGateways(db: Db, clock: Clock, configs: Readonly<Record<string, GatewayConfig>>): Map<string, Gateway> {
  return createGateways(configs, { clock, simulatorLedger: (name) => databaseSimulatorLedger(db, clock, name) });
}

/** The retry policy plus polling and reconciliation intervals. */
export function collectionPolicy(retry: RetryConfig, scheduler: SchedulerConfig): CollectionPolicy {
  return {
    retry: { attempts: retry.attempts, delays: retry.delays, onFinalFailure: retry.onFinalFailure },
    pollMs: scheduler.pendingPollSeconds * 1000,
    // Ask about an unknown outcome soon, but not in a tight loop against a gateway that is down.
    reconcileMs: Math.min(30_000, scheduler.leaseSeconds * 1000),
    unavailableMs: retry.unavailableHours * 3_600_000,
  };
}

/** Engine options from the scheduler section. */
export function engineOptions(retry: RetryConfig, scheduler: SchedulerConfig): EngineOptions {
  return {
    concurrency: scheduler.concurrency,
    ratePerSecond: scheduler.ratePerSecond,
    leaseMs: scheduler.leaseSeconds * 1000,
    queueBound: Math.max(scheduler.claimBatch, scheduler.concurrency),
    maxSleepMs: 60_000,
    maxClockJumpMs: scheduler.maxClockJumpSeconds * 1000,
    policy: collectionPolicy(retry, scheduler),
  };
}

/** A seed or scenario subscription as a creation request. */
export function requestFromSeed(seed: SeedSubscription): SubscriptionRequest {
  return {
    id: seed.id,
    startDate: seed.startDate,
    paymentToken: seed.paymentToken,
    endDate: seed.endDate,
    sendOnHour: seed.sendOnHour,
    timezone: seed.timezone,
    externalId: seed.externalId,
    source: seed.source,
    customer: seed.customer,
    metadata: seed.metadata,
  };
}

/** What seeding did: counts, and the seeds whose config edits were not applied (by design). */
export interface SeedReport {
  readonly total: number;
  readonly created: number;
  readonly existing: number;
  /** Existing seeds whose config paymentToken differs from the stored one (ids only: tokens are secrets). */
  readonly tokenNotApplied: readonly string[];
  /** Existing seeds whose plan now has another amount than the one they were created with, by plan id. */
  readonly amountNotApplied: ReadonlyMap<string, readonly string[]>;
}

export interface SeedOptions {
  /** Seeds per transaction; default 500. */
  readonly batchSize?: number;
  /** Called after each batch with the seeds done so far. */
  readonly onProgress?: (done: number, total: number) => void;
}

/**
 * Creates each seed subscription that does not exist yet (by id, or live
 * externalId); existing ones are left as they are, in batches of
 * `batchSize` seeds per transaction. A seed's edited paymentToken, or its
 * plan's edited amount, is not applied to an existing subscription (SPEC
 * section 4): the report names those seeds so the caller can say so.
 */
export async function upsertSeeds(
  db: Db,
  plans: readonly PlanConfig[],
  seeds: Iterable<SeedSubscription> & { readonly length: number },
  now: number,
  options: SeedOptions = {},
): Promise<SeedReport> {
  const byId = new Map(plans.map((p) => [p.id, p]));
  const batchSize = Math.max(1, options.batchSize ?? 500);
  let created = 0;
  const tokenNotApplied: string[] = [];
  const amountNotApplied = new Map<string, string[]>();
  let done = 0;
  const upsert = async (batch: readonly SeedSubscription[]): Promise<void> => {
    // Built as createSubscriptionsBatch takes them, a chunk at a time: alive for a whole batch they would be pretenured (see CREATE_CHUNK).
    const inputs = function* () {
      for (const seed of batch) {
        const plan = byId.get(seed.planId);
        if (!plan) throw new RebillError('PLAN_NOT_FOUND', `subscription ${seed.id}: unknown plan "${seed.planId}"`);
        yield subscriptionFromPlan(plan, requestFromSeed(seed));
      }
    };
    const outcomes = await createSubscriptionsBatch(db, inputs(), now);
    outcomes.forEach((outcome, i) => {
      if (outcome.created) {
        created++;
        return;
      }
      const seed = batch[i]!;
      const plan = byId.get(seed.planId)!;
      const stored = outcome.stored!;
      if ((seed.paymentToken ?? null) !== stored.paymentToken) tokenNotApplied.push(seed.id);
      if (stored.amountMinor !== plan.amountMinor || stored.currency !== plan.currency) {
        amountNotApplied.set(plan.id, [...(amountNotApplied.get(plan.id) ?? []), seed.id]);
      }
    });
    done += batch.length;
    options.onProgress?.(done, seeds.length);
  };
  // One batch of seeds alive at a time: the config's SeedList reads them back from text as it goes.
  let batch: SeedSubscription[] = [];
  for (const seed of seeds) {
    batch.push(seed);
    if (batch.length < batchSize) continue;
    await upsert(batch);
    batch = [];
  }
  if (batch.length > 0) await upsert(batch);
  return { total: seeds.length, created, existing: seeds.length - created, tokenNotApplied, amountNotApplied };
}

/** `a, b, c, d, e and 7 more`: a few names, then a count. */
export function nameFew(ids: readonly string[], few = 5): string {
  const shown = ids.slice(0, few).join(', ');
  return ids.length > few ? `${shown} and ${ids.length - few} more` : shown;
}

/** The warnings a seed report calls for: config edits that existing subscriptions do not take. */
export function seedWarnings(report: SeedReport, plans: readonly PlanConfig[]): string[] {
  const warnings: string[] = [];
  const n = report.tokenNotApplied.length;
  if (n) {
    warnings.push(
      `${n} existing seed subscription${n === 1 ? '' : 's'} kept the stored paymentToken; a changed paymentToken in the config is not applied (seeds are created once, by id): ${nameFew(report.tokenNotApplied)}`,
    );
  }
  const byId = new Map(plans.map((p) => [p.id, p]));
  for (const [planId, ids] of report.amountNotApplied) {
    const plan = byId.get(planId)!;
    warnings.push(
      `plan "${planId}" now charges ${plan.currency} ${formatAmount({ amountMinor: plan.amountMinor, currency: plan.currency })}, but ${ids.length} existing seed subscription${ids.length === 1 ? '' : 's'} keep the amount they were created with (editing a plan changes new subscriptions only): ${nameFew(ids)}`,
    );
  }
  return warnings;
}

/** A plan or gateway removed from the config while live subscriptions still use it (or notifications.email, while they e-mail their links). */
export interface RemovedInUse {
  readonly section: 'plans' | 'gateways' | 'notifications';
  readonly id: string;
  /** Subscriptions (not terminated) that use it. */
  readonly count: number;
  readonly message: string;
}

/**
 * Removing (or renaming) a plan or a gateway that live subscriptions still
 * use is a configuration error (SPEC section 4): for a plan, their renewals
 * would have no plan; for a gateway, every attempt would end `unknown`
 * forever. `run` and `check-config` both refuse with these (exit 78).
 */
export async function removedButInUse(
  db: Db,
  config: { readonly plans: readonly PlanConfig[]; readonly gateways: Readonly<Record<string, unknown>>; readonly notifications?: { readonly email?: unknown } },
): Promise<RemovedInUse[]> {
  const out: RemovedInUse[] = [];
  const subs = (n: number) => `${n} live subscription${n === 1 ? '' : 's'}`;
  const plans = new Set(config.plans.map((p) => p.id));
  for (const [id, count] of [...(await liveUsage(db, 'plan_id'))].sort()) {
    if (plans.has(id)) continue;
    out.push({ section: 'plans', id, count, message: `plan "${id}" was removed but ${subs(count)} still ${count === 1 ? 'uses' : 'use'} it; put it back or cancel them first` });
  }
  for (const [id, count] of [...(await liveUsage(db, 'gateway'))].sort()) {
    if (Object.hasOwn(config.gateways, id)) continue;
    out.push({
      section: 'gateways',
      id,
      count,
      message: `gateway "${id}" was removed or renamed but ${subs(count)} still ${count === 1 ? 'uses' : 'use'} it (their attempts could never be sent); put it back under that name`,
    });
  }
  // Plans are checked by the schema (emailLinks needs notifications.email); inline schedules opted in through the API or an import.
  if (config.notifications?.email === undefined) {
    const count = await inlineEmailLinkSubscriptions(db);
    if (count > 0) {
      out.push({
        section: 'notifications',
        id: 'email',
        count,
        message: `notifications.email is not configured but ${subs(count)} with an inline schedule ${count === 1 ? 'e-mails its' : 'e-mail their'} payment links (emailLinks: true); configure it, or ${count === 1 ? 'its' : 'their'} links would never reach the customer`,
      });
    }
  }
  return out;
}

export type { Logger };
