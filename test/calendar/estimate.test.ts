/**
 * Issue 7, item 18 (seeds at scale): the calendar's hot paths became plain
 * arithmetic (the cycle estimate is epoch ms instead of luxon's diff; date
 * validation, month lengths and day steps no longer build luxon objects).
 * These properties pin the results to independent computations: a
 * brute-force scan of due instants, and luxon's own calendar.
 */
import fc from 'fast-check';
import { DateTime } from 'luxon';
import { describe, expect, it } from 'vitest';
import { addMonths, currentCycleAt, dueAt, firstCycleAtOrAfter, parseLocalDate, resolveSchedule, ScheduleError, type MonthEndPolicy, type Schedule } from '../../src/calendar/index.js';

const RUNS = { numRuns: 150, seed: 20261201 } as const;

const ZONES = ['UTC', 'America/New_York', 'Europe/Berlin', 'Australia/Lord_Howe', 'Asia/Kathmandu', 'Pacific/Auckland'] as const;

const scheduleArb: fc.Arbitrary<Schedule> = fc
  .record({
    days: fc.integer({ min: 0, max: 60 * 365 }),
    unit: fc.constantFrom('day' as const, 'week' as const, 'month' as const, 'year' as const),
    count: fc.integer({ min: 1, max: 12 }),
    sendOnHour: fc.integer({ min: 0, max: 23 }),
    timezone: fc.constantFrom(...ZONES),
    monthEnd: fc.constantFrom<MonthEndPolicy>('clamp', 'overflow'),
    trialDays: fc.option(fc.integer({ min: 1, max: 400 }), { nil: null }),
  })
  .map(({ days, unit, count, sendOnHour, timezone, monthEnd, trialDays }) => ({
    startDate: DateTime.utc(1975, 1, 1).plus({ days }).toISODate()!,
    every: { unit, count },
    sendOnHour,
    timezone,
    monthEnd,
    trial: trialDays === null ? null : `P${trialDays}D`,
  }));

/** The largest n with dueAt(n) <= t, by walking every cycle from 1 (0 when cycle 1 is later). */
function bruteCurrentCycle(schedule: Schedule, t: number): number {
  const r = resolveSchedule(schedule);
  let n = 0;
  while (dueAt(r, n + 1).toMillis() <= t) n++;
  return n;
}

describe('calendar arithmetic without luxon on the hot path (fast-check)', () => {
  it('currentCycleAt and firstCycleAtOrAfter agree with a brute-force scan, for instants far from the anchor', () => {
    fc.assert(
      fc.property(scheduleArb, fc.double({ min: -3, max: 400, noNaN: true }), fc.constantFrom(...ZONES), (schedule, intervals, viewZone) => {
        const r = resolveSchedule(schedule);
        const first = dueAt(r, 1).toMillis();
        const step = dueAt(r, 2).toMillis() - first;
        const t = Math.round(first + intervals * step);
        const expected = bruteCurrentCycle(schedule, t);
        const instant = DateTime.fromMillis(t, { zone: viewZone });
        expect(currentCycleAt(r, instant)).toBe(expected);
        const exact = expected > 0 && dueAt(r, expected).toMillis() === t;
        expect(firstCycleAtOrAfter(r, instant)).toBe(exact ? expected : expected + 1);
      }),
      RUNS,
    );
  });

  it('parseLocalDate accepts exactly the real calendar dates luxon accepts (in range)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1960, max: 2210 }), fc.integer({ min: 0, max: 13 }), fc.integer({ min: 0, max: 32 }), (year, month, day) => {
        const text = `${year}-${String(month).padStart(2, '0')}-${String(day).padStart(2, '0')}`;
        const real = DateTime.fromObject({ year, month, day }, { zone: 'utc' }).isValid;
        if (real && text >= '1970-01-01' && text <= '2199-12-31') expect(parseLocalDate(text)).toEqual({ year, month, day });
        else expect(() => parseLocalDate(text)).toThrow(ScheduleError);
      }),
      { numRuns: 2000, seed: 20261201 },
    );
    for (const text of ['2000-02-29', '2024-02-29']) expect(parseLocalDate(text).day).toBe(29);
    for (const text of ['1900-02-29', '2100-02-29', '2023-02-29']) expect(() => parseLocalDate(text)).toThrow('expected a date yyyy-MM-dd');
  });

  it('addMonths matches luxon: clamp to the month end, or overflow into the next month', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 80 * 365 }), fc.integer({ min: 0, max: 1200 }), (days, months) => {
        const start = DateTime.utc(1970, 1, 1).plus({ days });
        const date = { year: start.year, month: start.month, day: start.day };
        const first = start.startOf('month').plus({ months });
        const clamped = first.set({ day: Math.min(start.day, first.daysInMonth!) });
        const spilled = first.plus({ days: start.day - 1 });
        expect(addMonths(date, months, 'clamp')).toEqual({ year: clamped.year, month: clamped.month, day: clamped.day });
        expect(addMonths(date, months, 'overflow')).toEqual({ year: spilled.year, month: spilled.month, day: spilled.day });
      }),
      { numRuns: 2000, seed: 20261201 },
    );
  });
});
