/**
 * Simulator card tokens (SPEC section 7): the token names a behaviour, so a
 * scenario file or an e2e test can script a gateway without a gateway.
 *
 * Two kinds of behaviour live in a token and are kept apart here:
 * - the issuer's decision for an attempt (approve, decline with a code, leave
 *   pending), a pure function of the token and the attempt number;
 * - the transport (answer slowly, lose the answer, fail with a 500), which
 *   the in-process simulator and the fake CoolPay server each act out in their
 *   own medium.
 * Both read the same table, so `sim` and `rebill fake-gateway` agree.
 */
import { HARD_DECLINE_CODES } from './gateway.js';

/** What a token makes the simulated gateway do; see `parseToken`. */
export type TokenBehaviour =
  /** `tok_ok`. */
  | { readonly kind: 'approve' }
  /** `tok_insufficient`, `tok_stolen`, ...: the same decline on every attempt. */
  | { readonly kind: 'decline'; readonly code: string; readonly hard: boolean }
  /** `tok_flaky_N`: soft `do_not_honor` on attempts 1..N of each cycle, then approve. */
  | { readonly kind: 'flaky'; readonly failures: number }
  /** `tok_timeout`: approved and recorded, but the answer never reaches the caller (first send of a key only). */
  | { readonly kind: 'lose_response' }
  /** `tok_pending`: answered `pending`; a later status query (charge mode) finds it captured. */
  | { readonly kind: 'pending' }
  /** `tok_slow_MS`: approved after `delayMs` milliseconds. */
  | { readonly kind: 'slow'; readonly delayMs: number }
  /** `tok_5xx`: every send answers 500; nothing is recorded, so status says `not_found`. */
  | { readonly kind: 'server_error' }
  /** No token at all (charge mode: a hard `invalid_card_number`; link mode: the customer pays). */
  | { readonly kind: 'missing' }
  /**
   * Any token not in the table (a real card token, `tok_visa_4242`, a malformed `tok_flaky_x`):
   * a hard `unknown_test_token` decline, so a real token sent here by mistake is never marked paid.
   */
  | { readonly kind: 'unknown' };

/** The issuer's decision on one attempt, independent of how the answer travels. */
export type IssuerDecision =
  | { readonly kind: 'approve' }
  | { readonly kind: 'decline'; readonly code: string; readonly hard: boolean }
  | { readonly kind: 'pending' };

/** Fixed-decline tokens and the code each one declines with. */
const DECLINE_TOKENS: ReadonlyMap<string, string> = new Map([
  ['tok_insufficient', 'insufficient_funds'],
  ['tok_do_not_honor', 'do_not_honor'],
  ['tok_stolen', 'stolen_card'],
  ['tok_lost', 'lost_card'],
  ['tok_closed', 'closed_account'],
]);

const FLAKY = /^tok_flaky_(\d{1,6})$/;
const SLOW = /^tok_slow_(\d{1,7})$/;

/** The decline code of a token the simulator does not know (SPEC section 7); hard, see HARD_DECLINE_CODES. */
export const UNKNOWN_TEST_TOKEN = 'unknown_test_token';

/** Reads a token's behaviour. Malformed variants (`tok_flaky_x`) fall under "any other token": `unknown`. */
export function parseToken(token: string | null | undefined): TokenBehaviour {
  if (token === null || token === undefined || token.trim() === '') return { kind: 'missing' };
  const declineCode = DECLINE_TOKENS.get(token);
  if (declineCode !== undefined) return decline(declineCode);
  switch (token) {
    case 'tok_ok':
      return { kind: 'approve' };
    case 'tok_timeout':
      return { kind: 'lose_response' };
    case 'tok_pending':
      return { kind: 'pending' };
    case 'tok_5xx':
      return { kind: 'server_error' };
  }
  const flaky = FLAKY.exec(token);
  if (flaky) return { kind: 'flaky', failures: Number(flaky[1]) };
  const slow = SLOW.exec(token);
  if (slow) return { kind: 'slow', delayMs: Number(slow[1]) };
  return { kind: 'unknown' };
}

/**
 * Charge mode: what the issuer decides for attempt `attempt` (1-based, per
 * cycle) of a stored token. Transport behaviours (slow, lost answer) approve;
 * `server_error` never reaches the issuer, so callers handle it first.
 */
export function chargeDecision(behaviour: TokenBehaviour, attempt: number): IssuerDecision {
  switch (behaviour.kind) {
    case 'approve':
    case 'lose_response':
    case 'slow':
    case 'server_error':
      return { kind: 'approve' };
    case 'decline':
      return behaviour;
    case 'flaky':
      return attempt <= behaviour.failures ? decline('do_not_honor') : { kind: 'approve' };
    case 'pending':
      return { kind: 'pending' };
    case 'missing':
      return decline('invalid_card_number');
    case 'unknown':
      return decline(UNKNOWN_TEST_TOKEN);
  }
}

/**
 * Link mode: what becomes of a payment link once the customer acts on it.
 * The customer types the card in the payment window, so a missing stored
 * token means nothing here (paid), transport tokens pay too, declining tokens
 * leave the link unpaid with their code, and `tok_pending` stays pending.
 */
export function linkDecision(behaviour: TokenBehaviour, attempt: number): IssuerDecision {
  switch (behaviour.kind) {
    case 'missing':
      return { kind: 'approve' };
    default:
      return chargeDecision(behaviour, attempt);
  }
}

/**
 * The attempt number inside an idempotency key / CoolPay order_id
 * (`<subscriptionId>:<cycle>:<attempt>`): its last segment. Anything else
 * counts as attempt 1, so a foreign order_id still gets a deterministic answer.
 */
export function attemptFromOrderId(orderId: string): number {
  const last = orderId.slice(orderId.lastIndexOf(':') + 1);
  const n = Number(last);
  return /^\d+$/.test(last) && Number.isSafeInteger(n) && n >= 1 ? n : 1;
}

function decline(code: string): IssuerDecision & { kind: 'decline' } {
  return { kind: 'decline', code, hard: HARD_DECLINE_CODES.has(code) };
}
