/**
 * The one place that turns a schedule into due instants (SPEC section 2).
 *
 * Every due instant is computed from the anchor and the cycle number alone:
 * `dueAt(n) = anchor + (n-1) x interval`. Nothing ever adds a period to the
 * previous due date, which is what makes Jan 31 -> Feb 28 -> Mar 31 instead of
 * drifting to Mar 28 (Stripe's "billing cycle anchor", Kill Bill's BCD).
 *
 * Pure: luxon only, no clock, no I/O. Instants are luxon DateTimes in UTC.
 */
import { DateTime, Duration, IANAZone } from 'luxon';
import type { Interval } from './interval.js';

export type MonthEndPolicy = 'clamp' | 'overflow';
export const MONTH_END_POLICIES: readonly MonthEndPolicy[] = ['clamp', 'overflow'];

/** Everything the calendar needs to know about a subscription's schedule. */
export interface Schedule {
  /** Local start date, `yyyy-MM-dd`, in `timezone`. */
  readonly startDate: string;
  readonly every: Interval;
  /** Hour of day 0..23 in `timezone` at which cycles fall due. */
  readonly sendOnHour: number;
  /** IANA zone name. */
  readonly timezone: string;
  readonly monthEnd: MonthEndPolicy;
  /** ISO-8601 duration; cycle 1 falls due at anchor + trial. */
  readonly trial?: string | null;
  /** Inclusive local end date, `yyyy-MM-dd`: a cycle due on that date is still charged. */
  readonly endDate?: string | null;
  readonly maxCycles?: number | null;
}

export class ScheduleError extends Error {
  readonly code = 'SCHEDULE_INVALID';
}

interface LocalDate {
  year: number;
  month: number;
  day: number;
}

const DATE = /^(\d{4})-(\d{2})-(\d{2})$/;

/** The first and last dates a schedule may name (SPEC section 5). */
export const MIN_LOCAL_DATE = '1970-01-01';
export const MAX_LOCAL_DATE = '2199-12-31';

/**
 * Parses and checks a `yyyy-MM-dd` calendar date between MIN_LOCAL_DATE and
 * MAX_LOCAL_DATE (SPEC section 5). The range is checked on the text, before
 * any date library sees it: years 0001-0099 used to come back as 1901-1999.
 * The one date validation for config, CLI and API alike.
 */
export function parseLocalDate(text: string): LocalDate {
  const m = typeof text === 'string' ? DATE.exec(text) : null;
  // Plain arithmetic (this runs for every seed): a real Gregorian date, as luxon would accept it.
  const date = m ? { year: +m[1]!, month: +m[2]!, day: +m[3]! } : null;
  if (!date || date.month < 1 || date.month > 12 || date.day < 1 || date.day > daysInMonth(date.year, date.month)) {
    throw new ScheduleError(`expected a date yyyy-MM-dd; got ${JSON.stringify(text)}`);
  }
  // yyyy-MM-dd compares correctly as text.
  if (text < MIN_LOCAL_DATE || text > MAX_LOCAL_DATE) {
    throw new ScheduleError(`expected a date between ${MIN_LOCAL_DATE} and ${MAX_LOCAL_DATE}; got "${text}"`);
  }
  return date;
}

/** True when `ms` is an instant whose UTC date lies between MIN_LOCAL_DATE and MAX_LOCAL_DATE. */
export function isInstantInRange(ms: number): boolean {
  const date = DateTime.fromMillis(ms, { zone: 'utc' });
  return date.isValid && date.toISODate()! >= MIN_LOCAL_DATE && date.toISODate()! <= MAX_LOCAL_DATE;
}

/** True when `name` is an IANA zone luxon (and so Intl) knows. */
export function isValidTimeZone(name: string): boolean {
  return IANAZone.isValidZone(name);
}

/** Parses an ISO-8601 duration (`P14D`, `PT12H`); throws ScheduleError otherwise. */
export function parseDuration(text: string): Duration {
  const d = Duration.fromISO(text);
  if (!d.isValid) throw new ScheduleError(`expected an ISO-8601 duration such as P14D; got "${text}"`);
  return d;
}

/**
 * Parses a duration that must point forward: > 0 (a trial), or >= 0 with
 * `allowZero` (a retry delay). `P-1D` is a valid ISO duration but no trial;
 * config, `rebill preview --trial` and the API all check it here.
 */
export function parseForwardDuration(text: string, options: { allowZero?: boolean } = {}): Duration {
  const d = parseDuration(text);
  const millis = d.toMillis();
  if (millis < 0 || (millis === 0 && !options.allowZero)) {
    throw new ScheduleError(`expected a duration ${options.allowZero ? '>=' : '>'} 0; got "${text}"`);
  }
  return d;
}

const MS_PER_DAY = 86_400_000;

