/**
 * `rebill simulate`: the daemon's own sweep, claim, dispatch and recording
 * code on a virtual clock, against a temporary database and the simulator.
 * The clock jumps straight to the next instant anything is due, so a year of
 * billing takes seconds.
 */
import { pino } from 'pino';
import { VirtualClock } from '../clock.js';
import type { Scenario, ScenarioAction } from '../config/index.js';
import { cancel, pause, resume, type Transition, type Subscription } from '../domain/index.js';
import { createGateways, MemorySimulatorLedger, type GatewayConfig } from '../gateways/index.js';
import { DateTime } from 'luxon';
import { listEvents, migrateToLatest, nextWorkAt, openDatabase, updateSubscription, type StoredEvent } from '../store/index.js';
import { createEngine } from './engine.js';
import { engineOptions, upsertSeeds } from './runtime.js';

export interface SimulationResult {
  /** Every event, in commit order. */
  readonly events: StoredEvent[];
  readonly steps: number;
}

export interface SimulationOptions {
  /**
   * Receives the timeline as it becomes final, sorted by `at` (stable, so in
   * commit order within an instant): after each step, every event at or before
   * the virtual clock, since no later step can record an earlier one.
   */
  readonly onEvents?: (events: readonly StoredEvent[]) => void | Promise<void>;
  /** Polled after each step: true stops the run early (the reader of the output has gone). */
  readonly stopped?: () => boolean;
}

/** Runs a scenario to its `until` instant and returns every event, in order. */
export async function runSimulation(scenario: Scenario, options: SimulationOptions = {}): Promise<SimulationResult> {
  const clock = new VirtualClock(scenario.startMs);
  const db = openDatabase('sqlite::memory:');
  try {
    await migrateToLatest(db);
    // Every gateway is simulated: a scenario never talks to the network.
    const simulated: Record<string, GatewayConfig> = Object.fromEntries(Object.keys(scenario.gateways).map((name) => [name, { type: 'simulator' as const }]));
    const ledgers = new Map<string, MemorySimulatorLedger>();
    const gateways = createGateways(simulated, {
      clock,
      simulatorLedger: (name) => ledgers.get(name) ?? ledgers.set(name, new MemorySimulatorLedger()).get(name)!,
      // tok_slow_MS is about wall-clock latency; on a virtual clock it costs nothing.
      sleep: async () => undefined,
    });
    const engine = createEngine({
      db,
      clock,
      gateways,
      logger: pino({ level: 'silent' }),
      owner: 'simulate',
      // Rate limits protect a real gateway's wall-clock throughput; virtual time has none.
      options: { ...engineOptions(scenario.retry, scenario.scheduler), ratePerSecond: null },
    });
    await upsertSeeds(db, scenario.plans, scenario.subscriptions, clock.now());
    const actions = [...scenario.actions].sort((a, b) => a.atMs - b.atMs);
    let steps = 0;
    const all: StoredEvent[] = [];
    let pending: StoredEvent[] = [];
    /** Hands over the new events up to `upTo` (all of them when null), sorted by instant. */
    const flush = async (upTo: number | null) => {
      const fresh = await listEventsAfter(db, all.at(-1)?.id ?? 0);
      all.push(...fresh);
      pending.push(...fresh);
      if (!options.onEvents) return;
      const ready = pending.filter((e) => upTo === null || e.at <= upTo).sort((a, b) => a.at - b.at);
      pending = upTo === null ? [] : pending.filter((e) => e.at > upTo);
      if (ready.length > 0) await options.onEvents(ready);
    };
    for (;;) {
      const now = clock.now();
      while (actions.length && actions[0]!.atMs <= now) await applyAction(db, actions.shift()!, now);
      await engine.sweepUntilIdle();
      steps++;
      await flush(now);
      if (options.stopped?.()) return { events: all, steps };
      const candidates = [await nextWorkAt(db), actions[0]?.atMs ?? null].filter((t): t is number => t !== null);
      const next = candidates.length ? Math.min(...candidates) : null;
      if (next === null || next > scenario.untilMs) break;
      // Work that is due but could not start (a lease held by a failed write) waits for its lease.
      clock.set(Math.max(next, now + 1));
    }
    await flush(null);
    return { events: all, steps };
  } finally {
    await db.destroy();
  }
}

async function listEventsAfter(db: Parameters<typeof listEvents>[0], afterId: number): Promise<StoredEvent[]> {
  const out: StoredEvent[] = [];
  for (;;) {
    const page = await listEvents(db, out.at(-1)?.id ?? afterId, 5000);
    out.push(...page);
    if (page.length < 5000) return out;
  }
}

async function applyAction(db: Parameters<typeof updateSubscription>[0], action: ScenarioAction, now: number): Promise<void> {
  const change = (sub: Subscription): Transition => {
    switch (action.do) {
      case 'pause': {
        const resumeAt = action.resumeDate
          ? DateTime.fromISO(action.resumeDate, { zone: sub.schedule.timezone }).startOf('day').toMillis()
          : null;
        return pause(sub, { resumeAt }, now);
      }
      case 'resume':
        return resume(sub, now);
      case 'cancel':
        return cancel(sub, { atPeriodEnd: action.atPeriodEnd ?? false }, now);
    }
  };
  await updateSubscription(db, action.subscriptionId, now, change);
}

/** One event as a flat JSON object (SPEC section 10): at, type, subscriptionId, cycle, attempt, ... */
export function eventJson(e: StoredEvent): Record<string, unknown> {
  return {
    at: DateTime.fromMillis(e.at, { zone: 'utc' }).toISO({ suppressMilliseconds: true }),
    type: e.type,
    subscriptionId: e.subscriptionId,
    ...(e.cycle !== null ? { cycle: e.cycle } : {}),
    ...(e.attempt !== null ? { attempt: e.attempt } : {}),
    ...e.data,
  };
}
