/**
 * Several relays on one database share an endpoint (issue 11, item 3): one
 * relay dies (SIGKILL) holding leased stream heads with requests in flight,
 * then two others, each on a connection of its own, deliver everything: the
 * dead one's heads again with the same webhook-id (on PostgreSQL once its
 * lease runs out; on SQLite at the next start, which gives back a dead run's
 * leases), every subscription's events in order at the receiver, and each
 * relay (on PostgreSQL) a share of the work. On both dialects (test/webhooks
 * is portable).
 */
import { spawn } from 'node:child_process';
import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { Webhook } from 'standardwebhooks';
import { afterEach, expect, it } from 'vitest';
import { systemClock } from '../../src/clock.js';
import { hostname } from 'node:os';
import { recoverDeadOwners } from '../../src/engine/recovery.js';
import { ensureWebhookEndpoint, lastEventId, listDeliveries, scanOutbox, toDbTime, type Db } from '../../src/store/index.js';
import { createRelay, endpointId, type Relay } from '../../src/webhooks/index.js';
import { root } from '../support/cli.js';
import { addSubscription, openTempDb, silentLogger, type TempDb } from '../support/engine-harness.js';

const SECRET = `whsec_${Buffer.from('shared-relay-secret-0123456789ab').toString('base64')}`;
const SUBSCRIPTIONS = 24;
const EVENTS_EACH = 4;

interface Receipt {
  readonly id: string;
  readonly subscription: string;
  readonly answered: boolean;
}

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function waitUntil(what: string, ready: () => boolean | Promise<boolean>, ms = 60_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await ready())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

