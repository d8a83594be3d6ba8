/**
 * Valid configurations: defaults, `${...}` expansion, REBILL_* overrides,
 * plan resolution, the shipped example, the conformance scenario, and how a
 * file with several mistakes is reported.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { RebillError } from '../../src/errors.js';
import {
  ConfigError,
  formatProblems,
  loadConfig,
  loadScenario,
  parseConfig,
  parseScenario,
  configFilePath,
} from '../../src/config/index.js';
import { fileTempDir } from '../support/temp.js';
import { problemsOf } from '../support/problems.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const scenarioFile = fileURLToPath(new URL('../fixtures/conformance/scenario.yaml', import.meta.url));
const tmp = fileTempDir('config');

/** The lines as a file; a config without a gateways: section gets the simulator appended (after every line, so line numbers hold). */
const yaml = (...lines: string[]) => `${lines.join('\n')}\n${lines.some((l) => /^gateways:/.test(l)) ? '' : `${SIM}\n`}`;
const SIM = 'gateways: { sim: { type: simulator } }';
const PLAN = ['plans:', '  - { id: gold, amount: "9.99", currency: USD, every: MONTH }'];


describe('defaults', () => {
  it('a file with only a plan gets every documented default', () => {
    const config = parseConfig(yaml(...PLAN), 'min.yaml', {});
    expect(config.database).toEqual({ url: 'sqlite:./data/rebill.db', synchronous: 'full', poolSize: 10 });
    expect(config.http).toEqual({ host: '0.0.0.0', port: 8080, tokens: [] });
    expect(config.scheduler).toEqual({
      sweep: '* * * * *',
      concurrency: 16,
      ratePerSecond: 50,
      leaseSeconds: 120,
      claimBatch: 500,
      drainSeconds: 30,
      pendingPollSeconds: 300,
      maxClockJumpSeconds: 300,
    });
    expect(config.retry).toEqual({ attempts: 3, delays: ['P1D', 'P3D'], onFinalFailure: 'terminate', unavailableHours: 72 });
    expect(config.gateways).toEqual({ sim: { type: 'simulator' } });
    expect(config.webhooks).toEqual([]);
    expect(config.logging).toEqual({ level: 'info' });
    expect([...config.subscriptions]).toEqual([]);
  });

  it('a plan resolves money, interval, defaults, the only gateway and a 12-hex version', () => {
    const [plan] = parseConfig(yaml(...PLAN), 'min.yaml', {}).plans;
    expect(plan).toMatchObject({
      id: 'gold',
      amount: '9.99',
      amountMinor: 999,
      currency: 'USD',
      every: { unit: 'month', count: 1 },
      sendOnHour: 0,
      timezone: 'UTC',
      monthEnd: 'clamp',
      mode: 'charge',
      gateway: 'sim',
      trial: null,
      maxCycles: null,
      endDate: null,
      backfill: false,
    });
    expect(plan!.version).toMatch(/^[0-9a-f]{12}$/);
  });

  it('webhooks default to every event', () => {
    const config = parseConfig(yaml('webhooks: [{ url: "https://h.example/x", secret: "whsec_MDEyMzQ1Njc4OWFiY2RlZg==" }]', ...PLAN), 'w.yaml', {});
    expect(config.webhooks).toEqual([
      { url: 'https://h.example/x', secret: 'whsec_MDEyMzQ1Njc4OWFiY2RlZg==', events: ['*'], enabled: true, retrySchedule: ['PT5S', 'PT5M', 'PT30M', 'PT2H', 'PT5H', 'PT10H'], maxAgeHours: 72, timeoutSeconds: 15 },
    ]);
  });

  it('more attempts than default delays repeat the last delay; fewer use a prefix', () => {
    expect(parseConfig(yaml(...PLAN, 'retry: { attempts: 5 }'), 'r.yaml', {}).retry.delays).toEqual(['P1D', 'P3D', 'P3D', 'P3D']);
    expect(parseConfig(yaml(...PLAN, 'retry: { attempts: 2 }'), 'r.yaml', {}).retry.delays).toEqual(['P1D']);
    expect(parseConfig(yaml(...PLAN, 'retry: { attempts: 1 }'), 'r.yaml', {}).retry.delays).toEqual([]);
  });
});

