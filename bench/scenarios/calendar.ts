/**
 * calendar (report only): due instants per second from the calendar module
 * (`dueAt` of a fresh schedule each time, so its per-schedule memo never
 * answers: anchor resolution, month-end clamp, zone offset from the wall
 * time) vs luxon alone (`DateTime.fromObject(anchor, { zone }).plus({ months })`),
 * both over the same monthly schedules in America/New_York (DST) with start
 * days 1..28 and 29..31, cycles 1..36. In process; the two alternate.
 */
import { DateTime } from 'luxon';
import { dueAt, type Schedule } from '../../src/calendar/index.js';
import { median, row, type Scenario } from '../harness.js';

const ZONE = 'America/New_York';
const STARTS = Array.from({ length: 31 }, (_, d) => `2025-01-${String(d + 1).padStart(2, '0')}`);
const CYCLES = 36;

/** Calls `op(k)` for `ms` milliseconds; returns calls per second. */
function rate(ms: number, op: (k: number) => number): number {
  let calls = 0;
  let sink = 0;
  const from = performance.now();
  let elapsed = 0;
  while (elapsed < ms) {
    for (let i = 0; i < 1000; i++) sink += op(calls++);
    elapsed = performance.now() - from;
  }
  if (sink === 42) process.stderr.write(''); // keeps the results alive
  return calls / (elapsed / 1000);
}

function viaCalendar(k: number): number {
  const schedule: Schedule = { startDate: STARTS[k % STARTS.length]!, every: { unit: 'month', count: 1 }, sendOnHour: 10, timezone: ZONE, monthEnd: 'clamp' };
  return dueAt(schedule, 1 + (k % CYCLES)).toMillis();
}

function viaLuxon(k: number): number {
  const day = (k % STARTS.length) + 1;
  return DateTime.fromObject({ year: 2025, month: 1, day, hour: 10 }, { zone: ZONE })
    .plus({ months: k % CYCLES })
    .toMillis();
}

export const calendar: Scenario = {
  rows: ['calendar'],
  description: 'due instants/s from the calendar module vs luxon plus alone (report only)',
  inProcess: true,
  async run(ctx) {
    const ms = ctx.size(2_000, 300);
    // The two agree (a sanity check on what is compared: clamp is luxon's month arithmetic too).
    for (let k = 0; k < 31 * CYCLES; k++) if (viaCalendar(k) !== viaLuxon(k)) throw new Error(`calendar and luxon disagree at k=${k}`);
    const ours: number[] = [];
    const luxon: number[] = [];
    for (let round = 0; round < ctx.rounds; round++) {
      luxon.push(rate(ms, viaLuxon));
      ours.push(rate(ms, viaCalendar));
    }
    ctx.log(`calendar ${ours.map((r) => r.toFixed(0)).join(', ')}/s, luxon ${luxon.map((r) => r.toFixed(0)).join(', ')}/s`);
    return [row('calendar', median(ours), 'instants/s', median(luxon), null, `median of ${ours.length} alternating ${ms / 1000} s runs; monthly, ${ZONE}, days 1-31, cycles 1-${CYCLES}`)];
  },
};
