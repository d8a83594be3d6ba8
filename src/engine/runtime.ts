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
import { createSubscription, getLedgerEntry, listLedgerEntries, livePlanIds, putLedgerEntry, type CreateResult, type Db } from '../store/index.js';
import type { EngineOptions } from './engine.js';

/**
 * The simulator's ledger kept in the daemon's own database: a daemon that
 * restarts and re-sends a key gets the original result, as from a real gateway.
 */
export function databaseSimulatorLedger(db: Db, clock: Clock, gateway: string): SimulatorLedger {
  return {
    async get(key) {
      const text = await getLedgerEntry(db, gateway, key);
      return text === undefined ? undefined : (JSON.parse(text) as SimLedgerEntry);
    },
    async put(entry) {
      await putLedgerEntry(db, gateway, entry.key, JSON.stringify(entry), clock.now());
    },
    async list() {
      return (await listLedgerEntries(db, gateway)).map((text) => JSON.parse(text) as SimLedgerEntry);
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

/** Creates each seed subscription that does not exist yet (by id); existing ones are left as they are. */
export async function upsertSeeds(
  db: Db,
  plans: readonly PlanConfig[],
  seeds: readonly SeedSubscription[],
  now: number,
): Promise<CreateResult[]> {
  const byId = new Map(plans.map((p) => [p.id, p]));
  const results: CreateResult[] = [];
  for (const seed of seeds) {
    const plan = byId.get(seed.planId);
    if (!plan) throw new RebillError('PLAN_NOT_FOUND', `subscription ${seed.id}: unknown plan "${seed.planId}"`);
    results.push(await createSubscription(db, subscriptionFromPlan(plan, requestFromSeed(seed)), now));
  }
  return results;
}

/**
 * Removing a plan that live subscriptions still use is a configuration error
 * (SPEC section 4): returns the plan ids that are missing from the config.
 */
export async function missingLivePlans(db: Db, plans: readonly PlanConfig[]): Promise<string[]> {
  const configured = new Set(plans.map((p) => p.id));
  return (await livePlanIds(db)).filter((id) => !configured.has(id));
}

export type { Logger };
