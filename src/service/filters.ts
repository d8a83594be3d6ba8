/**
 * Validation of the admin list filters, once for every caller: the CLI maps
 * a FilterError to exit code 2, the `/v1` API to problem+json with the
 * parameter named. Cursors are opaque to clients: base64url of the keyset
 * position of a page's last row.
 */
import { DateTime } from 'luxon';
import { RebillError } from '../errors.js';
import type { Keyset } from '../store/index.js';
import type { SubscriptionStatus } from '../domain/index.js';

/** A bad filter value; `parameter` names it (`status`, `limit`, `cursor`, `since`, ...). */
export class FilterError extends RebillError {
  constructor(
    readonly parameter: string,
    message: string,
  ) {
    super('INVALID_FILTER', `${parameter}: ${message}`);
  }
}

export const SUBSCRIPTION_STATUSES: readonly SubscriptionStatus[] = ['active', 'paused', 'stopped', 'terminated'];
/** Attempt states, which are a charge's `status` (SPEC 9). */
export const CHARGE_STATUSES = ['in_flight', 'captured', 'rejected', 'pending', 'unknown'] as const;
export type ChargeStatus = (typeof CHARGE_STATUSES)[number];

export const DEFAULT_LIMIT = 100;
export const MAX_LIMIT = 500;

/** `limit`: a whole number 1..500 (absent: 100). */
export function parseLimit(value: number | string | undefined): number {
  if (value === undefined) return DEFAULT_LIMIT;
  const text = String(value);
  const n = Number(text);
  if (!/^\d+$/.test(text) || n < 1 || n > MAX_LIMIT) throw new FilterError('limit', `expected a whole number 1..${MAX_LIMIT}; got "${text}"`);
  return n;
}

/** One of `allowed`, or a FilterError naming them. */
export function parseEnum<T extends string>(parameter: string, value: string | undefined, allowed: readonly T[]): T | undefined {
  if (value === undefined) return undefined;
  if (!(allowed as readonly string[]).includes(value)) throw new FilterError(parameter, `expected one of ${allowed.join(', ')}; got "${value}"`);
  return value as T;
}

/** A non-empty text filter (an empty one is a mistake, not "match everything"). */
export function parseText(parameter: string, value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  if (value.length === 0 || value.length > 500) throw new FilterError(parameter, 'expected 1..500 characters');
  return value;
}

/** An ISO-8601 instant with an offset or `Z` (a bare local time would depend on the reader's zone). */
export function parseInstant(parameter: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  // A time, then its zone: `2026-03-01` alone ends in "-01", which is no offset.
  const hasZone = /T[^Z+-]*(Z|[+-]\d{2}(:?\d{2})?)$/i.test(value);
  const parsed = DateTime.fromISO(value, { setZone: true });
  if (!hasZone || !parsed.isValid) throw new FilterError(parameter, `expected an ISO-8601 instant with a zone, e.g. 2025-01-31T10:00:00Z; got "${value}"`);
  return parsed.toMillis();
}

/** The cursor that resumes a list after `row`. */
export function encodeCursor(row: Keyset): string {
  return Buffer.from(JSON.stringify([row.createdAt, row.id]), 'utf8').toString('base64url');
}

/** Reads a cursor made by encodeCursor; anything else is a FilterError. */
export function decodeCursor(value: string | undefined): Keyset | undefined {
  if (value === undefined) return undefined;
  const bad = () => new FilterError('cursor', 'not a cursor returned by this list (pass nextCursor unchanged)');
  if (!/^[A-Za-z0-9_-]{1,1000}$/.test(value)) throw bad();
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(value, 'base64url').toString('utf8'));
  } catch {
    throw bad();
  }
  if (!Array.isArray(parsed) || parsed.length !== 2) throw bad();
  const [createdAt, id] = parsed as unknown[];
  if (typeof createdAt !== 'number' || !Number.isSafeInteger(createdAt) || typeof id !== 'string' || id.length === 0) throw bad();
  return { createdAt, id };
}
