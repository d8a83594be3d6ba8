/**
 * Issue 11, item 2: on PostgreSQL, what the API or an import makes due wakes
 * the daemons at once (LISTEN/NOTIFY) instead of at their next timer or
 * safety-net sweep. The daemon here sweeps once a year and, with nothing
 * due, sleeps a full minute between looks: a subscription imported due now
 * is collected within seconds only because the import's NOTIFY woke it. An
 * API write notifies the channel with the writing daemon's id.
 */
import fs from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { runCli } from '../support/cli.js';
import { createTestPostgres, type TestPostgres } from '../support/postgres.js';
import { READY } from './support/daemon.js';
import { exitWithin, logLines, spawnRebill, todayUtc, waitFor, writeConfig } from './support/processes.js';
import { e2eSuite } from './support/suite.js';

const newDir = e2eSuite('wake');
const WRITE = 'wake-write-token-3c9d1a7e';

let database: TestPostgres | undefined;
afterAll(async () => {
  await database?.drop();
});

describe('wake-ups on PostgreSQL (a real daemon, LISTEN/NOTIFY)', () => {
  it('an import of a due subscription wakes a sleeping daemon; an API create notifies the others', async () => {
    database = await createTestPostgres('wake');
    const dir = newDir('wake');
    const config = writeConfig(path.join(dir, 'rebill.yaml'), {
      database: { url: database.url, poolSize: 4 },
      http: { host: '127.0.0.1', port: 0, tokens: [{ token: WRITE, scope: 'write' }] },
      gateways: { sim: { type: 'simulator' } },
      // The safety net once a year: only the engine's own timer (a minute with nothing due) and wake-ups remain.
      scheduler: { sweep: '0 0 1 1 *' },
      logging: { level: 'info' },
      plans: [{ id: 'monthly', amount: '9.99', currency: 'USD', every: 'MONTH', gateway: 'sim' }],
    });
    const listener = new pg.Client({ connectionString: database.url });
    const daemon = spawnRebill(['run', '--config', config], { logFile: path.join(dir, 'rebill.log') });
    try {
      await daemon.waitForStdout(READY, 30_000);
      const base = `http://${String(logLines(daemon.stdout()).find((l) => l.msg === 'rebill ready')!.http)}`;
      await listener.connect();
      const heard: string[] = [];
      listener.on('notification', (m) => heard.push(String(m.payload)));
      await listener.query('listen rebill_wake');

      // The import is a separate process: its NOTIFY is what wakes the daemon.
      const csv = path.join(dir, 'subs.csv');
      fs.writeFileSync(csv, `id,planId,paymentToken,startDate\nimported-1,monthly,tok_ok,${todayUtc()}\n`);
      const importedAt = Date.now();
      const imported = await runCli(['subscriptions', 'import', csv, '--config', config]);
      expect(imported).toMatchObject({ code: 0 });
      const capturedWithin = await waitFor(
        async () => {
          const { rows } = await listener.query<{ n: string }>("select count(*) as n from attempts where subscription_id = 'imported-1' and state = 'captured'");
          return Number(rows[0]!.n) === 1 ? Date.now() - importedAt : undefined;
        },
        { timeoutMs: 45_000, intervalMs: 100 },
      );
      // The daemon's own timer would have waited a minute (nothing was due when it last looked).
      expect(capturedWithin).toBeLessThan(45_000);
      expect(heard).toContain('import');

      // An API create notifies with the daemon's own id (the other daemons' listeners wake; this one kicked itself).
      const response = await fetch(`${base}/v1/subscriptions`, {
        method: 'POST',
        headers: { authorization: `Bearer ${WRITE}`, 'content-type': 'application/json' },
        body: JSON.stringify({ planId: 'monthly', paymentToken: 'tok_ok', startDate: todayUtc() }),
      });
      expect(response.status).toBe(201);
      await waitFor(() => (heard.some((p) => p !== 'import') ? true : undefined), { timeoutMs: 10_000, intervalMs: 20 });
      expect(heard.find((p) => p !== 'import')).toMatch(/^[^:]+:\d+:[0-9a-f]{8}$/);
      daemon.kill('SIGTERM');
      expect((await exitWithin(daemon, 30_000)).code).toBe(0);
    } finally {
      await listener.end().catch(() => undefined);
    }
  });
});
