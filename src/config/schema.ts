/**
 * The configuration schema: one zod schema per file type (`configSchema`,
 * `scenarioSchema`) built from reusable section schemas. The schema is the
 * single source of the TypeScript types (`z.output`), of the defaults, and of
 * every validation rule, including the cross-field ones.
 *
 * Every object is strict, so a typo (`sendOnHuor`) is an error rather than a
 * silently ignored key that leaves a plan charging at midnight.
 *
 * Cross-field rules run with `when: always`, so a file with a bad field in one
 * place still gets its dangling references reported elsewhere in the same run.
 * They therefore see partially parsed values and check each field's type
 * before trusting it.
 */
import { createHash } from 'node:crypto';
import { DateTime } from 'luxon';
import { validateDetailed as validateCron } from 'node-cron';
import * as z from 'zod';
import {
  isValidTimeZone,
  IntervalError,
  INTERVAL_UNITS,
  isInstantInRange,
  MAX_LOCAL_DATE,
  MIN_LOCAL_DATE,
  parseForwardDuration,
  parseInterval,
  parseLocalDate,
  ScheduleError,
  MONTH_END_POLICIES,
  type Interval,
  type MonthEndPolicy,
} from '../calendar/index.js';
import { currencyExponent, formatAmount, MoneyError, parseAmount } from '../money/index.js';
import { DEFAULT_LINK_EMAIL_SUBJECT, DEFAULT_LINK_EMAIL_TEMPLATE, templateProblems } from '../notifications/template.js';
import { exposureProblems } from './exposure.js';
import { redactUrlPasswords } from '../logger.js';
import { isSecretPath, unknownKeyMessage, type PathSegment } from './problems.js';
import type { SeedList } from './seeds.js';

// ---------------------------------------------------------------------------
// Messages

/** What kind of value was given, for a value that must not be shown. */
function kindOf(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (value === null) return 'an empty value';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  if (typeof value === 'boolean') return 'true or false';
  return `a ${typeof value}`;
}

/**
 * A value as it appears in a message: strings quoted, collections named. At a
 * `path` under a secret key (`apiKey`, `paymentToken`, ...) only its kind is
 * given ("a number"), since a mistyped secret is still a secret.
 */
export function describeValue(value: unknown, path?: readonly PropertyKey[]): string {
  if (path && isSecretPath(path)) return kindOf(value);
  if (value === undefined) return 'nothing';
  if (value === null) return 'an empty value';
  if (typeof value === 'string') return JSON.stringify(value);
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  return String(value);
}

const TYPE_NAMES: Record<string, string> = {
  string: 'a string',
  number: 'a number',
  int: 'a whole number',
  boolean: 'true or false',
  object: 'a mapping',
  record: 'a mapping',
  array: 'a list',
};

/**
 * `schema.safeParse(input)` with the config's messages (configErrorMap) on
 * its issues: the one way config, API bodies and CSV lines are parsed. The
 * input is parsed without the error map first: zod takes about twice as long
 * with one even when the input is valid (an API create's three schemas: 10 us
 * with it, 5 us without), and only a refusal needs its messages; the same
 * input then fails the same way again, with them.
 */
export function parseWithConfigMessages<S extends z.ZodType>(schema: S, input: unknown): z.ZodSafeParseResult<z.output<S>> {
  const valid = schema.safeParse(input);
  return valid.success ? valid : schema.safeParse(input, { error: configErrorMap });
}

/**
 * The error map for parsing configuration: messages in the `expected ...; got
 * ...` style of the contract, for the issue kinds the section schemas do not
 * word themselves. Parse with parseWithConfigMessages (above), which applies
 * it to a refusal.
 */
export const configErrorMap: z.core.$ZodErrorMap = (issue) => {
  const got = describeValue(issue.input, issue.path);
  switch (issue.code) {
    case 'invalid_type':
      if (issue.input === undefined) return 'required';
      return `expected ${TYPE_NAMES[issue.expected] ?? issue.expected}; got ${got}`;
    case 'invalid_value':
      if (issue.input === undefined) return issue.values.length === 1 ? 'required' : `required (one of ${issue.values.join(', ')})`;
      return issue.values.length === 1
        ? `expected ${String(issue.values[0])}; got ${got}`
        : `expected one of ${issue.values.join(', ')}; got ${got}`;
    case 'too_small': {
      const min = String(issue.minimum);
      if (issue.origin === 'string') return issue.minimum === 1 ? 'must not be empty' : `expected at least ${min} characters`;
      if (issue.origin === 'array') return `expected at least ${min} item${min === '1' ? '' : 's'}`;
      return `expected a number ${issue.inclusive ? '>=' : '>'} ${min}; got ${got}`;
    }
    case 'too_big': {
      const max = String(issue.maximum);
      if (issue.origin === 'string') return `expected at most ${max} characters`;
      if (issue.origin === 'array') return `expected at most ${max} items`;
      return `expected a number ${issue.inclusive ? '<=' : '<'} ${max}; got ${got}`;
    }
    case 'invalid_format':
      if (issue.format === 'url') return `expected an http(s) URL; got ${got}`;
      if (issue.format === 'email') return `expected an email address; got ${got}`;
      return `invalid ${issue.format}; got ${got}`;
    case 'invalid_union':
      {
        const options = (issue as { options?: unknown[] }).options;
        if (issue.discriminator && options) {
          const value = (issue.input as Record<string, unknown> | undefined)?.[issue.discriminator];
          if (value === undefined) return `required (one of ${options.join(', ')})`;
          return `expected one of ${options.join(', ')}; got ${describeValue(value)}`;
        }
      }
      return `invalid value; got ${got}`;
    case 'invalid_key':
      // A record key that failed its own schema: its message says why.
      return issue.issues[0]?.message ?? `invalid key`;
    case 'unrecognized_keys':
      // Split into one problem per key (with a suggestion) when issues become problems.
      return 'unknown key';
    default:
      return undefined;
  }
};

// ---------------------------------------------------------------------------
// Scalars

/** Values from `${VAR}` and REBILL_* overrides are strings; numeric settings accept their digits. */
function numericText(value: unknown): unknown {
  return typeof value === 'string' && /^\s*[+-]?\d+(\.\d+)?\s*$/.test(value) ? Number(value) : value;
}

function booleanText(value: unknown): unknown {
  return value === 'true' ? true : value === 'false' ? false : value;
}

/** A whole number in [min, max], also accepted as a numeric string. */
function wholeNumber(min: number, max?: number) {
  const range = max === undefined ? `>= ${min}` : `${min}..${max}`;
  const error = (issue: { input?: unknown; path?: PropertyKey[] }) =>
    issue.input === undefined ? 'required' : `expected a whole number ${range}; got ${describeValue(issue.input, issue.path)}`;
  const int = z.int({ error }).min(min);
  return z.preprocess(numericText, max === undefined ? int : int.max(max));
}

