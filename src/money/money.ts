/**
 * Money as integer minor units. Decimals are parsed and printed only at the
 * edges (config, API, CLI, JSON output); nothing here touches floating point.
 */
import currencyCodes from 'currency-codes';

export interface Money {
  /** Integer amount in the currency's minor unit (cents for USD, yen for JPY). */
  readonly amountMinor: number;
  /** ISO 4217 alphabetic code, upper case. */
  readonly currency: string;
}

export class MoneyError extends Error {
  readonly code = 'MONEY_INVALID';
}

/**
 * ISO 4217 codes whose minor unit is "N.A." (precious metals, bond-market units,
 * SDR, SUCRE, the ADB unit, the testing code and "no currency"). currency-codes
 * turns "N.A." into 0 digits, which would let a plan bill in gold or in XXX as if
 * it were yen; test/money checks this list against the ISO file the package ships.
 */
const NO_MINOR_UNIT: ReadonlySet<string> = new Set([
  'XAG', 'XAU', 'XBA', 'XBB', 'XBC', 'XBD', 'XDR', 'XPD', 'XPT', 'XSU', 'XTS', 'XUA', 'XXX',
]);

/**
 * The ISO 4217 exponent (number of minor-unit digits) of a currency, from the
 * maintained `currency-codes` table; undefined for unknown codes and for
 * codes without a minor unit (precious metals, testing codes).
 */
export function currencyExponent(currency: string): number | undefined {
  // currency-codes searches its whole table per call; every charge formats its amount at least twice.
  if (exponents.has(currency)) return exponents.get(currency);
  const code = currency.toUpperCase();
  const record = NO_MINOR_UNIT.has(code) ? undefined : currencyCodes.code(code);
  const exponent = record && Number.isInteger(record.digits) ? record.digits : undefined;
  if (exponents.size >= 1000) exponents.clear();
  exponents.set(currency, exponent);
  return exponent;
}

const exponents = new Map<string, number | undefined>();

/** Digits, optionally a point and more digits: nothing else (no sign, exponent, radix prefix, separator or space). */
const DECIMAL = /^(\d+)(?:\.(\d+))?$/;

export interface ParseAmountOptions {
  /** Accept zero (a trial or a free plan). Default false: SPEC rejects zero amounts. */
  readonly allowZero?: boolean;
}

/**
 * Parses an amount in major units, given as the text it was written as
 * (`"9.99"`; for YAML or JSON, the scalar's source text whether quoted or
 * not), into integer minor units, exactly (SPEC section 3). The text is
 * judged as written: more decimals than the currency has (`9.990` for USD),
 * exponents, radix prefixes, signs, separators and surrounding spaces are
 * rejected, never rounded or converted, as are zero (unless allowed) and
 * unknown currencies. A number is rejected too: once parsed as a double it no
 * longer says what was written (`9.999999999999999999` reads as 10).
 */
export function parseAmount(text: string, currency: string, options: ParseAmountOptions = {}): Money {
  const code = typeof currency === 'string' ? currency.trim().toUpperCase() : '';
  const exponent = /^[A-Z]{3}$/.test(code) ? currencyExponent(code) : undefined;
  if (exponent === undefined) throw new MoneyError(`unknown currency code ${JSON.stringify(currency)} (expected an ISO 4217 code such as USD)`);
  const input: unknown = text;
  if (typeof input !== 'string') {
    const hint = typeof input === 'number' ? ' (give the text as written: a number has lost it)' : '';
    throw new MoneyError(`amount must be a decimal such as "9.99"; got ${describe(input)}${hint}`);
  }
  if (/^-\d/.test(input)) throw new MoneyError(`amount must not be negative; got "${input}"`);
  const m = DECIMAL.exec(input);
  if (!m) throw new MoneyError(`amount must be a decimal such as "9.99"; got ${describe(input)}`);
  const whole = m[1]!;
  const fraction = m[2] ?? '';
  if (fraction.length > exponent) {
    throw new MoneyError(
      `amount "${input}" has ${fraction.length} decimal${fraction.length === 1 ? '' : 's'}; ${code} allows ${exponent}`,
    );
  }
  const minorText = (whole + fraction.padEnd(exponent, '0')).replace(/^0+(?=\d)/, '');
  const amountMinor = Number(minorText);
  if (!Number.isSafeInteger(amountMinor)) throw new MoneyError(`amount "${input}" is too large`);
  if (amountMinor === 0 && !options.allowZero) throw new MoneyError(`amount must be greater than zero; got "${input}"`);
  return { amountMinor, currency: code };
}

/** The rejected input as the user wrote it: JSON.stringify prints NaN as null and throws on a bigint. */
function describe(input: unknown): string {
  if (typeof input === 'number' || typeof input === 'bigint') return String(input);
  if (input === undefined) return 'nothing';
  try {
    return JSON.stringify(input) ?? String(input);
  } catch {
    return String(input);
  }
}

/** Formats minor units back to a major-unit decimal string: 999 USD -> "9.99", 1500 JPY -> "1500". */
export function formatAmount(money: Money): string {
  const exponent = currencyExponent(money.currency);
  if (exponent === undefined) throw new MoneyError(`unknown currency code "${money.currency}"`);
  if (!Number.isSafeInteger(money.amountMinor)) throw new MoneyError(`amountMinor must be an integer; got ${money.amountMinor}`);
  const negative = money.amountMinor < 0;
  const digits = String(Math.abs(money.amountMinor)).padStart(exponent + 1, '0');
  const text = exponent === 0 ? digits : `${digits.slice(0, -exponent)}.${digits.slice(-exponent)}`;
  return negative ? `-${text}` : text;
}
