import { describe, expect, it } from 'vitest';
import { formatInterval, IntervalError, parseInterval } from '../../src/calendar/index.js';

describe('parseInterval', () => {
  it.each([
    ['DAY', { unit: 'day', count: 1 }],
    ['WEEK', { unit: 'week', count: 1 }],
    ['TWO_WEEKS', { unit: 'week', count: 2 }],
    ['MONTH', { unit: 'month', count: 1 }],
    ['TWO_MONTHS', { unit: 'month', count: 2 }],
    ['THREE_MONTHS', { unit: 'month', count: 3 }],
    ['SIX_MONTHS', { unit: 'month', count: 6 }],
    ['YEAR', { unit: 'year', count: 1 }],
  ])('alias %s', (alias, expected) => {
    expect(parseInterval(alias)).toEqual(expected);
  });

  it.each(['month', 'Month', 'three_months', 'Two_Weeks', '  SIX_MONTHS  '])('aliases are case-insensitive and trimmed: %j', (alias) => {
    expect(() => parseInterval(alias)).not.toThrow();
  });

  it.each([
    ['3 months', { unit: 'month', count: 3 }],
    ['1 week', { unit: 'week', count: 1 }],
    ['1 month', { unit: 'month', count: 1 }],
    ['2 Weeks', { unit: 'week', count: 2 }],
    ['10 days', { unit: 'day', count: 10 }],
    ['1 YEAR', { unit: 'year', count: 1 }],
    [' 6 months ', { unit: 'month', count: 6 }],
    ['10000 days', { unit: 'day', count: 10_000 }],
  ])('phrase %j', (phrase, expected) => {
    expect(parseInterval(phrase)).toEqual(expected);
  });

  it.each([
    [{ unit: 'month', count: 3 }, { unit: 'month', count: 3 }],
    [{ unit: 'week', count: 2 }, { unit: 'week', count: 2 }],
    [{ unit: 'Year', count: 1 }, { unit: 'year', count: 1 }],
    [{ unit: 'day' }, { unit: 'day', count: 1 }],
  ])('object %j', (input, expected) => {
    expect(parseInterval(input)).toEqual(expected);
  });

  it.each([
    ['fortnightly', /expected one of DAY, WEEK, TWO_WEEKS, MONTH, .* got "fortnightly"/],
    ['3 fortnights', /got "3 fortnights"/],
    ['', /got ""/],
    ['0 months', /count: expected a whole number >= 1; got 0/],
    ['-1 months', /got "-1 months"/],
    ['1.5 months', /got "1.5 months"/],
    [{ unit: 'fortnight' }, /unit: expected one of day, week, month, year; got "fortnight"/],
    [{ count: 2 }, /unit: expected one of day, week, month, year; got undefined/],
    [{ unit: 'month', count: 0 }, /count: expected a whole number >= 1; got 0/],
    [{ unit: 'month', count: 1.5 }, /count: expected a whole number >= 1; got 1.5/],
    [{ unit: 'month', count: -2 }, /count: expected a whole number >= 1; got -2/],
    [{ unit: 'month', count: '3' }, /count: expected a whole number >= 1; got "3"/],
    [{ unit: 'day', count: 10_001 }, /count: expected at most 10000; got 10001/],
    ['99999999999999999999 months', /count: expected at most 10000; got 100000000000000000000/],
    [null, /expected an interval name, "<count> <unit>" or \{ unit, count \}; got null/],
    [3, /got 3/],
  ])('rejects %j with a message', (input, message) => {
    let caught: unknown;
    try {
      parseInterval(input);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(IntervalError);
    expect((caught as IntervalError).code).toBe('INTERVAL_INVALID');
    expect((caught as IntervalError).message).toMatch(message);
  });

  it('formats back to a phrase that parses to the same interval', () => {
    for (const alias of ['DAY', 'TWO_WEEKS', 'THREE_MONTHS', 'YEAR']) {
      const interval = parseInterval(alias);
      expect(parseInterval(formatInterval(interval))).toEqual(interval);
    }
    expect(formatInterval({ unit: 'month', count: 3 })).toBe('3 months');
    expect(formatInterval({ unit: 'week', count: 1 })).toBe('1 week');
  });
});