/** A number greater than zero, also accepted as a numeric string. */
function positiveNumber() {
  return z.preprocess(
    numericText,
    z.number({ error: (issue) => (issue.input === undefined ? 'required' : `expected a number > 0; got ${describeValue(issue.input, issue.path)}`) }).positive(),
  );
}

function flag() {
  return z.preprocess(booleanText, z.boolean());
}

function text() {
  return z.string().min(1);
}

const ID_PATTERN = /^[A-Za-z0-9._-]+$/;

/** Ids that are safe in URLs, logs and idempotency keys (`<subscriptionId>:<cycle>:<attempt>`). */
function identifier() {
  return z
    .string()
    .max(100)
    .regex(ID_PATTERN, { error: (issue) => `expected letters, digits, ".", "_" or "-"; got ${describeValue(issue.input, issue.path)}` });
}

/** `yyyy-MM-dd`, a real calendar date between 1970-01-01 and 2199-12-31 (the calendar's parseLocalDate decides). */
export const localDateSchema = z.string().superRefine((value, ctx) => {
  try {
    parseLocalDate(value);
  } catch (err) {
    if (!(err instanceof ScheduleError)) throw err;
    ctx.addIssue({ code: 'custom', input: value, message: err.message });
  }
});

/** An IANA time zone name (`Europe/Berlin`). */
export const timeZoneSchema = z
  .string()
  .refine(isValidTimeZone, { error: (issue) => `unknown IANA time zone ${describeValue(issue.input, issue.path)}` });

/** A duration that points forward, as the calendar's parseForwardDuration checks it (so preview and config agree). */
function isoDuration(allowZero: boolean) {
  return z.string().superRefine((value, ctx) => {
    try {
      parseForwardDuration(value, { allowZero });
    } catch (err) {
      if (!(err instanceof ScheduleError)) throw err;
      ctx.addIssue({ code: 'custom', input: value, message: err.message });
    }
  });
}

const httpUrl = () => z.url({ protocol: /^https?$/ });

/** An ISO-8601 instant with an explicit offset (`2025-01-31T00:00:00Z`), kept as text plus epoch ms. */
export const instantSchema = z.string().transform((value, ctx) => {
  const parsed = DateTime.fromISO(value, { setZone: true });
  // Without an offset the instant would depend on the machine's zone, which a scenario must not.
  if (!parsed.isValid || !/T[^Z+-]*(Z|[+-]\d{2}(:?\d{2})?)$/i.test(value)) {
    ctx.addIssue({ code: 'custom', input: value, message: `expected an ISO-8601 instant with an offset, e.g. 2025-01-31T00:00:00Z; got ${describeValue(value)}` });
    return z.NEVER;
  }
  if (!isInstantInRange(parsed.toMillis())) {
    ctx.addIssue({ code: 'custom', input: value, message: `expected an instant between ${MIN_LOCAL_DATE} and ${MAX_LOCAL_DATE} (UTC); got ${describeValue(value)}` });
    return z.NEVER;
  }
  return { text: value, ms: parsed.toMillis() };
});

// ---------------------------------------------------------------------------
// Intervals

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/**
 * An interval as an alias (`MONTH`), a phrase (`"3 months"`) or `{unit, count}`,
 * parsed by the calendar so config and API accept exactly the same spellings.
 * Problems inside the object form are reported at `every.unit` / `every.count`.
 */
export const intervalSchema = z.unknown().transform((input, ctx): Interval => {
  if (input === undefined || input === null) {
    ctx.addIssue({ code: 'custom', input, message: 'required' });
    return z.NEVER;
  }
  let candidate = input;
  if (isPlainObject(input)) {
    const allowed = ['unit', 'count'];
    let bad = false;
    for (const key of Object.keys(input).filter((k) => !allowed.includes(k))) {
      ctx.addIssue({ code: 'custom', input, path: [key], message: unknownKeyMessage(key, allowed), params: { at: 'key' } });
      bad = true;
    }
    // A misspelt `unit` would also make unit "required"; the unknown key already says it.
    if (bad) return z.NEVER;
    if (input.unit === undefined) {
      ctx.addIssue({ code: 'custom', input, path: ['unit'], message: `required (one of ${INTERVAL_UNITS.join(', ')})` });
      return z.NEVER;
    }
    candidate = { unit: input.unit, count: numericText(input.count) };
  }
  try {
    return parseInterval(candidate);
  } catch (err) {
    if (!(err instanceof IntervalError)) throw err;
    // The calendar prefixes object-form problems with the field they concern.
    const field = /^(unit|count): ([\s\S]*)$/.exec(err.message);
    if (field && isPlainObject(input)) ctx.addIssue({ code: 'custom', input, path: [field[1]!], message: field[2]! });
    else ctx.addIssue({ code: 'custom', input, message: err.message });
    return z.NEVER;
  }
});

// ---------------------------------------------------------------------------
// Plans

/**
 * Amounts are judged by the text as written, quoted or not (SPEC section 3):
 * readers of YAML (and, later, JSON) hand the source text of every value under
 * an `amount` key to the schema, which passes it to parseAmount.
 */
export function isAmountPath(path: readonly PathSegment[]): boolean {
  // Metadata is the integrator's strings: `metadata: {amount: 12}` is a number there, refused as one.
  return path.at(-1) === 'amount' && path.at(-2) !== 'metadata';
}

/** The fields of a plan as written; `planSchema` adds the money and the version. */
const planFieldsSchema = z.strictObject({
  id: identifier(),
  description: z.string().nullable().default(null),
  /** The text as written (see isAmountPath); parseAmount judges it. */
  amount: z.string({
    error: (issue) => (issue.input === undefined ? 'required' : `expected a decimal amount such as "9.99"; got ${describeValue(issue.input, issue.path)}`),
  }),
  currency: z.string().superRefine((value, ctx) => {
    if (currencyExponent(value.trim()) === undefined || !/^[A-Za-z]{3}$/.test(value.trim())) {
      ctx.addIssue({ code: 'custom', input: value, message: `unknown ISO 4217 currency code ${describeValue(value)}` });
    }
  }),
  every: intervalSchema,
  sendOnHour: wholeNumber(0, 23).default(0),
  timezone: timeZoneSchema.default('UTC'),
  monthEnd: z.enum(MONTH_END_POLICIES as [MonthEndPolicy, ...MonthEndPolicy[]]).default('clamp'),
  mode: z.enum(['charge', 'link']).default('charge'),
  /** Null until the config resolves it to the only gateway. */
  gateway: text().nullable().default(null),
  trial: isoDuration(false).nullable().default(null),
  maxCycles: wholeNumber(1).nullable().default(null),
  endDate: localDateSchema.nullable().default(null),
  backfill: flag().default(false),
  /**
   * Link mode only: rebill e-mails each payment link to the customer itself
   * (needs notifications.email). A notification setting, not a billing term:
   * it is not part of the plan's version, and it follows the plan for the
   * plan's existing subscriptions too.
   */
  emailLinks: flag().default(false),
});