describe('plans', () => {
  const plan = (fields: string) => parseConfig(yaml('plans:', `  - { id: p, ${fields} }`), 'p.yaml', {}).plans[0]!;

  it('an interval may be an alias, a phrase or { unit, count }', () => {
    expect(plan('amount: "1", currency: USD, every: three_months').every).toEqual({ unit: 'month', count: 3 });
    expect(plan('amount: "1", currency: USD, every: "2 weeks"').every).toEqual({ unit: 'week', count: 2 });
    expect(plan('amount: "1", currency: USD, every: { unit: year }').every).toEqual({ unit: 'year', count: 1 });
  });

  it('amounts are exact in minor units, from strings or YAML numbers, per currency exponent', () => {
    expect(plan('amount: 9.99, currency: usd, every: MONTH')).toMatchObject({ amountMinor: 999, amount: '9.99', currency: 'USD' });
    expect(plan('amount: "1500", currency: JPY, every: MONTH')).toMatchObject({ amountMinor: 1500, amount: '1500' });
    expect(plan('amount: "1.5", currency: KWD, every: MONTH')).toMatchObject({ amountMinor: 1500, amount: '1.500' });
  });

  it('a zero amount is allowed when the plan has a trial', () => {
    expect(plan('amount: "0", currency: USD, every: MONTH, trial: P14D')).toMatchObject({ amountMinor: 0, trial: 'P14D' });
  });

  it('the version changes with the price or schedule but not with the description', () => {
    const base = plan('amount: "9.99", currency: USD, every: MONTH, description: A').version;
    expect(plan('amount: "9.99", currency: USD, every: MONTH, description: B').version).toBe(base);
    expect(plan('amount: "10.99", currency: USD, every: MONTH, description: A').version).not.toBe(base);
    expect(plan('amount: "9.99", currency: USD, every: MONTH, sendOnHour: 10').version).not.toBe(base);
    expect(plan('amount: "9.99", currency: USD, every: YEAR').version).not.toBe(base);
  });

  it('a plan naming one of several gateways keeps it', () => {
    const config = parseConfig(
      yaml(
        'gateways:',
        '  sim: { type: simulator }',
        '  cp: { type: coolpay, baseUrl: "https://api.example", apiKey: k }',
        'plans:',
        '  - { id: p, amount: "1", currency: USD, every: MONTH, gateway: cp }',
      ),
      'g.yaml',
      {},
    );
    expect(config.plans[0]!.gateway).toBe('cp');
    expect(config.gateways.cp).toEqual({ type: 'coolpay', baseUrl: 'https://api.example', apiKey: 'k', timeoutSeconds: 30 });
  });

  it('a link-mode plan allows seed subscriptions without a payment token', () => {
    const config = parseConfig(
      yaml('plans:', '  - { id: p, amount: "1", currency: USD, every: MONTH, mode: link }', 'subscriptions:', '  - { id: s, planId: p, startDate: "2025-01-31" }'),
      's.yaml',
      {},
    );
    expect([...config.subscriptions][0]).toMatchObject({ id: 's', planId: 'p', paymentToken: null, metadata: {} });
  });
});

describe('environment expansion', () => {
  it('${VAR} expands from the environment', () => {
    const config = parseConfig(yaml('database: { url: "${DB_URL}" }', ...PLAN), 'e.yaml', { DB_URL: 'sqlite:/var/lib/rebill/rebill.db' });
    expect(config.database.url).toBe('sqlite:/var/lib/rebill/rebill.db');
  });

  it('${VAR:-default} uses the default when the variable is unset or empty', () => {
    const text = yaml('database: { url: "${DB_URL:-sqlite:/tmp/x.db}" }', ...PLAN);
    expect(parseConfig(text, 'e.yaml', {}).database.url).toBe('sqlite:/tmp/x.db');
    expect(parseConfig(text, 'e.yaml', { DB_URL: '' }).database.url).toBe('sqlite:/tmp/x.db');
    expect(parseConfig(text, 'e.yaml', { DB_URL: 'sqlite:set.db' }).database.url).toBe('sqlite:set.db');
  });

  it('a reference inside a longer string expands in place and $${ stays literal', () => {
    const config = parseConfig(
      yaml('plans:', '  - { id: p, amount: "1", currency: USD, every: MONTH, description: "Plan for ${ORG} ($${NOT_A_VAR})" }'),
      'e.yaml',
      { ORG: 'Acme' },
    );
    expect(config.plans[0]!.description).toBe('Plan for Acme (${NOT_A_VAR})');
  });

  it('an unquoted ${PORT} fills a numeric setting', () => {
    expect(parseConfig(yaml('http:', '  port: ${PORT}', ...PLAN), 'e.yaml', { PORT: '9999' }).http.port).toBe(9999);
  });

  it('${file:/path} reads a secret file without its trailing newline', () => {
    const secret = join(tmp, 'api_key');
    writeFileSync(secret, 's3cr3t-key\n');
    const config = parseConfig(
      yaml('gateways:', `  cp: { type: coolpay, baseUrl: "https://api.example", apiKey: "\${file:${secret}}" }`, ...PLAN),
      'e.yaml',
      {},
    );
    expect(config.gateways.cp).toMatchObject({ apiKey: 's3cr3t-key' });
  });

  it('a relative ${file:...} path is read next to the config file', () => {
    const dir = mkdtempSync(join(tmp, 'rel-'));
    writeFileSync(join(dir, 'hook_secret'), 'whsec_MDEyMzQ1Njc4OWFiY2RlZg==\r\n');
    writeFileSync(join(dir, 'rebill.yaml'), yaml('webhooks: [{ url: "https://h.example/x", secret: "${file:hook_secret}" }]', ...PLAN));
    expect(loadConfig(join(dir, 'rebill.yaml'), {}).webhooks[0]!.secret).toBe('whsec_MDEyMzQ1Njc4OWFiY2RlZg==');
  });

  it('every unset variable is reported, not only the first', () => {
    const problems = problemsOf(() =>
      parseConfig(yaml('database: { url: "${DB_URL}" }', 'webhooks: [{ url: "https://h.example/x", secret: "${HOOK_SECRET}" }]', ...PLAN), 'e.yaml', {}),
    );
    expect(problems.map((p) => [p.path, p.line])).toEqual([
      ['database.url', 1],
      ['webhooks[0].secret', 2],
    ]);
  });
});

