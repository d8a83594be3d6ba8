/**
 * Money at the edges (SPEC section 3): exact decimal text (or a YAML/JSON
 * number) <-> integer minor units with the ISO 4217 exponent.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { currencyExponent, formatAmount, MoneyError, parseAmount } from '../../src/money/index.js';

const RUNS = { numRuns: 300, seed: 999 } as const;

/** Calls fn and returns the MoneyError it throws (fails the test if it throws anything else or nothing). */
function rejection(fn: () => unknown): MoneyError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(MoneyError);
    expect((err as MoneyError).code).toBe('MONEY_INVALID');
    return err as MoneyError;
  }
  throw new Error('expected a MoneyError, nothing was thrown');
}

describe('currencyExponent', () => {
  it.each([
    ['USD', 2],
    ['EUR', 2],
    ['JPY', 0],
    ['KRW', 0],
    ['KWD', 3],
    ['BHD', 3],
    ['CLF', 4],
    ['usd', 2],
  ])('%s has %i decimals', (code, digits) => {
    expect(currencyExponent(code)).toBe(digits);
  });

  it.each(['XYZ', 'US', 'USDD', ''])('unknown code %j has none', (code) => {
    expect(currencyExponent(code)).toBeUndefined();
  });

  it('agrees with the ISO 4217 list shipped with currency-codes, and has none for "N.A." minor units', () => {
    // The package turns "N.A." (gold, SDR, XXX, ...) into 0 digits; rebill must not bill in those.
    const xml = readFileSync(createRequire(import.meta.url).resolve('currency-codes/iso-4217-list-one.xml'), 'utf8');
    const entries = [...xml.matchAll(/<Ccy>([A-Z]{3})<\/Ccy>[\s\S]*?<CcyMnrUnts>([^<]+)<\/CcyMnrUnts>/g)].map((m) => [m[1]!, m[2]!] as const);
    expect(entries.length).toBeGreaterThan(150);
    const notApplicable = new Set(entries.filter(([, units]) => units === 'N.A.').map(([code]) => code));
    expect(notApplicable.has('XAU')).toBe(true);
    expect(notApplicable.has('XXX')).toBe(true);
    for (const [code, units] of entries) {
      expect(currencyExponent(code), code).toBe(units === 'N.A.' ? undefined : Number(units));
    }
  });
});