/** Proleptic Gregorian month lengths: plain arithmetic, as it runs once per cycle per seed. */
function daysInMonth(year: number, month: number): number {
  if (month !== 2) return [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month - 1]!;
  return (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0 ? 29 : 28;
}

/** Epoch ms of a date's UTC midnight; setUTCFullYear, unlike Date.UTC, keeps years 0-99 as written. */
function utcDayMs(date: LocalDate): number {
  const d = new Date(0);
  d.setUTCFullYear(date.year, date.month - 1, date.day);
  return d.getTime();
}

function localDateOfMs(ms: number): LocalDate {
  const d = new Date(ms);
  return { year: d.getUTCFullYear(), month: d.getUTCMonth() + 1, day: d.getUTCDate() };
}

/**
 * Adds `months` calendar months to a date under a month-end policy.
 * clamp: a missing day becomes the month's last day. overflow: the surplus
 * days spill into the following month (Jan 30 + 1 month -> Mar 2).
 */
export function addMonths(date: LocalDate, months: number, policy: MonthEndPolicy): LocalDate {
  const index = date.year * 12 + (date.month - 1) + months;
  const year = Math.floor(index / 12);
  const month = (index % 12) + 1;
  const dim = daysInMonth(year, month);
  if (date.day <= dim) return { year, month, day: date.day };
  if (policy === 'clamp') return { year, month, day: dim };
  return addDays({ year, month, day: dim }, date.day - dim);
}

function addDays(date: LocalDate, days: number): LocalDate {
  // Calendar days on UTC midnights: every UTC day is exactly 24 h.
  return localDateOfMs(utcDayMs(date) + days * MS_PER_DAY);
}

/**
 * Local wall time -> UTC instant. A wall time inside a DST gap moves forward
 * by the gap (02:30 on a spring-forward night is 03:30); an ambiguous one
 * (autumn overlap) takes the earlier offset, i.e. the first occurrence.
 */
export function localToInstant(date: LocalDate, hour: number, minute: number, zone: string): DateTime {
  const wall = Date.UTC(date.year, date.month - 1, date.day, hour, minute);
  const z = IANAZone.create(zone);
  // The offsets in force a day either side bracket every transition that can touch this wall time.
  const candidates = new Set([z.offset(wall - 86_400_000), z.offset(wall + 86_400_000), z.offset(wall)]);
  const valid: number[] = [];
  for (const offset of candidates) {
    const ts = wall - offset * 60_000;
    if (z.offset(ts) === offset) valid.push(ts);
  }
  if (valid.length > 0) return DateTime.fromMillis(Math.min(...valid), { zone: 'utc' });
  // In a gap: read the wall time with the offset from before the jump, which lands after it.
  const before = z.offset(wall - 86_400_000);
  return DateTime.fromMillis(wall - before * 60_000, { zone: 'utc' });
}

/** A schedule resolved once: the anchor after the trial, ready for dueAt(n). */
export interface ResolvedSchedule {
  readonly schedule: Schedule;
  readonly anchorDate: LocalDate;
  readonly anchorHour: number;
  readonly anchorMinute: number;
  readonly endDate: LocalDate | null;
}

/**
 * Resolves a schedule's anchor: startDate at sendOnHour in the zone, shifted by
 * the trial (so a 21-day trial from Jan 10 anchors every cycle on the 31st).
 */
export function resolveSchedule(schedule: Schedule): ResolvedSchedule {
  if (!isValidTimeZone(schedule.timezone)) throw new ScheduleError(`unknown time zone "${schedule.timezone}"`);
  if (!Number.isInteger(schedule.sendOnHour) || schedule.sendOnHour < 0 || schedule.sendOnHour > 23) {
    throw new ScheduleError(`sendOnHour: expected a whole number 0..23; got ${schedule.sendOnHour}`);
  }
  const start = parseLocalDate(schedule.startDate);
  let anchorDate = start;
  let anchorHour = schedule.sendOnHour;
  let anchorMinute = 0;
  if (schedule.trial) {
    const trial = parseDuration(schedule.trial);
    // Trial arithmetic is on the wall clock, so P14D is 14 calendar days even across DST.
    const shifted = DateTime.utc(start.year, start.month, start.day, anchorHour).plus(trial);
    anchorDate = { year: shifted.year, month: shifted.month, day: shifted.day };
    anchorHour = shifted.hour;
    anchorMinute = shifted.minute;
  }
  return {
    schedule,
    anchorDate,
    anchorHour,
    anchorMinute,
    endDate: schedule.endDate ? parseLocalDate(schedule.endDate) : null,
  };
}

function resolved(s: Schedule | ResolvedSchedule): ResolvedSchedule {
  return 'anchorDate' in s ? s : resolveSchedule(s);
}

/** The local calendar date of cycle n (1-based), before the end rules apply. */
function localDueDate(r: ResolvedSchedule, n: number): LocalDate {
  const k = (n - 1) * r.schedule.every.count;
  switch (r.schedule.every.unit) {
    case 'day':
      return addDays(r.anchorDate, k);
    case 'week':
      return addDays(r.anchorDate, 7 * k);
    case 'month':
      return addMonths(r.anchorDate, k, r.schedule.monthEnd);
    case 'year':
      return addMonths(r.anchorDate, 12 * k, r.schedule.monthEnd);
  }
}

function compareDates(a: LocalDate, b: LocalDate): number {
  return a.year - b.year || a.month - b.month || a.day - b.day;
}

/**
 * The due instant of cycle n (1-based), ignoring endDate and maxCycles.
 * Always derived from the anchor, so dueAt(n) depends only on the schedule and n.
 */
export function dueAt(schedule: Schedule | ResolvedSchedule, n: number): DateTime {
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`cycle must be a whole number >= 1; got ${n}`);
  const r = resolved(schedule);
  let byCycle = dueMemo.get(r);
  if (!byCycle) dueMemo.set(r, (byCycle = new Map()));
  const known = byCycle.get(n);
  if (known) return known;
  const instant = localToInstant(localDueDate(r, n), r.anchorHour, r.anchorMinute, r.schedule.timezone);
  // Past luxon's range (about year 275760) the arithmetic yields an invalid DateTime;
  // fail loudly rather than let a null due date reach the store or the CLI output.
  if (!instant.isValid) throw new RangeError(`cycle ${n} falls outside the supported calendar range`);
  if (byCycle.size < MEMO_CYCLES) byCycle.set(n, instant);
  return instant;
}