it("relays sharing an endpoint deliver every event in order per subscription, and re-send a dead relay's heads with the same webhook-id", async () => {
  const t: TempDb = await openTempDb({}, { name: 'shared' });
  cleanups.push(() => t.close());
  // The receiver holds every request while `holding` (the first relay dies with them in flight), then answers 204.
  let holding = true;
  const held: ServerResponse[] = [];
  const receipts: Receipt[] = [];
  const verifier = new Webhook(SECRET);
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      verifier.verify(body, req.headers as Record<string, string>);
      const event = JSON.parse(body) as { id: string; data: { subscription: { id: string } } };
      expect(req.headers['webhook-id']).toBe(event.id);
      receipts.push({ id: event.id, subscription: event.data.subscription.id, answered: !holding });
      if (holding) held.push(res);
      else setTimeout(() => res.writeHead(204).end(), 2); // a little latency: the relays' requests overlap
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hooks`;

  // The endpoint is registered at the outbox's end; then each subscription gets EVENTS_EACH events.
  await ensureWebhookEndpoint(t.db, endpointId(url), url, await lastEventId(t.db), Date.now());
  const subs = Array.from({ length: SUBSCRIPTIONS }, (_, i) => `sub-${String(i).padStart(2, '0')}`);
  for (const id of subs) await addSubscription(t.db, Date.now(), { id, startDate: '2030-01-01', paymentToken: 'tok_ok' });
  for (let i = 1; i < EVENTS_EACH; i++) for (const id of subs) await addUpdate(t.db, id);
  const expected = SUBSCRIPTIONS * EVENTS_EACH;

  // The first relay, in a child process, claims heads and sends them; it is SIGKILLed with them in flight.
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(root, 'test/support/relay-child.ts'), t.url, url, 'dead'], {
    cwd: root,
    env: { ...process.env, WEBHOOK_SECRET: SECRET },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const exited = new Promise((resolve) => child.once('exit', resolve));
  cleanups.push(async () => {
    child.kill('SIGKILL');
    await exited;
  });
  await waitUntil('the first relay to send two requests', () => receipts.length >= 2);
  child.kill('SIGKILL');
  await exited;
  const inFlight = receipts.map((r) => r.id);
  expect((await listDeliveries(t.db, { state: 'pending' })).filter((d) => d.attempts === 0)).toHaveLength(expected); // it recorded nothing
  holding = false;
  for (const res of held) res.destroy();

  // Two relays (two daemons: each its own connection) share what is left.
  const relays: Array<{ relay: Relay; delivered: number }> = [];
  for (const [owner, db] of [['b', t.db], ['c', t.connect()]] as Array<[string, Db]>) {
    if (db !== t.db) cleanups.push(() => db.destroy());
    const entry = { relay: undefined as unknown as Relay, delivered: 0 };
    entry.relay = createRelay({
      db,
      clock: systemClock,
      logger: silentLogger,
      webhooks: [{ url, secret: SECRET, events: ['*'], enabled: true, retrySchedule: ['PT1S'], maxAgeHours: 72, timeoutSeconds: 30 }],
      observer: {
        attempt: (_endpoint, outcome) => {
          if (outcome === 'delivered') entry.delivered++;
        },
      },
      options: { owner, concurrency: 2, window: 4, recordBatch: 2, pollMs: 50 },
    });
    await entry.relay.init();
    relays.push(entry);
  }
  for (const { relay } of relays) relay.start();
  cleanups.push(async () => {
    for (const { relay } of relays) await relay.stop();
  });
  const answered = () => new Set(receipts.filter((r) => r.answered).map((r) => r.id));
  await waitUntil(`all ${expected} events answered`, () => answered().size === expected);
  await waitUntil('every delivery recorded', async () => (await listDeliveries(t.db, { state: 'delivered' })).length === expected);
  for (const { relay } of relays) await relay.stop();

  // At least once: the dead relay's requests were sent again, with the same webhook-ids.
  for (const id of inFlight) expect(receipts.filter((r) => r.id === id && r.answered)).not.toHaveLength(0);
  // Order per subscription: no event reached the receiver before every earlier one of its subscription was answered.
  const answeredSoFar = new Set<string>();
  for (const r of receipts) {
    const earlier = receipts.filter((x) => x.subscription === r.subscription && x.id < r.id).map((x) => x.id);
    for (const id of earlier) expect(answeredSoFar.has(id), `${r.id} of ${r.subscription} sent before ${id} was delivered`).toBe(true);
    if (r.answered) answeredSoFar.add(r.id);
  }
  // Shared work: each relay delivered a meaningful share; together every event exactly once after the death.
  const [b, c] = relays.map((r) => r.delivered) as [number, number];
  expect(b + c).toBe(expected);
  // (SQLite runs one daemon per file: two relays on one file take turns at its write lock, and no share is promised.)
  if (t.dialect === 'postgres') expect(Math.min(b, c)).toBeGreaterThanOrEqual(expected / 5);
  // Nothing is left leased.
  const leased = await t.db.selectFrom('webhook_deliveries').select('event_id').where('lease_owner', 'is not', null).execute();
  expect(leased).toEqual([]);
});

async function addUpdate(db: Db, subscriptionId: string): Promise<void> {
  await db.insertInto('events').values({ type: 'subscription.updated', subscription_id: subscriptionId, cycle: null, attempt: null, occurred_at: toDbTime(Date.now()), payload: '{}' }).execute();
}

it("a daemon starting on this host gives back the webhook deliveries a dead one held (no lease wait), not a live daemon's", async () => {
  const t: TempDb = await openTempDb({}, { name: 'deadrelay' });
  cleanups.push(() => t.close());
  const url = 'http://127.0.0.1:9/hooks';
  const ep = endpointId(url);
  await ensureWebhookEndpoint(t.db, ep, url, await lastEventId(t.db), Date.now());
  for (const id of ['d1', 'd2', 'd3']) await addSubscription(t.db, Date.now(), { id, startDate: '2030-01-01', paymentToken: 'tok_ok' });
  expect(await scanOutbox(t.db, ep, () => true, 100, Date.now())).toBe(3);
  // d1's head leased by a dead daemon of this host (no process has a pid above pid_max), d2's by a daemon on another host.
  const dead = `${hostname()}:99999999:dead0001`;
  const elsewhere = 'another-host:1:live0001';
  const until = toDbTime(Date.now() + 3_600_000);
  const lease = async (subscription: string, owner: string) =>
    t.db.updateTable('webhook_deliveries').set({ lease_owner: owner, lease_until: until }).where('subscription_id', '=', subscription).execute();
  await lease('d1', dead);
  await lease('d2', elsewhere);
  expect(await recoverDeadOwners(t.db, `${hostname()}:${process.pid}:self0001`, Date.now(), silentLogger)).toBe(0);
  const owners = Object.fromEntries((await listDeliveries(t.db, { endpointId: ep })).map((d) => [d.subscriptionId, d]));
  const leases = await t.db.selectFrom('webhook_deliveries').select(['subscription_id', 'lease_owner']).orderBy('subscription_id').execute();
  expect(leases).toEqual([
    { subscription_id: 'd1', lease_owner: null },
    { subscription_id: 'd2', lease_owner: elsewhere },
    { subscription_id: 'd3', lease_owner: null },
  ]);
  expect(Object.keys(owners).sort()).toEqual(['d1', 'd2', 'd3']);
});
