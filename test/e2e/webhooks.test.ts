/**
 * Webhook delivery end to end (SPEC section 8): a real `rebill run` daemon,
 * fake CoolPay over HTTP, and a real receiver on 127.0.0.1 that is down, then
 * answers 500, then recovers; and a daemon SIGKILLed while a delivery is in
 * flight. Signatures are checked with the standardwebhooks package.
 */
import { createServer, type IncomingHttpHeaders, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { Webhook } from 'standardwebhooks';
import { afterEach, describe, expect, it } from 'vitest';
import { startDaemon, withFakeGateway } from './support/daemon.js';
import { exitWithin, logLines, readDb, todayUtc, waitFor, writeConfig, type FakeGatewayProcess } from './support/processes.js';
import { e2eSuite } from './support/suite.js';
import { runCli } from '../support/cli.js';

const newDir = e2eSuite('webhooks');
const SECRET = `whsec_${Buffer.from('e2e-webhook-secret-0123456789').toString('base64')}`;

interface Received {
  readonly path: string;
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
  readonly answer: number | 'reset' | 'hold';
}

type Answer = (path: string, index: number) => number | 'reset' | 'hold';

async function receiver(answer: Answer) {
  const received: Received[] = [];
  const held: ServerResponse[] = [];
  let count = 0;
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const a = answer(req.url ?? '/', count++);
      received.push({ path: req.url ?? '/', headers: req.headers, body: Buffer.concat(chunks).toString('utf8'), answer: a });
      if (a === 'reset') req.socket.destroy();
      else if (a === 'hold') held.push(res);
      else res.writeHead(a).end('ok');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const close = () => {
    for (const res of held) res.destroy();
    server.closeAllConnections();
    return new Promise<void>((resolve) => server.close(() => resolve()));
  };
  return { url, received, close };
}

const closers: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const close of closers.splice(0)) await close();
});

function config(dir: string, gateway: FakeGatewayProcess, ids: readonly string[], webhooks: unknown[]): string {
  return writeConfig(path.join(dir, 'rebill.yaml'), {
    database: { url: `sqlite:${path.join(dir, 'rebill.db')}` },
    gateways: { cp: { type: 'coolpay', baseUrl: gateway.url, apiKey: 'test', timeoutSeconds: 2 } },
    scheduler: { sweep: '* * * * * *', pendingPollSeconds: 1 },
    logging: { level: 'info' },
    plans: [{ id: 'monthly', description: 'Monthly', amount: '9.99', currency: 'USD', every: 'MONTH', gateway: 'cp' }],
    subscriptions: ids.map((id) => ({ id, planId: 'monthly', paymentToken: 'tok_ok', startDate: todayUtc() })),
    webhooks,
  });
}

/** The webhook-subscribable events in the outbox: [event id, subscription id]. */
function outbox(dbFile: string): Array<[string, string]> {
  return readDb(dbFile, (db) => db.prepare("select id, subscription_id from events where type <> 'cycle.skipped' order by id").all() as Array<{ id: number; subscription_id: string }>).map((r) => [
    `evt_${String(r.id).padStart(12, '0')}`,
    r.subscription_id,
  ]);
}

/** Every outbox event has been answered 2xx at `endpoint` once the daemon has charged every subscription. */
async function allDelivered(dbFile: string, received: readonly Received[], endpoint: string, charges: number): Promise<Array<[string, string]>> {
  return waitFor(
    () => {
      const events = outbox(dbFile);
      if (events.length < charges * 2) return undefined; // created + succeeded each
      const ok = new Set(received.filter((r) => r.path === endpoint && r.answer === 200).map((r) => r.headers['webhook-id']));
      return events.every(([id]) => ok.has(id)) ? events : undefined;
    },
    { timeoutMs: 30_000, describe: () => `received ${received.length}: ${received.map((r) => `${r.path} ${String(r.headers['webhook-id'])} ${r.answer}`).join(', ')}` },
  );
}

function checkSignaturesAndOrder(received: readonly Received[], events: ReadonlyArray<[string, string]>, endpoint: string): void {
  const verifier = new Webhook(SECRET);
  for (const r of received) {
    expect(() => verifier.verify(r.body, r.headers as Record<string, string>)).not.toThrow();
    expect(r.headers['webhook-id']).toBe(JSON.parse(r.body).id);
  }
  // In order per subscription: the first 2xx of each event follows its subscription's earlier events.
  const subOf = new Map(events);
  const firstOk: string[] = [];
  for (const r of received) if (r.path === endpoint && r.answer === 200 && !firstOk.includes(r.headers['webhook-id'] as string)) firstOk.push(r.headers['webhook-id'] as string);
  for (const sub of new Set(subOf.values())) {
    const ids = firstOk.filter((id) => subOf.get(id) === sub);
    expect(ids).toEqual([...ids].sort());
    expect(ids).toEqual(events.filter(([, s]) => s === sub).map(([id]) => id));
  }
}

