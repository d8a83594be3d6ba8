/**
 * `type: coolpay`: the CoolPay REST API, which follows QuickPay API v10
 * (Basic auth with an empty user and the API key as password,
 * `Accept-Version: v10`, JSON bodies, amounts in integer minor units).
 *
 * Charge mode: the stored payment token IS a CoolPay subscription id (an
 * agreement the customer authorised earlier). Each attempt is one recurring
 * payment on it, `POST /subscriptions/{token}/recurring`, whose `order_id` is
 * the attempt's idempotency key: CoolPay refuses a second payment with the
 * same order_id, so a re-send after a lost answer cannot charge twice, and
 * `GET /payments?order_id=<key>` answers "did that attempt happen?".
 *
 * Link mode: `POST /subscriptions` (order_id = key) creates a new agreement
 * and `PUT /subscriptions/{id}/link` returns the payment window URL for the
 * customer. Completing the window only authorises the agreement; no money
 * moves. status(key) therefore does, in order:
 *   1. a payment with order_id = key exists -> its state (captured, declined, pending);
 *   2. no agreement with order_id = key -> not_found;
 *   3. the agreement is authorised (`accepted`) -> charge it once for this
 *      cycle, as a recurring payment with order_id = key (the same dedup as
 *      charge mode, so polling twice cannot charge twice) and report that;
 *   4. the agreement's authorisation was rejected -> declined with its code;
 *   5. otherwise the link is still open -> pending with its URL.
 *
 * A decline is a returned value; a timeout, network error or 5xx throws
 * GatewayUnavailableError (outcome unknown); an answer we cannot read throws
 * GatewayProtocolError. The API key never appears in a message.
 *
 * Callbacks: CoolPay, like QuickPay, POSTs the payment or agreement object
 * to the account's callback URL whenever one of its operations changes,
 * signed with `QuickPay-Checksum-Sha256` (hex HMAC-SHA256 of the raw body,
 * keyed with the account's private key: `callbackSecret`). The body's
 * `order_id` is our idempotency key; readCoolpayCallback reads it the way
 * status(key) reads the same object, so a callback and a status query can
 * never disagree about an attempt.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { z } from 'zod';
import { declineFromOperation } from './acquirer-codes.js';
import {
  GatewayProtocolError,
  type CallbackReport,
  type CollectRequest,
  type Gateway,
  type GatewayResult,
  type StatusResult,
} from './gateway.js';
import { briefMessage, httpOrigin, redact, sendJson, type HttpCaller } from './http-client.js';

export interface CoolpayGatewayOptions {
  /** Config name of this gateway (`coolpay`). */
  readonly name: string;
  /** API root, e.g. `https://api.coolpay.example` (no trailing path needed). */
  readonly baseUrl: string;
  readonly apiKey: string;
  /** Per request, covering connect, headers and body. */
  readonly timeoutSeconds: number;
  /** Injected fetch (tests); default the global one. */
  readonly fetch?: typeof fetch;
}

/** QuickPay status code of an approved operation. */
const APPROVED = '20000';

const Operation = z.object({
  type: z.string(),
  amount: z.number().nullish(),
  pending: z.boolean().nullish(),
  qp_status_code: z.string().nullish(),
  qp_status_msg: z.string().nullish(),
  aq_status_code: z.string().nullish(),
  aq_status_msg: z.string().nullish(),
});
type Operation = z.infer<typeof Operation>;

const Payment = z.object({
  id: z.union([z.number(), z.string()]),
  order_id: z.string().nullish(),
  accepted: z.boolean().nullish(),
  state: z.string(),
  operations: z.array(Operation).nullish(),
});
type Payment = z.infer<typeof Payment>;

const Subscription = Payment.extend({ link: z.object({ url: z.string() }).nullish() });
const Link = z.object({ url: z.string() });

