/**
 * `rebill fake-gateway`: a standalone CoolPay-compatible HTTP server for
 * end-to-end tests and demos. It serves exactly the endpoints the coolpay
 * adapter uses, with the simulator's token behaviour (./tokens.ts):
 *
 *   POST /subscriptions                   create an agreement for a payment link (idempotent on order_id)
 *   GET  /subscriptions?order_id=K        [] or [agreement]
 *   PUT  /subscriptions/{id}/link         { url } of the payment window
 *   POST /subscriptions/{id}/recurring    charge an agreement; {id} is a card token (tok_ok, ...) or a link agreement
 *   POST /payments/{id}/capture           capture an authorised payment
 *   GET  /payments?order_id=K             [] or [payment]
 *   GET  /payments/{id}                   one payment
 * and two test endpoints that need no auth:
 *   GET  /__ledger                        every capture: [{ order_id, amount, currency, payment_id, captured_at }]
 *   POST /__pay/{id}  { token }           the customer completes a payment window with card `token`
 *
 * Money safety is the point of this server, so it holds the same line as a
 * real gateway: one payment per order_id, ever. A repeated order_id gets the
 * original payment back (whatever state it is in, even mid-processing).
 *
 * With a ledger file it also keeps its memory across restarts, as a real
 * gateway does: every capture, and every payment and link agreement each time
 * it changes (pending, declined, captured, authorised), is appended and
 * fsynced before the answer is written, and replayed at start. So a restarted
 * server still refuses to capture an order_id twice, still lists it, and
 * still knows a pending payment (which it then settles as before) or an open
 * link: it never answers "not found" for a key it has seen.
 *
 * Ledger lines: a capture `{ order_id, amount, currency, payment_id,
 * captured_at }` (the only kind older versions wrote, and what `GET
 * /__ledger` lists), `{ "record": "payment", payment, settleOnQuery }` and
 * `{ "record": "agreement", subscription }`; for an id, the last line wins.
 *
 * Callbacks (with `callbackUrl`), as CoolPay / QuickPay send them: when a
 * pending payment settles (by itself `pendingSettleMs` after it was made, or
 * when it is looked up) and when a payment window is completed (the agreement
 * authorised or refused), the payment or agreement object is POSTed to the
 * URL, signed with `QuickPay-Checksum-Sha256` (hex HMAC-SHA256 of the body).
 * A delivery that fails (no connection, non-2xx) is tried again a few times,
 * then given up: the status query settles the attempt anyway. Callbacks are
 * not persisted; a restart forgets the ones not yet delivered.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { systemClock, type Clock } from '../clock.js';
import { setTimeout as delay } from 'node:timers/promises';
import { ACQUIRER_CODES } from './acquirer-codes.js';
import { COOLPAY_CHECKSUM_HEADER, signCoolpayCallback } from './coolpay.js';
import { openJsonLines, type JsonLinesFile } from './jsonl-file.js';
import { attemptFromOrderId, chargeDecision, linkDecision, parseToken, type IssuerDecision, type TokenBehaviour } from './tokens.js';

export interface FakeGatewayOptions {
  /** Default 127.0.0.1. */
  readonly host?: string;
  /** 0 (default) picks a free port; read it from `url`/`port`. */
  readonly port?: number;
  /** JSON-lines file of captures, payments and agreements; replayed at start. Without it, everything lives in memory only. */
  readonly ledgerFile?: string;
  /** Stamps created_at / captured_at and times `tok_slow_MS` and `pendingSettleMs`. Default the system clock. */
  readonly clock?: Clock;
  /** Where to POST a signed callback when a pending payment settles or a payment window is completed. Absent: no callbacks. */
  readonly callbackUrl?: string;
  /**
   * Key of the callbacks' HMAC (CoolPay: the account's private key, rebill's
   * `callbackSecret`). Default: the API key the payment or agreement was
   * created with (not kept across restarts: a restored one is then not signed, and not sent).
   */
  readonly callbackSecret?: string;
  /** With callbackUrl: a pending payment settles by itself this long after it was made (default 500 ms); a lookup still settles it sooner. */
  readonly pendingSettleMs?: number;
  /** Tries per callback (default 5), 100 ms apart, doubling. */
  readonly callbackAttempts?: number;
  /**
   * Every authorised API request is handled this many ms after it arrived
   * (default 0): a real gateway's network and processing time, for load
   * tests of the dispatch path (`npm run bench`). The test endpoints
   * (`/__ledger`, `/__pay`) and 401 answers are immediate.
   */
  readonly latencyMs?: number;
}