/**
 * A plan's version: a short hash of the fields that decide what is charged
 * and when. Subscriptions keep the version they were created with, so editing
 * a plan's price or schedule affects new subscriptions only (SPEC section 4).
 */
export function planVersion(plan: {
  amountMinor: number;
  currency: string;
  every: Interval;
  sendOnHour: number;
  timezone: string;
  monthEnd: string;
  trial: string | null;
  maxCycles: number | null;
  endDate: string | null;
}): string {
  // A fixed array, not an object, so key order can never change the hash.
  const canonical = JSON.stringify([
    plan.amountMinor,
    plan.currency,
    plan.every.unit,
    plan.every.count,
    plan.sendOnHour,
    plan.timezone,
    plan.monthEnd,
    plan.trial,
    plan.maxCycles,
    plan.endDate,
  ]);
  return createHash('sha256').update(canonical).digest('hex').slice(0, 12);
}

/**
 * One plan: the written fields plus `amountMinor`, the canonical `amount`
 * text, the upper-case `currency` and `version`. `gateway` stays null when
 * not written; the enclosing file's schema resolves it.
 */
export const planSchema = planFieldsSchema
  .superRefine(
    (plan, ctx) => {
      const { amount, currency, trial } = plan as Record<string, unknown>;
      if (typeof currency !== 'string' || currencyExponent(currency.trim()) === undefined) return; // reported on currency
      if (typeof amount !== 'string') return; // reported on amount
      try {
        parseAmount(amount, currency, { allowZero: typeof trial === 'string' });
      } catch (err) {
        if (!(err instanceof MoneyError)) throw err;
        const zeroHint = /greater than zero/.test(err.message) ? ' (zero is allowed only with a trial)' : '';
        ctx.addIssue({ code: 'custom', input: amount, path: ['amount'], message: err.message.replace(/^amount /, '') + zeroHint });
      }
    },
    { when: () => true },
  )
  .transform((plan) => {
    const money = parseAmount(plan.amount, plan.currency, { allowZero: plan.trial !== null });
    const resolved = {
      ...plan,
      amount: formatAmount(money),
      amountMinor: money.amountMinor,
      currency: money.currency,
    };
    return { ...resolved, version: planVersion(resolved) };
  });

// ---------------------------------------------------------------------------
// Gateways

/** Gateway types, in the order error messages list them. */
export const GATEWAY_TYPES = ['simulator', 'coolpay', 'http'] as const;

const timeoutSeconds = () => wholeNumber(1, 3600).default(30);

/** One gateway, discriminated on `type`. */
export const gatewaySchema = z.discriminatedUnion('type', [
  z.strictObject({ type: z.literal('simulator') }),
  z.strictObject({
    type: z.literal('coolpay'),
    baseUrl: httpUrl(),
    apiKey: text(),
    timeoutSeconds: timeoutSeconds(),
    callbackSecret: text().optional(),
  }),
  z.strictObject({
    type: z.literal('http'),
    url: httpUrl(),
    secret: text(),
    timeoutSeconds: timeoutSeconds(),
  }),
]);

/** Gateways by name; at least one. */
export const gatewaysSchema = z
  .record(
    z.string().regex(ID_PATTERN, { error: (issue) => `gateway names may use letters, digits, ".", "_" or "-"; got ${describeValue(issue.input, issue.path)}` }),
    gatewaySchema,
  )
  .refine((gateways) => Object.keys(gateways).length > 0, { error: 'at least one gateway is required' });

/**
 * What `gateways:` means when a scenario file leaves it out: the built-in
 * simulator (`rebill simulate` runs every gateway as the simulator anyway).
 * The daemon's config has no implicit gateway (SPEC section 7): a real token
 * charged through a simulator would be marked paid and never billed again.
 */
export const DEFAULT_GATEWAYS = { sim: { type: 'simulator' } } as const;

// ---------------------------------------------------------------------------
// Retry, scheduler and the daemon settings

/** Retry delays when `retry.delays` is not written (SPEC section 6). */
export const DEFAULT_RETRY_DELAYS = ['P1D', 'P3D'] as const;

/** The default delays for `attempts`, repeating the last one when more attempts are configured. */
export function defaultRetryDelays(attempts: number): string[] {
  return Array.from({ length: Math.max(0, attempts - 1) }, (_, i) => DEFAULT_RETRY_DELAYS[Math.min(i, DEFAULT_RETRY_DELAYS.length - 1)]!);
}

/**
 * The retry policy: `attempts` per cycle in total, `delays[i]` the wait before
 * attempt i + 2 (so at least attempts - 1 of them), and what happens to the
 * subscription after the last failed attempt.
 */
export const retrySchema = z
  .strictObject({
    attempts: wholeNumber(1, 10).default(3),
    delays: z.array(isoDuration(true)).optional(),
    onFinalFailure: z.enum(['terminate', 'pause', 'keep']).default('terminate'),
    /**
     * How long an attempt whose outcome is unknown (gateway down, timeouts, 5xx) is re-sent with
     * the same key before it counts as one failed attempt (SPEC section 6).
     */
    unavailableHours: positiveNumber().default(72),
  })
  .superRefine(
    (retry, ctx) => {
      const { attempts, delays } = retry as Record<string, unknown>;
      if (typeof attempts !== 'number' || !Array.isArray(delays) || delays.length >= attempts - 1) return;
      ctx.addIssue({
        code: 'custom',
        input: delays,
        path: ['delays'],
        message: `too short for attempts: ${attempts}: need ${attempts - 1} delays (the wait before each attempt after the first); got ${delays.length}`,
      });
    },
    { when: () => true },
  )
  .transform((retry) => ({ ...retry, delays: retry.delays ?? defaultRetryDelays(retry.attempts) }));

/** A node-cron expression with 5 or 6 fields. */
const cronSchema = z.string().superRefine((value, ctx) => {
  const result = validateCron(value);
  if (!result.valid) {
    const reasons = result.errors.map((e) => e.message).join('; ');
    ctx.addIssue({ code: 'custom', input: value, message: `expected a cron expression with 5 or 6 fields; got ${describeValue(value)} (${reasons})` });
  }
});

/** The sweep and the dispatch queue. Times are in seconds. */
export const schedulerSchema = z.strictObject({
  /** Safety-net sweep for due work; the engine also arms a timer for the next due instant. */
  sweep: cronSchema.default('* * * * *'),
  /** Gateway calls in flight at once. */
  concurrency: wholeNumber(1, 1000).default(16),
  /** Gateway calls started per second. */
  ratePerSecond: positiveNumber().default(50),
  /** How long a claimed subscription stays invisible to other sweeps; must outlast a gateway call. */
  leaseSeconds: wholeNumber(1).default(120),
  /** Most due subscriptions claimed by one sweep. */
  claimBatch: wholeNumber(1, 100_000).default(500),
  /** How long shutdown waits for in-flight attempts. */
  drainSeconds: wholeNumber(0).default(30),
  /** How often a pending attempt is asked about when no callback arrives. */
  pendingPollSeconds: wholeNumber(1).default(300),
  /** Wall clock vs monotonic clock disagreement between sweeps beyond which collection stops (SPEC section 6). */
  maxClockJumpSeconds: wholeNumber(1).default(300),
});

