/**
 * Issue 7, item 7 (SPEC section 5): dates are yyyy-MM-dd between 1970-01-01
 * and 2199-12-31. Years 0001-0099 came back as 1901-1999 (`startDate:
 * "0025-01-01"` wrote 24,023 skipped rows), and `preview --trial P-1D` was
 * accepted while the config refused it. One validation each, in the
 * calendar, used by the config and by `rebill preview` (and later the API).
 */
import { describe, expect, it } from 'vitest';
import { MAX_LOCAL_DATE, MIN_LOCAL_DATE, parseForwardDuration, parseLocalDate, ScheduleError } from '../../src/calendar/index.js';
import { ConfigError, formatProblems, parseConfig, parseScenario } from '../../src/config/index.js';

function messagesOf(run: () => unknown): string[] {
  try {
    run();
  } catch (err) {
    if (err instanceof ConfigError) return formatProblems(err.problems);
    throw err;
  }
  throw new Error('expected a ConfigError');
}

const RANGE = 'expected a date between 1970-01-01 and 2199-12-31';

describe('the date range', () => {
  it('accepts the first and last dates and refuses the days around them', () => {
    expect([MIN_LOCAL_DATE, MAX_LOCAL_DATE]).toEqual(['1970-01-01', '2199-12-31']);
    expect(parseLocalDate('1970-01-01')).toEqual({ year: 1970, month: 1, day: 1 });
    expect(parseLocalDate('2199-12-31')).toEqual({ year: 2199, month: 12, day: 31 });
    for (const text of ['1969-12-31', '2200-01-01', '0001-01-01', '0025-01-01', '0099-12-31', '9999-12-31']) {
      expect(() => parseLocalDate(text), text).toThrow(new ScheduleError(`${RANGE}; got "${text}"`));
    }
    expect(() => parseLocalDate('2025-02-30')).toThrow('expected a date yyyy-MM-dd; got "2025-02-30"');
  });

  it('refuses out-of-range dates everywhere the config reads one, naming the field', () => {
    const config = [
      'gateways: { sim: { type: simulator } }',
      'plans:',
      '  - { id: p, amount: "1", currency: USD, every: MONTH, endDate: "2200-01-01" }',
      'subscriptions:',
      '  - { id: a, planId: p, paymentToken: tok_ok, startDate: "0025-01-01" }',
      '  - { id: b, planId: p, paymentToken: tok_ok, startDate: "2025-01-01", endDate: "0001-01-01" }',
      '',
    ].join('\n');
    expect(messagesOf(() => parseConfig(config, 'd.yaml', {}))).toEqual([
      `d.yaml:3:65: plans[0].endDate: ${RANGE}; got "2200-01-01"`,
      `d.yaml:5:58: subscriptions[0].startDate: ${RANGE}; got "0025-01-01"`,
      `d.yaml:6:81: subscriptions[1].endDate: ${RANGE}; got "0001-01-01"`,
      // The range check does not hide the ordering check.
      'd.yaml:6:81: subscriptions[1].endDate: must not be before startDate (2025-01-01); got "0001-01-01"',
    ]);
  });

  it('refuses out-of-range dates and instants in scenarios: start, until, startDate and resumeDate', () => {
    const scenario = [
      'start: "0025-01-01T00:00:00Z"',
      'until: "2300-01-01T00:00:00Z"',
      'plans: [{ id: p, amount: "1", currency: USD, every: MONTH }]',
      'subscriptions: [{ id: a, planId: p, paymentToken: tok_ok, startDate: "1969-12-31" }]',
      'actions: [{ at: "2025-02-01T00:00:00Z", subscriptionId: a, do: pause, resumeDate: "2200-01-01" }]',
      '',
    ].join('\n');
    const messages = messagesOf(() => parseScenario(scenario, 's.yaml', {}));
    expect(messages).toEqual([
      's.yaml:1:8: start: expected an instant between 1970-01-01 and 2199-12-31 (UTC); got "0025-01-01T00:00:00Z"',
      's.yaml:2:8: until: expected an instant between 1970-01-01 and 2199-12-31 (UTC); got "2300-01-01T00:00:00Z"',
      `s.yaml:4:70: subscriptions[0].startDate: ${RANGE}; got "1969-12-31"`,
      `s.yaml:5:83: actions[0].resumeDate: ${RANGE}; got "2200-01-01"`,
    ]);
  });
});

describe('trial durations: one check for config and preview', () => {
  it('parseForwardDuration refuses negative and zero trials, allows zero delays', () => {
    expect(parseForwardDuration('P14D').toMillis()).toBe(14 * 86_400_000);
    expect(() => parseForwardDuration('P-1D')).toThrow('expected a duration > 0; got "P-1D"');
    expect(() => parseForwardDuration('P0D')).toThrow('expected a duration > 0; got "P0D"');
    expect(parseForwardDuration('P0D', { allowZero: true }).toMillis()).toBe(0);
    expect(() => parseForwardDuration('PT-1H', { allowZero: true })).toThrow('expected a duration >= 0; got "PT-1H"');
  });

  it('the config refuses a plan trial of P-1D with the message preview gives', () => {
    const text = ['gateways: { sim: { type: simulator } }', 'plans: [{ id: p, amount: "1", currency: USD, every: MONTH, trial: P-1D }]', ''].join('\n');
    expect(messagesOf(() => parseConfig(text, 't.yaml', {}))).toEqual(['t.yaml:2:67: plans[0].trial: expected a duration > 0; got "P-1D"']);
  });
});