/**
 * dueAt is pure, and time-zone offsets (Intl) are its expensive part: a
 * resolved schedule remembers the instants it has computed. Callers that
 * resolve once per schedule shape (the engine does) share them.
 */
const dueMemo = new WeakMap<ResolvedSchedule, Map<number, DateTime>>();
const MEMO_CYCLES = 2000;

/** True when cycle n exists under the schedule's endDate (inclusive) and maxCycles. */
export function cycleExists(schedule: Schedule | ResolvedSchedule, n: number): boolean {
  const r = resolved(schedule);
  if (r.schedule.maxCycles != null && n > r.schedule.maxCycles) return false;
  if (r.endDate && compareDates(localDueDate(r, n), r.endDate) > 0) return false;
  return true;
}

/** dueAt(n) when cycle n exists, otherwise null (the schedule has ended). */
export function dueAtOrEnd(schedule: Schedule | ResolvedSchedule, n: number): DateTime | null {
  const r = resolved(schedule);
  return cycleExists(r, n) ? dueAt(r, n) : null;
}

/** Rough count of whole intervals between the anchor and an instant, for a starting guess. */
function estimateCycle(r: ResolvedSchedule, instant: DateTime): number {
  // Epoch arithmetic, not luxon's diff (which dominated seeding): only a guess, firstCycleAtOrAfter corrects it.
  const days = (instant.toMillis() - utcDayMs(r.anchorDate)) / MS_PER_DAY;
  const perCycle = { day: 1, week: 7, month: 30.436875, year: 365.2425 }[r.schedule.every.unit] * r.schedule.every.count;
  return Math.max(1, Math.floor(days / perCycle) + 1);
}

/**
 * The smallest cycle n >= 1 whose due instant is >= `instant` (ignores the end rules).
 * Used for `preview --from`, resume ("first anchor date after the resume instant")
 * and catching up after downtime.
 */
export function firstCycleAtOrAfter(schedule: Schedule | ResolvedSchedule, instant: DateTime): number {
  const r = resolved(schedule);
  let n = estimateCycle(r, instant);
  while (n > 1 && dueAt(r, n - 1) >= instant) n--;
  while (dueAt(r, n) < instant) n++;
  return n;
}

/**
 * The latest cycle whose due instant is <= `instant`, or 0 when cycle 1 is
 * still in the future. This is the "current period" of a past start date.
 */
export function currentCycleAt(schedule: Schedule | ResolvedSchedule, instant: DateTime): number {
  const r = resolved(schedule);
  const next = firstCycleAtOrAfter(r, instant);
  // Compare the instants, not the DateTimes: luxon's equals() also compares zone and
  // locale, so a caller's `now` in another zone would miss an exact due instant.
  return dueAt(r, next).toMillis() === instant.toMillis() ? next : next - 1;
}

/**
 * Up to `count` due instants from cycle 1 (or from the first cycle due at or
 * after `from`), stopping early where endDate or maxCycles ends the schedule.
 */
export function previewDueDates(
  schedule: Schedule,
  count: number,
  from?: DateTime,
): Array<{ cycle: number; dueAt: DateTime }> {
  const r = resolveSchedule(schedule);
  const out: Array<{ cycle: number; dueAt: DateTime }> = [];
  let n = from ? firstCycleAtOrAfter(r, from) : 1;
  while (out.length < count && cycleExists(r, n)) {
    out.push({ cycle: n, dueAt: dueAt(r, n) });
    n++;
  }
  return out;
}

/** Canonical instant text: UTC ISO-8601 with `Z`, seconds precision (`2025-01-31T00:00:00Z`). */
export function formatInstant(instant: DateTime): string {
  return instant.toUTC().toISO({ suppressMilliseconds: true })!;
}
