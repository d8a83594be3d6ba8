/**
 * Property tests for SPEC section 2. The expected values are computed here from
 * first principles (calendar arithmetic on plain dates, zone offsets read from
 * Intl through luxon), not by calling the helpers under test.
 */
import fc from 'fast-check';
import { DateTime } from 'luxon';
import { describe, expect, it } from 'vitest';
import {
  currentCycleAt,
  MAX_LOCAL_DATE,
  dueAt,
  firstCycleAtOrAfter,
  previewDueDates,
  resolveSchedule,
  type IntervalUnit,
  type MonthEndPolicy,
  type Schedule,
} from '../../src/calendar/index.js';

/** Fixed seed: a failure reproduces on every machine; bump it deliberately to explore. */
const RUNS = { numRuns: 200, seed: 20250131 } as const;

/**
 * Zones with DST gaps and overlaps at various hours, half- and quarter-hour
 * offsets, a 30-minute DST (Lord Howe) and midnight transitions (Sao Paulo).
 * Deliberately not Pacific/Apia: its 2011 date-line jump skips a whole local
 * day, so a daily plan's cycles for Dec 30 and Dec 31 2011 share one instant
 * under the literal "moves forward by the gap" rule: a SPEC question, not a property.
 */
const ZONES = [
  'UTC',
  'America/New_York',
  'America/Sao_Paulo',
  'America/St_Johns',
  'Europe/Berlin',
  'Europe/London',
  'Asia/Kolkata',
  'Asia/Kathmandu',
  'Australia/Lord_Howe',
  'Pacific/Auckland',
] as const;

const isoDate = (d: DateTime): string => d.toFormat('yyyy-MM-dd');

/** Any date 1995..2045, with month ends (28..31) over-represented. */
const startDateArb = fc.oneof(
  fc.integer({ min: 0, max: 18_627 }).map((days) => isoDate(DateTime.utc(1995, 1, 1).plus({ days }))),
  fc
    .record({ year: fc.integer({ min: 1995, max: 2045 }), month: fc.integer({ min: 1, max: 12 }), day: fc.integer({ min: 28, max: 31 }) })
    .map(({ year, month, day }) => isoDate(DateTime.utc(year, month, Math.min(day, DateTime.utc(year, month, 1).daysInMonth!)))),
);

interface Case {
  schedule: Schedule;
  trialDays: number;
}

function scheduleArb(units: readonly IntervalUnit[] = ['day', 'week', 'month', 'year']): fc.Arbitrary<Case> {
  return fc
    .record({
      startDate: startDateArb,
      unit: fc.constantFrom(...units),
      count: fc.integer({ min: 1, max: 12 }),
      sendOnHour: fc.integer({ min: 0, max: 23 }),
      timezone: fc.constantFrom(...ZONES),
      monthEnd: fc.constantFrom<MonthEndPolicy>('clamp', 'overflow'),
      trialDays: fc.option(fc.integer({ min: 1, max: 45 }), { nil: undefined }),
    })
    .map(({ startDate, unit, count, sendOnHour, timezone, monthEnd, trialDays }) => ({
      schedule: {
        startDate,
        every: { unit, count },
        sendOnHour,
        timezone,
        monthEnd,
        trial: trialDays === undefined ? null : `P${trialDays}D`,
      },
      trialDays: trialDays ?? 0,
    }));
}

const cycleArb = fc.integer({ min: 1, max: 240 });

/** The anchor's local calendar date: startDate plus the trial's whole days. */
function anchorDate(c: Case): DateTime {
  return DateTime.fromISO(c.schedule.startDate, { zone: 'utc' }).plus({ days: c.trialDays });
}

/** The target month of cycle n for month/year units, as a UTC first-of-month. */
function targetMonth(c: Case, n: number): DateTime {
  const { unit, count } = c.schedule.every;
  const months = (n - 1) * count * (unit === 'year' ? 12 : 1);
  return anchorDate(c).startOf('month').plus({ months });
}

/** Local wall date and minute-of-day of an instant in the plan's zone. */
function local(instant: DateTime, zone: string): { date: string; minuteOfDay: number; offset: number } {
  const l = instant.setZone(zone);
  return { date: isoDate(l), minuteOfDay: l.hour * 60 + l.minute, offset: l.offset };
}

/**
 * The local time of day must be sendOnHour:00, except inside a DST gap, where it
 * is moved forward by exactly the gap: the offset change over the preceding hours.
 */
