/**
 * `type: http`: a minimal generic JSON gateway, for payment services that
 * are easier to wrap in a small web service than to write an adapter for.
 *
 * Protocol (all JSON, UTF-8):
 *   POST {url}/charges            body: the attempt (below); headers `Idempotency-Key: <key>` and
 *                                 `x-rebill-signature: sha256=<hex HMAC-SHA256(secret, raw body)>`
 *   GET  {url}/charges/{key}      status of a key; there is no body, so the signature is over the
 *                                 request path as sent (`<url's path>/charges/<URL-encoded key>`); 404 -> not_found
 * Answer to both: `{ "status": "captured" | "declined" | "pending", "id": "...", "code"?: "...", "linkUrl"?: "..." }`.
 * Attempt body: `{ mode: "charge"|"link", idempotencyKey, subscriptionId, cycle, attempt,
 * amount: "9.99", amountMinor: 999, currency, description, paymentToken, customer }`.
 * The service must treat a repeated Idempotency-Key as the same request.
 * A declined code is hard when it is in HARD_DECLINE_CODES.
 */
import { createHmac } from 'node:crypto';
import { z } from 'zod';
import { formatAmount } from '../money/index.js';
import {
  GatewayProtocolError,
  HARD_DECLINE_CODES,
  type CollectRequest,
  type Gateway,
  type GatewayResult,
} from './gateway.js';
import { briefMessage, httpOrigin, redact, sendJson, type HttpCaller } from './http-client.js';

export interface HttpGatewayOptions {
  readonly name: string;
  /** Service root; `/charges` is appended. */
  readonly url: string;
  /** HMAC key for `x-rebill-signature`. */
  readonly secret: string;
  readonly timeoutSeconds: number;
  readonly fetch?: typeof fetch;
}

const Answer = z.object({
  status: z.enum(['captured', 'declined', 'pending']),
  id: z.union([z.string(), z.number()]).transform(String),
  code: z.string().nullish(),
  linkUrl: z.string().nullish(),
});

/** `sha256=<hex>` HMAC-SHA256 of `payload` with `secret`: what `x-rebill-signature` carries. */
export function signHttpGatewayPayload(secret: string, payload: string): string {
  return `sha256=${createHmac('sha256', secret).update(payload, 'utf8').digest('hex')}`;
}

/** Creates the generic HMAC-signed JSON gateway. */
export function createHttpGateway(options: HttpGatewayOptions): Gateway {
  const { name, secret } = options;
  if (!secret) throw new TypeError(`http gateway "${name}": secret is empty`);
  if (!(options.timeoutSeconds > 0)) throw new TypeError(`http gateway "${name}": timeoutSeconds must be > 0`);
  let base: URL;
  try {
    base = new URL(options.url);
  } catch {
    throw new TypeError(`http gateway "${name}": url is not a URL`);
  }
  if (base.protocol !== 'https:' && base.protocol !== 'http:') throw new TypeError(`http gateway "${name}": url must be http(s)`);
  const caller: HttpCaller = {
    gateway: `http "${name}"`,
    origin: httpOrigin(base.href),
    timeoutSeconds: options.timeoutSeconds,
    ...(options.fetch ? { fetch: options.fetch } : {}),
    secrets: [secret],
  };

  async function send(mode: 'charge' | 'link', request: CollectRequest): Promise<GatewayResult> {
    const body = JSON.stringify({
      mode,
      idempotencyKey: request.idempotencyKey,
      subscriptionId: request.subscriptionId,
      cycle: request.cycle,
      attempt: request.attempt,
      amount: formatAmount(request.amount),
      amountMinor: request.amount.amountMinor,
      currency: request.amount.currency,
      description: request.description,
      paymentToken: request.paymentToken,
      customer: request.customer,
    });
    const response = await sendJson(caller, {
      method: 'POST',
      path: '/charges',
      route: 'POST /charges',
      body,
      headers: [
        'Content-Type',
        'application/json',
        'Accept',
        'application/json',
        'Idempotency-Key',
        request.idempotencyKey,
        'x-rebill-signature',
        signHttpGatewayPayload(secret, body),
      ],
    });
    return read(response.status, response.json, 'POST /charges');
  }

  function read(status: number, json: unknown, route: string): GatewayResult {
    if (status < 200 || status >= 300) {
      throw new GatewayProtocolError(`${caller.gateway}: ${route} answered ${status}${redact(briefMessage(JSON.stringify(json ?? '')), caller.secrets)}`);
    }
    const parsed = Answer.safeParse(json);
    if (!parsed.success) throw new GatewayProtocolError(`${caller.gateway}: ${route} answered an unexpected body (${z.prettifyError(parsed.error).replace(/\s+/g, ' ')})`);
    const answer = parsed.data;
    switch (answer.status) {
      case 'captured':
        return { kind: 'captured', externalId: answer.id };
      case 'declined': {
        const code = answer.code || 'do_not_honor';
        return { kind: 'declined', code, hard: HARD_DECLINE_CODES.has(code), externalId: answer.id };
      }
      case 'pending':
        return answer.linkUrl ? { kind: 'pending', externalId: answer.id, linkUrl: answer.linkUrl } : { kind: 'pending', externalId: answer.id };
    }
  }

  return {
    name,
    charge: (request) => send('charge', request),
    sendLink: (request) => send('link', request),
    async status(idempotencyKey) {
      const path = `/charges/${encodeURIComponent(idempotencyKey)}`;
      const response = await sendJson(caller, {
        method: 'GET',
        path,
        route: 'GET /charges/{key}',
        headers: ['Accept', 'application/json', 'x-rebill-signature', signHttpGatewayPayload(secret, `${caller.origin.basePath}${path}`)],
      });
      if (response.status === 404) return { kind: 'not_found' };
      return read(response.status, response.json, 'GET /charges/{key}');
    },
  };
}