export interface FakeGateway {
  /** `http://HOST:PORT`, the adapter's baseUrl. */
  readonly url: string;
  readonly port: number;
  /** Stops listening, drops open connections and requests in progress, closes the ledger file. */
  close(): Promise<void>;
}

/** One capture, as `GET /__ledger` lists it and the ledger file stores it. */
export interface FakeCapture {
  readonly order_id: string;
  /** Integer minor units, as CoolPay counts. */
  readonly amount: number;
  readonly currency: string;
  readonly payment_id: number;
  readonly captured_at: string;
}

interface Operation {
  id: number;
  type: 'authorize' | 'recurring' | 'capture';
  amount: number;
  pending: boolean;
  qp_status_code: string | null;
  qp_status_msg: string | null;
  aq_status_code: string | null;
  aq_status_msg: string | null;
  created_at: string;
}

interface Payment {
  id: number;
  type: 'Payment';
  order_id: string;
  accepted: boolean;
  currency: string;
  state: 'pending' | 'new' | 'processed' | 'rejected';
  subscription_id: string | null;
  operations: Operation[];
  created_at: string;
}

interface Subscription {
  id: number;
  type: 'Subscription';
  order_id: string;
  accepted: boolean;
  currency: string;
  description: string;
  state: 'initial' | 'pending' | 'active' | 'rejected';
  link: { url: string; amount: number } | null;
  operations: Operation[];
  created_at: string;
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

const MAX_BODY_BYTES = 1024 * 1024;
const APPROVED = { qp_status_code: '20000', qp_status_msg: 'Approved', aq_status_code: '000', aq_status_msg: 'Approved' };

/** Starts the fake CoolPay server; resolves once it listens. */
export async function startFakeGateway(options: FakeGatewayOptions = {}): Promise<FakeGateway> {
  const host = options.host ?? '127.0.0.1';
  const clock = options.clock ?? systemClock;
  const shutdown = new AbortController();
  // Several stamps per charge fall in the same millisecond: format each instant once.
  let isoAt = NaN;
  let isoText = '';
  const nowIso = () => {
    const at = clock.now();
    if (at !== isoAt) {
      isoAt = at;
      isoText = new Date(at).toISOString();
    }
    return isoText;
  };

  // --- state -------------------------------------------------------------------------------
  const paymentsByOrderId = new Map<string, Payment>();
  const paymentsById = new Map<number, Payment>();
  /** Ids of tok_pending payments: captured when next looked up, as a real pending charge settles later. */
  const settleOnQuery = new Set<number>();
  const subscriptionsByOrderId = new Map<string, Subscription>();
  const subscriptionsById = new Map<string, Subscription>();
  const captures: FakeCapture[] = [];
  let lastId = 1000;
  const nextId = () => ++lastId;
  /** API key each payment / agreement was made with, by id: the default callback signing key. */
  const signingKeys = new Map<number, string>();
  /** Callbacks being delivered (close() waits for them to stop). */
  const deliveries = new Set<Promise<void>>();
  const callbackAttempts = Math.max(1, options.callbackAttempts ?? 5);
  const pendingSettleMs = Math.max(0, options.pendingSettleMs ?? 500);
  const latencyMs = Math.max(0, options.latencyMs ?? 0);
  /**
   * Requests held for latencyMs, in arrival order. Every one waits the same
   * time, so the first in is the first due: one sleep (one timer, one abort
   * listener) serves them all, where one each cost the bench's gateway a
   * timer and an event listener per request.
   */
  const held: Array<{ readonly at: number; readonly release: () => void }> = [];

  /** Resolves latencyMs after now (or at shutdown: the caller checks). */
  function holdForLatency(): Promise<void> {
    return new Promise((release) => {
      held.push({ at: clock.now() + latencyMs, release });
      if (held.length === 1) sleepForHeld();
    });
  }

  /** Sleeps until the first held request is due, then lets it go with every other one due by then. */
  function sleepForHeld(): void {
    void clock.sleepUntil(held[0]!.at, shutdown.signal).then(() => {
      // The first one's own sleep ended: it goes, as it would have alone; the others once due.
      held.shift()!.release();
      const now = clock.now();
      while (held.length > 0 && (held[0]!.at <= now || shutdown.signal.aborted)) held.shift()!.release();
      if (held.length > 0) sleepForHeld();
    });
  }

  let ledger: JsonLinesFile | undefined;
  if (options.ledgerFile !== undefined) {
    ledger = openJsonLines(options.ledgerFile);
    ledger.records.forEach((record, i) => {
      try {
        restore(record);
      } catch (err) {
        ledger?.close();
        throw new Error(`${options.ledgerFile}: record ${i + 1}: ${err instanceof Error ? err.message : String(err)}`);
      }
    });
  }

  /** Replays one ledger line from a previous run. */
  function restore(record: unknown): void {
    const r = record as { record?: unknown; payment?: Payment; settleOnQuery?: unknown; subscription?: Subscription };
    if (r?.record === 'payment') {
      const payment = r.payment;
      if (typeof payment?.order_id !== 'string' || !Number.isSafeInteger(payment.id) || !Array.isArray(payment.operations)) throw new Error('not a fake-gateway payment');
      paymentsByOrderId.set(payment.order_id, payment);
      paymentsById.set(payment.id, payment);
      if (r.settleOnQuery === true) settleOnQuery.add(payment.id);
      else settleOnQuery.delete(payment.id);
      lastId = Math.max(lastId, payment.id, ...payment.operations.map((op) => op.id));
      return;
    }
    if (r?.record === 'agreement') {
      const subscription = r.subscription;
      if (typeof subscription?.order_id !== 'string' || !Number.isSafeInteger(subscription.id)) throw new Error('not a fake-gateway agreement');
      subscriptionsByOrderId.set(subscription.order_id, subscription);
      subscriptionsById.set(String(subscription.id), subscription);
      lastId = Math.max(lastId, subscription.id, ...subscription.operations.map((op) => op.id));
      return;
    }
    restoreCapture(record as FakeCapture);
  }

  /** A capture from a previous run: the payment exists again, captured, so its order_id stays taken. */
  function restoreCapture(capture: FakeCapture): void {
    if (typeof capture?.order_id !== 'string' || !Number.isSafeInteger(capture.amount) || !Number.isSafeInteger(capture.payment_id)) {
      throw new Error('not a fake-gateway capture');
    }
    captures.push(capture);
    lastId = Math.max(lastId, capture.payment_id);
    const known = paymentsByOrderId.get(capture.order_id);
    if (known) {
      // Its snapshot line after the capture was not written (a crash in between): the capture still counts.
      if (!isCaptured(known)) {
        known.operations.push({ ...APPROVED, id: nextId(), type: 'capture', amount: capture.amount, pending: false, created_at: capture.captured_at });
        known.state = 'processed';
      }
      return;
    }
    const at = capture.captured_at;
    const payment: Payment = {
      id: capture.payment_id,
      type: 'Payment',
      order_id: capture.order_id,
      accepted: true,
      currency: capture.currency,
      state: 'processed',
      subscription_id: null,
      operations: [
        { ...APPROVED, id: nextId(), type: 'recurring', amount: capture.amount, pending: false, created_at: at },
        { ...APPROVED, id: nextId(), type: 'capture', amount: capture.amount, pending: false, created_at: at },
      ],
      created_at: at,
    };
    paymentsByOrderId.set(payment.order_id, payment);
    paymentsById.set(payment.id, payment);
  }

  function rememberKey(id: number, req: http.IncomingMessage): void {
    const key = apiKeyOf(req);
    if (key !== undefined) signingKeys.set(id, key);
  }

  /** Makes a payment's current state durable (before anyone is told about it). */
  function persistPayment(payment: Payment): void {
    ledger?.append({ record: 'payment', payment, settleOnQuery: settleOnQuery.has(payment.id) });
  }

  /** Makes a link agreement's current state durable. */
  function persistAgreement(subscription: Subscription): void {
    ledger?.append({ record: 'agreement', subscription });
  }

  /** One operation; written out literally (no spreads: two per charge), keys in the order the answers have always had. */
  function operation(type: Operation['type'], amount: number, decision: IssuerDecision): Operation {
    const id = nextId();
    const created_at = nowIso();
    switch (decision.kind) {
      case 'approve':
        return {
          id,
          type,
          amount,
          created_at,
          qp_status_code: APPROVED.qp_status_code,
          qp_status_msg: APPROVED.qp_status_msg,
          aq_status_code: APPROVED.aq_status_code,
          aq_status_msg: APPROVED.aq_status_msg,
          pending: false,
        };
      case 'pending':
        return { id, type, amount, created_at, pending: true, qp_status_code: null, qp_status_msg: null, aq_status_code: null, aq_status_msg: null };
      case 'decline': {
        const acquirer = ACQUIRER_CODES[decision.code] ?? { aqCode: '05', message: 'Do not honor' };
        return {
          id,
          type,
          amount,
          created_at,
          pending: false,
          qp_status_code: '40000',
          qp_status_msg: 'Rejected by acquirer',
          aq_status_code: acquirer.aqCode,
          aq_status_msg: acquirer.message,
        };
      }
    }
  }

  /** Captures an authorised payment: durable in the ledger file before anyone is told. */
  function capture(payment: Payment, amount: number): void {
    const row: FakeCapture = { order_id: payment.order_id, amount, currency: payment.currency, payment_id: payment.id, captured_at: nowIso() };
    ledger?.append(row);
    captures.push(row);
    payment.operations.push(operation('capture', amount, { kind: 'approve' }));
    payment.state = 'processed';
  }

  function isCaptured(payment: Payment): boolean {
    return payment.operations.some((op) => op.type === 'capture' && op.qp_status_code === '20000' && !op.pending);
  }

  function authorizedAmount(payment: Payment): number {
    return payment.operations.find((op) => op.type === 'recurring' && op.qp_status_code === '20000')?.amount ?? 0;
  }

  /** Applies the issuer's decision on a recurring payment (and captures it when asked to). */
  function decide(payment: Payment, amount: number, decision: IssuerDecision, autoCapture: boolean): void {
    const op = operation('recurring', amount, decision);
    // A slow payment already shows a pending recurring operation: replace it with the outcome.
    const last = payment.operations.at(-1);
    if (last?.type === 'recurring' && last.pending) payment.operations.pop();
    payment.operations.push(op);
    switch (decision.kind) {
      case 'approve':
        payment.accepted = true;
        payment.state = 'new';
        if (autoCapture) capture(payment, amount);
        break;
      case 'decline':
        payment.state = 'rejected';
        break;
      case 'pending':
        payment.state = 'pending';
        settleOnQuery.add(payment.id);
        settleLater(payment);
        break;
    }
    persistPayment(payment);
  }

  function settleIfDue(payment: Payment): void {
    if (!settleOnQuery.has(payment.id)) return;
    settleOnQuery.delete(payment.id);
    const op = payment.operations.at(-1);
    decide(payment, op?.amount ?? 0, { kind: 'approve' }, true);
    notify(payment);
  }

  /** With callbacks, a pending payment settles by itself after pendingSettleMs, as a real one does (then the callback goes). */
  function settleLater(payment: Payment): void {
    if (options.callbackUrl === undefined) return;
    void clock.sleepUntil(clock.now() + pendingSettleMs, shutdown.signal).then(() => {
      if (shutdown.signal.aborted) return;
      try {
        settleIfDue(payment);
      } catch (err) {
        // A ledger write that failed: the payment stays pending, and a lookup tries again.
        process.stderr.write(`fake-gateway: settling payment ${payment.id} failed: ${err instanceof Error ? err.message : String(err)}\n`);
        settleOnQuery.add(payment.id);
      }
    });
  }

  /** POSTs the object's current state to callbackUrl, signed, in the background; retried a few times on failure. */
  function notify(resource: Payment | Subscription): void {
    const target = options.callbackUrl;
    if (target === undefined) return;
    const secret = options.callbackSecret ?? signingKeys.get(resource.id);
    if (secret === undefined) {
      process.stderr.write(`fake-gateway: no key to sign the callback for order_id ${resource.order_id} (give --callback-secret); not sent\n`);
      return;
    }
    const body = JSON.stringify(resource);
    const headers = {
      'Content-Type': 'application/json',
      'QuickPay-Resource-Type': resource.type,
      'QuickPay-Account-ID': '1',
      'QuickPay-API-Version': 'v10',
      [COOLPAY_CHECKSUM_HEADER]: signCoolpayCallback(body, secret),
    };
    const delivery = deliver(target, body, headers, resource.order_id).finally(() => deliveries.delete(delivery));
    deliveries.add(delivery);
  }

  async function deliver(target: string, body: string, headers: Record<string, string>, orderId: string): Promise<void> {
    let why = '';
    for (let attempt = 1; attempt <= callbackAttempts; attempt++) {
      if (shutdown.signal.aborted) return;
      try {
        const response = await fetch(target, { method: 'POST', headers, body, signal: AbortSignal.any([shutdown.signal, AbortSignal.timeout(10_000)]) });
        await response.arrayBuffer().catch(() => undefined);
        if (response.ok) return;
        why = `answered ${response.status}`;
      } catch (err) {
        if (shutdown.signal.aborted) return;
        why = err instanceof Error ? err.message : String(err);
      }
      if (attempt < callbackAttempts) await delay(100 * 2 ** (attempt - 1), undefined, { signal: shutdown.signal }).catch(() => undefined);
    }
    process.stderr.write(`fake-gateway: callback for order_id ${orderId} not delivered after ${callbackAttempts} tries (${why}); a status query will settle it\n`);
  }

  // --- endpoints ---------------------------------------------------------------------------
  async function recurring(subscriptionId: string, body: Record<string, unknown>, req: http.IncomingMessage, res: http.ServerResponse) {
    const orderId = requireString(body, 'order_id');
    const amount = requireAmount(body, 'amount');
    const autoCapture = body.auto_capture !== false;
    const existing = paymentsByOrderId.get(orderId);
    if (existing) return sendJson(res, 202, existing);

    let behaviour: TokenBehaviour;
    let currency: string;
    const agreement = subscriptionsById.get(subscriptionId);
    if (agreement) {
      // A link agreement: the customer's card already passed the issuer when the window was completed.
      if (!agreement.accepted) throw new HttpError(400, `subscription ${subscriptionId} is not authorized`);
      behaviour = { kind: 'approve' };
      currency = agreement.currency;
    } else {
      // A stored agreement: its id is the card token and names the behaviour.
      behaviour = parseToken(subscriptionId);
      // CoolPay agreements carry their currency; the token ones here take the adapter's.
      currency = typeof body.currency === 'string' && /^[A-Za-z]{3}$/.test(body.currency) ? body.currency.toUpperCase() : 'DKK';
    }
    if (behaviour.kind === 'server_error') throw new HttpError(500, 'simulated internal error');

    const payment: Payment = {
      id: nextId(),
      type: 'Payment',
      order_id: orderId,
      accepted: false,
      currency,
      state: 'pending',
      subscription_id: subscriptionId,
      operations: [],
      created_at: nowIso(),
    };
    // Taken before any wait: a duplicate arriving while this one is slow gets this payment, not a second charge.
    paymentsByOrderId.set(orderId, payment);
    paymentsById.set(payment.id, payment);
    rememberKey(payment.id, req);

    if (behaviour.kind === 'slow') {
      payment.operations.push(operation('recurring', amount, { kind: 'pending' }));
      await clock.sleepUntil(clock.now() + behaviour.delayMs, shutdown.signal);
      if (shutdown.signal.aborted) return void req.socket.destroy();
    }
    decide(payment, amount, chargeDecision(behaviour, attemptFromOrderId(orderId)), autoCapture);
    // tok_timeout: the charge is done and recorded; the answer is lost on the way back.
    if (behaviour.kind === 'lose_response') return void req.socket.destroy();
    sendJson(res, 202, payment);
  }

  function captureEndpoint(paymentId: string, body: Record<string, unknown>, res: http.ServerResponse) {
    const payment = paymentsById.get(Number(paymentId));
    if (!payment) throw new HttpError(404, 'payment not found');
    if (isCaptured(payment)) return sendJson(res, 202, payment);
    if (!payment.accepted || payment.state !== 'new') throw new HttpError(400, `payment is ${payment.state}, not authorized`);
    const amount = requireAmount(body, 'amount');
    if (amount > authorizedAmount(payment)) throw new HttpError(400, 'amount exceeds the authorized amount');
    capture(payment, amount);
    persistPayment(payment);
    sendJson(res, 202, payment);
  }

  function createSubscription(body: Record<string, unknown>, req: http.IncomingMessage, res: http.ServerResponse) {
    const orderId = requireString(body, 'order_id');
    const currency = requireString(body, 'currency');
    if (!/^[A-Za-z]{3}$/.test(currency)) throw new HttpError(400, 'currency must be an ISO 4217 code');
    const existing = subscriptionsByOrderId.get(orderId);
    if (existing) return sendJson(res, 200, existing);
    const subscription: Subscription = {
      id: nextId(),
      type: 'Subscription',
      order_id: orderId,
      accepted: false,
      currency: currency.toUpperCase(),
      description: typeof body.description === 'string' ? body.description : '',
      state: 'initial',
      link: null,
      operations: [],
      created_at: nowIso(),
    };
    subscriptionsByOrderId.set(orderId, subscription);
    subscriptionsById.set(String(subscription.id), subscription);
    rememberKey(subscription.id, req);
    persistAgreement(subscription);
    sendJson(res, 201, subscription);
  }

  function putLink(subscriptionId: string, body: Record<string, unknown>, res: http.ServerResponse) {
    const subscription = subscriptionsById.get(subscriptionId);
    if (!subscription) throw new HttpError(404, 'subscription not found');
    const amount = requireAmount(body, 'amount');
    subscription.link = { url: `${url}/__pay/${subscription.id}`, amount };
    persistAgreement(subscription);
    sendJson(res, 200, { url: subscription.link.url });
  }

  /** The customer completes the payment window with card `token`: the agreement is authorised, or not. */
  function payLink(subscriptionId: string, body: Record<string, unknown>, res: http.ServerResponse) {
    const subscription = subscriptionsById.get(subscriptionId);
    if (!subscription?.link) throw new HttpError(404, 'no payment link with this id');
    if (subscription.accepted) return sendJson(res, 200, subscription);
    const token = typeof body.token === 'string' ? body.token : null;
    const decision = linkDecision(parseToken(token), attemptFromOrderId(subscription.order_id));
    subscription.operations.push(operation('authorize', subscription.link.amount, decision));
    subscription.accepted = decision.kind === 'approve';
    subscription.state = decision.kind === 'approve' ? 'active' : decision.kind === 'pending' ? 'pending' : 'rejected';
    persistAgreement(subscription);
    sendJson(res, 200, subscription);
    notify(subscription);
  }

  async function route(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const target = requestTarget(req.url ?? '/');
    const parts = target.pathname.split('/').filter(Boolean).map(decodePathSegment);
    const method = req.method ?? 'GET';
    const [first, id, action] = parts;

    if (first === '__ledger' && parts.length === 1 && method === 'GET') return sendJson(res, 200, captures);
    if (first === '__pay' && parts.length === 2 && method === 'POST') return payLink(id!, await readJson(req), res);

    if (!authorized(req)) {
      res.setHeader('WWW-Authenticate', 'Basic realm="coolpay"');
      throw new HttpError(401, 'Unauthorized');
    }
    if (latencyMs > 0) {
      await holdForLatency();
      if (shutdown.signal.aborted) return void req.socket.destroy();
    }
    const orderId = target.searchParams.get('order_id');
    if (first === 'subscriptions') {
      if (parts.length === 1 && method === 'POST') return createSubscription(await readJson(req), req, res);
      if (parts.length === 1 && method === 'GET') {
        const found = orderId === null ? [...subscriptionsById.values()] : [subscriptionsByOrderId.get(orderId)].filter(Boolean);
        return sendJson(res, 200, found);
      }
      if (parts.length === 3 && action === 'link' && method === 'PUT') return putLink(id!, await readJson(req), res);
      if (parts.length === 3 && action === 'recurring' && method === 'POST') return recurring(id!, await readJson(req), req, res);
    }
    if (first === 'payments') {
      if (parts.length === 1 && method === 'GET') {
        const found = orderId === null ? [...paymentsById.values()] : [paymentsByOrderId.get(orderId)].filter((p): p is Payment => !!p);
        found.forEach(settleIfDue);
        return sendJson(res, 200, found);
      }
      if (parts.length === 2 && method === 'GET') {
        const payment = paymentsById.get(Number(id));
        if (!payment) throw new HttpError(404, 'payment not found');
        settleIfDue(payment);
        return sendJson(res, 200, payment);
      }
      if (parts.length === 3 && action === 'capture' && method === 'POST') return captureEndpoint(id!, await readJson(req), res);
    }
    throw new HttpError(404, `no route ${method} ${target.pathname}`);
  }

  const server = http.createServer((req, res) => {
    route(req, res).catch((err: unknown) => {
      if (res.headersSent || req.socket.destroyed) return;
      if (err instanceof HttpError) return sendJson(res, err.status, { message: err.message });
      // A ledger write that failed: the capture is not durable, so the caller must not believe it happened.
      process.stderr.write(`fake-gateway: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
      sendJson(res, 500, { message: 'internal error' });
    });
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, host, () => {
      server.off('error', reject);
      resolve();
    });
  }).catch((err: unknown) => {
    ledger?.close();
    throw err;
  });
  const port = (server.address() as AddressInfo).port;
  const url = `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
  // Pending payments from a previous run settle by themselves again (with callbacks).
  for (const id of settleOnQuery) settleLater(paymentsById.get(id)!);

  let closing: Promise<void> | undefined;
  return {
    url,
    port,
    close() {
      closing ??= new Promise<void>((resolve) => {
        shutdown.abort();
        server.close(() => {
          void Promise.allSettled([...deliveries]).then(() => {
            ledger?.close();
            resolve();
          });
        });
        server.closeAllConnections();
      });
      return closing;
    },
  };
}

/**
 * A plain origin-form target (`/payments?order_id=...`, what the adapter
 * sends): every character one that URL parsing keeps as it is, no `.` or `..`
 * segment, no `//` prefix. Anything else goes through URL, which normalises it.
 */
const PLAIN_TARGET = /^(\/[A-Za-z0-9_~:@%!$&*+,;=-]+)+\/?(?:\?([A-Za-z0-9_~:@%!$&*+,;=./?()-]*))?$/;

/** The path and query of a request target, as `new URL(target, base)` reads them; the common plain form without building a URL. */
function requestTarget(raw: string): { readonly pathname: string; readonly searchParams: URLSearchParams } {
  const match = PLAIN_TARGET.exec(raw);
  if (!match) return new URL(raw, 'http://fake.invalid');
  const query = raw.indexOf('?');
  return query < 0 ? { pathname: raw, searchParams: new URLSearchParams() } : { pathname: raw.slice(0, query), searchParams: new URLSearchParams(raw.slice(query + 1)) };
}

/** Basic auth with any non-empty API key (CoolPay: empty user, key as password). */
function authorized(req: http.IncomingMessage): boolean {
  return apiKeyOf(req) !== undefined;
}

/** The last Authorization header read and its API key: a client sends the same one on every request. */
let lastAuthorization: string | undefined;
let lastApiKey: string | undefined;

/** The API key of a Basic-auth request (the password), or undefined. */
function apiKeyOf(req: http.IncomingMessage): string | undefined {
  const header = req.headers.authorization ?? '';
  if (header === lastAuthorization) return lastApiKey;
  lastAuthorization = header;
  lastApiKey = undefined;
  const match = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(header);
  if (!match) return undefined;
  const decoded = Buffer.from(match[1]!, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  lastApiKey = colon >= 0 && decoded.length > colon + 1 ? decoded.slice(colon + 1) : undefined;
  return lastApiKey;
}

/**
 * The request body as a JSON object. Read with stream events (an async
 * iterator per request cost more than the rest of a charge); a body over
 * MAX_BODY_BYTES drops the connection, as breaking out of the iterator did.
 */
function readJson(req: http.IncomingMessage): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size <= MAX_BODY_BYTES) return void chunks.push(chunk);
      req.off('data', onData);
      req.destroy();
      reject(new HttpError(413, 'body too large'));
    };
    req.on('data', onData);
    req.on('error', reject);
    req.on('close', () => {
      if (!req.complete) reject(Object.assign(new Error('premature close'), { code: 'ERR_STREAM_PREMATURE_CLOSE' }));
    });
    req.on('end', () => {
      try {
        resolve(parseJsonObject(Buffer.concat(chunks).toString('utf8')));
      } catch (err) {
        reject(err);
      }
    });
  });
}

function parseJsonObject(text: string): Record<string, unknown> {
  if (text.trim() === '') return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new HttpError(400, 'body is not JSON');
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new HttpError(400, 'body must be a JSON object');
  return parsed as Record<string, unknown>;
}

function decodePathSegment(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    throw new HttpError(400, 'malformed path');
  }
}

function requireString(body: Record<string, unknown>, field: string): string {
  const value = body[field];
  if (typeof value !== 'string' || value === '') throw new HttpError(400, `${field} is required`);
  return value;
}

function requireAmount(body: Record<string, unknown>, field: string): number {
  const value = body[field];
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value <= 0) {
    throw new HttpError(400, `${field} must be a positive integer in minor units`);
  }
  return value;
}

function sendJson(res: http.ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}
