/**
 * Unit tests for the building blocks of src/calendar/schedule.ts that the
 * vectors exercise only indirectly: addMonths, localToInstant, formatInstant,
 * the schedule checks, and currentCycleAt with instants in other zones.
 */
import { DateTime } from 'luxon';
import { describe, expect, it } from 'vitest';
import {
  addMonths,
  currentCycleAt,
  dueAt,
  firstCycleAtOrAfter,
  formatInstant,
  localToInstant,
  parseLocalDate,
  previewDueDates,
  resolveSchedule,
  ScheduleError,
  type Schedule,
} from '../../src/calendar/index.js';

const monthly = (startDate: string, extra: Partial<Schedule> = {}): Schedule => ({
  startDate,
  every: { unit: 'month', count: 1 },
  sendOnHour: 0,
  timezone: 'UTC',
  monthEnd: 'clamp',
  ...extra,
});

const iso = (d: DateTime): string => formatInstant(d);

describe('addMonths', () => {
  it('Jan 31 + 1 month clamps to Feb 28, and to Feb 29 in a leap year', () => {
    expect(addMonths({ year: 2025, month: 1, day: 31 }, 1, 'clamp')).toEqual({ year: 2025, month: 2, day: 28 });
    expect(addMonths({ year: 2024, month: 1, day: 31 }, 1, 'clamp')).toEqual({ year: 2024, month: 2, day: 29 });
  });
  it('Jan 30 + 1 month overflows to Mar 2, and to Mar 1 in a leap year', () => {
    expect(addMonths({ year: 2025, month: 1, day: 30 }, 1, 'overflow')).toEqual({ year: 2025, month: 3, day: 2 });
    expect(addMonths({ year: 2024, month: 1, day: 30 }, 1, 'overflow')).toEqual({ year: 2024, month: 3, day: 1 });
  });
  it('Dec 31 + 2 months crosses the year and overflows to Mar 3 (Mar 2 in a leap year)', () => {
    expect(addMonths({ year: 2024, month: 12, day: 31 }, 2, 'overflow')).toEqual({ year: 2025, month: 3, day: 3 });
    expect(addMonths({ year: 2023, month: 12, day: 31 }, 2, 'overflow')).toEqual({ year: 2024, month: 3, day: 2 });
  });
  it('a day that exists is kept under both policies', () => {
    expect(addMonths({ year: 2025, month: 1, day: 15 }, 13, 'clamp')).toEqual({ year: 2026, month: 2, day: 15 });
    expect(addMonths({ year: 2025, month: 1, day: 15 }, 13, 'overflow')).toEqual({ year: 2026, month: 2, day: 15 });
  });
});

describe('localToInstant', () => {
  it('a wall time in the spring-forward gap moves forward by the gap (02:30 -> 03:30 EDT)', () => {
    expect(iso(localToInstant({ year: 2025, month: 3, day: 9 }, 2, 30, 'America/New_York'))).toBe('2025-03-09T07:30:00Z');
  });
  it('an ambiguous wall time takes the earlier offset, i.e. the first occurrence (01:30 EDT)', () => {
    expect(iso(localToInstant({ year: 2025, month: 11, day: 2 }, 1, 30, 'America/New_York'))).toBe('2025-11-02T05:30:00Z');
    expect(iso(localToInstant({ year: 2025, month: 10, day: 26 }, 2, 30, 'Europe/Berlin'))).toBe('2025-10-26T00:30:00Z');
  });
  it('Lord Howe: the 30-minute gap moves 02:00 to 02:30 and 01:45 in the overlap is the first one', () => {
    expect(iso(localToInstant({ year: 2024, month: 10, day: 6 }, 2, 0, 'Australia/Lord_Howe'))).toBe('2024-10-05T15:30:00Z');
    // Apr 7 2024: 02:00 LHDT (+11) goes back to 01:30 LHST (+10:30); 01:45 +11 is 14:45Z.
    expect(iso(localToInstant({ year: 2024, month: 4, day: 7 }, 1, 45, 'Australia/Lord_Howe'))).toBe('2024-04-06T14:45:00Z');
  });
  it('fractional offsets: Kathmandu +05:45 and Kolkata +05:30', () => {
    expect(iso(localToInstant({ year: 2025, month: 1, day: 31 }, 0, 0, 'Asia/Kathmandu'))).toBe('2025-01-30T18:15:00Z');
    expect(iso(localToInstant({ year: 2025, month: 1, day: 31 }, 3, 0, 'Asia/Kolkata'))).toBe('2025-01-30T21:30:00Z');
  });
});