describe('REBILL_* overrides', () => {
  it('REBILL_HTTP_PORT overrides http.port as a number', () => {
    const config = parseConfig(yaml('http: { port: 8080 }', ...PLAN), 'o.yaml', { REBILL_HTTP_PORT: '9090' });
    expect(config.http.port).toBe(9090);
  });

  it('overrides map UPPER_SNAKE keys to camelCase and create absent sections', () => {
    const config = parseConfig(yaml(...PLAN), 'o.yaml', {
      REBILL_DATABASE_URL: 'sqlite:/var/lib/rebill/rebill.db',
      REBILL_SCHEDULER_CONCURRENCY: '4',
      REBILL_SCHEDULER_RATE_PER_SECOND: '12.5',
      REBILL_LOGGING_LEVEL: 'debug',
      REBILL_RETRY_DELAYS: '[P2D, P4D]',
    });
    expect(config.database.url).toBe('sqlite:/var/lib/rebill/rebill.db');
    expect(config.scheduler.concurrency).toBe(4);
    expect(config.scheduler.ratePerSecond).toBe(12.5);
    expect(config.logging.level).toBe('debug');
    expect(config.retry.delays).toEqual(['P2D', 'P4D']);
  });

  it('REBILL_CONFIG and REBILL_ variables outside the settings sections are not overrides', () => {
    const config = parseConfig(yaml(...PLAN), 'o.yaml', { REBILL_CONFIG: 'other.yaml', REBILL_ADMIN_TOKEN: 't' });
    expect(config.http).toEqual({ host: '0.0.0.0', port: 8080, tokens: [] });
  });

  it('an override of a key the section does not have is an unknown key named after the variable', () => {
    const problems = problemsOf(() => parseConfig(yaml(...PLAN), 'o.yaml', { REBILL_HTTP_PROT: '1' }));
    expect(formatProblems(problems)).toEqual(['$REBILL_HTTP_PROT: http.prot: unknown key (did you mean port?)']);
  });

  it('the config file path comes from --config, else REBILL_CONFIG, else config/rebill.yaml', () => {
    expect(configFilePath('a.yaml', { REBILL_CONFIG: 'b.yaml' })).toBe('a.yaml');
    expect(configFilePath(undefined, { REBILL_CONFIG: 'b.yaml' })).toBe('b.yaml');
    expect(configFilePath(undefined, {})).toBe('config/rebill.yaml');
  });
});