function expectWallTime(instant: DateTime, zone: string, hour: number): void {
  const now = local(instant, zone);
  const before = instant.minus({ hours: 3 }).setZone(zone).offset;
  const gap = now.offset - before;
  if (now.minuteOfDay === hour * 60) return;
  expect(gap, `${instant.toISO()} in ${zone}: ${now.minuteOfDay} min is not ${hour}:00 and no gap precedes it`).toBeGreaterThan(0);
  expect(now.minuteOfDay).toBe(hour * 60 + gap);
}

describe('calendar properties (fast-check)', () => {
  it('due instants strictly increase in n', () => {
    fc.assert(
      fc.property(scheduleArb(), cycleArb, (c, n) => {
        const r = resolveSchedule(c.schedule);
        expect(dueAt(r, n + 1) > dueAt(r, n)).toBe(true);
      }),
      RUNS,
    );
  });

  it('cycle 1 is the anchor: startDate + trial at sendOnHour (or later by a DST gap)', () => {
    fc.assert(
      fc.property(scheduleArb(), (c) => {
        const due = dueAt(c.schedule, 1);
        expect(local(due, c.schedule.timezone).date).toBe(isoDate(anchorDate(c)));
        expectWallTime(due, c.schedule.timezone, c.schedule.sendOnHour);
      }),
      RUNS,
    );
  });

  it('clamp: month/year cycles fall on min(anchor day, days in the target month), local time', () => {
    fc.assert(
      fc.property(scheduleArb(['month', 'year']), cycleArb, (c, n) => {
        const schedule: Schedule = { ...c.schedule, monthEnd: 'clamp' };
        const target = targetMonth(c, n);
        const day = Math.min(anchorDate(c).day, target.daysInMonth!);
        const due = dueAt(schedule, n);
        expect(local(due, schedule.timezone).date).toBe(isoDate(target.set({ day })));
        expectWallTime(due, schedule.timezone, schedule.sendOnHour);
      }),
      RUNS,
    );
  });

  it('overflow: month/year cycles fall on the anchor day counted from the 1st, spilling past the month end', () => {
    fc.assert(
      fc.property(scheduleArb(['month', 'year']), cycleArb, (c, n) => {
        const schedule: Schedule = { ...c.schedule, monthEnd: 'overflow' };
        const expected = targetMonth(c, n).plus({ days: anchorDate(c).day - 1 });
        const due = dueAt(schedule, n);
        expect(local(due, schedule.timezone).date).toBe(isoDate(expected));
        expectWallTime(due, schedule.timezone, schedule.sendOnHour);
      }),
      RUNS,
    );
  });

  it('day/week: consecutive cycles are exactly count (x7) calendar days apart at the same local hour', () => {
    fc.assert(
      fc.property(scheduleArb(['day', 'week']), cycleArb, (c, n) => {
        const { unit, count } = c.schedule.every;
        const zone = c.schedule.timezone;
        const a = dueAt(c.schedule, n);
        const b = dueAt(c.schedule, n + 1);
        const days = DateTime.fromISO(local(b, zone).date, { zone: 'utc' }).diff(
          DateTime.fromISO(local(a, zone).date, { zone: 'utc' }),
          'days',
        ).days;
        expect(days).toBe(unit === 'week' ? 7 * count : count);
        expectWallTime(a, zone, c.schedule.sendOnHour);
        expectWallTime(b, zone, c.schedule.sendOnHour);
      }),
      RUNS,
    );
  });

  it('dueAt(n) depends only on the schedule and n, not on call order or earlier calls', () => {
    fc.assert(
      fc.property(
        scheduleArb(),
        fc.array(cycleArb, { minLength: 1, maxLength: 12 }),
        fc.integer({ min: 0, max: 2 ** 31 - 1 }),
        (c, cycles, shuffleSeed) => {
          const resolved = resolveSchedule(c.schedule);
          const inOrder = cycles.map((n) => dueAt(resolved, n).toMillis());
          // Same cycles in another order, each from a fresh copy of the schedule, with
          // unrelated work (previews, searches, other cycles) interleaved.
          const reversed = cycles.map((_, i) => i).reverse();
          const cut = shuffleSeed % reversed.length;
          const order = [...reversed.slice(cut), ...reversed.slice(0, cut)];
          const shuffled: number[] = new Array<number>(cycles.length);
          for (const i of order) {
            const fresh: Schedule = structuredClone(c.schedule);
            previewDueDates(fresh, 3);
            firstCycleAtOrAfter(fresh, dueAt(fresh, cycles[i]! + 1));
            shuffled[i] = dueAt(fresh, cycles[i]!).toMillis();
          }
          expect(shuffled).toEqual(inOrder);
        },
      ),
      RUNS,
    );
  });

  it('dueAt(n+k) from a resolved schedule equals dueAt(n+k) from a fresh resolve', () => {
    fc.assert(
      fc.property(scheduleArb(), cycleArb, fc.integer({ min: 0, max: 120 }), (c, n, k) => {
        const resolved = resolveSchedule(c.schedule);
        dueAt(resolved, n);
        expect(dueAt(resolved, n + k).toMillis()).toBe(dueAt(resolveSchedule({ ...c.schedule }), n + k).toMillis());
        expect(dueAt(resolved, n + k).toMillis()).toBe(dueAt(c.schedule, n + k).toMillis());
      }),
      RUNS,
    );
  });

  it('re-anchoring on cycle k+1 gives the same dates where no month end is involved', () => {
    // For days, weeks and anchor days <= 28, "anchor + (n+k-1) intervals" equals
    // "(anchor + k intervals) + (n-1) intervals". Past day 28 it must NOT hold under
    // clamp (that is the drift the SPEC forbids), which the vectors cover.
    fc.assert(
      fc.property(scheduleArb(), cycleArb, fc.integer({ min: 1, max: 60 }), (c, n, k) => {
        fc.pre(c.schedule.every.unit === 'day' || c.schedule.every.unit === 'week' || anchorDate(c).day <= 28);
        const rebased: Schedule = {
          ...c.schedule,
          startDate: local(dueAt(c.schedule, k + 1), c.schedule.timezone).date,
          trial: null,
        };
        // A start date is between 1970-01-01 and 2199-12-31 (SPEC section 5); a far re-anchor is not a schedule.
        fc.pre(rebased.startDate <= MAX_LOCAL_DATE);
        expect(dueAt(rebased, n).toMillis()).toBe(dueAt(c.schedule, n + k).toMillis());
      }),
      RUNS,
    );
  });

  it('firstCycleAtOrAfter(s, dueAt(s, n)) === n, and currentCycleAt(s, dueAt(s, n)) === n, in any zone', () => {
    fc.assert(
      fc.property(scheduleArb(), cycleArb, fc.constantFrom(...ZONES), (c, n, viewZone) => {
        const r = resolveSchedule(c.schedule);
        // The caller's instant may carry any zone; only the instant matters.
        const due = dueAt(r, n).setZone(viewZone);
        expect(firstCycleAtOrAfter(r, due)).toBe(n);
        expect(currentCycleAt(r, due)).toBe(n);
        expect(firstCycleAtOrAfter(c.schedule, due.plus({ milliseconds: 1 }))).toBe(n + 1);
        expect(currentCycleAt(c.schedule, due.minus({ milliseconds: 1 }))).toBe(n - 1);
      }),
      RUNS,
    );
  });

  it('currentCycleAt(s, t) is the largest n with dueAt(n) <= t (0 before cycle 1)', () => {
    fc.assert(
      fc.property(scheduleArb(), cycleArb, fc.double({ min: -1.5, max: 1.5, noNaN: true }), (c, n, fraction) => {
        const r = resolveSchedule(c.schedule);
        const a = dueAt(r, n).toMillis();
        const b = dueAt(r, n + 1).toMillis();
        const t = DateTime.fromMillis(Math.round(a + fraction * (b - a)), { zone: 'utc' });
        const current = currentCycleAt(r, t);
        if (current > 0) expect(dueAt(r, current) <= t).toBe(true);
        expect(dueAt(r, current + 1) > t).toBe(true);
        // And firstCycleAtOrAfter is its counterpart: the next cycle, or this one when t is exactly due.
        const first = firstCycleAtOrAfter(r, t);
        expect(first).toBe(current > 0 && dueAt(r, current).toMillis() === t.toMillis() ? current : current + 1);
      }),
      RUNS,
    );
  });

  it('previewDueDates from an instant starts at firstCycleAtOrAfter and lists consecutive cycles', () => {
    fc.assert(
      fc.property(scheduleArb(), cycleArb, fc.integer({ min: 1, max: 6 }), (c, n, count) => {
        const from = dueAt(c.schedule, n).minus({ minutes: 1 });
        const preview = previewDueDates(c.schedule, count, from);
        expect(preview.map((p) => p.cycle)).toEqual(Array.from({ length: count }, (_, i) => n + i));
        for (const p of preview) expect(p.dueAt.toMillis()).toBe(dueAt(c.schedule, p.cycle).toMillis());
      }),
      RUNS,
    );
  });
});
