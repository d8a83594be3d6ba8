/**
 * Bad configuration files, one mistake each: every case names the exact key
 * path, the part of the message that tells the operator what to fix, and the
 * line the problem is reported on (SPEC section 4: "every problem listed with
 * file, line and key path").
 */
import { describe, expect, it } from 'vitest';
import { parseConfig, type ConfigProblem } from '../../src/config/index.js';
import { problemsOf as problemsOfRun } from '../support/problems.js';

/** Problems from parsing `text`, failing the test if it parsed. */
function problemsOf(text: string, env: Record<string, string> = {}): ConfigProblem[] {
  return problemsOfRun(() => parseConfig(text, 'bad.yaml', env));
}

/** The lines as a file; a config without a gateways: section gets the simulator appended (after every line, so line numbers hold). */
const yaml = (...lines: string[]) => `${lines.join('\n')}\n${lines.some((l) => /^gateways:/.test(l)) ? '' : `${SIM}\n`}`;
const SIM = 'gateways: { sim: { type: simulator } }';

/** A valid plan occupying lines 1-6 when placed first. */
const PLAN = ['plans:', '  - id: gold', '    amount: "9.99"', '    currency: USD', '    every: MONTH', '    gateway: sim'];

interface Case {
  name: string;
  text: string;
  path: string;
  message: string;
  line: number;
  env?: Record<string, string>;
}

