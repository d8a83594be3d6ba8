/**
 * The outbox relay in-process against a real receiver on 127.0.0.1, on a
 * virtual clock (backoff is moved through by advancing it, never waited for).
 */
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Webhook } from 'standardwebhooks';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { VirtualClock } from '../../src/clock.js';
import type { WebhookConfig } from '../../src/config/index.js';
import { listDeliveries, listDeliveryAttempts, toDbTime, type Db } from '../../src/store/index.js';
import { createRelay, endpointId, type Relay } from '../../src/webhooks/index.js';
import { addSubscription, openTempDb, silentLogger, type TempDb } from '../support/engine-harness.js';

const SECRET = `whsec_${Buffer.from('0123456789abcdef0123456789abcdef').toString('base64')}`;

interface Received {
  readonly path: string;
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
  readonly answer: number | 'reset';
}

/** A receiver whose answer per request `answer` decides: a status, or `reset` (the connection is dropped: down). */
async function receiver(answer: (path: string, body: { id: string; data: { subscription?: { id: string } | null } }) => number | 'reset') {
  const received: Received[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      const a = answer(req.url ?? '/', JSON.parse(body));
      received.push({ path: req.url ?? '/', headers: req.headers, body, answer: a });
      if (a === 'reset') req.socket.destroy();
      else res.writeHead(a).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return { url, received, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}

function hook(url: string, overrides: Partial<WebhookConfig> = {}): WebhookConfig {
  return { url, secret: SECRET, events: ['*'], enabled: true, retrySchedule: ['PT5S', 'PT30S'], maxAgeHours: 72, timeoutSeconds: 5, ...overrides };
}

async function addUpdate(db: Db, subscriptionId: string, at: number): Promise<void> {
  await db.insertInto('events').values({ type: 'subscription.updated', subscription_id: subscriptionId, cycle: null, attempt: null, occurred_at: toDbTime(at), payload: '{}' }).execute();
}

/** Ticks until a pass makes no attempt (at most 50 passes). */
async function drain(relay: Relay): Promise<void> {
  for (let i = 0; i < 50; i++) if ((await relay.tick()) === 0) return;
  throw new Error('relay did not settle');
}

describe('outbox relay', () => {
  let t: TempDb;
  let clock: VirtualClock;
  const closers: Array<() => Promise<void>> = [];
  beforeEach(async () => {
    t = await openTempDb();
    clock = new VirtualClock(Date.now());
  });
  afterEach(async () => {
    for (const close of closers.splice(0)) await close();
    await t.close();
  });

  async function seed(ids: readonly string[], updates = 2): Promise<void> {
    for (const id of ids) await addSubscription(t.db, clock.now(), { id, startDate: '2030-01-01', paymentToken: 'tok_ok' });
    for (let i = 0; i < updates; i++) for (const id of ids) await addUpdate(t.db, id, clock.now());
  }

  it('delivers every event through down, then 500, then recovery: in order per subscription, signed, with a stable webhook-id', async () => {
    let phase: number | 'reset' = 'reset';
    const r = await receiver(() => phase);
    closers.push(r.close);
    const relay = createRelay({ db: t.db, clock, logger: silentLogger, webhooks: [hook(`${r.url}/a`)], options: { random: () => 0.5 } });
    await relay.init();
    await seed(['s1', 's2']);

    expect(await relay.tick()).toBe(2); // the head of each subscription's stream only
    expect(r.received.map((x) => JSON.parse(x.body).type)).toEqual(['subscription.created', 'subscription.created']);
    expect(await relay.tick()).toBe(0); // nothing due before the backoff ends

    phase = 500;
    clock.set(clock.now() + 5_000);
    expect(await relay.tick()).toBe(2);
    phase = 200;
    clock.set(clock.now() + 30_000);
    await drain(relay);

    const ok = r.received.filter((x) => x.answer === 200);
    expect(ok).toHaveLength(6);
    const verifier = new Webhook(SECRET);
    for (const x of r.received) {
      expect(() => verifier.verify(x.body, x.headers as Record<string, string>)).not.toThrow();
      expect(x.headers['webhook-id']).toBe(JSON.parse(x.body).id);
    }
    // The first two events were tried three times each, always with the same webhook-id.
    const byId = new Map<string, number>();
    for (const x of r.received) byId.set(x.headers['webhook-id'] as string, (byId.get(x.headers['webhook-id'] as string) ?? 0) + 1);
    expect([...byId.values()].sort()).toEqual([1, 1, 1, 1, 3, 3]);
    for (const sub of ['s1', 's2']) {
      const ids = ok.map((x) => JSON.parse(x.body)).filter((b) => b.data.subscription.id === sub).map((b) => b.id as string);
      expect(ids).toHaveLength(3);
      expect([...ids].sort()).toEqual(ids);
    }
    const rows = await listDeliveries(t.db);
    expect(rows.every((d) => d.state === 'delivered')).toBe(true);
    const attempts = await listDeliveryAttempts(t.db, endpointId(`${r.url}/a`), rows[0]!.eventId);
    expect(attempts.map((a) => [a.status, a.error === null])).toEqual([
      [null, false],
      [500, false],
      [200, true],
    ]);
  });

  it('one endpoint down does not delay another, and one failing subscription does not hold back the others', async () => {
    const r = await receiver((path, body) => (path === '/down' ? 'reset' : body.data.subscription?.id === 'bad' ? 500 : 200));
    closers.push(r.close);
    const relay = createRelay({ db: t.db, clock, logger: silentLogger, webhooks: [hook(`${r.url}/down`), hook(`${r.url}/up`)] });
    await relay.init();
    await seed(['bad', 'good-1', 'good-2']);
    await drain(relay); // no clock movement: nothing waits for a backoff

    const up = await listDeliveries(t.db, { endpointId: endpointId(`${r.url}/up`) });
    expect(up.filter((d) => d.state === 'delivered').map((d) => d.subscriptionId).sort()).toEqual(['good-1', 'good-1', 'good-1', 'good-2', 'good-2', 'good-2']);
    const bad = up.filter((d) => d.subscriptionId === 'bad');
    expect(bad.map((d) => [d.state, d.attempts])).toEqual([
      ['pending', 1],
      ['pending', 0],
      ['pending', 0],
    ]);
    const down = await listDeliveries(t.db, { endpointId: endpointId(`${r.url}/down`) });
    expect(down.map((d) => d.attempts).sort()).toEqual([0, 0, 0, 0, 0, 0, 1, 1, 1]);
  });

  it('marks a delivery failed past maxAgeHours and moves the stream on', async () => {
    const r = await receiver((_path, body) => (body.id === 'evt_000000000001' ? 500 : 200));
    closers.push(r.close);
    const relay = createRelay({ db: t.db, clock, logger: silentLogger, webhooks: [hook(`${r.url}/a`, { maxAgeHours: 0.01, retrySchedule: ['PT10S'] })], options: { random: () => 0.5 } });
    await relay.init();
    await seed(['s1'], 1);
    for (let i = 0; i < 5; i++) {
      await drain(relay);
      clock.set(clock.now() + 10_000);
    }
    const rows = await listDeliveries(t.db);
    expect(rows.map((d) => [d.eventId, d.state])).toEqual([
      [1, 'failed'],
      [2, 'delivered'],
    ]);
    expect(rows[0]!.attempts).toBe(4); // at 0, 10, 20, 30 s; the next (40 s) would be past 36 s
  });

  it('honours event filters and enabled: false', async () => {
    const r = await receiver(() => 200);
    closers.push(r.close);
    const relay = createRelay({
      db: t.db,
      clock,
      logger: silentLogger,
      webhooks: [hook(`${r.url}/charges`, { events: ['charge.*'] }), hook(`${r.url}/off`, { enabled: false }), hook(`${r.url}/updates`, { events: ['subscription.updated'] })],
    });
    await relay.init();
    await seed(['s1'], 1);
    await drain(relay);
    expect(r.received.map((x) => [x.path, JSON.parse(x.body).type])).toEqual([['/updates', 'subscription.updated']]);
  });
});
