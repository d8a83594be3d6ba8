/**
 * Gateway callbacks (issue 8 item 5): `POST /v1/gateway-callbacks/{gateway}`
 * over real HTTP on 127.0.0.1, on a real SQLite file, with the real engine
 * charging the fake CoolPay server through the coolpay adapter. Callbacks
 * signed, replayed, forged; link mode; and the engine asking the gateway
 * about the very attempt a callback settles.
 */
import { createHmac, randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { VirtualClock } from '../../src/clock.js';
import type { GatewayConfig } from '../../src/config/index.js';
import type { Engine } from '../../src/engine/index.js';
import { createCoolpayGateway, startFakeGateway, type FakeGateway, type Gateway } from '../../src/gateways/index.js';
import { createHttpServer, type HttpMetrics, type HttpServer } from '../../src/http/index.js';
import type { Db } from '../../src/store/index.js';
import { addSubscription, attemptsOf, cyclesOf, daemonEngine, eventsOf, openTempDb, policy, type TempDb } from '../support/engine-harness.js';

const SECRET = 'cbsecret_DO_NOT_LEAK_7f3a9c';
const OTHER_SECRET = 'cbsecret_other_gateway_51e2';
const API_KEY = 'ck_test_DO_NOT_LEAK_0123456789';
const T0 = Date.parse('2026-03-01T00:00:00Z');
const POLL_MS = 3_600_000;
const PROBLEM_JSON = /^application\/problem\+json/;

interface Rig {
  readonly tmp: TempDb;
  readonly db: Db;
  readonly clock: VirtualClock;
  readonly engine: Engine;
  readonly server: HttpServer;
  /** `http://127.0.0.1:PORT` of rebill's server. */
  readonly url: string;
  readonly fake: FakeGateway;
  readonly logs: string[];
  authFailures: number;
}

let rigs: Rig[] = [];

afterEach(async () => {
  for (const rig of rigs) {
    await rig.engine.stop(0);
    await rig.server.close();
    await rig.fake.close();
    await rig.tmp.close().catch(() => {});
    // Neither the callback secret nor the API key ever reaches a log line.
    const logged = rig.logs.join('');
    expect(logged).not.toContain(SECRET);
    expect(logged).not.toContain(OTHER_SECRET);
    expect(logged).not.toContain(API_KEY);
  }
  rigs = [];
});

/** A gateway whose calls a test may hold (to land a callback while the engine waits on the gateway). */
interface Hold {
  readonly method: 'charge' | 'status';
  /** Resolves when the held call has been answered by the gateway and waits to be released. */
  readonly entered: Promise<void>;
  release(): void;
}

function holdCall(method: Hold['method']): Hold & { wrap(gateway: () => Gateway): Gateway } {
  let entered!: () => void;
  let release!: () => void;
  const enteredP = new Promise<void>((resolve) => (entered = resolve));
  const released = new Promise<void>((resolve) => (release = resolve));
  return {
    method,
    entered: enteredP,
    release,
    wrap(real) {
      const held = async <T>(call: () => Promise<T>): Promise<T> => {
        const answer = await call();
        entered();
        await released;
        return answer;
      };
      return {
        name: 'coolpay',
        charge: (r) => (method === 'charge' ? held(() => real().charge(r)) : real().charge(r)),
        sendLink: (r) => real().sendLink(r),
        status: (k, r) => (method === 'status' ? held(() => real().status(k, r)) : real().status(k, r)),
      };
    },
  };
}

/**
 * rebill's HTTP server with callbacks for `coolpay` (SECRET) and `other` (OTHER_SECRET), both
 * CoolPay at one fake gateway; `nosecret` (coolpay without callbackSecret) and `sim` (simulator).
 * With `fakeCallbacks`, the fake POSTs its own signed callbacks to rebill.
 */
async function rig(options: { fakeCallbacks?: boolean; hold?: ReturnType<typeof holdCall> } = {}): Promise<Rig> {
  const tmp = await openTempDb({}, { name: 'callbacks' });
  const clock = new VirtualClock(T0);
  const logs: string[] = [];
  const logger = pino({ level: 'debug' }, { write: (line: string) => void logs.push(line) });
  // The fake needs rebill's URL and rebill's engine needs the fake's: the adapters are made once both listen.
  const adapters = new Map<string, Gateway>();
  const late = (name: string): Gateway => ({
    name,
    charge: (r) => adapters.get(name)!.charge(r),
    sendLink: (r) => adapters.get(name)!.sendLink(r),
    status: (k, r) => adapters.get(name)!.status(k, r),
  });
  const coolpay = options.hold ? options.hold.wrap(() => adapters.get('coolpay')!) : late('coolpay');
  const collection = policy('terminate', { pollMs: POLL_MS });
  const engine = daemonEngine(tmp.db, clock, { policy: collection }, { gateways: new Map([['coolpay', coolpay], ['other', late('other')]]), logger });
  const cp = (callbackSecret?: string): GatewayConfig => ({ type: 'coolpay', baseUrl: 'http://127.0.0.1:9', apiKey: API_KEY, timeoutSeconds: 5, ...(callbackSecret ? { callbackSecret } : {}) });
  const r = { authFailures: 0 } as Rig & { authFailures: number };
  const metrics: HttpMetrics = {
    registry: { contentType: 'text/plain', metrics: async () => '' },
    observeHttp: () => {},
    authFailure: () => void r.authFailures++,
  };
  const server = createHttpServer({
    config: { host: '127.0.0.1', port: 0 },
    engine,
    db: tmp.db,
    clock,
    logger,
    metrics,
    readiness: { databaseUrl: `sqlite:${tmp.file}`, sweepIntervalMs: 60_000, queueBound: 100, webhookEndpoints: 0 },
    callbacks: { gateways: { coolpay: cp(SECRET), other: cp(OTHER_SECRET), nosecret: cp(), sim: { type: 'simulator' } }, policy: collection },
  });
  // A JSON route beside the callbacks (the admin API's kind): the raw-body parser must stay inside the callback plugin.
  server.app.post('/echo', async (request) => ({ echoed: request.body }));
  const url = `http://${await server.listen()}`;
  const fake = await startFakeGateway({
    port: 0,
    pendingSettleMs: 20,
    callbackSecret: SECRET,
    ...(options.fakeCallbacks ? { callbackUrl: `${url}/v1/gateway-callbacks/coolpay` } : {}),
  });
  for (const name of ['coolpay', 'other']) adapters.set(name, createCoolpayGateway({ name, baseUrl: fake.url, apiKey: API_KEY, timeoutSeconds: 5 }));
  Object.assign(r, { tmp, db: tmp.db, clock, engine, server, url, fake, logs });
  rigs.push(r);
  return r;
}

/** A subscription whose cycle 1 is due at T0, on gateway `gateway`. */
async function subscribe(r: Rig, id: string, token: string | null, plan: { mode?: 'charge' | 'link'; gateway?: string } = {}): Promise<string> {
  await addSubscription(r.db, T0, { id, startDate: '2026-03-01', paymentToken: token }, { gateway: plan.gateway ?? 'coolpay', mode: plan.mode ?? 'charge' });
  return `${id}:1:1`;
}

const auth = { Authorization: `Basic ${Buffer.from(`:${API_KEY}`).toString('base64')}`, 'Accept-Version': 'v10' };

/** The fake's payment for `orderId`, as CoolPay would POST it (looking it up settles a pending one, as at CoolPay). */
async function paymentBody(r: Rig, orderId: string): Promise<string> {
  const response = await fetch(`${r.fake.url}/payments?order_id=${encodeURIComponent(orderId)}`, { headers: auth });
  const [payment] = (await response.json()) as unknown[];
  expect(payment).toBeDefined();
  return JSON.stringify(payment);
}

async function agreementBody(r: Rig, orderId: string): Promise<string> {
  const response = await fetch(`${r.fake.url}/subscriptions?order_id=${encodeURIComponent(orderId)}`, { headers: auth });
  const [agreement] = (await response.json()) as unknown[];
  return JSON.stringify(agreement);
}

/** Written here, not taken from src: the test checks the scheme, not the code against itself. */
const hmac = (body: string, secret = SECRET) => createHmac('sha256', secret).update(body, 'utf8').digest('hex');

async function post(r: Rig, body: string, headers: Record<string, string>, gateway = 'coolpay') {
  const response = await fetch(`${r.url}/v1/gateway-callbacks/${gateway}`, { method: 'POST', headers: { 'Content-Type': 'application/json', ...headers }, body });
  const text = await response.text();
  return { status: response.status, type: response.headers.get('content-type') ?? '', text, json: JSON.parse(text) as Record<string, unknown> };
}

const signed = (r: Rig, body: string, gateway = 'coolpay', secret = SECRET) => post(r, body, { 'QuickPay-Checksum-Sha256': hmac(body, secret) }, gateway);

/** Every row rebill keeps about subscriptions, attempts, cycles and events. */
async function snapshot(db: Db): Promise<unknown> {
  return {
    subscriptions: await db.selectFrom('subscriptions').selectAll().orderBy('id').execute(),
    attempts: await db.selectFrom('attempts').selectAll().orderBy('idempotency_key').execute(),
    cycles: await db.selectFrom('cycles').selectAll().orderBy('subscription_id').orderBy('cycle').execute(),
    events: await db.selectFrom('events').selectAll().orderBy('id').execute(),
  };
}

async function subscriptionRow(db: Db, id: string) {
  return db.selectFrom('subscriptions').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
}

async function captures(r: Rig, orderId: string): Promise<unknown[]> {
  const all = (await (await fetch(`${r.fake.url}/__ledger`)).json()) as Array<{ order_id: string }>;
  return all.filter((c) => c.order_id === orderId);
}

async function waitFor<T>(probe: () => Promise<T | undefined>, what: string, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** Cycle 1 of a tok_pending subscription sent and answered pending. */
async function pendingAttempt(r: Rig, id = 'sub-p'): Promise<string> {
  const key = await subscribe(r, id, 'tok_pending');
  await r.engine.sweepUntilIdle();
  expect((await attemptsOf(r.db, id)).map((a) => a.state)).toEqual(['pending']);
  return key;
}

describe('POST /v1/gateway-callbacks/{gateway}: signed', () => {
  it('a signed callback settles a pending attempt: captured, one charge.succeeded, cycle 1 paid, cycle 2 next; no status query needed', async () => {
    const r = await rig();
    const key = await pendingAttempt(r);
    const calls = r.engine.stats().gatewayCalls;

    const answer = await signed(r, await paymentBody(r, key));
    expect(answer.status).toBe(200);
    expect(answer.json).toEqual({ received: true, result: 'settled' });

    expect((await attemptsOf(r.db, 'sub-p')).map((a) => a.state)).toEqual(['captured']);
    expect(await eventsOf(r.db, 'sub-p', 'charge.succeeded')).toHaveLength(1);
    expect((await cyclesOf(r.db, 'sub-p')).find((c) => c.cycle === 1)?.status).toBe('paid');
    const row = await subscriptionRow(r.db, 'sub-p');
    expect(row).toMatchObject({ next_action: 'collect', next_cycle: 2, next_attempt: 1, completed_cycles: 1, lease_owner: null });
    // Nothing left for the engine to do about cycle 1 (the poll an hour away was never needed).
    await r.engine.sweepUntilIdle();
    expect(r.engine.stats().gatewayCalls).toBe(calls);
    expect(await captures(r, key)).toHaveLength(1);
  });

  it('the fake gateway`s own callback (rebill fake-gateway --callback-url) settles a tok_pending attempt with no status query', async () => {
    const r = await rig({ fakeCallbacks: true });
    const key = await subscribe(r, 'sub-f', 'tok_pending');
    await r.engine.sweepUntilIdle();
    // The virtual clock never moves, so the engine's poll (an hour later) never comes: only the callback can settle it.
    await waitFor(async () => ((await attemptsOf(r.db, 'sub-f'))[0]?.state === 'captured' ? true : undefined), 'the callback to settle sub-f');
    expect(r.engine.stats().gatewayCalls).toBe(1); // the send; no status query
    expect(await eventsOf(r.db, 'sub-f', 'charge.succeeded')).toHaveLength(1);
    expect(await captures(r, key)).toHaveLength(1);
    expect(r.logs.some((l) => l.includes('gateway callback: attempt captured'))).toBe(true);
  });

  it('replayed 5 times (at once, then one by one) it settles once: one settled answer, one charge.succeeded, one capture, no row touched by the replays', async () => {
    const r = await rig();
    const key = await pendingAttempt(r);
    const body = await paymentBody(r, key);

    const together = await Promise.all(Array.from({ length: 5 }, () => signed(r, body)));
    expect(together.map((a) => a.status)).toEqual([200, 200, 200, 200, 200]);
    expect(together.map((a) => a.json.result).sort()).toEqual(['already_settled', 'already_settled', 'already_settled', 'already_settled', 'settled']);
    const settled = await snapshot(r.db);

    for (let i = 0; i < 5; i++) expect((await signed(r, body)).json).toEqual({ received: true, result: 'already_settled' });
    expect(await snapshot(r.db)).toEqual(settled);
    expect(await eventsOf(r.db, 'sub-p', 'charge.succeeded')).toHaveLength(1);
    expect((await subscriptionRow(r.db, 'sub-p')).completed_cycles).toBe(1);
    expect(await captures(r, key)).toHaveLength(1);
  });

  it('a declined payment is a decline like the status query`s: charge.failed with willRetry, attempt 2 scheduled', async () => {
    const r = await rig();
    const key = await pendingAttempt(r);
    const payment = JSON.parse(await paymentBody(r, key)) as { operations: Array<Record<string, unknown>>; state: string; accepted: boolean };
    // What CoolPay sends when the acquirer refuses the pending payment (insufficient funds, aq 51).
    const declined = JSON.stringify({
      ...payment,
      state: 'rejected',
      accepted: false,
      operations: [{ id: 1, type: 'recurring', amount: 999, pending: false, qp_status_code: '40000', qp_status_msg: 'Rejected by acquirer', aq_status_code: '51', aq_status_msg: 'Insufficient funds' }],
    });
    expect((await signed(r, declined)).json.result).toBe('settled');
    const [failed] = await eventsOf(r.db, 'sub-p', 'charge.failed');
    expect(failed?.data).toMatchObject({ declineCode: 'insufficient_funds', hardDecline: false, willRetry: true });
    expect(await subscriptionRow(r.db, 'sub-p')).toMatchObject({ next_action: 'collect', next_cycle: 1, next_attempt: 2 });
  });

  it('an order_id rebill never made, or one of another gateway`s attempts, is acknowledged (200) and changes nothing', async () => {
    const r = await rig();
    const key = await pendingAttempt(r);
    const otherKey = await subscribe(r, 'sub-o', 'tok_pending', { gateway: 'other' });
    await r.engine.sweepUntilIdle();
    const before = await snapshot(r.db);
    const foreign = JSON.stringify({ ...(JSON.parse(await paymentBody(r, key)) as object), order_id: 'webshop-order-77' });
    expect((await signed(r, foreign)).json).toEqual({ received: true, result: 'unknown_key' });
    // `other`'s attempt, signed with coolpay's key and sent to coolpay's URL: coolpay's key cannot settle it.
    expect((await signed(r, await paymentBody(r, otherKey))).json).toEqual({ received: true, result: 'unknown_key' });
    expect(await snapshot(r.db)).toEqual(before);
    // At its own URL with its own key, it settles.
    expect((await signed(r, await paymentBody(r, otherKey), 'other', OTHER_SECRET)).json.result).toBe('settled');
  });
});

describe('POST /v1/gateway-callbacks/{gateway}: forged', () => {
  const forgeries: Array<[string, (body: string) => Record<string, string>, (body: string) => string]> = [
    ['a wrong signature', () => ({ 'QuickPay-Checksum-Sha256': randomBytes(32).toString('hex') }), (b) => b],
    ['no signature header', () => ({}), (b) => b],
    ['the right signature for another body (the same JSON, pretty-printed)', (b) => ({ 'QuickPay-Checksum-Sha256': hmac(JSON.stringify(JSON.parse(b), null, 2)) }), (b) => b],
    ['a signed body with one field changed afterwards', (b) => ({ 'QuickPay-Checksum-Sha256': hmac(b) }), (b) => b.replace('"accepted":true', '"accepted":false')],
    ['a body signed with another key', (b) => ({ 'QuickPay-Checksum-Sha256': hmac(b, OTHER_SECRET) }), (b) => b],
    ['a signature that is not hex', () => ({ 'QuickPay-Checksum-Sha256': 'z'.repeat(64) }), (b) => b],
    ['a truncated signature', (b) => ({ 'QuickPay-Checksum-Sha256': hmac(b).slice(0, 32) }), (b) => b],
  ];

  it.each(forgeries)('%s: 401 problem+json, an auth failure counted, and the database unchanged', async (_name, headers, tamper) => {
    const r = await rig();
    const key = await pendingAttempt(r);
    const body = await paymentBody(r, key);
    expect(body).toContain('"accepted":true');
    const before = await snapshot(r.db);

    const answer = await post(r, tamper(body), headers(body));
    expect(answer.status).toBe(401);
    expect(answer.type).toMatch(PROBLEM_JSON);
    expect(answer.json).toEqual({ type: 'about:blank', title: 'Unauthorized', status: 401, detail: 'missing or wrong QuickPay-Checksum-Sha256 signature' });
    expect(r.authFailures).toBe(1);
    expect(await snapshot(r.db)).toEqual(before);
    // The same callback, rightly signed, still settles it: the refusal was the signature's alone.
    expect((await signed(r, body)).json.result).toBe('settled');
  });

  it('a forged callback is refused before its body is read: garbage and an empty body are 401 too', async () => {
    const r = await rig();
    expect((await post(r, 'not json at all', { 'QuickPay-Checksum-Sha256': 'ab'.repeat(32) })).status).toBe(401);
    expect((await post(r, '', {})).status).toBe(401);
    const noType = await fetch(`${r.url}/v1/gateway-callbacks/coolpay`, { method: 'POST' });
    expect(noType.status).toBe(401);
    expect(r.authFailures).toBe(3);
  });
});

describe('POST /v1/gateway-callbacks/{gateway}: configuration and bad bodies', () => {
  it.each([
    ['unknown', 'no gateway "unknown" in gateways:'],
    ['constructor', 'no gateway "constructor" in gateways:'],
    ['sim', 'gateway "sim" is type simulator, which sends no callbacks; only coolpay gateways do'],
    ['nosecret', 'gateway "nosecret" takes no callbacks: set gateways.nosecret.callbackSecret to the CoolPay account\'s private key (callbacks are signed with it)'],
  ])('gateway %s: 404 problem+json saying why', async (gateway, detail) => {
    const r = await rig();
    const body = '{"order_id":"x"}';
    const answer = await signed(r, body, gateway);
    expect(answer.status).toBe(404);
    expect(answer.type).toMatch(PROBLEM_JSON);
    expect(answer.json).toEqual({ type: 'about:blank', title: 'Not Found', status: 404, detail });
    expect(answer.text).not.toContain(SECRET);
    expect(r.authFailures).toBe(0);
  });

  it.each([
    ['not JSON', '{"order_id": "sub-p:1:1", ', 'the callback body is not JSON'],
    ['JSON that is no payment', '[1,2,3]', 'not a CoolPay Payment object'],
    ['a payment without order_id', '{"id": 7, "type": "Payment", "state": "processed", "accepted": true, "operations": []}', 'the Payment object has no order_id'],
  ])('a signed body that is %s: 400 problem+json, nothing changed', async (_name, body, detail) => {
    const r = await rig();
    await pendingAttempt(r);
    const before = await snapshot(r.db);
    const answer = await signed(r, body);
    expect(answer.status).toBe(400);
    expect(answer.type).toMatch(PROBLEM_JSON);
    expect(String(answer.json.detail)).toContain(detail);
    expect(await snapshot(r.db)).toEqual(before);
  });

  it('the raw-body parser stays inside the callback route: other routes still parse JSON', async () => {
    const r = await rig();
    const response = await fetch(`${r.url}/echo`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{"a":1}' });
    expect(await response.json()).toEqual({ echoed: { a: 1 } });
  });

  it('a body over 1 MiB is 413 problem+json, signature or not', async () => {
    const r = await rig();
    const big = JSON.stringify({ order_id: 'x', pad: 'y'.repeat(1024 * 1024) });
    const answer = await signed(r, big);
    expect(answer.status).toBe(413);
    expect(answer.type).toMatch(PROBLEM_JSON);
  });
});

describe('POST /v1/gateway-callbacks/{gateway}: link mode', () => {
  it('the customer completes the payment window: the fake`s callback makes the status query due now, and it charges the agreement once', async () => {
    const r = await rig({ fakeCallbacks: true });
    const key = await subscribe(r, 'sub-l', null, { mode: 'link' });
    await r.engine.sweepUntilIdle();
    const [sent] = await eventsOf(r.db, 'sub-l', 'payment_link.sent');
    const linkUrl = String(sent?.data.linkUrl);
    expect(linkUrl).toMatch(/\/__pay\/\d+$/);
    // Unpaid, nothing is due: a sweep makes no gateway call (the poll is an hour away on a clock that never moves).
    const calls = r.engine.stats().gatewayCalls;
    await r.engine.sweepUntilIdle();
    expect(r.engine.stats().gatewayCalls).toBe(calls);

    expect((await fetch(linkUrl, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ token: 'tok_ok' }) })).status).toBe(200);
    await waitFor(async () => ((await subscriptionRow(r.db, 'sub-l')).action_at! <= new Date(T0).toISOString() ? true : undefined), 'the callback to make sub-l due');
    expect(r.logs.some((l) => l.includes('gateway callback: status query due now'))).toBe(true);

    await r.engine.sweepUntilIdle();
    expect((await attemptsOf(r.db, 'sub-l')).map((a) => a.state)).toEqual(['captured']);
    expect(await eventsOf(r.db, 'sub-l', 'charge.succeeded')).toHaveLength(1);
    expect(await captures(r, key)).toHaveLength(1);
    // The agreement's callback replayed afterwards changes nothing.
    const settled = await snapshot(r.db);
    expect((await signed(r, await agreementBody(r, key))).json.result).toBe('already_settled');
    expect(await snapshot(r.db)).toEqual(settled);
  });

  it('a refused payment window (stolen card) is a hard decline from the callback alone: charge.failed, no retry', async () => {
    const r = await rig({ fakeCallbacks: true });
    await subscribe(r, 'sub-s', null, { mode: 'link' });
    await r.engine.sweepUntilIdle();
    const [sent] = await eventsOf(r.db, 'sub-s', 'payment_link.sent');
    await fetch(String(sent?.data.linkUrl), { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ token: 'tok_stolen' }) });
    await waitFor(async () => ((await attemptsOf(r.db, 'sub-s'))[0]?.state === 'rejected' ? true : undefined), 'the callback to decline sub-s');
    const [failed] = await eventsOf(r.db, 'sub-s', 'charge.failed');
    expect(failed?.data).toMatchObject({ declineCode: 'stolen_card', hardDecline: true, willRetry: false });
    expect(r.engine.stats().gatewayCalls).toBe(1); // the link; the decline came with the callback
  });
});