describe('parseAmount and formatAmount', () => {
  it.each([
    ['9.99', 'USD', 999, '9.99'],
    ['9.9', 'USD', 990, '9.90'],
    ['10', 'USD', 1000, '10.00'],
    ['0.01', 'USD', 1, '0.01'],
    ['007.50', 'EUR', 750, '7.50'],
    ['1500', 'JPY', 1500, '1500'],
    ['1.234', 'KWD', 1234, '1.234'],
    ['0.5', 'BHD', 500, '0.500'],
    ['1.2345', 'CLF', 12345, '1.2345'],
    ['3', 'CLF', 30000, '3.0000'],
  ])('%j %s -> %i minor units -> %j', (text, currency, minor, formatted) => {
    const money = parseAmount(text, currency);
    expect(money).toEqual({ amountMinor: minor, currency });
    expect(formatAmount(money)).toBe(formatted);
  });

  // SPEC section 3 (issue 7): an amount is judged by its text; a double has lost it (9.999999999999999999 reads as 10).
  it.each([9.99, 0.1, 1500, 10, Number.NaN, Number.POSITIVE_INFINITY, 1e-7, 1e21])('rejects the number %d: only the text as written is judged', (value) => {
    expect(rejection(() => parseAmount(value as unknown as string, 'USD')).message).toBe(
      `amount must be a decimal such as "9.99"; got ${String(value)} (give the text as written: a number has lost it)`,
    );
  });

  it.each(['9.990', '9.999999999999999999', '1e3', '0x10', '0o17', ' 9.99', '9.99 ', '9,99', '\t9.99', '9.99\n'])(
    'rejects %j for USD, never rounding or converting it',
    (text) => {
      expect(() => parseAmount(text, 'USD')).toThrow(MoneyError);
    },
  );

  it('accepts a lower-case or padded currency code and normalises it to upper case', () => {
    expect(parseAmount('9.99', 'usd ')).toEqual({ amountMinor: 999, currency: 'USD' });
    expect(parseAmount('9.99', ' eur')).toEqual({ amountMinor: 999, currency: 'EUR' });
  });

  it('accepts zero only when allowed (a trial or a free plan)', () => {
    expect(rejection(() => parseAmount('0', 'USD')).message).toBe('amount must be greater than zero; got "0"');
    expect(rejection(() => parseAmount('0.00', 'USD')).message).toMatch(/greater than zero/);
    expect(rejection(() => parseAmount('0.0', 'USD')).message).toMatch(/greater than zero/);
    expect(parseAmount('0.00', 'USD', { allowZero: true })).toEqual({ amountMinor: 0, currency: 'USD' });
    expect(formatAmount({ amountMinor: 0, currency: 'JPY' })).toBe('0');
  });

  it.each([
    ['1.001', 'EUR', 'amount "1.001" has 3 decimals; EUR allows 2'],
    ['1.5', 'JPY', 'amount "1.5" has 1 decimal; JPY allows 0'],
    ['1.0', 'JPY', 'amount "1.0" has 1 decimal; JPY allows 0'],
    ['0.0001', 'KWD', 'amount "0.0001" has 4 decimals; KWD allows 3'],
    ['1.23456', 'CLF', 'amount "1.23456" has 5 decimals; CLF allows 4'],
  ])('rejects too many decimals: %j %s', (text, currency, message) => {
    expect(rejection(() => parseAmount(text, currency)).message).toBe(message);
  });

  it.each([
    ['-1', 'amount must not be negative; got "-1"'],
    ['-0.01', 'amount must not be negative; got "-0.01"'],
    ['-5', 'amount must not be negative; got "-5"'],
  ])('rejects a negative amount %j', (input, message) => {
    expect(rejection(() => parseAmount(input, 'USD')).message).toBe(message);
  });

  it.each([
    ['abc', 'got "abc"'],
    ['1,00', 'got "1,00"'],
    ['1e3', 'got "1e3"'],
    ['', 'got ""'],
    ['   ', 'got "   "'],
    ['.5', 'got ".5"'],
    ['5.', 'got "5."'],
    ['+5', 'got "+5"'],
    ['1 000', 'got "1 000"'],
    ['0x10', 'got "0x10"'],
    ['NaN', 'got "NaN"'],
    [' 12.34 ', 'got " 12.34 "'],
    ['-abc', 'got "-abc"'],
    [null, 'got null'],
    [undefined, 'got nothing'],
    [true, 'got true'],
    [{ amount: '9.99' }, 'got {"amount":"9.99"}'],
  ])('rejects the non-numeric amount %j', (input, detail) => {
    const err = rejection(() => parseAmount(input as string, 'USD'));
    expect(err.message).toBe(`amount must be a decimal such as "9.99"; ${detail}`);
  });

  it('rejects a bigint amount with the same message (minor units are not major-unit decimals)', () => {
    expect(rejection(() => parseAmount(999n as unknown as string, 'USD')).message).toBe('amount must be a decimal such as "9.99"; got 999');
  });

  it.each(['XYZ', 'US', 'DOLLARS', '', 'XAU', 'XXX', 'XTS'])('rejects the currency %j', (currency) => {
    expect(rejection(() => parseAmount('9.99', currency)).message).toBe(
      `unknown currency code ${JSON.stringify(currency)} (expected an ISO 4217 code such as USD)`,
    );
  });

  it('rejects a non-string currency without crashing', () => {
    expect(rejection(() => parseAmount('9.99', 42 as unknown as string)).message).toMatch(/unknown currency code 42/);
  });

  it('rejects amounts beyond the safe integer range of minor units', () => {
    // 2^53 - 1 minor units is the largest exact amount.
    expect(parseAmount('90071992547409.91', 'USD').amountMinor).toBe(Number.MAX_SAFE_INTEGER);
    expect(formatAmount({ amountMinor: Number.MAX_SAFE_INTEGER, currency: 'USD' })).toBe('90071992547409.91');
    expect(parseAmount('9007199254740991', 'JPY').amountMinor).toBe(Number.MAX_SAFE_INTEGER);
    expect(rejection(() => parseAmount('90071992547409.92', 'USD')).message).toBe('amount "90071992547409.92" is too large');
    expect(rejection(() => parseAmount('9007199254740992', 'JPY')).message).toMatch(/too large/);
    expect(rejection(() => parseAmount('99999999999999999999999', 'EUR')).message).toMatch(/too large/);
    expect(rejection(() => parseAmount('100000000000000000000', 'USD')).message).toMatch(/too large/);
  });

  it('formatAmount rejects non-integer minor units and unknown currencies', () => {
    expect(rejection(() => formatAmount({ amountMinor: 9.5, currency: 'USD' })).message).toMatch(/must be an integer/);
    expect(rejection(() => formatAmount({ amountMinor: 1, currency: 'XYZ' })).message).toMatch(/unknown currency code "XYZ"/);
    expect(formatAmount({ amountMinor: -5, currency: 'USD' })).toBe('-0.05');
  });
});