const cases: Case[] = [
  {
    name: 'a misspelt plan key is unknown and the closest real key is suggested',
    text: yaml('plans:', '  - id: p', '    amount: "1.00"', '    currency: USD', '    every: MONTH', '    sendOnHuor: 3'),
    path: 'plans[0].sendOnHuor',
    message: 'unknown key (did you mean sendOnHour?)',
    line: 6,
  },
  {
    name: 'a misspelt required key is one problem: the typo, not also the missing key',
    text: yaml('plans:', '  - id: p', '    amount: "1.00"', '    curency: USD', '    every: MONTH'),
    path: 'plans[0].curency',
    message: 'unknown key (did you mean currency?)',
    line: 4,
  },
  {
    name: 'a misspelt top-level section is unknown',
    text: yaml(...PLAN, 'shceduler:', '  concurrency: 4'),
    path: 'shceduler',
    message: 'unknown key (did you mean scheduler?)',
    line: 7,
  },
  {
    name: 'an amount with more decimals than the currency has is rejected on the amount',
    text: yaml('plans:', '  - id: p', '    amount: "1.001"', '    currency: EUR', '    every: MONTH'),
    path: 'plans[0].amount',
    message: 'has 3 decimals; EUR allows 2',
    line: 3,
  },
  {
    name: 'a zero amount without a trial is rejected',
    text: yaml('plans:', '  - id: p', '    amount: "0"', '    currency: USD', '    every: MONTH'),
    path: 'plans[0].amount',
    message: 'must be greater than zero; got "0" (zero is allowed only with a trial)',
    line: 3,
  },
  {
    name: 'a negative amount is rejected',
    text: yaml('plans:', '  - id: p', '    amount: -5', '    currency: USD', '    every: MONTH'),
    path: 'plans[0].amount',
    message: 'must not be negative',
    line: 3,
  },
  {
    name: 'an unknown currency code is rejected on the currency',
    text: yaml('plans:', '  - id: p', '    amount: "1"', '    currency: ABC', '    every: MONTH'),
    path: 'plans[0].currency',
    message: 'unknown ISO 4217 currency code "ABC"',
    line: 4,
  },
  {
    name: 'a missing currency is reported as required at the plan',
    text: yaml('plans:', '  - id: p', '    amount: "1"', '    every: MONTH'),
    path: 'plans[0].currency',
    message: 'required',
    line: 2,
  },
  {
    name: 'an interval count of zero is reported at every.count',
    text: yaml('plans:', '  - id: p', '    amount: "2"', '    currency: EUR', '    every: { unit: month, count: 0 }'),
    path: 'plans[0].every.count',
    message: 'expected a whole number >= 1; got 0',
    line: 5,
  },
  {
    name: 'an unknown interval unit is reported at every.unit with the allowed units',
    text: yaml('plans:', '  - id: p', '    amount: "2"', '    currency: EUR', '    every:', '      unit: fortnight', '      count: 1'),
    path: 'plans[0].every.unit',
    message: 'expected one of day, week, month, year; got "fortnight"',
    line: 6,
  },
  {
    name: 'an unknown interval alias lists the aliases',
    text: yaml('plans:', '  - id: p', '    amount: "2"', '    currency: EUR', '    every: fortnightly'),
    path: 'plans[0].every',
    message: 'THREE_MONTHS',
    line: 5,
  },
  {
    name: 'a misspelt key inside an interval object is unknown',
    text: yaml('plans:', '  - id: p', '    amount: "2"', '    currency: EUR', '    every: { units: month }'),
    path: 'plans[0].every.units',
    message: 'unknown key (did you mean unit?)',
    line: 5,
  },
  {
    name: 'sendOnHour outside 0..23 is rejected',
    text: yaml(...PLAN, '    sendOnHour: 24'),
    path: 'plans[0].sendOnHour',
    message: 'expected a whole number 0..23; got 24',
    line: 7,
  },
  {
    name: 'an unknown IANA time zone is rejected',
    text: yaml(...PLAN, '    timezone: Mars/Olympus'),
    path: 'plans[0].timezone',
    message: 'unknown IANA time zone "Mars/Olympus"',
    line: 7,
  },
  {
    name: 'a month-end policy other than clamp or overflow is rejected',
    text: yaml(...PLAN, '    monthEnd: round'),
    path: 'plans[0].monthEnd',
    message: 'expected one of clamp, overflow; got "round"',
    line: 7,
  },
  {
    name: 'a trial that is not an ISO-8601 duration is rejected',
    text: yaml(...PLAN, '    trial: 14 days'),
    path: 'plans[0].trial',
    message: 'expected an ISO-8601 duration such as P14D; got "14 days"',
    line: 7,
  },
  {
    name: 'maxCycles of zero is rejected',
    text: yaml(...PLAN, '    maxCycles: 0'),
    path: 'plans[0].maxCycles',
    message: 'expected a whole number >= 1; got 0',
    line: 7,
  },
  {
    name: 'a plan id with a space is rejected',
    text: yaml('plans:', '  - id: gold plan', '    amount: "1"', '    currency: USD', '    every: MONTH'),
    path: 'plans[0].id',
    message: 'expected letters, digits, ".", "_" or "-"; got "gold plan"',
    line: 2,
  },
  {
    name: 'a duplicate plan id is reported at the repeat, naming the first',
    text: yaml(...PLAN, '  - { id: gold, amount: "1", currency: USD, every: YEAR }'),
    path: 'plans[1].id',
    message: 'duplicate plan id "gold" (also plans[0])',
    line: 7,
  },
  {
    name: 'a plan naming a gateway that is not configured is rejected',
    text: yaml('plans:', '  - id: p', '    amount: "1"', '    currency: USD', '    every: MONTH', '    gateway: stripe'),
    path: 'plans[0].gateway',
    message: 'unknown gateway "stripe"; configured: sim',
    line: 6,
  },
  {
    name: 'a plan without a gateway is rejected when several gateways are configured',
    text: yaml(
      'gateways:',
      '  sim: { type: simulator }',
      '  hook: { type: http, url: "https://pay.example/charge", secret: s3cret }',
      'plans:',
      '  - { id: p, amount: "1", currency: USD, every: MONTH }',
    ),
    path: 'plans[0].gateway',
    message: 'required when more than one gateway is configured (sim, hook)',
    line: 5,
  },
  {
    name: 'an unknown gateway type lists the allowed types',
    text: yaml('gateways:', '  pay:', '    type: paypal', ...PLAN.slice(0, 5)),
    path: 'gateways.pay.type',
    message: 'expected one of simulator, coolpay, http; got "paypal"',
    line: 3,
  },
  {
    name: 'a coolpay gateway with a non-http baseUrl is rejected',
    text: yaml('gateways:', '  sim:', '    type: coolpay', '    baseUrl: "ftp://files.example"', '    apiKey: k', ...PLAN.slice(0, 5)),
    path: 'gateways.sim.baseUrl',
    message: 'expected an http(s) URL; got "ftp://files.example"',
    line: 4,
  },
  {
    name: 'a gateway key that belongs to another gateway type is unknown',
    text: yaml('gateways:', '  sim: { type: simulator, timeoutSeconds: 5 }', ...PLAN.slice(0, 5)),
    path: 'gateways.sim.timeoutSeconds',
    message: 'unknown key',
    line: 2,
  },
  {
    name: 'a lease not longer than a gateway timeout names both values',
    text: yaml(
      'scheduler:',
      '  leaseSeconds: 60',
      'gateways:',
      '  sim: { type: coolpay, baseUrl: "https://api.example", apiKey: k, timeoutSeconds: 90 }',
      ...PLAN,
    ),
    path: 'scheduler.leaseSeconds',
    message: 'must be greater than gateways.sim.timeoutSeconds (leaseSeconds 60 <= timeoutSeconds 90)',
    line: 2,
  },
  {
    name: 'retry delays fewer than attempts - 1 are too short',
    text: yaml(...PLAN, 'retry:', '  attempts: 5', '  delays: [P1D, P2D]'),
    path: 'retry.delays',
    message: 'too short for attempts: 5: need 4 delays',
    line: 9,
  },
  {
    name: 'more than 10 retry attempts are rejected',
    text: yaml(...PLAN, 'retry:', '  attempts: 11'),
    path: 'retry.attempts',
    message: 'expected a whole number 1..10; got 11',
    line: 8,
  },
  {
    name: 'a retry delay that is not an ISO-8601 duration is reported at its index',
    text: yaml(...PLAN, 'retry:', '  delays: [P1D, 3 days]'),
    path: 'retry.delays[1]',
    message: 'expected an ISO-8601 duration such as P14D; got "3 days"',
    line: 8,
  },
  {
    name: 'an invalid onFinalFailure lists the choices',
    text: yaml(...PLAN, 'retry:', '  onFinalFailure: explode'),
    path: 'retry.onFinalFailure',
    message: 'expected one of terminate, pause, keep; got "explode"',
    line: 8,
  },
  {
    name: 'a sweep that is not a 5 or 6 field cron expression is rejected',
    text: yaml('scheduler:', '  sweep: "every minute"', ...PLAN),
    path: 'scheduler.sweep',
    message: 'expected a cron expression with 5 or 6 fields; got "every minute"',
    line: 2,
  },
  {
    name: 'a concurrency of zero is rejected',
    text: yaml('scheduler:', '  concurrency: 0', ...PLAN),
    path: 'scheduler.concurrency',
    message: 'expected a whole number 1..1000; got 0',
    line: 2,
  },
  {
    name: 'a non-positive ratePerSecond is rejected',
    text: yaml('scheduler:', '  ratePerSecond: 0', ...PLAN),
    path: 'scheduler.ratePerSecond',
    message: 'expected a number > 0; got 0',
    line: 2,
  },
  {
    name: 'a database url that is neither sqlite nor postgres is rejected',
    text: yaml('database:', '  url: "mysql://db/rebill"', ...PLAN),
    path: 'database.url',
    message: 'expected sqlite:<path> or postgres://...; got "mysql://db/rebill"',
    line: 2,
  },
  {
    name: 'an http port above 65535 is rejected',
    text: yaml('http:', '  port: 70000', ...PLAN),
    path: 'http.port',
    message: 'expected a whole number 0..65535; got 70000',
    line: 2,
  },
  {
    name: 'an admin token scope other than read or write is rejected',
    text: yaml('http:', '  tokens:', '    - token: abc', '      scope: admin', ...PLAN),
    path: 'http.tokens[0].scope',
    message: 'expected one of read, write; got "admin"',
    line: 4,
  },
  {
    name: 'an unknown logging level lists the levels',
    text: yaml('logging:', '  level: verbose', ...PLAN),
    path: 'logging.level',
    message: 'expected one of fatal, error, warn, info, debug, trace, silent; got "verbose"',
    line: 2,
  },
  {
    name: 'a webhook subscribed to a misspelt event type is rejected',
    text: yaml('webhooks:', '  - url: "https://hooks.example/rebill"', '    secret: whsec_MDEyMzQ1Njc4OWFiY2RlZg==', '    events: [charge.suceeded]', ...PLAN),
    path: 'webhooks[0].events[0]',
    message: 'got "charge.suceeded"',
    line: 4,
  },
  {
    name: 'a webhook secret that is not whsec_<base64> is rejected, without repeating it',
    text: yaml('webhooks:', '  - url: "https://hooks.example/rebill"', '    secret: s3cret', ...PLAN),
    path: 'webhooks[0].secret',
    message: 'expected a Standard Webhooks secret "whsec_<base64 of at least 16 bytes>"',
    line: 3,
  },
  {
    name: 'a seed subscription on an unknown plan is rejected',
    text: yaml(...PLAN, 'subscriptions:', '  - id: s1', '    planId: silver', '    paymentToken: tok_ok', '    startDate: "2025-01-31"'),
    path: 'subscriptions[0].planId',
    message: 'unknown plan "silver"; defined: gold',
    line: 9,
  },
  {
    name: 'a seed subscription on a charge plan needs a payment token',
    text: yaml(...PLAN, 'subscriptions:', '  - id: s1', '    planId: gold', '    startDate: "2025-01-31"'),
    path: 'subscriptions[0].paymentToken',
    message: 'required: plan "gold" uses mode charge',
    line: 8,
  },
  {
    name: 'a seed subscription with an impossible start date is rejected',
    text: yaml(...PLAN, 'subscriptions:', '  - { id: s1, planId: gold, paymentToken: tok_ok, startDate: "2025-02-30" }'),
    path: 'subscriptions[0].startDate',
    message: 'expected a date yyyy-MM-dd; got "2025-02-30"',
    line: 8,
  },
  {
    name: 'a seed subscription ending before it starts is rejected',
    text: yaml(...PLAN, 'subscriptions:', '  - id: s1', '    planId: gold', '    paymentToken: tok_ok', '    startDate: "2025-03-01"', '    endDate: "2025-02-01"'),
    path: 'subscriptions[0].endDate',
    message: 'must not be before startDate (2025-03-01)',
    line: 12,
  },
  {
    name: 'a seed end date that is no date is one problem, not also "before startDate"',
    text: yaml(...PLAN, 'subscriptions:', '  - id: s1', '    planId: gold', '    paymentToken: tok_ok', '    startDate: "2025-03-01"', '    endDate: "2025-02-30"'),
    path: 'subscriptions[0].endDate',
    message: 'expected a date yyyy-MM-dd; got "2025-02-30"',
    line: 12,
  },
  {
    name: 'a number in seed metadata is refused under a key named amount too (amounts keep their text, metadata does not)',
    text: yaml(...PLAN, 'subscriptions:', '  - { id: s1, planId: gold, paymentToken: tok_ok, startDate: "2025-01-31", metadata: { amount: 12 } }'),
    path: 'subscriptions[0].metadata.amount',
    message: 'expected a string (quote numbers and booleans); got 12',
    line: 8,
  },
  {
    name: 'seed subscription metadata with more than 50 keys is rejected',
    text: yaml(
      ...PLAN,
      'subscriptions:',
      '  - id: s1',
      '    planId: gold',
      '    paymentToken: tok_ok',
      '    startDate: "2025-01-31"',
      `    metadata: { ${Array.from({ length: 51 }, (_, i) => `k${i}: v`).join(', ')} }`,
    ),
    path: 'subscriptions[0].metadata',
    message: 'at most 50 keys; got 51',
    line: 12,
  },
  {
    name: 'a seed customer email that is not an address is rejected',
    text: yaml(...PLAN, 'subscriptions:', '  - id: s1', '    planId: gold', '    paymentToken: tok_ok', '    startDate: "2025-01-31"', '    customer: { email: not-an-email }'),
    path: 'subscriptions[0].customer.email',
    message: 'expected an email address; got "not-an-email"',
    line: 12,
  },
  {
    name: 'a duplicate key is an error on its second occurrence, naming the first line',
    text: yaml('plans:', '  - id: p', '    amount: "1"', '    currency: USD', '    every: MONTH', '    amount: "2"'),
    path: 'plans[0].amount',
    message: 'duplicate key (first defined on line 3)',
    line: 6,
  },
  {
    name: 'an unset ${VAR} without a default is reported where it is used',
    text: yaml('gateways:', '  cp:', '    type: coolpay', '    baseUrl: "https://api.example"', '    apiKey: "${COOLPAY_API_KEY}"', ...PLAN.slice(0, 5)),
    path: 'gateways.cp.apiKey',
    message: 'environment variable COOLPAY_API_KEY is not set',
    line: 5,
  },
  {
    name: 'a ${file:...} secret that cannot be read is reported where it is used',
    text: yaml('webhooks:', '  - url: "https://hooks.example/x"', '    secret: "${file:/nonexistent/rebill-secret}"', ...PLAN),
    path: 'webhooks[0].secret',
    message: 'cannot read secret file /nonexistent/rebill-secret (ENOENT)',
    line: 3,
  },
  {
    name: 'an empty plans list is rejected',
    text: yaml('plans: []'),
    path: 'plans',
    message: 'at least one plan is required',
    line: 1,
  },
  {
    name: 'a file without plans is rejected',
    text: yaml('http:', '  port: 8080'),
    path: 'plans',
    message: 'required',
    line: 1,
  },
  {
    name: 'an invalid REBILL_HTTP_PORT override is reported against the variable',
    text: yaml(...PLAN),
    env: { REBILL_HTTP_PORT: 'eighty' },
    path: 'http.port',
    message: 'expected a whole number 0..65535; got "eighty"',
    line: 0,
  },
];