/** Creates the CoolPay adapter. Options are checked here so a bad config fails at start, not at the first charge. */
export function createCoolpayGateway(options: CoolpayGatewayOptions): Gateway {
  const { name, apiKey } = options;
  let base: URL;
  try {
    base = new URL(options.baseUrl);
  } catch {
    throw new TypeError(`coolpay gateway "${name}": baseUrl is not a URL`);
  }
  if (base.protocol !== 'https:' && base.protocol !== 'http:') throw new TypeError(`coolpay gateway "${name}": baseUrl must be http(s)`);
  if (!apiKey) throw new TypeError(`coolpay gateway "${name}": apiKey is empty`);
  if (!(options.timeoutSeconds > 0)) throw new TypeError(`coolpay gateway "${name}": timeoutSeconds must be > 0`);

  const caller: HttpCaller = {
    gateway: `coolpay "${name}"`,
    origin: httpOrigin(base.href),
    timeoutSeconds: options.timeoutSeconds,
    ...(options.fetch ? { fetch: options.fetch } : {}),
    secrets: [apiKey],
  };
  // The headers of every call, built once.
  const common = ['Authorization', `Basic ${Buffer.from(`:${apiKey}`).toString('base64')}`, 'Accept-Version', 'v10', 'Accept', 'application/json'];

  /** One API call; answers 2xx JSON, or the body of a 4xx that still describes a payment (a decline). */
  async function call<T>(
    method: 'GET' | 'POST' | 'PUT',
    path: string,
    route: string,
    schema: z.ZodType<T>,
    body?: unknown,
    idempotencyKey?: string,
  ): Promise<T> {
    const headers = body === undefined ? [...common] : [...common, 'Content-Type', 'application/json'];
    if (idempotencyKey !== undefined) headers.push('Idempotency-Key', idempotencyKey);
    const request = { method, path, route: `${method} ${route}`, headers };
    const response = await sendJson(caller, body === undefined ? request : { ...request, body: JSON.stringify(body) });
    const parsed = schema.safeParse(response.json);
    if (response.status >= 200 && response.status < 300) {
      if (parsed.success) return parsed.data;
      throw new GatewayProtocolError(`${caller.gateway}: ${method} ${route} answered ${response.status} with an unexpected body (${z.prettifyError(parsed.error).replace(/\s+/g, ' ')})`);
    }
    // Some acquirers make the gateway answer a rejected payment with a 4xx that still carries
    // the payment; that is a decline like any other. Every other 4xx is a bug on one side.
    if (response.status >= 400 && response.status < 500 && parsed.success && isRejectedPayment(response.json)) return parsed.data;
    const detail = redact(briefMessage(JSON.stringify(response.json ?? '')), caller.secrets);
    throw new GatewayProtocolError(`${caller.gateway}: ${method} ${route} answered ${response.status}${detail}`);
  }

  function recurring(subscriptionId: string, request: CollectRequest): Promise<Payment> {
    return call(
      'POST',
      `/subscriptions/${encodeURIComponent(subscriptionId)}/recurring?synchronized`,
      '/subscriptions/{id}/recurring',
      Payment,
      {
        amount: request.amount.amountMinor,
        // Not a QuickPay field: lets the gateway refuse an amount in the wrong currency for the agreement.
        currency: request.amount.currency,
        order_id: request.idempotencyKey,
        auto_capture: true,
      },
      request.idempotencyKey,
    );
  }

  /**
   * A payment's state as our result. An authorised payment that auto_capture
   * did not capture is captured here (same amount, keyed on the attempt), so
   * an attempt never stops at "authorised": that would hold the customer's
   * money without collecting it.
   */
  async function settle(payment: Payment, request: CollectRequest): Promise<GatewayResult> {
    const state = classify(payment);
    if (state.kind !== 'authorized') return state;
    const captured = await call(
      'POST',
      `/payments/${encodeURIComponent(String(payment.id))}/capture?synchronized`,
      '/payments/{id}/capture',
      Payment,
      { amount: request.amount.amountMinor },
      `${request.idempotencyKey}:capture`,
    );
    const after = classify(captured);
    // Still only authorised: the capture was accepted for processing; a status query will see it.
    return after.kind === 'authorized' ? { kind: 'pending', externalId: String(captured.id) } : after;
  }

  return {
    name,

    async charge(request) {
      // No agreement to charge: the same hard decline a real gateway gives an empty card number.
      if (!request.paymentToken) return { kind: 'declined', code: 'invalid_card_number', hard: true };
      return settle(await recurring(request.paymentToken, request), request);
    },

    async sendLink(request) {
      const subscription = await call(
        'POST',
        '/subscriptions',
        '/subscriptions',
        Subscription,
        { order_id: request.idempotencyKey, currency: request.amount.currency, description: request.description },
        request.idempotencyKey,
      );
      const id = String(subscription.id);
      const link = await call('PUT', `/subscriptions/${encodeURIComponent(id)}/link`, '/subscriptions/{id}/link', Link, {
        amount: request.amount.amountMinor,
      });
      return { kind: 'pending', externalId: id, linkUrl: link.url };
    },

    async status(idempotencyKey, request): Promise<StatusResult> {
      const query = `order_id=${encodeURIComponent(idempotencyKey)}`;
      const payments = await call('GET', `/payments?${query}`, '/payments?order_id={key}', z.array(Payment));
      const payment = pickPayment(payments);
      if (payment) return settle(payment, request);

      const subscriptions = await call('GET', `/subscriptions?${query}`, '/subscriptions?order_id={key}', z.array(Subscription));
      const subscription = subscriptions[0];
      if (!subscription) return { kind: 'not_found' };
      const id = String(subscription.id);
      if (subscription.accepted) return settle(await recurring(id, { ...request, idempotencyKey }), request);
      const failed = lastFailedOperation(subscription);
      if (failed || subscription.state === 'rejected') {
        const { code, hard } = declineFromOperation(failed);
        return { kind: 'declined', code, hard, externalId: id };
      }
      return subscription.link?.url
        ? { kind: 'pending', externalId: id, linkUrl: subscription.link.url }
        : { kind: 'pending', externalId: id };
    },
  };
}