describe('formatInstant', () => {
  it('prints UTC with Z and whole seconds, whatever the zone of the DateTime', () => {
    expect(formatInstant(DateTime.fromISO('2025-01-31T09:00:00', { zone: 'Europe/Berlin' }))).toBe('2025-01-31T08:00:00Z');
    expect(formatInstant(DateTime.utc(2025, 1, 31))).toBe('2025-01-31T00:00:00Z');
  });
});

describe('schedule checks', () => {
  it.each(['2025-02-30', '2025-13-01', '25-01-01', '2025-1-1', ''])('rejects the start date %j', (startDate) => {
    expect(() => parseLocalDate(startDate)).toThrow(ScheduleError);
    expect(() => dueAt(monthly(startDate), 1)).toThrow(/expected a date yyyy-MM-dd/);
  });
  it('rejects an unknown zone, an hour outside 0..23, a bad trial and a cycle below 1', () => {
    expect(() => dueAt(monthly('2025-01-31', { timezone: 'Mars/Olympus' }), 1)).toThrow(/unknown time zone "Mars\/Olympus"/);
    expect(() => dueAt(monthly('2025-01-31', { sendOnHour: 24 }), 1)).toThrow(/sendOnHour: expected a whole number 0..23; got 24/);
    expect(() => dueAt(monthly('2025-01-31', { sendOnHour: 1.5 }), 1)).toThrow(ScheduleError);
    expect(() => dueAt(monthly('2025-01-31', { trial: '14 days' }), 1)).toThrow(/ISO-8601 duration/);
    expect(() => dueAt(monthly('2025-01-31'), 0)).toThrow(RangeError);
    expect(() => dueAt(monthly('2025-01-31'), 1.5)).toThrow(RangeError);
  });
  it('a cycle beyond the supported calendar range throws instead of yielding an invalid date', () => {
    const millennial: Schedule = monthly('2025-01-31', { every: { unit: 'year', count: 10_000 } });
    expect(dueAt(millennial, 2).year).toBe(12_025);
    expect(() => dueAt(millennial, 100)).toThrow(/cycle 100 falls outside the supported calendar range/);
  });
  it('a trial shifts the anchor, so every cycle follows the trial end (Jan 10 + P21D -> the 31st)', () => {
    const r = resolveSchedule(monthly('2025-01-10', { trial: 'P21D' }));
    expect(r.anchorDate).toEqual({ year: 2025, month: 1, day: 31 });
    expect(iso(dueAt(r, 2))).toBe('2025-02-28T00:00:00Z');
  });
});

describe('currentCycleAt and firstCycleAtOrAfter', () => {
  const s = monthly('2025-01-31');

  it('an instant exactly on a due date counts as that cycle even when it carries another zone', () => {
    // Regression: luxon's equals() also compares zones, so this returned 2.
    const due = dueAt(s, 3);
    expect(currentCycleAt(s, due.setZone('America/New_York'))).toBe(3);
    expect(currentCycleAt(s, DateTime.fromISO('2025-03-31T00:00:00Z'))).toBe(3);
    expect(currentCycleAt(s, DateTime.fromISO('2025-03-31T00:00:00Z', { setZone: true }))).toBe(3);
  });
  it('is 0 before cycle 1 and the latest cycle due otherwise', () => {
    expect(currentCycleAt(s, DateTime.utc(2025, 1, 30))).toBe(0);
    expect(currentCycleAt(s, DateTime.utc(2025, 3, 15))).toBe(2);
    expect(firstCycleAtOrAfter(s, DateTime.utc(2025, 3, 15))).toBe(3);
    expect(firstCycleAtOrAfter(s, DateTime.utc(2000, 1, 1))).toBe(1);
  });
  it('finds far cycles without walking from cycle 1 (cycle 1000 of a daily)', () => {
    const daily: Schedule = { ...s, every: { unit: 'day', count: 1 } };
    const due = dueAt(daily, 1000);
    expect(firstCycleAtOrAfter(daily, due)).toBe(1000);
    expect(currentCycleAt(daily, due.plus({ hours: 23 }))).toBe(1000);
  });
  it('previewDueDates stops at maxCycles and endDate', () => {
    expect(previewDueDates({ ...s, maxCycles: 2 }, 12)).toHaveLength(2);
    expect(previewDueDates({ ...s, endDate: '2025-02-28' }, 12).map((d) => iso(d.dueAt))).toEqual([
      '2025-01-31T00:00:00Z',
      '2025-02-28T00:00:00Z',
    ]);
  });
});