describe('invalid configuration', () => {
  it('covers at least 22 distinct mistakes', () => {
    expect(new Set(cases.map((c) => c.path + c.message)).size).toBeGreaterThanOrEqual(22);
  });

  for (const c of cases) {
    it(c.name, () => {
      const problems = problemsOf(c.text, c.env);
      expect(problems, JSON.stringify(problems, null, 2)).toHaveLength(1);
      const [problem] = problems;
      expect(problem!.path).toBe(c.path);
      expect(problem!.message).toContain(c.message);
      expect(problem!.line).toBe(c.line);
      expect(problem!.file).toBe(c.env ? `$${Object.keys(c.env)[0]}` : 'bad.yaml');
    });
  }

  it('a YAML syntax error is reported with its line and no key path', () => {
    const problems = problemsOf(yaml('plans:', '  - id: p', '    every: [MONTH', 'http:', '  port: 1'));
    expect(problems.length).toBeGreaterThanOrEqual(1);
    expect(problems[0]!.path).toBe('');
    expect(problems[0]!.message).toMatch(/^YAML syntax: /);
    expect(problems[0]!.line).toBeGreaterThanOrEqual(3);
  });

  it('a top level that is not a mapping is rejected at line 1', () => {
    const problems = problemsOf('- plans\n');
    expect(problems).toEqual([{ file: 'bad.yaml', line: 1, column: 1, path: '', message: 'expected a mapping; got a list' }]);
  });
});
