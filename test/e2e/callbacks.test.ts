/**
 * Gateway callbacks end to end (issue 8 item 5): a real `rebill run` and a
 * real `rebill fake-gateway --callback-url` pointing at the daemon's
 * `/v1/gateway-callbacks/cp`. A tok_pending charge is settled by the
 * gateway's signed callback long before the daemon's status query would
 * have asked (pendingPollSeconds is an hour); replays of that callback
 * settle nothing more and a forged one is refused.
 */
import { createHmac } from 'node:crypto';
import net from 'node:net';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { assertExactlyOnce, startDaemon } from './support/daemon.js';
import { attempts, exitWithin, logLines, readDb, startFakeGateway, todayUtc, waitFor, writeConfig } from './support/processes.js';
import { e2eSuite } from './support/suite.js';

const newDir = e2eSuite('callbacks');
const SECRET = 'e2e-callback-secret-5d1c';

/** A port nothing listens on right now (the fake gateway must know the daemon's URL before the daemon starts). */
async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

function events(dbFile: string, type: string): unknown[] {
  return readDb(dbFile, (db) => db.prepare('SELECT * FROM events WHERE type = ?').all(type));
}

describe('gateway callbacks between rebill run and rebill fake-gateway', () => {
  it('a tok_pending charge is captured by the signed callback, not the hourly status query; replays settle nothing more; a forgery is 401', async () => {
    const dir = newDir('settle');
    const port = await freePort();
    const callbackUrl = `http://127.0.0.1:${port}/v1/gateway-callbacks/cp`;
    const gateway = await startFakeGateway(path.join(dir, 'ledger.jsonl'), 'test', 0, ['--callback-url', callbackUrl, '--callback-secret', SECRET, '--pending-settle-ms', '300']);
    const dbFile = path.join(dir, 'rebill.db');
    const config = writeConfig(path.join(dir, 'rebill.yaml'), {
      database: { url: `sqlite:${dbFile}` },
      http: { host: '127.0.0.1', port },
      gateways: { cp: { type: 'coolpay', baseUrl: gateway.url, apiKey: 'test', timeoutSeconds: 2, callbackSecret: SECRET } },
      // Only the callback can settle the pending payment within this test.
      scheduler: { sweep: '* * * * * *', pendingPollSeconds: 3600 },
      logging: { level: 'info' },
      plans: [{ id: 'monthly', description: 'Monthly', amount: '9.99', currency: 'USD', every: 'MONTH', gateway: 'cp' }],
      subscriptions: [{ id: 'cb-e2e', planId: 'monthly', paymentToken: 'tok_pending', startDate: todayUtc() }],
    });
    const daemon = await startDaemon(config, path.join(dir, 'rebill.log'));

    await waitFor(() => (attempts(dbFile).some((a) => a.state === 'captured') ? true : undefined), {
      timeoutMs: 30_000,
      describe: () => JSON.stringify(attempts(dbFile)),
    });
    // The line is written just after the commit the poll above saw; this process may not have read it from the pipe yet.
    await waitFor(() => (logLines(daemon.stdout()).some((l) => l.msg === 'gateway callback: attempt captured' && l.key === 'cb-e2e:1:1') ? true : undefined), {
      timeoutMs: 5_000,
      describe: () => 'no "gateway callback: attempt captured" line on stdout',
    });
    expect(logLines(daemon.stdout()).some((l) => l.msg === 'attempt pending' && l.subscriptionId === 'cb-e2e')).toBe(true);
    await assertExactlyOnce(gateway, dbFile, ['cb-e2e']);
    expect(events(dbFile, 'charge.succeeded')).toHaveLength(1);

    // Replays of what the gateway sent (the captured payment, signed): acknowledged, nothing changes.
    const [payment] = await gateway.payments('cb-e2e:1:1');
    const body = JSON.stringify(payment);
    const send = (payload: string, checksum: string | null) =>
      fetch(callbackUrl, { method: 'POST', headers: { 'Content-Type': 'application/json', ...(checksum ? { 'QuickPay-Checksum-Sha256': checksum } : {}) }, body: payload });
    const signature = createHmac('sha256', SECRET).update(body).digest('hex');
    for (let i = 0; i < 5; i++) {
      const replay = await send(body, signature);
      expect(replay.status).toBe(200);
      expect(await replay.json()).toEqual({ received: true, result: 'already_settled' });
    }
    const forged = await send(body.replace('"processed"', '"rejected"'), signature);
    expect(forged.status).toBe(401);
    expect(forged.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect((await send(body, null)).status).toBe(401);
    await assertExactlyOnce(gateway, dbFile, ['cb-e2e']);
    expect(events(dbFile, 'charge.succeeded')).toHaveLength(1);
    expect(daemon.stdout()).not.toContain(SECRET);

    daemon.kill('SIGTERM');
    expect((await exitWithin(daemon, 30_000)).code).toBe(0);
    gateway.child.kill('SIGTERM');
    expect((await exitWithin(gateway.child, 10_000)).code).toBe(0);
    expect(gateway.child.stderr()).not.toContain(SECRET);
  });
});
