/**
 * Issue 7, item 2 (SPEC section 3): an amount read from YAML is judged by the
 * text as written, quoted or not. YAML would read `9.999999999999999999` as
 * 10, `0x10` as 16 and `1e3` as 1000; none of those may become a price.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseConfig, parseScenario } from '../../src/config/index.js';
import { problemsOf } from '../support/problems.js';

const SIM = 'gateways: { sim: { type: simulator } }';

/** A config with one plan whose `amount:` line is `amount` (line 4), in `currency`. */
function configWith(amount: string, currency = 'USD'): string {
  return [SIM, 'plans:', '  - id: p', `    amount: ${amount}`, `    currency: ${currency}`, '    every: MONTH', ''].join('\n');
}


const REJECTED = ['9.990', '9.999999999999999999', '1e3', '0x10', '0o17', '" 9.99"', '9,99', '+9.99', '.99', '9.', '-5', '1_000', '.inf', '.nan', 'null', 'true'];

describe('amounts are judged by their source text', () => {
  it.each(REJECTED)('rejects amount: %s on plans[0].amount at its line', (amount) => {
    const problems = problemsOf(() => parseConfig(configWith(amount), 'a.yaml', {}));
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatchObject({ path: 'plans[0].amount', line: 4 });
  });

  it.each(REJECTED.filter((a) => !a.startsWith('"')))('rejects the quoted form "%s" the same way', (amount) => {
    const problems = problemsOf(() => parseConfig(configWith(JSON.stringify(amount)), 'a.yaml', {}));
    expect(problems).toMatchObject([{ path: 'plans[0].amount', line: 4 }]);
  });

  it('names the text as written, not the number YAML would make of it', () => {
    const [unquoted] = problemsOf(() => parseConfig(configWith('9.999999999999999999'), 'a.yaml', {}));
    expect(unquoted!.message).toBe('"9.999999999999999999" has 18 decimals; USD allows 2');
    const [hex] = problemsOf(() => parseConfig(configWith('0x10'), 'a.yaml', {}));
    expect(hex!.message).toBe('must be a decimal such as "9.99"; got "0x10"');
    const [trailing] = problemsOf(() => parseConfig(configWith('9.990'), 'a.yaml', {}));
    expect(trailing!.message).toBe('"9.990" has 3 decimals; USD allows 2');
  });

  it('accepts 9.99 and "9.99" alike, and 500 JPY', () => {
    expect(parseConfig(configWith('9.99'), 'a.yaml', {}).plans[0]).toMatchObject({ amount: '9.99', amountMinor: 999, currency: 'USD' });
    expect(parseConfig(configWith('"9.99"'), 'a.yaml', {}).plans[0]).toMatchObject({ amount: '9.99', amountMinor: 999 });
    expect(parseConfig(configWith("'9.99'"), 'a.yaml', {}).plans[0]).toMatchObject({ amountMinor: 999 });
    expect(parseConfig(configWith('500', 'JPY'), 'a.yaml', {}).plans[0]).toMatchObject({ amount: '500', amountMinor: 500, currency: 'JPY' });
  });

  it('judges an amount reached through an alias or ${VAR} by its text too', () => {
    const aliased = [SIM, 'plans:', '  - { id: p, amount: &price 9.990, currency: USD, every: MONTH }', '  - { id: q, amount: *price, currency: USD, every: YEAR }', ''].join('\n');
    expect(problemsOf(() => parseConfig(aliased, 'a.yaml', {}))).toMatchObject([
      { path: 'plans[0].amount', message: '"9.990" has 3 decimals; USD allows 2' },
      { path: 'plans[1].amount', message: '"9.990" has 3 decimals; USD allows 2' },
    ]);
    expect(parseConfig(configWith('${PRICE}'), 'a.yaml', { PRICE: '4.50' }).plans[0]!.amountMinor).toBe(450);
    expect(problemsOf(() => parseConfig(configWith('${PRICE}'), 'a.yaml', { PRICE: '1e3' }))).toMatchObject([{ path: 'plans[0].amount' }]);
  });

  it('applies to scenario files as well', () => {
    const scenario = [
      'start: "2025-01-01T00:00:00Z"',
      'until: "2025-03-01T00:00:00Z"',
      'plans:',
      '  - { id: p, amount: 1e3, currency: USD, every: MONTH }',
      'subscriptions: []',
      '',
    ].join('\n');
    expect(problemsOf(() => parseScenario(scenario, 's.yaml', {}))).toMatchObject([{ path: 'plans[0].amount', line: 4 }]);
    expect(parseScenario(scenario.replace('1e3', '10.50'), 's.yaml', {}).plans[0]!.amountMinor).toBe(1050);
  });

  it('an unquoted decimal of up to the currency exponent parses exactly like its quoted text', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 10 ** 9 }), fc.integer({ min: 1, max: 99 }), (whole, cents) => {
        const text = `${whole}.${String(cents).padStart(2, '0')}`;
        const plain = parseConfig(configWith(text), 'a.yaml', {}).plans[0]!;
        const quoted = parseConfig(configWith(JSON.stringify(text)), 'a.yaml', {}).plans[0]!;
        expect(plain.amountMinor).toBe(whole * 100 + cents);
        expect(plain).toEqual(quoted);
      }),
      { numRuns: 200, seed: 7 },
    );
  });
});
