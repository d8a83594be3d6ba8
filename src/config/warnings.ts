/**
 * Valid but risky settings: reported by `check-config` and logged by `run`,
 * never refused.
 */
import { Duration } from 'luxon';
import type { Config } from './schema.js';

/** The shortest length an interval can have, in ms (a month is at least 28 days). */
function shortestIntervalMs(every: Config['plans'][number]['every']): number {
  const days = { day: 1, week: 7, month: 28, year: 365 }[every.unit] * every.count;
  return days * 86_400_000;
}

/**
 * Plans whose retries can outlast their interval. Cycles of one subscription
 * are collected one at a time, so a cycle that falls due while the previous
 * one is still being retried is skipped (not charged) unless the plan
 * backfills.
 */
export function configWarnings(config: Pick<Config, 'plans' | 'retry'>): string[] {
  const delays = config.retry.delays.slice(0, Math.max(0, config.retry.attempts - 1));
  const retryMs = delays.reduce((sum, d) => sum + Duration.fromISO(d).toMillis(), 0);
  const warnings: string[] = [];
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