const databaseSchema = z.strictObject({
  url: z
    .string()
    .superRefine((url, ctx) => {
      // The value is not echoed whole: a PostgreSQL URL carries a password.
      if (!/^postgres(ql)?:\/\/./.test(url) && !/^sqlite:.+/.test(url)) {
        ctx.addIssue({ code: 'custom', input: url, message: `expected sqlite:<path> or postgres://...; got ${describeValue(redactUrlPasswords(url))}` });
      }
    })
    .default('sqlite:./data/rebill.db'),
  /** SQLite only: FULL survives power loss, which a money ledger needs; NORMAL is faster. */
  synchronous: z.enum(['full', 'normal']).default('full'),
  /** PostgreSQL only: most connections one daemon opens (the engine, the API, the relay and the e-mail sender share them). */
  poolSize: wholeNumber(2, 200).default(10),
});

/** Where the listener binds when the config does not say: every interface, as operators and the Docker image expect. */
export const DEFAULT_HTTP_HOST = '0.0.0.0';

const httpSchema = z
  .strictObject({
    // No default here: the exposure rule must know whether the host was chosen (see exposure.ts).
    host: text().optional(),
    port: wholeNumber(0, 65535).default(8080),
    tokens: z.array(z.strictObject({ token: text(), scope: z.enum(['read', 'write']) })).default([]),
  })
  .superRefine((http, ctx) => {
    // A listener on the network needs a token nobody else knows (issue 8, item 7).
    const problems = exposureProblems({ host: http.host ?? DEFAULT_HTTP_HOST, hostChosen: http.host !== undefined, tokens: http.tokens });
    for (const problem of problems) ctx.addIssue({ code: 'custom', input: undefined, path: [...problem.path], message: problem.message });
  })
  .transform((http) => ({ ...http, host: http.host ?? DEFAULT_HTTP_HOST }));

/** Event types that webhooks can subscribe to (SPEC section 8). */
export const WEBHOOK_EVENT_TYPES = [
  'subscription.created',
  'charge.succeeded',
  'charge.failed',
  'charge.pending',
  'payment_link.sent',
  'subscription.paused',
  'subscription.resumed',
  'subscription.cancelled',
  'subscription.finished',
  'subscription.payment_failed',
  'subscription.updated',
] as const;

const EVENT_FAMILIES = [...new Set(WEBHOOK_EVENT_TYPES.map((t) => `${t.split('.')[0]}.*`))];

const webhookEventSchema = z.string().refine((event) => event === '*' || (WEBHOOK_EVENT_TYPES as readonly string[]).includes(event) || EVENT_FAMILIES.includes(event), {
  error: (issue) => `expected "*", an event family (${EVENT_FAMILIES.join(', ')}) or an event type such as charge.succeeded; got ${describeValue(issue.input, issue.path)}`,
});

/** The default retry schedule of a webhook delivery (SPEC section 8); the last step repeats. */
export const DEFAULT_WEBHOOK_RETRY_SCHEDULE = ['PT5S', 'PT5M', 'PT30M', 'PT2H', 'PT5H', 'PT10H'] as const;

/** A Standard Webhooks secret: `whsec_` and the base64 of at least 16 bytes. */
const webhookSecret = () =>
  text().refine(
    (value) => {
      const match = /^whsec_([A-Za-z0-9+/]+={0,2})$/.exec(value);
      return match !== null && match[1]!.length % 4 === 0 && Buffer.from(match[1]!, 'base64').length >= 16;
    },
    { error: 'expected a Standard Webhooks secret "whsec_<base64 of at least 16 bytes>"' },
  );

const webhookSchema = z.strictObject({
  url: httpUrl(),
  secret: webhookSecret(),
  events: z.array(webhookEventSchema).min(1).default(['*']),
  enabled: z.boolean().default(true),
  retrySchedule: z.array(isoDuration(false)).min(1).default([...DEFAULT_WEBHOOK_RETRY_SCHEDULE]),
  maxAgeHours: z.number().positive().default(72),
  timeoutSeconds: z.number().positive().max(300).default(15),
});

const loggingSchema = z.strictObject({
  level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
});

// ---------------------------------------------------------------------------
// Notifications: payment links by e-mail

/** The default retry schedule of a link e-mail (the last step repeats until maxAgeHours). */
export const DEFAULT_LINK_EMAIL_RETRY_SCHEDULE = ['PT1M', 'PT5M', 'PT30M', 'PT2H', 'PT5H', 'PT10H'] as const;

/**
 * A URL as a message may show it: the scheme and what follows the last `@`,
 * never the user or password before it (`"smtp://***@mail.example:587"`).
 */
function describeCredentialUrl(value: string): string {
  const at = value.lastIndexOf('@');
  if (at < 0) return JSON.stringify(value);
  const scheme = /^[A-Za-z][A-Za-z0-9+.-]*:\/\//.exec(value)?.[0] ?? '';
  return JSON.stringify(`${scheme}***${value.slice(at)}`);
}

/** `smtp://[user[:password]@]host[:port]` or `smtps://...` (TLS from the first byte), as nodemailer takes it. */
const smtpUrlSchema = z.string().superRefine((value, ctx) => {
  let url: URL | undefined;
  try {
    url = new URL(value);
  } catch {
    url = undefined;
  }
  if (!url || !/^smtps?:$/.test(url.protocol) || url.hostname === '') {
    // The value is a credential (smtp is a secret key): the message shows its shape, never the user or password.
    const reason = url && url.hostname !== '' ? '' : ' (a password with "/", "@", "?" or "#" must be percent-encoded, or given as password:)';
    ctx.addIssue({ code: 'custom', input: value, message: `expected smtp://[user[:password]@]host[:port] or smtps://...; got ${describeCredentialUrl(value)}${reason}` });
  }
});

