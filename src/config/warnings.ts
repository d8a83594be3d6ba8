/**
 * Valid but risky settings: reported by `check-config` and logged by `run`,
 * never refused.
 */
import { Duration } from 'luxon';
import type { Config } from './schema.js';

/** Warnings found while loading (unknown REBILL_* variables), kept with the config they came with. */
const loadWarnings = new WeakMap<object, readonly string[]>();

/** Attaches the loader's warnings to a loaded config, so configWarnings reports them with the rest. */
export function recordLoadWarnings(config: object, warnings: readonly string[]): void {
  if (warnings.length > 0) loadWarnings.set(config, [...warnings]);
}

/** The shortest length an interval can have, in ms (a month is at least 28 days). */
function shortestIntervalMs(every: Config['plans'][number]['every']): number {
  const days = { day: 1, week: 7, month: 28, year: 365 }[every.unit] * every.count;
  return days * 86_400_000;
}

/**
 * Everything worth a warning in a valid config, shown by `check-config`
 * (stderr, exit 0) and logged by `run`: the loader's (unknown REBILL_*
 * variables), a simulator gateway, and plans whose retries can outlast their
 * interval (cycles of one subscription are collected one at a time, so a cycle
 * that falls due while the previous one is still being retried is skipped,
 * not charged, unless the plan backfills).
 */
export function configWarnings(config: Pick<Config, 'plans' | 'retry'> & Partial<Pick<Config, 'gateways'>>): string[] {
  const warnings: string[] = [...(loadWarnings.get(config) ?? [])];
  for (const [name, gateway] of Object.entries(config.gateways ?? {})) {
    // SPEC section 7: a simulator "captures" without moving money, and exactly-once means such a cycle is never billed again.
    if (gateway.type === 'simulator') warnings.push(`gateway ${name} is a simulator: no money moves; plans using it are marked paid without charging anyone`);
  }
  const delays = config.retry.delays.slice(0, Math.max(0, config.retry.attempts - 1));
  const retryMs = delays.reduce((sum, d) => sum + Duration.fromISO(d).toMillis(), 0);
  config.plans.forEach((plan, i) => {
    if (retryMs >= shortestIntervalMs(plan.every) && !plan.backfill) {
      warnings.push(
        `plans[${i}] (${plan.id}): retry delays ${delays.join(' + ')} can outlast its interval (${plan.every.count} ${plan.every.unit}); ` +
          'a cycle that falls due while the previous one is still retried is skipped, not charged (set backfill: true, or shorten retry.delays)',
      );
    }
  });
  return warnings;
}
