/**
 * Issue 8, "the whole flow from a new user's view", against a real `rebill
 * run` over real HTTP: start the daemon, create a subscription with a past
 * start date, see it captured in /v1/charges, in /metrics and in `rebill
 * status`; a card update after a decline is used by the retry; a daemon
 * restarted on the same file replays an Idempotency-Key (it is stored in the
 * database, not in memory). Every line the daemon printed is checked for the
 * tokens it was given (test/support/secret-scan.ts).
 */
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { runCli } from '../support/cli.js';
import { READY } from './support/daemon.js';
import { exitWithin, logLines, spawnRebill, waitFor, watchSecret, writeConfig, type Child } from './support/processes.js';
import { e2eSuite } from './support/suite.js';

const newDir = e2eSuite('api-flow');
const WRITE = 'flow-write-token-5f1c2e9a';
const READ = 'flow-read-token-77ab01cd';

function config(dir: string): string {
  return writeConfig(path.join(dir, 'rebill.yaml'), {
    database: { url: `sqlite:${path.join(dir, 'rebill.db')}` },
    http: { host: '127.0.0.1', port: 0, tokens: [{ token: WRITE, scope: 'write' }, { token: READ, scope: 'read' }] },
    gateways: { sim: { type: 'simulator' } },
    scheduler: { sweep: '* * * * * *' },
    retry: { attempts: 3, delays: ['PT2S', 'PT1H'] },
    plans: [{ id: 'basic', amount: '4.50', currency: 'GBP', every: 'TWO_WEEKS', gateway: 'sim' }],
  });
}

async function start(file: string, logFile: string): Promise<{ daemon: Child; base: string }> {
  const daemon = spawnRebill(['run', '--config', file], { logFile });
  await daemon.waitForStdout(READY, 30_000);
  const ready = logLines(daemon.stdout()).find((l) => l.msg === 'rebill ready')!;
  return { daemon, base: `http://${String(ready.http)}` };
}

async function api(base: string, method: string, route: string, body?: unknown, headers: Record<string, string> = {}) {
  const response = await fetch(`${base}${route}`, {
    method,
    headers: { authorization: `Bearer ${WRITE}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...headers },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  return { status: response.status, headers: response.headers, body: (await response.json()) as any };
}

describe('the admin API from a new user', () => {
  it('create with a past start -> captured in /v1/charges, /metrics and rebill status; card update after a decline; a key replayed after a restart', async () => {
    const dir = newDir('flow');
    const file = config(dir);
    const logFile = path.join(dir, 'rebill.log');
    watchSecret('tok_insufficient');
    let { daemon, base } = await start(file, logFile);

    // A start date in the past: the current period is collected now (earlier cycles are skipped).
    const past = new Date(Date.now() - 20 * 86_400_000).toISOString().slice(0, 10);
    const created = await api(base, 'POST', '/v1/subscriptions', { planId: 'basic', paymentToken: 'tok_ok', startDate: past, externalId: 'order-1', source: 'shop', customer: { email: 'new@example.com' } }, { 'idempotency-key': 'create-order-1' });
    expect(created.status).toBe(201);
    const id = created.body.id as string;
    const charges = await waitFor(
      async () => {
        const page = await api(base, 'GET', `/v1/charges?status=captured`, undefined, { authorization: `Bearer ${READ}` });
        return page.body.data.length > 0 ? page.body.data : undefined;
      },
      { timeoutMs: 20_000, intervalMs: 200 },
    );
    expect(charges).toEqual([expect.objectContaining({ subscriptionId: id, cycle: 2, attempt: 1, operation: 'recurring', status: 'captured', amount: '4.50', currency: 'GBP', gateway: 'sim' })]);

    const metrics = await (await fetch(`${base}/metrics`)).text();
    expect(metrics).toMatch(/^rebill_attempts_total\{[^}]*outcome="captured"[^}]*\} 1$/m);
    expect(metrics).toMatch(/^rebill_http_requests_total\{route="\/v1\/subscriptions",method="POST",status="201"\} 1$/m);

    const status = await runCli(['status', '--config', file, '--json'], { cleanRebillEnv: true });
    expect(status.code).toBe(0);
    const report = JSON.parse(status.stdout);
    expect(report.subscriptions).toMatchObject({ active: 1 });

    // A declined card, updated over the API: the scheduled retry (PT2S) sends the new token.
    const declined = (await api(base, 'POST', '/v1/subscriptions', { planId: 'basic', paymentToken: 'tok_insufficient', startDate: past })).body.id as string;
    await waitFor(async () => ((await api(base, 'GET', `/v1/subscriptions/${declined}`)).body.nextPaymentAction === 'retry' ? true : undefined), { timeoutMs: 20_000, intervalMs: 100 });
    const patched = await api(base, 'PATCH', `/v1/subscriptions/${declined}`, { paymentToken: 'tok_ok' });
    expect(patched.status).toBe(200);
    const history = await waitFor(
      async () => {
        const rows = (await api(base, 'GET', `/v1/subscriptions/${declined}/charges`)).body.data as Array<{ attempt: number; status: string }>;
        return rows.some((c) => c.status === 'captured') ? rows : undefined;
      },
      { timeoutMs: 20_000, intervalMs: 200 },
    );
    expect(history.map((c) => [c.attempt, c.status])).toEqual([
      [1, 'rejected'],
      [2, 'captured'],
    ]);

    // The idempotency key is in the database: a restarted daemon replays the first response.
    daemon.kill('SIGTERM');
    expect((await exitWithin(daemon, 20_000)).code).toBe(0);
    ({ daemon, base } = await start(file, logFile));
    const replay = await api(base, 'POST', '/v1/subscriptions', { planId: 'basic', paymentToken: 'tok_ok', startDate: past, externalId: 'order-1', source: 'shop', customer: { email: 'new@example.com' } }, { 'idempotency-key': 'create-order-1' });
    expect(replay.status).toBe(201);
    expect(replay.headers.get('idempotent-replayed')).toBe('true');
    expect(replay.body.id).toBe(id);
    const list = await api(base, 'GET', '/v1/subscriptions?source=shop&externalId=order-1');
    expect(list.body.data).toHaveLength(1);
    daemon.kill('SIGTERM');
    expect((await exitWithin(daemon, 20_000)).code).toBe(0);
  });
});