describe('POST /v1/gateway-callbacks/{gateway}: the engine asking about the same attempt meanwhile', () => {
  it.each(['charge', 'status'] as const)(
    'a callback that lands while the engine waits on the gateway (%s) settles it once: the engine`s answer is not recorded again and its lease is released',
    async (method) => {
      const hold = holdCall(method);
      const r = await rig({ hold });
      const key = await subscribe(r, 'sub-r', 'tok_pending');
      let swept: Promise<void>;
      if (method === 'charge') {
        swept = r.engine.sweepUntilIdle(); // the send's answer (pending) is held
      } else {
        await r.engine.sweepUntilIdle(); // the send goes through: pending
        r.clock.advance(POLL_MS);
        swept = r.engine.sweepUntilIdle(); // the poll's answer (captured) is held
      }
      await hold.entered;

      const answer = await signed(r, await paymentBody(r, key));
      expect(answer.json.result).toBe('settled');
      hold.release();
      await swept;

      expect((await attemptsOf(r.db, 'sub-r')).map((a) => a.state)).toEqual(['captured']);
      expect(await eventsOf(r.db, 'sub-r', 'charge.succeeded')).toHaveLength(1);
      expect(await subscriptionRow(r.db, 'sub-r')).toMatchObject({ completed_cycles: 1, next_cycle: 2, next_action: 'collect', lease_owner: null, lease_until: null });
      expect(await captures(r, key)).toHaveLength(1);
      expect(r.logs.some((l) => l.includes('attempt already settled (by a gateway callback)'))).toBe(true);
    },
  );
});
