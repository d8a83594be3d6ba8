import type { Command } from 'commander';
import { DateTime } from 'luxon';
import {
  formatInstant,
  IntervalError,
  isInstantInRange,
  isValidTimeZone,
  MAX_LOCAL_DATE,
  MIN_LOCAL_DATE,
  MONTH_END_POLICIES,
  parseForwardDuration,
  parseInterval,
  parseLocalDate,
  previewDueDates,
  ScheduleError,
  type MonthEndPolicy,
  type Schedule,
} from '../calendar/index.js';
import { UsageError, type CommandContext } from './index.js';
import { lineOutput } from './output.js';

interface PreviewFlags {
  start: string;
  every: string;
  hour: string;
  tz: string;
  monthEnd: string;
  trial?: string;
  count: string;
  from?: string;
  json?: boolean;
}

/** `rebill preview`: print due instants of a schedule (SPEC section 10). */
export function registerPreview(program: Command, ctx: CommandContext): void {
  program
    .command('preview')
    .description('print the due instants of a schedule')
    .requiredOption('--start <date>', 'start date, yyyy-MM-dd')
    .requiredOption('--every <interval>', 'MONTH, THREE_MONTHS, "2 weeks", ...')
    .option('--hour <h>', 'sendOnHour 0..23 in --tz', '0')
    .option('--tz <zone>', 'IANA time zone', 'UTC')
    .option('--month-end <policy>', 'clamp or overflow', 'clamp')
    .option('--trial <duration>', 'ISO-8601 trial duration, e.g. P14D')
    .option('--count <n>', 'how many due instants', '12')
    .option('--from <instant>', 'start from the first due instant >= this ISO instant')
    .option('--json', 'print {"dueDates": [...]}')
    .action(async (flags: PreviewFlags) => {
      const { schedule, count, from } = parseFlags(flags);
      const due = previewDueDates(schedule, count, from);
      // `| head -2` closes the pipe early: that ends the output, not the command's success.
      const out = lineOutput();
      if (flags.json) {
        await out.line(JSON.stringify({ dueDates: due.map((d) => formatInstant(d.dueAt)) }));
      } else {
        for (const d of due) {
          if (out.closed) break;
          const local = d.dueAt.setZone(schedule.timezone).toFormat("ccc yyyy-MM-dd HH:mm ZZZZ");
          await out.line(`${String(d.cycle).padStart(5)}  ${formatInstant(d.dueAt)}  ${local}`);
        }
      }
      ctx.exitCode = 0;
    });
}

function parseFlags(flags: PreviewFlags): { schedule: Schedule; count: number; from?: DateTime } {
  const wrap = <T>(flag: string, fn: () => T): T => {
    try {
      return fn();
    } catch (err) {
      if (err instanceof IntervalError || err instanceof ScheduleError) throw new UsageError(`${flag}: ${err.message}`);
      throw err;
    }
  };
  wrap('--start', () => parseLocalDate(flags.start));
  const every = wrap('--every', () => parseInterval(flags.every));
  const hour = wholeNumber('--hour', flags.hour, 0, 23);
  if (!isValidTimeZone(flags.tz)) throw new UsageError(`--tz: unknown IANA time zone "${flags.tz}"`);
  if (!MONTH_END_POLICIES.includes(flags.monthEnd as MonthEndPolicy)) {
    throw new UsageError(`--month-end: expected clamp or overflow; got "${flags.monthEnd}"`);
  }
  // The same check as a plan's trial in the config: a positive ISO-8601 duration.
  if (flags.trial !== undefined) wrap('--trial', () => parseForwardDuration(flags.trial!));
  const count = wholeNumber('--count', flags.count, 1, 100_000);
  let from: DateTime | undefined;
  if (flags.from !== undefined) {
    from = DateTime.fromISO(flags.from, { zone: flags.tz }).toUTC();
    if (!from.isValid) throw new UsageError(`--from: expected an ISO-8601 instant; got "${flags.from}"`);
    if (!isInstantInRange(from.toMillis())) throw new UsageError(`--from: expected an instant between ${MIN_LOCAL_DATE} and ${MAX_LOCAL_DATE}; got "${flags.from}"`);
  }
  const schedule: Schedule = {
    startDate: flags.start,
    every,
    sendOnHour: hour,
    timezone: flags.tz,
    monthEnd: flags.monthEnd as MonthEndPolicy,
    trial: flags.trial ?? null,
  };
  return from ? { schedule, count, from } : { schedule, count };
}

function wholeNumber(flag: string, text: string, min: number, max: number): number {
  const n = Number(text);
  if (!/^\d+$/.test(text) || n < min || n > max) throw new UsageError(`${flag}: expected a whole number ${min}..${max}; got "${text}"`);
  return n;
}
