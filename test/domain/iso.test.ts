import { describe, expect, it } from 'vitest';
import { iso } from '../../src/domain/index.js';

describe('iso', () => {
  it.each([
    ['the epoch', 0, '1970-01-01T00:00:00Z'],
    ['one millisecond before the epoch', -1, '1969-12-31T23:59:59.999Z'],
    ['a leap day', Date.UTC(2024, 1, 29, 12, 30, 5, 7), '2024-02-29T12:30:05.007Z'],
    ['the day after a century non-leap Feb 28', Date.UTC(2100, 2, 1), '2100-03-01T00:00:00Z'],
    ['a 400-year leap day', Date.UTC(2000, 1, 29, 23, 59, 59, 990), '2000-02-29T23:59:59.990Z'],
    ['the first instant of year 0', Date.parse('0000-01-01T00:00:00Z'), '0000-01-01T00:00:00Z'],
    ['the last instant of year 9999', Date.parse('9999-12-31T23:59:59.999Z'), '9999-12-31T23:59:59.999Z'],
    ['a fraction of a millisecond (dropped, as Date drops it)', 1_700_000_000_123.75, '2023-11-14T22:13:20.123Z'],
  ])('%s', (_name, ms, text) => {
    expect(iso(ms)).toBe(text);
  });

  it('uses an expanded year outside 0-9999', () => {
    expect(iso(Date.parse('+010000-01-01T00:00:00Z'))).toBe('+010000-01-01T00:00:00Z');
    expect(iso(Date.parse('-000001-12-31T00:00:00Z'))).toBe('-000001-12-31T00:00:00Z');
  });
});
