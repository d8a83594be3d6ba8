/**
 * Billing intervals: `{ unit, count }` plus the aliases and "3 months" strings
 * accepted everywhere an interval is (SPEC section 2).
 */

export const INTERVAL_UNITS = ['day', 'week', 'month', 'year'] as const;
export type IntervalUnit = (typeof INTERVAL_UNITS)[number];

export interface Interval {
  readonly unit: IntervalUnit;
  readonly count: number;
}

/** The named aliases of SPEC section 2, matched case-insensitively. */
export const INTERVAL_ALIASES: Readonly<Record<string, Interval>> = {
  DAY: { unit: 'day', count: 1 },
  WEEK: { unit: 'week', count: 1 },
  TWO_WEEKS: { unit: 'week', count: 2 },
  MONTH: { unit: 'month', count: 1 },
  TWO_MONTHS: { unit: 'month', count: 2 },
  THREE_MONTHS: { unit: 'month', count: 3 },
  SIX_MONTHS: { unit: 'month', count: 6 },
  YEAR: { unit: 'year', count: 1 },
};

const PHRASE = /^\s*(\d+)\s*(day|week|month|year)s?\s*$/i;

/** Thrown for an interval that is neither an alias, a "3 months" phrase nor `{unit, count}`. */
export class IntervalError extends Error {
  readonly code = 'INTERVAL_INVALID';
}

/**
 * Parses an alias (`THREE_MONTHS`), a phrase (`"3 months"`, `"1 week"`) or an
 * object (`{ unit: 'month', count: 3 }`) into an Interval.
 */
export function parseInterval(input: unknown): Interval {
  if (typeof input === 'string') {
    const alias = INTERVAL_ALIASES[input.trim().toUpperCase()];
    if (alias) return alias;
    const m = PHRASE.exec(input);
    if (m) return checked({ unit: m[2]!.toLowerCase() as IntervalUnit, count: Number(m[1]) });
    throw new IntervalError(
      `expected one of ${Object.keys(INTERVAL_ALIASES).join(', ')} or "<count> <day|week|month|year>"; got "${input}"`,
    );
  }
  if (input !== null && typeof input === 'object') {
    const { unit, count } = input as { unit?: unknown; count?: unknown };
    if (typeof unit !== 'string' || !INTERVAL_UNITS.includes(unit.toLowerCase() as IntervalUnit)) {
      throw new IntervalError(`unit: expected one of ${INTERVAL_UNITS.join(', ')}; got ${JSON.stringify(unit)}`);
    }
    return checked({ unit: unit.toLowerCase() as IntervalUnit, count: count === undefined ? 1 : (count as number) });
  }
  throw new IntervalError(`expected an interval name, "<count> <unit>" or { unit, count }; got ${JSON.stringify(input)}`);
}

/**
 * Largest accepted count. Without a bound, "99999999999999999999 months" parsed
 * and every cycle after the first came out as an invalid date (`null` in
 * `preview --json`); 10000 still allows "3650 days" or "520 weeks".
 */
export const MAX_INTERVAL_COUNT = 10_000;

function checked(interval: Interval): Interval {
  if (!Number.isInteger(interval.count) || interval.count < 1) {
    throw new IntervalError(`count: expected a whole number >= 1; got ${JSON.stringify(interval.count)}`);
  }
  if (interval.count > MAX_INTERVAL_COUNT) {
    throw new IntervalError(`count: expected at most ${MAX_INTERVAL_COUNT}; got ${interval.count}`);
  }
  return interval;
}

/** "3 months", "1 week": for logs, the CLI and the README. */
export function formatInterval(interval: Interval): string {
  return `${interval.count} ${interval.unit}${interval.count === 1 ? '' : 's'}`;
}