describe('rebill run delivers webhooks (child process, real receiver)', () => {
  it('every event arrives through down, 500 and recovery, in order per subscription, signed, with a stable webhook-id; a dead endpoint delays nothing', async () => {
    const { dir, dbFile, logFile, gateway } = await withFakeGateway(newDir('hooks'));
    // /up: the first 4 requests are dropped (down), the next 4 answered 500, then 200. /down: never answers (each try waits out its 5 s timeout).
    let upCount = 0;
    const r = await receiver((p) => (p === '/down' ? 'hold' : upCount++ < 4 ? 'reset' : upCount <= 8 ? 500 : 200));
    closers.push(r.close);
    const ids = ['wh-1', 'wh-2', 'wh-3'];
    const file = config(dir, gateway, ids, [
      { url: `${r.url}/down`, secret: SECRET, retrySchedule: ['PT1S'], timeoutSeconds: 5 },
      { url: `${r.url}/up`, secret: SECRET, retrySchedule: ['PT1S'] },
    ]);
    const daemon = await startDaemon(file, logFile);
    const events = await allDelivered(dbFile, r.received, '/up', ids.length);
    checkSignaturesAndOrder(r.received, events, '/up');
    // Retries carried the same webhook-id: some event was tried more than once.
    const tries = new Map<string, number>();
    for (const x of r.received.filter((x) => x.path === '/up')) tries.set(x.headers['webhook-id'] as string, (tries.get(x.headers['webhook-id'] as string) ?? 0) + 1);
    expect(Math.max(...tries.values())).toBeGreaterThan(2);
    // Metrics by endpoint id and outcome; readiness warns only past its backlog age threshold.
    const upId = readDb(dbFile, (db) => db.prepare("select id from webhook_endpoints where url like '%/up'").get() as { id: string }).id;
    const base = `http://${String(logLines(daemon.stdout()).find((l) => l.msg === 'rebill ready')!.http)}`;
    const metrics = await (await fetch(`${base}/metrics`)).text();
    expect(metrics).toContain(`rebill_webhook_deliveries_total{endpoint="${upId}",outcome="delivered"} ${events.length}`);
    expect(metrics).toMatch(new RegExp(`rebill_webhook_backlog\\{endpoint="${upId}"\\} 0`));
    expect(metrics).toMatch(/rebill_webhook_oldest_undelivered_age_seconds\{endpoint="we_[0-9a-f]+"\} \d/);
    const ready = (await (await fetch(`${base}/readyz`)).json()) as { checks: Record<string, Array<{ status: string }>> };
    expect(ready.checks['webhooks:backlog']![0]!.status).toBe('pass');
    daemon.kill('SIGTERM');
    expect((await exitWithin(daemon, 20_000)).code).toBe(0);
    // Every attempt at /up is recorded; at /down, those the stop abandoned in flight are not (they stay pending).
    const recorded = (id: string) => readDb(dbFile, (db) => db.prepare('select count(*) as n from webhook_attempts where endpoint_id = ?').get(id) as { n: number }).n;
    expect(recorded(upId)).toBe(r.received.filter((x) => x.path === '/up').length);
    const downId = readDb(dbFile, (db) => db.prepare("select id from webhook_endpoints where url like '%/down'").get() as { id: string }).id;
    expect(recorded(downId)).toBeLessThanOrEqual(r.received.filter((x) => x.path === '/down').length);
    const down = readDb(dbFile, (db) => db.prepare("select count(*) as n from webhook_deliveries d join webhook_endpoints e on e.id = d.endpoint_id where e.url like '%/down' and d.state = 'pending'").get() as { n: number });
    expect(down.n).toBeGreaterThan(0);

    // The operator CLI: list by status, redeliver an event (both endpoints' deliveries go back to pending).
    const listed = await runCli(['webhooks', 'list', '--config', file, '--status', 'delivered', '--json']);
    expect(listed.code, listed.stderr).toBe(0);
    const delivered = (JSON.parse(listed.stdout) as { data: Array<{ eventId: string; endpoint: string }> }).data;
    expect(delivered.filter((d) => d.endpoint === upId).map((d) => d.eventId)).toEqual(events.map(([id]) => id));
    const again = await runCli(['webhooks', 'redeliver', events[0]![0], '--config', file, '--json']);
    expect(again.code, again.stderr).toBe(0);
    expect((JSON.parse(again.stdout) as { data: Array<{ status: string }> }).data.map((d) => d.status)).toEqual(['pending', 'pending']);
    const unknown = await runCli(['webhooks', 'redeliver', 'evt_000000099999', '--config', file]);
    expect([unknown.code, unknown.stderr]).toEqual([1, 'no event evt_000000099999\n']);
    const bad = await runCli(['webhooks', 'list', '--config', file, '--status', 'sent']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--status/);
  });

  it('after a SIGKILL mid-delivery and a restart nothing is lost (duplicates carry the same id)', async () => {
    const { dir, dbFile, logFile, gateway } = await withFakeGateway(newDir('kill'));
    let hold = true;
    const r = await receiver((_p, i) => (hold && i === 1 ? 'hold' : 200));
    closers.push(r.close);
    const ids = ['k-1', 'k-2'];
    const file = config(dir, gateway, ids, [{ url: `${r.url}/hook`, secret: SECRET, retrySchedule: ['PT1S'] }]);
    const first = await startDaemon(file, logFile);
    const heldRequest = await waitFor(() => r.received.find((x) => x.answer === 'hold'), { timeoutMs: 20_000 });
    first.kill('SIGKILL');
    await first.exited;
    hold = false;
    const second = await startDaemon(file, logFile);
    const events = await allDelivered(dbFile, r.received, '/hook', ids.length);
    checkSignaturesAndOrder(r.received, events, '/hook');
    const again = r.received.filter((x) => x.headers['webhook-id'] === heldRequest.headers['webhook-id']);
    expect(again.map((x) => x.answer)).toEqual(['hold', 200]);
    expect(JSON.parse(again[1]!.body).id).toBe(heldRequest.headers['webhook-id']);
    second.kill('SIGTERM');
    expect((await exitWithin(second, 20_000)).code).toBe(0);
  });
});
