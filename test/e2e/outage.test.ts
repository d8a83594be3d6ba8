/**
 * Gateway outages end to end (SPEC section 6 "Gateway unavailability is not a
 * decline", SPEC section 7 fake gateway): real `rebill run` daemons, a real
 * SQLite file, and `rebill fake-gateway` as the CoolPay gateway over HTTP on
 * 127.0.0.1, stopped with SIGKILL and restarted on the same port and ledger.
 * Retry delays are seconds here (PT1S, PT2S), so an outage of a few seconds
 * is already longer than all of them; the days-long version of the same runs
 * on fake timers in test/engine/outage.test.ts.
 */
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { assertExactlyOnce, startDaemon } from './support/daemon.js';
import { attempts, readDb, sleep, startFakeGateway, todayUtc, waitFor, writeConfig, type FakeGatewayProcess } from './support/processes.js';
import { e2eSuite } from './support/suite.js';

const newDir = e2eSuite('outage');

/** `<dir>/rebill.yaml`: gateway `cp` = CoolPay at `url`, second-long retry delays, `subs` due now. */
function outageConfig(dir: string, url: string, subs: ReadonlyArray<{ id: string; token: string }>, scheduler: Record<string, unknown> = {}): string {
  return writeConfig(path.join(dir, 'rebill.yaml'), {
    database: { url: `sqlite:${path.join(dir, 'rebill.db')}` },
    gateways: { cp: { type: 'coolpay', baseUrl: url, apiKey: 'test', timeoutSeconds: 2 } },
    scheduler: { sweep: '* * * * * *', pendingPollSeconds: 1, leaseSeconds: 3, ...scheduler },
    retry: { attempts: 3, delays: ['PT1S', 'PT2S'] },
    logging: { level: 'info' },
    plans: [{ id: 'monthly', description: 'Monthly', amount: '9.99', currency: 'USD', every: 'MONTH', gateway: 'cp' }],
    subscriptions: subs.map((s) => ({ id: s.id, planId: 'monthly', paymentToken: s.token, startDate: todayUtc() })),
  });
}

function eventTypes(dbFile: string, id: string): string[] {
  return readDb(dbFile, (db) => (db.prepare('SELECT type FROM events WHERE subscription_id = ? ORDER BY id').all(id) as Array<{ type: string }>).map((r) => r.type));
}

function attemptsOf(dbFile: string, id: string) {
  return attempts(dbFile).filter((a) => a.subscription_id === id);
}

function portOf(gateway: FakeGatewayProcess): number {
  return Number(new URL(gateway.url).port);
}

