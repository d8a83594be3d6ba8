/**
 * The one small interface every payment gateway implements.
 *
 * A decline is a returned value; a timeout, a lost response or a 5xx is a
 * thrown GatewayUnavailableError. They are different facts: a decline is
 * known not to have charged, an unavailable gateway may or may not have, so
 * the engine records `unknown` and asks `status(key)` before any new attempt.
 */
import type { Money } from '../money/index.js';
import { RebillError } from '../errors.js';

/** What the engine asks a gateway to collect: one attempt of one cycle. */
export interface CollectRequest {
  /** `<subscriptionId>:<cycle>:<attempt>`; sent as CoolPay order_id / Idempotency-Key. */
  readonly idempotencyKey: string;
  readonly subscriptionId: string;
  readonly cycle: number;
  readonly attempt: number;
  readonly amount: Money;
  readonly description: string;
  /** Stored card/agreement token (charge mode); the simulator reads its behaviour from it. */
  readonly paymentToken: string | null;
  readonly customer: { readonly email?: string | null; readonly phone?: string | null };
}

/** The gateway's word on one idempotency key. */
export type GatewayResult =
  | { readonly kind: 'captured'; readonly externalId: string }
  | { readonly kind: 'declined'; readonly code: string; readonly hard: boolean; readonly externalId?: string }
  /** Accepted but not final (pending payment, or a payment link sent and not yet paid). */
  | { readonly kind: 'pending'; readonly externalId: string; readonly linkUrl?: string };

export type StatusResult = GatewayResult | { readonly kind: 'not_found' };

/**
 * What a gateway's callback (verified first) says about one of our
 * idempotency keys. Callbacks only speed things up: every one of these facts
 * is what a status query for the key would learn, later.
 */
export type CallbackReport =
  /** An answer the status query would give: captured, declined, or still pending. */
  | { readonly kind: 'result'; readonly key: string; readonly result: GatewayResult }
  /**
   * Something moved that only a call to the gateway can finish (a link
   * agreement the customer authorised is charged by status(key); an
   * authorisation is captured by it): the attempt's status query is due now.
   */
  | { readonly kind: 'ask'; readonly key: string }
  /** Nothing to act on (still processing, or an operation collection does not depend on). */
  | { readonly kind: 'none'; readonly key: string | null; readonly reason: string };

export interface Gateway {
  /** Config name of this gateway instance (`sim`, `coolpay`). */
  readonly name: string;
  /** Charge the stored token (charge mode). Throws GatewayUnavailableError on timeout/5xx/lost response. */
  charge(request: CollectRequest): Promise<GatewayResult>;
  /** Create and send a payment link (link mode); normally answers `pending` with `linkUrl`. */
  sendLink(request: CollectRequest): Promise<GatewayResult>;
  /**
   * Ask about an earlier request by its idempotency key: settles `unknown`
   * attempts after a crash or timeout, and polls `pending` ones.
   * `not_found` means the gateway never saw the key, so re-sending it is safe.
   */
  status(idempotencyKey: string, request: CollectRequest): Promise<StatusResult>;
  /** Release sockets, timers, files. */
  close?(): Promise<void>;
}

/** Timeout, connection error, lost response or 5xx: the outcome is unknown. */
export class GatewayUnavailableError extends RebillError {
  constructor(message: string, options?: { cause?: unknown; code?: string }) {
    super(options?.code ?? 'GATEWAY_UNAVAILABLE', message, options);
  }
}

/** The gateway answered with something we cannot interpret (a bug on one side; outcome unknown). */
export class GatewayProtocolError extends RebillError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('GATEWAY_PROTOCOL', message, options);
  }
}

/** Decline codes that no retry can fix (SPEC section 6). */
export const HARD_DECLINE_CODES: ReadonlySet<string> = new Set([
  'stolen_card',
  'lost_card',
  'closed_account',
  'invalid_card_number',
  'invalid_account',
  'card_not_supported',
  'pickup_card',
  // The simulator / fake gateway was given a token it does not know: no retry can make it known.
  'unknown_test_token',
]);