/** `billing@example.com` or `Example Billing <billing@example.com>`: the bare address, or undefined. */
export function fromAddressOf(value: string): string | undefined {
  const match = /^\s*(?:[^<>]*<\s*([^<>\s@]+@[^<>\s@]+\.[^<>\s@]+)\s*>|([^<>\s@"]+@[^<>\s@]+\.[^<>\s@]+))\s*$/.exec(value);
  return match ? (match[1] ?? match[2]) : undefined;
}

/** A subject or body template: its placeholders must all be known (templateProblems). */
function linkEmailTemplate() {
  return z.string().superRefine((value, ctx) => {
    for (const message of templateProblems(value)) ctx.addIssue({ code: 'custom', input: value, message });
  });
}

/**
 * `notifications.email`: the SMTP server and the message that carries a
 * payment link to the customer (plans opt in with `emailLinks: true`).
 */
const linkEmailSchema = z
  .strictObject({
    /** `smtp://user:password@host:587` (STARTTLS when offered) or `smtps://...:465`; `${SMTP_PASSWORD}` expands like any secret. */
    smtp: smtpUrlSchema,
    /** The SMTP password, when it is not in the URL (any characters, no percent-encoding). */
    password: text().optional(),
    from: z.string().refine((value) => fromAddressOf(value) !== undefined, {
      error: (issue) => `expected an address such as billing@example.com or "Example Billing <billing@example.com>"; got ${describeValue(issue.input)}`,
    }),
    subject: linkEmailTemplate().default(DEFAULT_LINK_EMAIL_SUBJECT),
    /** The plain-text body, inline or from a file with `${file:./link-email.txt}`. */
    template: linkEmailTemplate().default(DEFAULT_LINK_EMAIL_TEMPLATE),
    retrySchedule: z.array(isoDuration(false)).min(1).default([...DEFAULT_LINK_EMAIL_RETRY_SCHEDULE]),
    /** After this long from the link, an e-mail that still could not be sent is `failed`. */
    maxAgeHours: positiveNumber().default(72),
    /** Connect, greeting and idle-socket timeout of one SMTP conversation. */
    timeoutSeconds: wholeNumber(1, 600).default(30),
  })
  .superRefine((email, ctx) => {
    const { smtp, password } = email as Record<string, unknown>;
    if (typeof smtp !== 'string' || typeof password !== 'string') return;
    try {
      const url = new URL(smtp);
      // An smtp value that is no SMTP URL is reported on smtp alone.
      if (/^smtps?:$/.test(url.protocol) && url.password !== '') ctx.addIssue({ code: 'custom', input: undefined, path: ['password'], message: 'the smtp URL has a password already; give it in one place' });
    } catch {
      // An unparsable URL is reported on smtp.
    }
  }, { when: () => true })
  .transform((email) => ({ ...email, fromAddress: fromAddressOf(email.from)! }));

const notificationsSchema = z.strictObject({
  email: linkEmailSchema.optional(),
});

/**
 * Why a plan (or an inline schedule) may not opt in to link e-mails: only a
 * link has something to e-mail, and only a configured SMTP server can send it.
 * One rule for the config's plans and for API / CSV subscriptions.
 */
export function linkEmailProblems(emailLinks: unknown, mode: unknown, emailConfigured: boolean): SubscriptionProblem[] {
  if (emailLinks !== true) return [];
  const problems: SubscriptionProblem[] = [];
  if (mode !== 'link') problems.push({ path: ['emailLinks'], message: `only applies to mode: link (an e-mailed payment link); got mode: ${typeof mode === 'string' ? mode : 'charge'}` });
  if (!emailConfigured) problems.push({ path: ['emailLinks'], message: 'needs notifications.email (the SMTP server that sends the links); configure it or remove emailLinks' });
  return problems;
}

// ---------------------------------------------------------------------------
// Subscriptions

const customerSchema = z.strictObject({
  id: text().optional(),
  email: z.email().optional(),
  phone: text().optional(),
  firstName: text().optional(),
  lastName: text().optional(),
});

/** Integrator-owned string pairs, at most 50 keys (SPEC section 5). */
/** Metadata limits (Stripe's): keys 1..40 characters, values up to 500. */
export const METADATA_KEY_MAX = 40;
export const METADATA_VALUE_MAX = 500;

const metadataKey = z
  .string()
  .min(1, { error: 'a metadata key must not be empty' })
  .max(METADATA_KEY_MAX, { error: (issue) => `a metadata key has at most ${METADATA_KEY_MAX} characters; got ${String(issue.input).length}` });

function metadataValue(expected: string) {
  return z
    .string({ error: (issue) => `expected ${expected}; got ${describeValue(issue.input, issue.path)}` })
    .max(METADATA_VALUE_MAX, { error: (issue) => `at most ${METADATA_VALUE_MAX} characters; got ${String(issue.input).length}` });
}

export const metadataSchema = z
  .record(metadataKey, metadataValue('a string (quote numbers and booleans)'))
  .refine((metadata) => Object.keys(metadata).length <= 50, {
    error: (issue) => `at most 50 keys; got ${Object.keys(issue.input as object).length}`,
  });

function subscriptionFields<T extends z.ZodType>(startDate: T) {
  return {
    id: identifier(),
    planId: text(),
    /** Required when the plan's mode is charge; checked against the plan by the file's schema. */
    paymentToken: text().nullable().default(null),
    startDate,
    endDate: localDateSchema.nullable().default(null),
    sendOnHour: wholeNumber(0, 23).nullable().default(null),
    timezone: timeZoneSchema.nullable().default(null),
    externalId: text().nullable().default(null),
    source: text().nullable().default(null),
    customer: customerSchema.nullable().default(null),
    metadata: metadataSchema.default({}),
  };
}

/**
 * True for a real calendar date written yyyy-MM-dd, in range or not: "" or
 * "2030-02-30" is not before anything (its own problem says why), while an
 * out-of-range date still gets the ordering check (the range does not hide it).
 */
function isCalendarDate(value: unknown): value is string {
  return typeof value === 'string' && /^\d{4}-\d{2}-\d{2}$/.test(value) && DateTime.fromISO(value, { zone: 'utc' }).isValid;
}

function endNotBeforeStart(sub: unknown, ctx: z.core.$RefinementCtx<unknown>): void {
  if (!isPlainObject(sub)) return; // reported as the wrong type
  const { startDate, endDate } = sub;
  // yyyy-MM-dd strings compare correctly as text; the calendar checks (luxon) only when both are given and out of order.
  if (typeof startDate === 'string' && typeof endDate === 'string' && endDate < startDate && isCalendarDate(startDate) && isCalendarDate(endDate)) {
    ctx.addIssue({ code: 'custom', input: endDate, path: ['endDate'], message: `must not be before startDate (${startDate}); got "${endDate}"` });
  }
}

/** A subscription in the config's `subscriptions:` seed list. */
export const seedSubscriptionSchema = z
  .strictObject(subscriptionFields(localDateSchema))
  .superRefine(endNotBeforeStart, { when: () => true });

/** The config's seed list; load.ts validates it with this a slice at a time (seedListChecks for the rules across seeds). */
export const seedListSchema = z.array(seedSubscriptionSchema);

/** A subscription in a scenario file: startDate defaults to the scenario's start date. */
export const scenarioSubscriptionSchema = z
  .strictObject(subscriptionFields(localDateSchema.optional()))
  .superRefine(endNotBeforeStart, { when: () => true });

// ---------------------------------------------------------------------------
// A subscription as an integrator gives it (API body, CSV line)

/** The plan fields a subscription may carry inline instead of a `planId` (SPEC section 5). */
export const INLINE_PLAN_KEYS = ['description', 'amount', 'currency', 'every', 'sendEvery', 'monthEnd', 'mode', 'gateway', 'trial', 'maxCycles', 'emailLinks'] as const;

const inlineShape = planFieldsSchema.shape;

/**
 * `POST /v1/subscriptions` (and, later, a CSV line): section 5's fields, on a
 * plan (`planId`) or with the schedule inline (`amount`, `currency`, `every`
 * or `sendEvery`, ...). The shape is checked here; whether the plan, gateway
 * and token fit together is the catalog's business (subscriptionProblems),
 * since only the running config knows its plans.
 */
export const subscriptionInputSchema = z
  .strictObject({
    ...subscriptionFields(localDateSchema.optional()),
    id: identifier().optional(),
    planId: text().optional(),
    customerId: text().optional(),
    description: inlineShape.description.unwrap().unwrap().nullable().optional(),
    amount: inlineShape.amount.optional(),
    currency: inlineShape.currency.optional(),
    every: intervalSchema.optional(),
    /** The payment-link providers' name for `every` (`THREE_MONTHS`). */
    sendEvery: intervalSchema.optional(),
    monthEnd: inlineShape.monthEnd.unwrap().optional(),
    mode: inlineShape.mode.unwrap().optional(),
    gateway: text().optional(),
    trial: inlineShape.trial.unwrap().unwrap().nullable().optional(),
    maxCycles: inlineShape.maxCycles.unwrap().unwrap().nullable().optional(),
    /** Link mode: rebill e-mails each payment link to the customer (needs notifications.email). */
    emailLinks: inlineShape.emailLinks.unwrap().optional(),
  })
  .superRefine((sub, ctx) => {
    // A body that is no object (or none at all) is reported as the wrong type; there is nothing to cross-check.
    if (!isPlainObject(sub)) return;
    endNotBeforeStart(sub, ctx);
    const raw: Record<string, unknown> = sub;
    if (raw.customerId !== undefined && raw.customer !== undefined && raw.customer !== null) {
      ctx.addIssue({ code: 'custom', input: raw.customer, path: ['customer'], message: 'give customer or customerId, not both (customerId names an existing customer)' });
    }
    const inline = INLINE_PLAN_KEYS.filter((key) => raw[key] !== undefined);
    if (raw.every !== undefined && raw.sendEvery !== undefined) {
      ctx.addIssue({ code: 'custom', input: raw.sendEvery, path: ['sendEvery'], message: 'give every or sendEvery, not both' });
    }
    if (raw.planId !== undefined) {
      for (const key of inline) {
        ctx.addIssue({ code: 'custom', input: raw[key], path: [key], message: `not allowed with planId: the plan "${String(raw.planId)}" decides it (leave out planId to give the schedule inline)` });
      }
      return;
    }
    const missing = (['amount', 'currency'] as const).filter((key) => raw[key] === undefined);
    if (raw.every === undefined && raw.sendEvery === undefined) missing.push('every' as never);
    if (inline.length === 0) {
      ctx.addIssue({ code: 'custom', input: undefined, path: ['planId'], message: 'required (or give the schedule inline: amount, currency, every)' });
      return;
    }
    for (const key of missing) ctx.addIssue({ code: 'custom', input: undefined, path: [key], message: 'required for an inline schedule (or give a planId)' });
    if (typeof raw.amount === 'string' && typeof raw.currency === 'string' && currencyExponent(raw.currency.trim()) !== undefined) {
      try {
        parseAmount(raw.amount, raw.currency, { allowZero: typeof raw.trial === 'string' });
      } catch (err) {
        if (!(err instanceof MoneyError)) throw err;
        const zeroHint = /greater than zero/.test(err.message) ? ' (zero is allowed only with a trial)' : '';
        ctx.addIssue({ code: 'custom', input: raw.amount, path: ['amount'], message: err.message.replace(/^amount /, '') + zeroHint });
      }
    }
  }, { when: () => true });

/** A validated subscription input (see subscriptionInputSchema). */
export type SubscriptionInput = z.output<typeof subscriptionInputSchema>;

/** The inline plan of an input without a planId, as a plan (money parsed, version hashed); null for an input on a plan. */
export function inlinePlanOf(input: SubscriptionInput): Omit<PlanConfig, 'gateway' | 'id'> & { gateway: string | null } | null {
  if (input.planId !== undefined) return null;
  const money = parseAmount(input.amount!, input.currency!, { allowZero: input.trial != null });
  const fields = {
    description: input.description ?? null,
    amount: formatAmount(money),
    amountMinor: money.amountMinor,
    currency: money.currency,
    every: (input.every ?? input.sendEvery)!,
    sendOnHour: input.sendOnHour ?? 0,
    timezone: input.timezone ?? 'UTC',
    monthEnd: input.monthEnd ?? 'clamp',
    mode: input.mode ?? 'charge',
    gateway: input.gateway ?? null,
    trial: input.trial ?? null,
    maxCycles: input.maxCycles ?? null,
    endDate: null,
    backfill: false,
    emailLinks: input.emailLinks ?? false,
  };
  return { ...fields, version: planVersion(fields) };
}

/**
 * `PATCH /v1/subscriptions/{id}`: a card update (`paymentToken`), metadata
 * (keys merged; null removes one) and the customer's contact details.
 */
export const subscriptionPatchSchema = z
  .strictObject({
    paymentToken: text().optional(),
    metadata: z.record(metadataKey, metadataValue('a string, or null to remove the key').nullable()).optional(),
    customer: customerSchema.omit({ id: true }).optional(),
  })
  // Only for a patch that is otherwise valid: `{"planId": ...}` is one unknown key, not also "nothing to change".
  .refine((patch) => Object.values(patch).some((v) => v !== undefined), { error: 'nothing to change: give paymentToken, metadata or customer', when: (payload) => payload.issues.length === 0 });

/** `POST /v1/subscriptions/{id}/pause`: both dates in the subscription's time zone; no pauseDate pauses now. */
export const pauseInputSchema = z
  .strictObject({ pauseDate: localDateSchema.optional(), resumeDate: localDateSchema.optional() })
  .superRefine((body, ctx) => {
    if (typeof body.pauseDate === 'string' && typeof body.resumeDate === 'string' && body.resumeDate <= body.pauseDate) {
      ctx.addIssue({ code: 'custom', input: body.resumeDate, path: ['resumeDate'], message: `must be after pauseDate (${body.pauseDate})` });
    }
  });

/** `POST /v1/subscriptions/{id}/cancel`: now (terminated) or at the end of the current period (stopped). */
export const cancelInputSchema = z.strictObject({ atPeriodEnd: z.boolean().default(false) });

/** A body-less action (`/resume`, `/retry`): an empty object, or no body. */
export const emptyInputSchema = z.strictObject({});

/** A problem with a subscription against the plans and gateways it names, at a key path inside the subscription. */
export interface SubscriptionProblem {
  readonly path: readonly PathSegment[];
  readonly message: string;
}

/**
 * The rules that tie a subscription to its plan and gateway, for the config's
 * seed list and the API alike: the plan exists, and charge mode has a token.
 */
export function planReferenceProblems(
  sub: { readonly planId?: unknown; readonly paymentToken?: unknown },
  plans: ReadonlyMap<string, { readonly mode?: unknown }>,
): SubscriptionProblem[] {
  if (typeof sub.planId !== 'string') return [];
  const plan = plans.get(sub.planId);
  if (!plan) {
    const known = [...plans.keys()].join(', ') || 'none';
    return [{ path: ['planId'], message: `unknown plan "${sub.planId}"; defined: ${known}` }];
  }
  return tokenProblems(sub.paymentToken, plan.mode ?? 'charge', `plan "${sub.planId}" uses mode charge`);
}

/** Charge mode needs a payment token (link mode sends the customer a link instead). */
export function tokenProblems(paymentToken: unknown, mode: unknown, why: string): SubscriptionProblem[] {
  return mode === 'charge' && (paymentToken === null || paymentToken === undefined) ? [{ path: ['paymentToken'], message: `required: ${why}` }] : [];
}

/** An inline schedule's gateway: the named one, or the only one configured. */
export function inlineGatewayProblems(gateway: string | null, gatewayNames: readonly string[]): SubscriptionProblem[] {
  if (gateway !== null) {
    return gatewayNames.includes(gateway) ? [] : [{ path: ['gateway'], message: `unknown gateway "${gateway}"; configured: ${gatewayNames.join(', ') || 'none'}` }];
  }
  return gatewayNames.length === 1 ? [] : [{ path: ['gateway'], message: `required when more than one gateway is configured (${gatewayNames.join(', ')})` }];
}

// ---------------------------------------------------------------------------
// Cross-field rules shared by the config and scenario files

type Ctx = z.core.$RefinementCtx<unknown>;

function records(value: unknown): Array<Record<string, unknown> | undefined> {
  return Array.isArray(value) ? value.map((v) => (isPlainObject(v) ? v : undefined)) : [];
}

/**
 * Duplicate ids in a list are reported at each repeat, naming the first.
 * `list` may be a slice starting at index `from`, `seen` the ids of the slices before it.
 */
function checkUniqueIds(list: unknown, section: string, what: string, ctx: Pick<Ctx, 'addIssue'>, seen = new Map<string, number>(), from = 0): void {
  records(list).forEach((item, k) => {
    const id = item?.id;
    if (typeof id !== 'string') return;
    const i = from + k;
    const first = seen.get(id);
    if (first === undefined) seen.set(id, i);
    else ctx.addIssue({ code: 'custom', input: id, path: [section, i, 'id'], message: `duplicate ${what} id "${id}" (also ${section}[${first}])` });
  });
}

function checkBilling(root: Record<string, unknown>, ctx: Ctx): void {
  const gateways = isPlainObject(root.gateways) ? root.gateways : undefined;
  const gatewayNames = gateways ? Object.keys(gateways) : [];
  checkUniqueIds(root.plans, 'plans', 'plan', ctx);

  // Every plan must reach a gateway; naming one is optional only when there is exactly one.
  if (gateways && gatewayNames.length === 0) {
    records(root.plans).forEach((plan, i) => {
      if (!plan) return;
      ctx.addIssue({
        code: 'custom',
        input: plan.gateway,
        path: ['plans', i, 'gateway'],
        message:
          'no gateway to charge through: none is configured and there is no implicit simulator ' +
          '(add a gateways: section and name one here; gateways: { sim: { type: simulator } } for a setup where no money moves)',
      });
    });
  } else if (gateways) {
    records(root.plans).forEach((plan, i) => {
      if (!plan) return;
      const gateway = plan.gateway;
      if (typeof gateway === 'string' && !gatewayNames.includes(gateway)) {
        ctx.addIssue({
          code: 'custom',
          input: gateway,
          path: ['plans', i, 'gateway'],
          message: `unknown gateway "${gateway}"; configured: ${gatewayNames.join(', ') || 'none'}`,
        });
      } else if ((gateway === null || gateway === undefined) && gatewayNames.length > 1) {
        ctx.addIssue({
          code: 'custom',
          input: gateway,
          path: ['plans', i, 'gateway'],
          message: `required when more than one gateway is configured (${gatewayNames.join(', ')})`,
        });
      }
    });
  }

  // A lease that expires while a gateway call may still be running lets another
  // sweep claim the same cycle: the attempt would be recovered as unknown while
  // the first call can still capture. Keep the lease longer than any timeout.
  const scheduler = isPlainObject(root.scheduler) ? root.scheduler : undefined;
  const lease = scheduler?.leaseSeconds;
  if (gateways && typeof lease === 'number') {
    for (const [name, gateway] of Object.entries(gateways)) {
      const timeout = isPlainObject(gateway) ? gateway.timeoutSeconds : undefined;
      if (typeof timeout === 'number' && lease <= timeout) {
        ctx.addIssue({
          code: 'custom',
          input: lease,
          path: ['scheduler', 'leaseSeconds'],
          message: `must be greater than gateways.${name}.timeoutSeconds (leaseSeconds ${lease} <= timeoutSeconds ${timeout}), or a charge still waiting on the gateway could be claimed again`,
          // When leaseSeconds is the default, point at the timeout that conflicts with it.
          params: { fallback: ['gateways', name, 'timeoutSeconds'] },
        });
      }
    }
  }
}

function checkSubscriptions(root: Record<string, unknown>, ctx: Ctx): void {
  seedListChecks(root.plans).check(root.subscriptions, 0, ctx);
}

/**
 * The rules across a seed list (unique ids, each seed's plan and token against
 * the file's plans, `plans` as written), for the whole list at once or a
 * slice at a time in order (`from`: the slice's first index): only the ids
 * seen so far are kept between slices.
 */
export function seedListChecks(plans: unknown): { check(list: unknown, from: number, ctx: Pick<Ctx, 'addIssue'>): void } {
  const byId = new Map<string, Record<string, unknown>>();
  for (const plan of records(plans)) if (plan && typeof plan.id === 'string' && !byId.has(plan.id)) byId.set(plan.id, plan);
  const seen = new Map<string, number>();
  return {
    check(list, from, ctx) {
      checkUniqueIds(list, 'subscriptions', 'subscription', ctx, seen, from);
      records(list).forEach((sub, k) => {
        if (!sub) return;
        for (const problem of planReferenceProblems(sub, byId)) {
          ctx.addIssue({ code: 'custom', input: (sub as Record<string, unknown>)[String(problem.path[0])], path: ['subscriptions', from + k, ...problem.path], message: problem.message });
        }
      });
    },
  };
}

/** Plans that opt in to link e-mails are link-mode plans, and notifications.email is configured (linkEmailProblems). */
function checkLinkEmails(root: Record<string, unknown>, ctx: Ctx): void {
  const notifications = isPlainObject(root.notifications) ? root.notifications : undefined;
  // A present but invalid email section is reported where it is wrong, not here as missing.
  const configured = notifications !== undefined && notifications.email !== undefined && notifications.email !== null;
  records(root.plans).forEach((plan, i) => {
    if (!plan) return;
    for (const problem of linkEmailProblems(plan.emailLinks, plan.mode ?? 'charge', configured)) {
      ctx.addIssue({ code: 'custom', input: plan.emailLinks, path: ['plans', i, ...problem.path], message: problem.message });
    }
  });
}

/** Fills each plan's gateway with the only configured one when it was not named (checked above). */
function resolvePlanGateways<P extends { gateway: string | null }>(
  plans: P[],
  gateways: Record<string, unknown>,
): Array<Omit<P, 'gateway'> & { gateway: string }> {
  const only = Object.keys(gateways)[0]!;
  return plans.map((plan) => ({ ...plan, gateway: plan.gateway ?? only }));
}

const always = { when: () => true };

// ---------------------------------------------------------------------------
// Files

/** The sections a config and a scenario share. */
const billingSections = {
  scheduler: schedulerSchema.prefault({}),
  retry: retrySchema.prefault({}),
  plans: z.array(planSchema).min(1, { error: 'at least one plan is required' }),
};

/** The daemon's configuration file (SPEC section 4). */
export const configSchema = z
  .strictObject({
    database: databaseSchema.prefault({}),
    http: httpSchema.prefault({}),
    ...billingSections,
    // No implicit gateway: without the section every plan is refused (checkBilling).
    gateways: gatewaysSchema.default({}),
    webhooks: z.array(webhookSchema).default([]),
    notifications: notificationsSchema.prefault({}),
    logging: loggingSchema.prefault({}),
    subscriptions: seedListSchema.default([]),
  })
  .superRefine((root, ctx) => {
    checkBilling(root, ctx);
    checkSubscriptions(root, ctx);
    checkLinkEmails(root, ctx);
  }, always)
  .transform((config) => ({ ...config, plans: resolvePlanGateways(config.plans, config.gateways) }));

const actionSchema = z
  .strictObject({
    at: instantSchema,
    subscriptionId: text(),
    do: z.enum(['pause', 'resume', 'cancel']),
    /** cancel only: stop at the end of the current period instead of now. */
    atPeriodEnd: flag().optional(),
    /** pause only: resume automatically on this local date. */
    resumeDate: localDateSchema.optional(),
  })
  .superRefine((action, ctx) => {
    const { do: verb, atPeriodEnd, resumeDate } = action as Record<string, unknown>;
    if (atPeriodEnd !== undefined && verb !== 'cancel') {
      ctx.addIssue({ code: 'custom', input: atPeriodEnd, path: ['atPeriodEnd'], message: `only applies to do: cancel; got do: ${describeValue(verb)}` });
    }
    if (resumeDate !== undefined && verb !== 'pause') {
      ctx.addIssue({ code: 'custom', input: resumeDate, path: ['resumeDate'], message: `only applies to do: pause; got do: ${describeValue(verb)}` });
    }
  }, always)
  .transform(({ at, ...rest }) => ({ ...rest, at: at.text, atMs: at.ms }));

/** A `rebill simulate` scenario file (SPEC section 10). */
export const scenarioSchema = z
  .strictObject({
    start: instantSchema,
    until: instantSchema,
    ...billingSections,
    gateways: gatewaysSchema.prefault(DEFAULT_GATEWAYS),
    subscriptions: z.array(scenarioSubscriptionSchema).default([]),
    actions: z.array(actionSchema).default([]),
  })
  .superRefine((root, ctx) => {
    checkBilling(root, ctx);
    checkSubscriptions(root, ctx);
    const start = isPlainObject(root.start) && typeof root.start.ms === 'number' ? root.start.ms : undefined;
    const until = isPlainObject(root.until) && typeof root.until.ms === 'number' ? root.until.ms : undefined;
    const ordered = start !== undefined && until !== undefined && until > start;
    if (start !== undefined && until !== undefined && !ordered) {
      ctx.addIssue({ code: 'custom', input: root.until, path: ['until'], message: `must be after start (${String((root.start as { text: unknown }).text)})` });
    }
    const subscriptionIds = new Set(records(root.subscriptions).map((s) => s?.id));
    records(root.actions).forEach((action, i) => {
      if (!action) return;
      if (typeof action.subscriptionId === 'string' && !subscriptionIds.has(action.subscriptionId)) {
        ctx.addIssue({ code: 'custom', input: action.subscriptionId, path: ['actions', i, 'subscriptionId'], message: `unknown subscription "${action.subscriptionId}"` });
      }
      const at = typeof action.atMs === 'number' ? action.atMs : isPlainObject(action.at) && typeof action.at.ms === 'number' ? action.at.ms : undefined;
      if (at !== undefined && ordered && (at < start! || at > until!)) {
        ctx.addIssue({ code: 'custom', input: action.at, path: ['actions', i, 'at'], message: 'must be between start and until, or it would never run' });
      }
    });
  }, always)
  .transform(({ start, until, subscriptions, ...rest }) => {
    // A scenario subscription without a startDate starts on the scenario's first (UTC) day.
    const startDate = DateTime.fromMillis(start.ms, { zone: 'utc' }).toISODate()!;
    return {
      ...rest,
      start: start.text,
      startMs: start.ms,
      until: until.text,
      untilMs: until.ms,
      plans: resolvePlanGateways(rest.plans, rest.gateways),
      subscriptions: subscriptions.map((sub) => ({ ...sub, startDate: sub.startDate ?? startDate })),
    };
  });

// ---------------------------------------------------------------------------
// Types (all derived from the schemas)

/** A validated, defaults-applied configuration; its seeds are read back a slice at a time (SeedList). */
export type Config = Omit<z.output<typeof configSchema>, 'subscriptions'> & { readonly subscriptions: SeedList };
/** A plan with its money parsed, its gateway resolved and its version hash. */
export type PlanConfig = Config['plans'][number];
/** One configured gateway. */
export type GatewayConfig = z.output<typeof gatewaySchema>;
/** A subscription from the config's seed list. */
export type SeedSubscription = z.output<typeof seedSubscriptionSchema>;
/** The retry policy with its delays resolved. */
export type RetryConfig = z.output<typeof retrySchema>;
/** Sweep, queue and lease settings. */
export type SchedulerConfig = z.output<typeof schedulerSchema>;
/** Database connection settings. */
export type DatabaseConfig = Config['database'];
/** HTTP listener and admin tokens. */
export type HttpConfig = Config['http'];
/** One outgoing webhook endpoint. */
export type WebhookConfig = Config['webhooks'][number];
/** The SMTP server and message of payment-link e-mails (`notifications.email`). */
export type LinkEmailConfig = z.output<typeof linkEmailSchema>;
/** A validated simulate scenario. */
export type Scenario = z.output<typeof scenarioSchema>;
/** A subscription in a scenario, startDate resolved. */
export type ScenarioSubscription = Scenario['subscriptions'][number];
/** A scheduled pause/resume/cancel in a scenario. */
export type ScenarioAction = Scenario['actions'][number];
