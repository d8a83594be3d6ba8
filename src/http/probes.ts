/**
 * The probes behind `/readyz`: they read the database (through the store) and
 * the engine at one instant and hand the snapshot to evaluateReadiness.
 */
import type { Clock } from '../clock.js';
import type { Engine } from '../engine/index.js';
import { databaseProbe, dueBacklog, webhookBacklog, type DatabaseProbeResult, type Db } from '../store/index.js';
import type { ReadinessInputs } from './readiness.js';

/** What readiness needs to know about the daemon's settings. */
export interface ReadinessSettings {
  /** The configured database URL (sqlite:<path>: the probe checks that file). */
  readonly databaseUrl: string;
  /** The sweep interval: see sweepIntervalMs() in cli/run.ts. */
  readonly sweepIntervalMs: number;
  /** The engine's queueBound (most subscriptions it holds at once). */
  readonly queueBound: number;
  /** Enabled webhook endpoints. */
  readonly webhookEndpoints: number;
  /** Their ids (a disabled or removed endpoint's backlog does not count). */
  readonly webhookEndpointIds?: readonly string[];
}

/** Gathers ReadinessInputs; create once per daemon (the database file's identity is taken then). */
export function readinessProbe(deps: { db: Db; engine: Engine; clock: Clock; settings: ReadinessSettings }): () => Promise<ReadinessInputs> {
  const { db, engine, clock, settings } = deps;
  const probeDatabase = databaseProbe(db, settings.databaseUrl);
  const startedAt = clock.now();
  return async () => {
    const database: DatabaseProbeResult = await probeDatabase();
    const now = clock.now();
    const stats = engine.stats();
    let backlog: ReadinessInputs['backlog'] = null;
    let hooks: ReadinessInputs['webhooks']['backlog'] = null;
    if (database.ok) {
      try {
        backlog = await dueBacklog(db, now);
        if (settings.webhookEndpoints > 0) {
          const rows = await webhookBacklog(db, settings.webhookEndpointIds);
          const oldest = rows.flatMap((r) => (r.oldestAt === null ? [] : [r.oldestAt]));
          hooks = { pending: rows.reduce((n, r) => n + r.pending, 0), oldestAt: oldest.length ? Math.min(...oldest) : null };
        }
      } catch {
        backlog = null; // reported as a failed check; the probe said yes a moment ago, so this is rare
      }
    }
    return {
      now,
      database,
      sweepIntervalMs: settings.sweepIntervalMs,
      lastSweepAt: stats.lastSweepAt,
      startedAt,
      health: engine.health(),
      active: stats.active,
      queueBound: settings.queueBound,
      circuits: engine.circuits(),
      backlog,
      webhooks: { endpoints: settings.webhookEndpoints, backlog: hooks },
    };
  };
}