describe('gateway outages with real processes (rebill run, rebill fake-gateway over HTTP)', () => {
  it('tok_5xx for longer than every retry delay: the same key is re-sent after a status query, no attempt is spent and the customer is not terminated', async () => {
    const dir = newDir('5xx');
    const dbFile = path.join(dir, 'rebill.db');
    const gateway = await startFakeGateway(path.join(dir, 'ledger.jsonl'));
    const config = outageConfig(dir, gateway.url, [
      { id: 'five', token: 'tok_5xx' },
      { id: 'fine', token: 'tok_ok' },
    ]);
    const daemon = await startDaemon(config, path.join(dir, 'rebill.log'));

    // The key is sent, answered 500, asked about (not found) and re-sent: the same key.
    await waitFor(() => (attemptsOf(dbFile, 'five')[0]?.sends ?? 0) >= 2 || undefined, { timeoutMs: 30_000 });
    // Longer than PT1S + PT2S plus a reconcile period: before the outage policy, attempt 1 had failed by now.
    await sleep(5_000);
    expect(daemon.alive()).toBe(true);
    const rows = attemptsOf(dbFile, 'five');
    expect(rows.map((a) => [a.idempotency_key, a.state, a.decline_code])).toEqual([['five:1:1', 'unknown', null]]);
    expect(eventTypes(dbFile, 'five').filter((t) => t.startsWith('charge.') || t.startsWith('subscription.payment') || t === 'subscription.cancelled')).toEqual([]);
    expect(readDb(dbFile, (db) => db.prepare("SELECT status, termination_type FROM subscriptions WHERE id = 'five'").get())).toEqual({ status: 'active', termination_type: null });
    // The gateway stays usable for everyone else (two 500s do not open the breaker), and nothing was captured for `five`.
    await waitFor(() => attemptsOf(dbFile, 'fine').find((a) => a.state === 'captured'), { timeoutMs: 30_000 });
    expect((await gateway.ledger()).map((c) => c.order_id)).toEqual(['fine:1:1']);
  });

  it('a gateway that is down (process killed) and comes back on the same port: the same key is re-sent and the cycle captured exactly once', async () => {
    const dir = newDir('down');
    const dbFile = path.join(dir, 'rebill.db');
    const ledgerFile = path.join(dir, 'ledger.jsonl');
    const first = await startFakeGateway(ledgerFile);
    const port = portOf(first);
    first.child.kill('SIGKILL');
    await first.child.exited;

    const config = outageConfig(dir, first.url, [{ id: 'back', token: 'tok_ok' }]);
    await startDaemon(config, path.join(dir, 'rebill.log'));
    // Connection refused: the outcome is unknown, nothing is decided.
    await waitFor(() => attemptsOf(dbFile, 'back').find((a) => a.state === 'unknown'), { timeoutMs: 30_000 });

    const second = await startFakeGateway(ledgerFile, 'test', port);
    // The next status query finds nothing, so the same key goes again (the second unavailable outcome would wait a minute).
    await waitFor(() => attemptsOf(dbFile, 'back').find((a) => a.state === 'captured'), { timeoutMs: 90_000 });
    expect(attemptsOf(dbFile, 'back').map((a) => [a.idempotency_key, a.state, a.sends])).toEqual([['back:1:1', 'captured', 2]]);
    expect(eventTypes(dbFile, 'back').filter((t) => t === 'charge.failed')).toEqual([]);
    await assertExactlyOnce(second, dbFile, ['back']);
  });

  it('tok_pending at a fake gateway SIGKILLed and restarted on its ledger: still the same pending payment, then captured; never a failed attempt', async () => {
    const dir = newDir('pending');
    const dbFile = path.join(dir, 'rebill.db');
    const ledgerFile = path.join(dir, 'ledger.jsonl');
    const first = await startFakeGateway(ledgerFile);
    const port = portOf(first);
    // The poll comes 8 s after the pending answer: the gateway restarts in between.
    const config = outageConfig(dir, first.url, [{ id: 'pend', token: 'tok_pending' }], { pendingPollSeconds: 8 });
    await startDaemon(config, path.join(dir, 'rebill.log'));
    const pending = await waitFor(() => attemptsOf(dbFile, 'pend').find((a) => a.state === 'pending'), { timeoutMs: 30_000 });

    first.child.kill('SIGKILL');
    await first.child.exited;
    const second = await startFakeGateway(ledgerFile, 'test', port);

    await waitFor(() => attemptsOf(dbFile, 'pend').find((a) => a.state === 'captured'), { timeoutMs: 60_000 });
    // One send: the restarted gateway answered for the key instead of "not found", so nothing was re-sent.
    expect(attemptsOf(dbFile, 'pend').map((a) => [a.idempotency_key, a.state, a.sends, a.decline_code])).toEqual([['pend:1:1', 'captured', 1, null]]);
    expect((await second.ledger()).map((c) => [c.order_id, String(c.payment_id)])).toEqual([['pend:1:1', pending.external_id]]);
    expect(eventTypes(dbFile, 'pend').filter((t) => t === 'charge.failed' || t === 'subscription.cancelled')).toEqual([]);
    await assertExactlyOnce(second, dbFile, ['pend']);
  });
});