describe('money properties (fast-check)', () => {
  const currencyArb = fc.constantFrom('USD', 'EUR', 'JPY', 'KWD', 'BHD', 'CLF');

  /** A decimal text a user could type: optional leading zeros, up to the currency's decimals. */
  const amountArb = currencyArb.chain((currency) => {
    const exponent = currencyExponent(currency)!;
    return fc
      .record({
        zeros: fc.integer({ min: 0, max: 3 }),
        whole: fc.bigInt({ min: 0n, max: 10n ** BigInt(15 - exponent) }),
        fraction: fc.array(fc.constantFrom(...'0123456789'), { minLength: 0, maxLength: exponent }),
      })
      .filter(({ whole, fraction }) => whole > 0n || fraction.some((d) => d !== '0'))
      .map(({ zeros, whole, fraction }) => ({
        currency,
        exponent,
        text: `${'0'.repeat(zeros)}${whole}${fraction.length ? `.${fraction.join('')}` : ''}`,
        whole,
        fraction: fraction.join(''),
      }));
  });

  it('formatAmount(parseAmount(x)) is the canonical decimal of x', () => {
    fc.assert(
      fc.property(amountArb, ({ currency, exponent, text, whole, fraction }) => {
        const canonical = exponent === 0 ? `${whole}` : `${whole}.${fraction.padEnd(exponent, '0')}`;
        const money = parseAmount(text, currency);
        expect(formatAmount(money)).toBe(canonical);
        expect(BigInt(money.amountMinor)).toBe(whole * 10n ** BigInt(exponent) + BigInt(fraction.padEnd(exponent, '0') || '0'));
        // Canonical text is a fixed point.
        expect(formatAmount(parseAmount(canonical, currency))).toBe(canonical);
      }),
      RUNS,
    );
  });

  it('one decimal more than the currency allows is always rejected', () => {
    fc.assert(
      fc.property(currencyArb, fc.integer({ min: 0, max: 10_000 }), fc.integer({ min: 1, max: 9 }), (currency, whole, last) => {
        const exponent = currencyExponent(currency)!;
        const text = `${whole}.${'0'.repeat(exponent)}${last}`;
        expect(rejection(() => parseAmount(text, currency)).message).toMatch(new RegExp(`${currency} allows ${exponent}$`));
      }),
      RUNS,
    );
  });
});
