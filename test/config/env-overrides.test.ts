/**
 * Issue 7, item 15 (env part): a misspelt section (`REBILL_DATABSE_URL`) was
 * silently ignored while a misspelt key was caught; and the README's
 * `REBILL_<SECTION>_<KEY>` form (`REBILL_SCHEDULER_LEASESECONDS`) was an
 * unknown key while only the snake-case form worked. Both spellings are
 * accepted now, and an unknown REBILL_* variable is a warning with a
 * suggestion (shown by check-config and logged by run through configWarnings).
 */
import { describe, expect, it } from 'vitest';
import { configWarnings, parseConfig } from '../../src/config/index.js';

const CONFIG = ['gateways: { cp: { type: coolpay, baseUrl: "http://127.0.0.1:1", apiKey: k } }', 'plans:', '  - { id: p, amount: "1", currency: USD, every: MONTH }', ''].join('\n');

describe('REBILL_* variables', () => {
  it('accepts a key as snake case or as its letters in any case', () => {
    expect(parseConfig(CONFIG, 'e.yaml', { REBILL_SCHEDULER_LEASE_SECONDS: '200' }).scheduler.leaseSeconds).toBe(200);
    expect(parseConfig(CONFIG, 'e.yaml', { REBILL_SCHEDULER_LEASESECONDS: '201' }).scheduler.leaseSeconds).toBe(201);
    expect(parseConfig(CONFIG, 'e.yaml', { REBILL_SCHEDULER_RATEPERSECOND: '7' }).scheduler.ratePerSecond).toBe(7);
    expect(parseConfig(CONFIG, 'e.yaml', { REBILL_SCHEDULER_MAX_CLOCK_JUMP_SECONDS: '60' }).scheduler.maxClockJumpSeconds).toBe(60);
    expect(configWarnings(parseConfig(CONFIG, 'e.yaml', { REBILL_SCHEDULER_LEASE_SECONDS: '200' }))).toEqual([]);
  });

  it('warns about a misspelt section, suggesting the variable meant, and changes nothing', () => {
    const config = parseConfig(CONFIG, 'e.yaml', { REBILL_DATABSE_URL: 'sqlite:/tmp/other.db' });
    expect(config.database.url).toBe('sqlite:./data/rebill.db');
    expect(configWarnings(config)).toEqual([
      'environment variable REBILL_DATABSE_URL is not a rebill setting and is ignored (did you mean REBILL_DATABASE_URL?)',
    ]);
    expect(configWarnings(parseConfig(CONFIG, 'e.yaml', { REBILL_SCHEDULR_LEASE_SECONDS: '5' }))).toEqual([
      expect.stringContaining('(did you mean REBILL_SCHEDULER_LEASE_SECONDS?)'),
    ]);
  });

  it('names the override form when nothing is close', () => {
    expect(configWarnings(parseConfig(CONFIG, 'e.yaml', { REBILL_FOO: '1' }))).toEqual([
      'environment variable REBILL_FOO is not a rebill setting and is ignored (overrides are REBILL_<SECTION>_<KEY> for the sections database, http, scheduler, retry, logging)',
    ]);
  });

  it('does not warn about REBILL_CONFIG, nor about a variable the file references through ${...}', () => {
    const text = CONFIG.replace('apiKey: k', 'apiKey: "${REBILL_COOLPAY_KEY}"') + 'http: { tokens: [{ token: "${REBILL_ADMIN_TOKEN:-dev}", scope: write }] }\n';
    const config = parseConfig(text, 'e.yaml', { REBILL_CONFIG: 'e.yaml', REBILL_COOLPAY_KEY: 'secret', REBILL_ADMIN_TOKEN: 'admin' });
    expect(configWarnings(config)).toEqual([]);
    expect(config.http.tokens).toEqual([{ token: 'admin', scope: 'write' }]);
  });

  it('a referenced variable that looks like an override of a missing key is a reference, not an unknown key', () => {
    const text = CONFIG.replace('apiKey: k', 'apiKey: "${REBILL_HTTP_COOLPAY_KEY}"');
    const config = parseConfig(text, 'e.yaml', { REBILL_HTTP_COOLPAY_KEY: 'secret' });
    expect(config.gateways.cp).toMatchObject({ apiKey: 'secret' });
    expect(configWarnings(config)).toEqual([]);
  });
});
