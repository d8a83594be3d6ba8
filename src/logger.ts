/**
 * The structured logger: pino, JSON lines to stdout (or a given stream), one
 * event per line. Card tokens, API keys, secrets, passwords and bearer tokens
 * are masked at any depth and in any letter case: pino's own `redact` has no
 * recursive wildcard, so a `log` formatter walks the logged object instead.
 */
import { pino, type Logger, type DestinationStream } from 'pino';

/** Keys (compared case-insensitively) whose values never reach a log line. */
export const SECRET_KEYS: ReadonlySet<string> = new Set([
  'paymenttoken',
  'apikey',
  'secret',
  'callbacksecret',
  'token',
  'authorization',
  'password',
  'cookie',
  // An SMTP connection URL (`smtp://user:password@host`) is a credential as a whole.
  'smtp',
]);

/**
 * True when a key names a secret, compared case-insensitively: one of
 * SECRET_KEYS, or any key ending in token, secret, password or apikey
 * (`webhookSecret`, `adminToken`). Shared by the logger and by config
 * messages, which never show such a key's value (SPEC: secrets never appear
 * in logs or messages).
 */
export function isSecretKey(key: string): boolean {
  // Every log line asks about the same few keys: remember the answers (bounded).
  let secret = secretKeys.get(key);
  if (secret === undefined) {
    const lower = key.toLowerCase();
    secret = SECRET_KEYS.has(lower) || /(token|secret|password|apikey)$/.test(lower);
    if (secretKeys.size >= 10_000) secretKeys.clear();
    secretKeys.set(key, secret);
  }
  return secret;
}

const secretKeys = new Map<string, boolean>();

const CENSOR = '[redacted]';
const MAX_DEPTH = 12;

/** `scheme://user:password@`: the password part of a URL's userinfo. */
const URL_PASSWORD = /(\b[a-z][a-z0-9+.-]*:\/\/[^\s:@/?#]*):[^\s@/?#]*@/gi;

/**
 * `text` with the password of every URL in it masked
 * (`smtp://billing:[redacted]@mail.example:587`). A URL under a key that is not
 * secret-named (`notifications.email.smtp`, `database.url`) still carries a
 * password; the logger applies this to every string it logs, and messages
 * that quote such a URL apply it themselves.
 */
export function redactUrlPasswords(text: string): string {
  return text.includes('://') ? text.replace(URL_PASSWORD, `$1:${CENSOR}@`) : text;
}

/** A copy of `value` with every secret-named key and every URL password masked; plain objects and arrays only. */
export function redactSecrets(value: unknown, depth = 0): unknown {
  if (typeof value === 'string') return redactUrlPasswords(value);
  if (depth > MAX_DEPTH || value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) return value.map((v) => redactSecrets(v, depth + 1));
  const proto = Object.getPrototypeOf(value) as unknown;
  // Errors and class instances are serialised by pino's own serializers; only walk plain data.
  if (proto !== Object.prototype && proto !== null) return value;
  // Most lines hold neither a secret nor nested data: those are logged as they are, without a copy.
  let plain = true;
  for (const key in value) {
    const v = (value as Record<string, unknown>)[key];
    if ((v !== null && typeof v === 'object') || (isSecretKey(key) && v !== undefined && v !== null)) {
      plain = false;
      break;
    }
  }
  if (plain) return value;
  const out: Record<string, unknown> = {};
  for (const [key, v] of Object.entries(value as Record<string, unknown>)) {
    out[key] = isSecretKey(key) && v !== null && v !== undefined ? CENSOR : redactSecrets(v, depth + 1);
  }
  return out;
}

export interface LoggerOptions {
  readonly level?: string;
  /** Where lines go; default stdout. */
  readonly destination?: DestinationStream;
}

/** Creates the daemon's logger with redaction on. */
export function createLogger(options: LoggerOptions = {}): Logger {
  return pino(
    {
      name: 'rebill',
      level: options.level ?? 'info',
      formatters: { log: (object) => redactSecrets(object) as Record<string, unknown> },
      base: { pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    options.destination ?? pino.destination({ dest: 1, sync: false }),
  );
}
