/**
 * Scale-out on PostgreSQL (issue 11, item 5): three `rebill run` daemons on
 * one database, one `rebill fake-gateway --ledger` as their CoolPay gateway
 * over real HTTP, one webhook receiver. 10,000 cycles are due at once with a
 * mix of tokens. One daemon is SIGKILLed mid-way and restarted, another is
 * SIGTERMed. Then: the gateway's ledger holds exactly one capture per cycle
 * that can be captured and nothing else, the database agrees with it, every
 * daemon that lived collected a real share, and every event reached the
 * receiver.
 */
import { createServer, type Server } from 'node:http';
import path from 'node:path';
import fs from 'node:fs';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { READY } from './support/daemon.js';
import { exitWithin, logLines, spawnRebill, startFakeGateway, todayUtc, waitFor, writeConfig, type Child } from './support/processes.js';
import { e2eSuite } from './support/suite.js';
import { createTestPostgres, type TestPostgres } from '../support/postgres.js';

const newDir = e2eSuite('scale-out');
const N = 10_000;
/** Tokens the gateway approves at once, slowly or after a status poll (one capture each), and two it declines on attempt 1 (no capture now; a retry a day later). */
const TOKENS = ['tok_ok', 'tok_ok', 'tok_ok', 'tok_slow_20', 'tok_flaky_1', 'tok_pending', 'tok_insufficient'] as const;
const CAPTURABLE = new Set<string>(['tok_ok', 'tok_slow_20', 'tok_pending']);
const SECRET = `whsec_${Buffer.from('scale-out-test-secret-0123456789').toString('base64')}`;

let database: TestPostgres | undefined;
afterAll(async () => {
  await database?.drop();
});

