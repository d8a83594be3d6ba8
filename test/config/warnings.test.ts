import { describe, expect, it } from 'vitest';
import { configWarnings, parseConfig } from '../../src/config/index.js';

const config = (plans: string, retry = '') =>
  parseConfig(`${retry}plans:\n${plans}gateways: { cp: { type: coolpay, baseUrl: "http://127.0.0.1:1", apiKey: k } }\n`, 'w.yaml', {});

describe('configWarnings', () => {
  it('warns when the retry delays can outlast a plan interval, since cycles falling due meanwhile are skipped', () => {
    const warnings = configWarnings(config('  - { id: daily, amount: "1", currency: USD, every: DAY }\n'));
    expect(warnings).toEqual([expect.stringMatching(/^plans\[0\] \(daily\): retry delays P1D \+ P3D can outlast its interval \(1 day\); .*skipped, not charged/)]);
  });

  it('is quiet for monthly and weekly plans under the default P1D + P3D, and for a daily plan that backfills', () => {
    const c = config(
      '  - { id: m, amount: "1", currency: USD, every: MONTH }\n  - { id: w, amount: "1", currency: USD, every: WEEK }\n  - { id: d, amount: "1", currency: USD, every: DAY, backfill: true }\n',
    );
    expect(configWarnings(c)).toEqual([]);
  });

  it('counts only the delays the attempts use, and uses the shortest month for monthly plans', () => {
    expect(configWarnings(config('  - { id: d, amount: "1", currency: USD, every: DAY }\n', 'retry: { attempts: 1 }\n'))).toEqual([]);
    const long = config('  - { id: m, amount: "1", currency: USD, every: MONTH }\n', 'retry: { attempts: 3, delays: [P14D, P14D] }\n');
    expect(configWarnings(long)).toHaveLength(1);
  });
});