type PaymentState = GatewayResult | { readonly kind: 'authorized' };

/**
 * Reads a QuickPay-style payment. Order matters: an approved capture is
 * final whatever else the payment shows; then a rejection; then anything
 * still being processed; then an authorisation waiting for its capture.
 */
function classify(payment: Payment): PaymentState {
  const externalId = String(payment.id);
  const operations = payment.operations ?? [];
  if (operations.some((op) => op.type === 'capture' && op.qp_status_code === APPROVED && !op.pending)) {
    return { kind: 'captured', externalId };
  }
  const failed = lastFailedOperation(payment);
  if (payment.state === 'rejected' || (failed && payment.accepted !== true) || (failed && failed.type === 'capture')) {
    const { code, hard } = declineFromOperation(failed);
    return { kind: 'declined', code, hard, externalId };
  }
  if (operations.some((op) => op.pending)) return { kind: 'pending', externalId };
  if (payment.accepted === true) return { kind: 'authorized' };
  return { kind: 'pending', externalId };
}

function isRejectedPayment(body: unknown): boolean {
  const payment = Payment.safeParse(body);
  return payment.success && classify(payment.data).kind === 'declined';
}

/** The last operation if it finished and was not approved. */
function lastFailedOperation(payment: Payment): Operation | undefined {
  const last = payment.operations?.at(-1);
  return last && !last.pending && last.qp_status_code && last.qp_status_code !== APPROVED ? last : undefined;
}

/** order_id is unique at CoolPay, so there is at most one; should there be more, a captured one wins. */
function pickPayment(payments: Payment[]): Payment | undefined {
  return payments.find((p) => classify(p).kind === 'captured') ?? payments[0];
}

/** The header a CoolPay / QuickPay callback carries its signature in. */
export const COOLPAY_CHECKSUM_HEADER = 'QuickPay-Checksum-Sha256';

/** The `QuickPay-Checksum-Sha256` value for `body`: hex HMAC-SHA256 keyed with the account's private key. */
export function signCoolpayCallback(body: Buffer | string, secret: string): string {
  return createHmac('sha256', secret).update(body).digest('hex');
}

/**
 * Whether `checksum` (the header as received) signs exactly these raw bytes
 * with `secret`. Compared in constant time; a missing, repeated or malformed
 * header is simply false.
 */
export function verifyCoolpayCallback(body: Buffer, checksum: string | string[] | undefined, secret: string): boolean {
  if (typeof checksum !== 'string' || !/^[0-9a-fA-F]{64}$/.test(checksum)) return false;
  const expected = createHmac('sha256', secret).update(body).digest();
  return timingSafeEqual(Buffer.from(checksum, 'hex'), expected);
}

/** A callback body that is not a payment or agreement we can read (JSON, but not the object CoolPay sends). */
export class CallbackBodyError extends GatewayProtocolError {}

/**
 * What a verified callback body says about its order_id, read as status(key)
 * reads the same object: a payment's operations decide captured / declined /
 * pending (an authorised payment waits for its capture: ask); an agreement
 * (link mode) that the customer authorised is charged by the status query
 * (ask), one whose authorisation failed is a decline, anything else waits.
 * `resourceType` is the `QuickPay-Resource-Type` header, else the body's `type`.
 */
export function readCoolpayCallback(body: unknown, resourceType?: string): CallbackReport {
  const type = resourceType ?? (isRecord(body) && typeof body.type === 'string' ? body.type : 'Payment');
  if (type !== 'Payment' && type !== 'Subscription') {
    return { kind: 'none', key: isRecord(body) && typeof body.order_id === 'string' ? body.order_id : null, reason: `a ${type} callback settles no attempt` };
  }
  const parsed = (type === 'Subscription' ? Subscription : Payment).safeParse(body);
  if (!parsed.success) throw new CallbackBodyError(`not a CoolPay ${type} object (${z.prettifyError(parsed.error).replace(/\s+/g, ' ')})`);
  const key = parsed.data.order_id;
  if (!key) throw new CallbackBodyError(`the ${type} object has no order_id`);
  if (type === 'Subscription') {
    const agreement = parsed.data;
    if (agreement.accepted) return { kind: 'ask', key };
    const failed = lastFailedOperation(agreement);
    if (failed || agreement.state === 'rejected') {
      const { code, hard } = declineFromOperation(failed);
      return { kind: 'result', key, result: { kind: 'declined', code, hard, externalId: String(agreement.id) } };
    }
    return { kind: 'none', key, reason: 'the agreement is not authorised yet' };
  }
  const state = classify(parsed.data);
  return state.kind === 'authorized' ? { kind: 'ask', key } : { kind: 'result', key, result: state };
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
