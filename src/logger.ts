/**
 * The structured logger: pino, JSON lines to stdout (or stderr), one event per
 * line. Payment tokens, API keys, secrets and bearer tokens are redacted
 * wherever they appear in a logged object.
 */
import { pino, type Logger, type DestinationStream } from 'pino';

/** Field paths whose values never reach a log line. */
export const REDACT_PATHS = [
  'paymentToken',
  '*.paymentToken',
  '*.*.paymentToken',
  'apiKey',
  '*.apiKey',
  '*.*.apiKey',
  'secret',
  '*.secret',
  '*.*.secret',
  'token',
  '*.token',
  'tokens[*].token',
  '*.tokens[*].token',
  'authorization',
  '*.authorization',
  '*.headers.authorization',
  'password',
  '*.password',
];

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
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      base: { pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    options.destination ?? pino.destination({ dest: 1, sync: false }),
  );
}