/** A webhook receiver that answers 204 at once and remembers each webhook-id it saw. */
async function receiver(): Promise<{ server: Server; url: string; ids: Set<string>; requests: () => number }> {
  const ids = new Set<string>();
  let requests = 0;
  const server = createServer((req, res) => {
    requests++;
    const id = req.headers['webhook-id'];
    req.resume();
    req.on('end', () => {
      if (typeof id === 'string') ids.add(id);
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address() as { port: number };
  return { server, url: `http://127.0.0.1:${address.port}/hooks`, ids, requests: () => requests };
}

describe('three daemons on one PostgreSQL database (child processes, fake CoolPay over HTTP)', () => {
  it('collect 10,000 due cycles exactly once between them while one is SIGKILLed and restarted and another SIGTERMed; no webhook is lost', async () => {
    const started = Date.now();
    database = await createTestPostgres('scaleout');
    const dir = newDir('scale');
    const gateway = await startFakeGateway(path.join(dir, 'ledger.jsonl'));
    const hooks = await receiver();
    const today = todayUtc();
    const tokenOf = (i: number) => TOKENS[i % TOKENS.length]!;
    const ids = Array.from({ length: N }, (_, i) => `so-${String(i).padStart(5, '0')}`);
    const config = writeConfig(path.join(dir, 'rebill.yaml'), {
      database: { url: database.url, poolSize: 8 },
      gateways: { cp: { type: 'coolpay', baseUrl: gateway.url, apiKey: 'test', timeoutSeconds: 5 } },
      // A short lease so the SIGKILLed daemon's claims come back quickly; a fast poll for tok_pending.
      scheduler: { sweep: '* * * * * *', pendingPollSeconds: 1, leaseSeconds: 10, concurrency: 32, ratePerSecond: 100000, claimBatch: 500, drainSeconds: 20 },
      logging: { level: 'info' },
      webhooks: [{ url: hooks.url, secret: SECRET, events: ['charge.*'], retrySchedule: ['PT1S'] }],
      plans: [{ id: 'monthly', description: 'Monthly', amount: '9.99', currency: 'USD', every: 'MONTH', gateway: 'cp' }],
      subscriptions: ids.map((id, i) => ({ id, planId: 'monthly', paymentToken: tokenOf(i), startDate: today })),
    });
    const logOf = (name: string) => path.join(dir, `${name}.log`);
    const spawn = (name: string): Child => spawnRebill(['run', '--config', config], { logFile: logOf(name) });

    const db = new pg.Client({ connectionString: database.url });
    await db.connect();
    const count = async (text: string): Promise<number> => Number((await db.query<{ n: string }>(text)).rows[0]!.n);
    const settled = () => count("select count(*) as n from attempts where cycle = 1 and state in ('captured', 'rejected')");
    try {
      // All three start together: they migrate once (advisory lock) and seed each subscription once.
      const daemons: Record<string, Child> = { a: spawn('a'), b: spawn('b'), c: spawn('c') };
      await Promise.all(Object.values(daemons).map((d) => d.waitForStdout(READY, 120_000)));
      expect(await count('select count(*) as n from subscriptions')).toBe(N);

      // Mid-way, a is killed outright and started again; then b is asked to stop.
      await waitFor(async () => ((await settled()) >= N * 0.25 ? true : undefined), { timeoutMs: 120_000, intervalMs: 100 });
      daemons.a!.kill('SIGKILL');
      await exitWithin(daemons.a!, 10_000);
      const killedAt = await settled();
      daemons.a2 = spawn('a2');
      await daemons.a2.waitForStdout(READY, 60_000);
      await waitFor(async () => ((await settled()) >= N * 0.5 ? true : undefined), { timeoutMs: 120_000, intervalMs: 100 });
      daemons.b!.kill('SIGTERM');
      const stopped = await exitWithin(daemons.b!, 40_000);
      expect(stopped.code, 'b drains and exits 0').toBe(0);

      // The two left finish everything, the killed daemon's in-flight attempts included.
      await waitFor(async () => ((await settled()) === N ? true : undefined), { timeoutMs: 180_000, intervalMs: 200 });
      const open = await count("select count(*) as n from attempts where state in ('in_flight', 'unknown', 'pending')");
      expect(open, 'attempts left open').toBe(0);

      // The gateway's ledger: exactly one capture per capturable subscription's cycle 1, nothing else.
      const ledger = await gateway.ledger();
      const captures = new Map<string, string[]>();
      for (const c of ledger) {
        const match = /^(.+):1:(\d+)$/.exec(c.order_id);
        expect(match, `unexpected order_id ${c.order_id}`).not.toBeNull();
        captures.set(match![1]!, [...(captures.get(match![1]!) ?? []), c.order_id]);
      }
      const doubles = [...captures].filter(([, keys]) => keys.length > 1);
      expect(doubles, 'charged twice at the gateway').toEqual([]);
      const wanted = ids.filter((_, i) => CAPTURABLE.has(tokenOf(i)));
      expect([...captures.keys()].sort()).toEqual(wanted);

      // The database agrees: the same keys captured, one per cycle, and each of those cycles paid.
      const captured = (await db.query<{ subscription_id: string; idempotency_key: string }>("select subscription_id, idempotency_key from attempts where state = 'captured'")).rows;
      expect(captured).toHaveLength(wanted.length);
      for (const row of captured) expect(captures.get(row.subscription_id), row.subscription_id).toEqual([row.idempotency_key]);
      expect(await count("select count(*) as n from cycles where cycle = 1 and status = 'paid'")).toBe(wanted.length);

      // Every daemon that ran collected a real share (its own "attempt captured" / "rejected" lines).
      const shares: Record<string, number> = {};
      for (const name of ['a', 'a2', 'b', 'c']) {
        shares[name] = logLines(fs.readFileSync(logOf(name), 'utf8')).filter((l) => l.msg === 'attempt captured' || l.msg === 'attempt rejected').length;
      }
      for (const name of ['a', 'b', 'c']) expect(shares[name], `share of ${name}: ${JSON.stringify(shares)}`).toBeGreaterThan(N * 0.05);
      expect(shares.a2! + shares.c!, `the daemons left after the kill and the stop: ${JSON.stringify(shares)}`).toBeGreaterThan(0);

      // No webhook lost: every charge.* event reached the receiver at least once, under its own id.
      const events = (await db.query<{ id: string }>("select id from events where type like 'charge.%'")).rows.map((r) => `evt_${String(r.id).padStart(12, '0')}`);
      await waitFor(() => (events.every((id) => hooks.ids.has(id)) ? true : undefined), { timeoutMs: 120_000, intervalMs: 250 });
      console.log(
        `e2e scale-out: ${N} due, ${wanted.length} captured once each; shares ${JSON.stringify(shares)}; a killed at ${killedAt} settled; ` +
          `${events.length} charge events, ${hooks.requests()} webhook requests; ${((Date.now() - started) / 1000).toFixed(0)} s`,
      );
      for (const d of Object.values(daemons)) if (d.alive()) d.kill('SIGTERM');
      for (const d of Object.values(daemons)) await exitWithin(d, 40_000).catch(() => undefined);
    } finally {
      await db.end();
      hooks.server.close();
      gateway.child.kill('SIGTERM');
    }
  }, 600_000);
});
