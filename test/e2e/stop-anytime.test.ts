/**
 * SIGTERM at any moment of a busy daemon: it exits 0 well within its drain
 * limit, and what it was given is collected exactly once by the next start.
 * Each round starts `rebill run`, sends API creates that are due at once (each
 * kicks the engine; on PostgreSQL each also NOTIFYs), and sends SIGTERM a
 * random 0-60 ms after the last answer: while the engine sweeps, records, or
 * reads its next due instant. A stop that landed during that read used to
 * start a sleep of a minute after the stop had looked for a sleeper to cut
 * short (the failure of CI's stop 17 on PostgreSQL).
 */
import path from 'node:path';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { createTestPostgres, type TestPostgres } from '../support/postgres.js';
import { READY } from './support/daemon.js';
import { exitWithin, logLines, prng, readDb, sleep, spawnRebill, todayUtc, writeConfig } from './support/processes.js';
import { e2eSuite } from './support/suite.js';

const newDir = e2eSuite('stop-anytime');
const WRITE = 'stop-anytime-token-8b1f0c2d';
const ROUNDS = 6;
const DRAIN_SECONDS = 5;

let database: TestPostgres | undefined;
afterAll(async () => {
  await database?.drop();
});

/** Every attempt of cycle 1, by subscription and state (the same SQL on both dialects). */
const CYCLE_ONE = "select subscription_id as id, state from attempts where cycle = 1";

describe.each(['sqlite', 'postgres'] as const)('SIGTERM at a random moment of a busy daemon (%s)', (dialect) => {
  it(`exits 0 within drainSeconds each time, ${ROUNDS} rounds; then every create is charged once`, async () => {
    const seed = process.env.STOP_SEED !== undefined ? Number(process.env.STOP_SEED) >>> 0 : Math.floor(Math.random() * 2 ** 32);
    console.log(`e2e stop-anytime (${dialect}): STOP_SEED=${seed}`);
    const random = prng(seed);
    const dir = newDir(dialect);
    const dbFile = path.join(dir, 'rebill.db');
    if (dialect === 'postgres') database = await createTestPostgres('stopany');
    const url = dialect === 'postgres' ? database!.url : `sqlite:${dbFile}`;
    const config = writeConfig(path.join(dir, 'rebill.yaml'), {
      database: { url },
      http: { host: '127.0.0.1', port: 0, tokens: [{ token: WRITE, scope: 'write' }] },
      gateways: { sim: { type: 'simulator' } },
      // No safety-net sweep to speak of: only the engine's own timer (a minute with nothing due) and kicks wake it.
      scheduler: { sweep: '0 0 1 1 *', drainSeconds: DRAIN_SECONDS, ratePerSecond: 10_000 },
      logging: { level: 'info' },
      plans: [{ id: 'monthly', amount: '9.99', currency: 'USD', every: 'MONTH', gateway: 'sim' }],
    });
    const logFile = path.join(dir, 'rebill.log');
    const created: string[] = [];

    const start = async () => {
      const daemon = spawnRebill(['run', '--config', config], { logFile });
      await daemon.waitForStdout(READY, 30_000);
      const base = `http://${String(logLines(daemon.stdout()).find((l) => l.msg === 'rebill ready')!.http)}`;
      return { daemon, base };
    };
    const create = async (base: string) => {
      const response = await fetch(`${base}/v1/subscriptions`, {
        method: 'POST',
        headers: { authorization: `Bearer ${WRITE}`, 'content-type': 'application/json' },
        body: JSON.stringify({ planId: 'monthly', paymentToken: 'tok_ok', startDate: todayUtc() }),
      });
      expect(response.status).toBe(201);
      created.push(((await response.json()) as { id: string }).id);
    };

    for (let round = 0; round < ROUNDS; round++) {
      const { daemon, base } = await start();
      // A few creates, one or two at a time, then SIGTERM 0-60 ms after the last answer.
      const creates = 1 + Math.floor(random() * 6);
      for (let i = 0; i < creates; i++) await Promise.all(Array.from({ length: 1 + Math.floor(random() * 2) }, () => create(base)));
      await sleep(Math.floor(random() * 60));
      daemon.kill('SIGTERM');
      const exit = await exitWithin(daemon, (DRAIN_SECONDS + 10) * 1000);
      expect(exit.code, `round ${round} (STOP_SEED=${seed})`).toBe(0);
      // Within the drain limit and the exit's own work, far from the engine's minute of sleep.
      expect(exit.ms, `round ${round} (STOP_SEED=${seed}): exit took ${exit.ms} ms`).toBeLessThan((DRAIN_SECONDS + 5) * 1000);
    }

    // The last start collects whatever a stop left due, and what is created while it runs (its loop still
    // sleeps and wakes); then each create has exactly one attempt of cycle 1, captured.
    const { daemon, base } = await start();
    await sleep(200);
    await create(base);
    const read = async (): Promise<Array<{ id: string; state: string }>> => {
      if (dialect === 'sqlite') return readDb(dbFile, (db) => db.prepare(CYCLE_ONE).all() as Array<{ id: string; state: string }>);
      const client = new pg.Client({ connectionString: url });
      await client.connect();
      try {
        return (await client.query<{ id: string; state: string }>(CYCLE_ONE)).rows;
      } finally {
        await client.end();
      }
    };
    let rows: Array<{ id: string; state: string }> = [];
    for (let tries = 0; tries < 300; tries++) {
      rows = await read();
      if (rows.length === created.length && rows.every((r) => r.state === 'captured')) break;
      await sleep(100);
    }
    daemon.kill('SIGTERM');
    expect((await exitWithin(daemon, (DRAIN_SECONDS + 10) * 1000)).code).toBe(0);
    expect(rows.map((r) => r.id).sort()).toEqual([...created].sort());
    expect(rows.filter((r) => r.state !== 'captured')).toEqual([]);
  }, 240_000);
});