describe('files', () => {
  it('the example config/rebill.yaml loads with its three plans and seed subscriptions', () => {
    const config = loadConfig(join(root, 'config/rebill.yaml'), {});
    expect(config.plans.map((p) => [p.id, p.amount, p.currency])).toEqual([
      ['gold-monthly', '9.99', 'USD'],
      ['team-quarterly', '49.00', 'EUR'],
      ['archive-yearly', '12000', 'JPY'],
    ]);
    expect(config.plans[0]).toMatchObject({ sendOnHour: 10, timezone: 'America/New_York', trial: 'P14D' });
    expect([...config.subscriptions].map((s) => s.paymentToken)).toEqual(['tok_ok', 'tok_flaky_1', 'tok_insufficient', 'tok_ok']);
    expect(Object.keys(config.gateways)).toEqual(['sim']);
  });

  it('the conformance scenario loads with instants as epoch ms and its own retry delays', () => {
    const scenario = loadScenario(scenarioFile, {});
    expect(scenario.start).toBe('2024-12-01T00:00:00Z');
    expect(scenario.startMs).toBe(Date.UTC(2024, 11, 1));
    expect(scenario.untilMs).toBe(Date.UTC(2025, 2, 1));
    expect(scenario.retry.delays).toEqual(['P2D', 'P5D']);
    expect(scenario.plans.map((p) => [p.id, p.amountMinor, p.gateway])).toEqual([
      ['weekly-jpy', 500, 'sim'],
      ['monthly-usd', 499, 'sim'],
    ]);
    expect(scenario.subscriptions.map((s) => [s.id, s.startDate])).toEqual([
      ['w1', '2025-01-06'],
      ['m1', '2024-12-31'],
      ['m2', '2024-12-31'],
    ]);
    expect(scenario.actions).toEqual([]);
  });

  it('a scenario subscription without startDate starts on the UTC date of start, and actions carry atMs', () => {
    const scenario = parseScenario(
      yaml(
        'start: "2025-01-31T23:30:00-05:00"',
        'until: "2025-06-01T00:00:00Z"',
        ...PLAN,
        'subscriptions: [{ id: s, planId: gold, paymentToken: tok_ok }]',
        'actions:',
        '  - { at: "2025-03-01T00:00:00Z", subscriptionId: s, do: pause, resumeDate: "2025-04-01" }',
      ),
      's.yaml',
      {},
    );
    expect(scenario.subscriptions[0]!.startDate).toBe('2025-02-01');
    expect(scenario.actions[0]).toEqual({ at: '2025-03-01T00:00:00Z', atMs: Date.UTC(2025, 2, 1), subscriptionId: 's', do: 'pause', resumeDate: '2025-04-01' });
  });

  it('a scenario whose until is not after start, or acting on an unknown subscription, is rejected', () => {
    const problems = problemsOf(() =>
      parseScenario(
        yaml('start: "2025-02-01T00:00:00Z"', 'until: "2025-01-01T00:00:00Z"', ...PLAN, 'actions:', '  - { at: "2025-02-01T00:00:00Z", subscriptionId: ghost, do: cancel }'),
        's.yaml',
        {},
      ),
    );
    expect(problems.map((p) => `${p.line}: ${p.path}: ${p.message}`)).toEqual([
      '2: until: must be after start (2025-02-01T00:00:00Z)',
      '6: actions[0].subscriptionId: unknown subscription "ghost"',
    ]);
  });

  it('a missing file is one clear problem', () => {
    const problems = problemsOf(() => loadConfig(join(tmp, 'nope.yaml'), {}));
    expect(formatProblems(problems)).toEqual([`${join(tmp, 'nope.yaml')}: cannot read configuration: file not found`]);
  });
});

describe('reporting', () => {
  it('every problem in a file is listed, in file order, compiler style', () => {
    const text = yaml(
      'plans:',
      '  - id: p',
      '    amount: "1.001"',
      '    currency: EUR',
      '    every: MONTH',
      '  - id: q',
      '    amount: "2"',
      '    currency: EUR',
      '    every: { unit: month, count: 0 }',
      '  - id: r',
      '    amount: "2"',
      '    currency: EUR',
      '    every:',
      '      unit: fortnight',
      'http:',
      '  prot: 80',
    );
    const problems = problemsOf(() => parseConfig(text, 'config/x.yaml', {}));
    expect(formatProblems(problems)).toEqual([
      'config/x.yaml:3:13: plans[0].amount: "1.001" has 3 decimals; EUR allows 2',
      'config/x.yaml:9:34: plans[1].every.count: expected a whole number >= 1; got 0',
      'config/x.yaml:14:13: plans[2].every.unit: expected one of day, week, month, year; got "fortnight"',
      'config/x.yaml:16:3: http.prot: unknown key (did you mean port?)',
    ]);
  });

  it('ConfigError is a RebillError with code CONFIG_INVALID carrying the problems', () => {
    try {
      parseConfig('plans: []\n', 'c.yaml', {});
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(RebillError);
      expect(err).toBeInstanceOf(ConfigError);
      expect((err as ConfigError).code).toBe('CONFIG_INVALID');
      expect((err as ConfigError).problems).toHaveLength(1);
      expect((err as ConfigError).message).toContain('c.yaml:1:8: plans: at least one plan is required');
    }
  });

  it('gateway names that are not identifiers are quoted in the key path', () => {
    const problems = problemsOf(() =>
      parseConfig(yaml('gateways:', '  coolpay-eu: { type: coolpay, baseUrl: "https://x.example" }', ...PLAN), 'g.yaml', {}),
    );
    expect(formatProblems(problems)).toEqual(['g.yaml:2:15: gateways["coolpay-eu"].apiKey: required']);
  });
});
