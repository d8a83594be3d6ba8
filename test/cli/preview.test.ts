/**
 * `rebill preview` as users run it: a real `node bin/rebill.js` child process
 * (SPEC section 10). Needs `npm run build` first, since bin/ runs dist/.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { requireBuild, runCli } from '../support/cli.js';

const conformance = fileURLToPath(new URL('../fixtures/conformance/preview-vectors.json', import.meta.url));

const rebill = (...args: string[]) => runCli(args);

/** Runs `preview ... --json` and returns the due dates, failing on anything but exit 0 and one JSON line. */
async function dueDates(...args: string[]): Promise<string[]> {
  const run = await rebill('preview', ...args, '--json');
  expect(run.stderr).toBe('');
  expect(run.code, run.stderr).toBe(0);
  expect(run.stdout.endsWith('\n')).toBe(true);
  expect(run.stdout.trimEnd().split('\n')).toHaveLength(1);
  return (JSON.parse(run.stdout) as { dueDates: string[] }).dueDates;
}

beforeAll(requireBuild);

describe.concurrent('rebill preview', () => {
  it('prints the exact JSON of SPEC section 10 for a Jan 31 monthly', async () => {
    const run = await rebill('preview', '--start', '2025-01-31', '--every', 'MONTH', '--count', '4', '--json');
    expect(run).toEqual({
      code: 0,
      stdout: '{"dueDates":["2025-01-31T00:00:00Z","2025-02-28T00:00:00Z","2025-03-31T00:00:00Z","2025-04-30T00:00:00Z"]}\n',
      stderr: '',
    });
  });

  it('--month-end overflow: Jan 30 -> Mar 2 -> Mar 30', async () => {
    const dates = await dueDates('--start', '2025-01-30', '--every', 'MONTH', '--month-end', 'overflow', '--count', '3');
    expect(dates).toEqual(['2025-01-30T00:00:00Z', '2025-03-02T00:00:00Z', '2025-03-30T00:00:00Z']);
  });

  it('--count defaults to 12', async () => {
    expect(await dueDates('--start', '2025-01-31', '--every', 'MONTH')).toHaveLength(12);
  });

  it('--from starts at the first due instant at or after it, keeping the anchor dates', async () => {
    expect(await dueDates('--start', '2025-01-31', '--every', 'MONTH', '--count', '3', '--from', '2025-03-15T12:00:00Z')).toEqual([
      '2025-03-31T00:00:00Z',
      '2025-04-30T00:00:00Z',
      '2025-05-31T00:00:00Z',
    ]);
    // An instant exactly on a due date includes that cycle.
    expect(await dueDates('--start', '2025-01-31', '--every', 'MONTH', '--count', '1', '--from', '2025-02-28T00:00:00Z')).toEqual([
      '2025-02-28T00:00:00Z',
    ]);
    // With an explicit offset, in another zone than the plan's.
    expect(
      await dueDates('--start', '2025-01-31', '--every', 'MONTH', '--hour', '9', '--tz', 'Europe/Berlin', '--count', '2', '--from', '2025-03-31T09:00:00+02:00'),
    ).toEqual(['2025-03-31T07:00:00Z', '2025-04-30T07:00:00Z']);
  });

  it('--trial moves cycle 1 and every later cycle follows the shifted anchor', async () => {
    expect(await dueDates('--start', '2025-01-10', '--every', 'MONTH', '--trial', 'P21D', '--count', '3')).toEqual([
      '2025-01-31T00:00:00Z',
      '2025-02-28T00:00:00Z',
      '2025-03-31T00:00:00Z',
    ]);
  });

  it('--hour and --tz: 02:00 New York in the spring-forward gap becomes 03:00 EDT', async () => {
    expect(await dueDates('--start', '2025-03-08', '--every', 'DAY', '--hour', '2', '--tz', 'America/New_York', '--count', '3')).toEqual([
      '2025-03-08T07:00:00Z',
      '2025-03-09T07:00:00Z',
      '2025-03-10T06:00:00Z',
    ]);
  });

  it('accepts "3 months"-style and lower-case intervals', async () => {
    expect(await dueDates('--start', '2023-11-30', '--every', '3 months', '--count', '2')).toEqual([
      '2023-11-30T00:00:00Z',
      '2024-02-29T00:00:00Z',
    ]);
    expect(await dueDates('--start', '2023-11-30', '--every', 'three_months', '--count', '2')).toEqual([
      '2023-11-30T00:00:00Z',
      '2024-02-29T00:00:00Z',
    ]);
  });

  it('text output: one line per cycle with the number, the UTC instant and the local time', async () => {
    const run = await rebill('preview', '--start', '2025-01-31', '--every', 'MONTH', '--count', '3', '--hour', '9', '--tz', 'America/New_York');
    expect(run.code).toBe(0);
    expect(run.stderr).toBe('');
    expect(run.stdout).toBe(
      [
        '    1  2025-01-31T14:00:00Z  Fri 2025-01-31 09:00 EST',
        '    2  2025-02-28T14:00:00Z  Fri 2025-02-28 09:00 EST',
        '    3  2025-03-31T13:00:00Z  Mon 2025-03-31 09:00 EDT',
        '',
      ].join('\n'),
    );
    const utc = await rebill('preview', '--start', '2025-01-31', '--every', 'WEEK', '--count', '2');
    expect(utc.stdout).toMatch(/^ {4}1 {2}2025-01-31T00:00:00Z {2}Fri 2025-01-31 00:00 \S+\n {4}2 {2}2025-02-07T00:00:00Z {2}Fri 2025-02-07 00:00 \S+\n$/);
  });

  it.each([
    [['--bogus'], /^error: unknown option '--bogus'$/],
    [['--every', 'fortnightly'], /^error: --every: .*got "fortnightly"$/],
    [['--every', '0 months'], /^error: --every: count: expected a whole number >= 1; got 0$/],
    [['--hour', '24'], /^error: --hour: expected a whole number 0\.\.23; got "24"$/],
    [['--hour', '9.5'], /^error: --hour: .*got "9\.5"$/],
    [['--tz', 'Mars/Olympus'], /^error: --tz: unknown IANA time zone "Mars\/Olympus"$/],
    [['--start', '2025-02-30'], /^error: --start: expected a date yyyy-MM-dd; got "2025-02-30"$/],
    [['--month-end', 'wrap'], /^error: --month-end: expected clamp or overflow; got "wrap"$/],
    [['--trial', '14 days'], /^error: --trial: expected an ISO-8601 duration such as P14D; got "14 days"$/],
    [['--count', '0'], /^error: --count: expected a whole number 1\.\.\d+; got "0"$/],
    [['--from', 'yesterday'], /^error: --from: expected an ISO-8601 instant; got "yesterday"$/],
    // Issue 7, item 7 (SPEC section 5): 0001-01-01 used to print 1901; P-1D was accepted although config refuses it.
    [['--start', '0001-01-01'], /^error: --start: expected a date between 1970-01-01 and 2199-12-31; got "0001-01-01"$/],
    [['--start', '1969-12-31'], /^error: --start: expected a date between 1970-01-01 and 2199-12-31; got "1969-12-31"$/],
    [['--start', '2200-01-01'], /^error: --start: expected a date between 1970-01-01 and 2199-12-31; got "2200-01-01"$/],
    [['--trial', 'P-1D'], /^error: --trial: expected a duration > 0; got "P-1D"$/],
    [['--trial', 'P0D'], /^error: --trial: expected a duration > 0; got "P0D"$/],
    [['--from', '0025-01-01T00:00:00Z'], /^error: --from: expected an instant between 1970-01-01 and 2199-12-31; got "0025-01-01T00:00:00Z"$/],
  ])('bad flags %j: exit 2, one error line naming the flag, then the usage', async (bad, message) => {
    // Later flags win, so the bad value overrides the good default given first.
    const run = await rebill('preview', '--start', '2025-01-31', '--every', 'MONTH', ...bad, '--json');
    expect(run.code, run.stderr).toBe(2);
    expect(run.stdout).toBe('');
    const lines = run.stderr.trimEnd().split('\n');
    expect(lines, run.stderr).toHaveLength(2);
    expect(lines[0]).toMatch(message);
    expect(lines[0]).toContain(bad[0]!);
    expect(lines[1]).toMatch(/^usage: rebill preview /);
  });

  it('a missing required flag exits 2 naming it', async () => {
    const run = await rebill('preview', '--every', 'MONTH');
    expect(run.code).toBe(2);
    expect(run.stdout).toBe('');
    expect(run.stderr).toMatch(/^error: required option '--start <date>' not specified\nusage: rebill preview /);
  });
});

interface ConformanceVector {
  args: string[];
  dueDates: string[];
}

// A copy of the shared conformance vectors (the kit itself runs in .ci/run), kept in the repository.
const vectors = JSON.parse(readFileSync(conformance, 'utf8')) as ConformanceVector[];

describe('shared conformance preview vectors', () => {
  it.concurrent.each(vectors.map((v) => [v.args.join(' '), v] as const))('preview %s', async (_, v) => {
    expect(await dueDates(...v.args)).toEqual(v.dueDates);
  });
});
