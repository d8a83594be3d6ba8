/**
 * A `rebill run` daemon wired to `rebill fake-gateway` (CoolPay over HTTP on
 * 127.0.0.1): its config file, and the checks that the gateway's ledger and
 * the daemon's database agree on exactly one charge per subscription.
 */
import path from 'node:path';
import { expect } from 'vitest';
import {
  attempts,
  cycles,
  spawnRebill,
  startFakeGateway,
  todayUtc,
  writeConfig,
  type AttemptRow,
  type Child,
  type FakeGatewayProcess,
} from './processes.js';

/** The daemon's ready line (pino JSON on stdout). */
export const READY = /"msg":"rebill ready"/;

/** Starts `rebill run --config <config>`, logging to `logFile` (with `env` added to its environment), and waits for its ready line. */
export async function startDaemon(config: string, logFile: string, env?: Record<string, string>): Promise<Child> {
  const daemon = spawnRebill(['run', '--config', config], { logFile, ...(env ? { env } : {}) });
  await daemon.waitForStdout(READY, 30_000);
  return daemon;
}

export interface DaemonDir {
  readonly dir: string;
  /** `<dir>/rebill.db`, where daemonConfig puts the database. */
  readonly dbFile: string;
  /** `<dir>/rebill.log`, for the daemons' output. */
  readonly logFile: string;
  /** `rebill fake-gateway` with its ledger at `<dir>/ledger.jsonl`. */
  readonly gateway: FakeGatewayProcess;
}

/** The files of a daemon test in `dir`, and a fake gateway started for it. */
export async function withFakeGateway(dir: string): Promise<DaemonDir> {
  const gateway = await startFakeGateway(path.join(dir, 'ledger.jsonl'));
  return { dir, dbFile: path.join(dir, 'rebill.db'), logFile: path.join(dir, 'rebill.log'), gateway };
}

export interface SeedSpec {
  readonly id: string;
  readonly token: string;
}

/**
 * Writes `<dir>/rebill.yaml`: SQLite at `<dir>/rebill.db`, gateway `cp` = CoolPay at the fake
 * gateway (timeoutSeconds 2 unless `timeoutSeconds` says otherwise), an every-second sweep, one
 * monthly USD 9.99 plan, and `subs` seeded with startDate today (UTC) so cycle 1 is due now.
 */
export function daemonConfig(
  dir: string,
  gateway: FakeGatewayProcess,
  subs: readonly SeedSpec[],
  scheduler: Record<string, unknown>,
  options: { timeoutSeconds?: number } = {},
): string {
  const today = todayUtc();
  return writeConfig(path.join(dir, 'rebill.yaml'), {
    database: { url: `sqlite:${path.join(dir, 'rebill.db')}` },
    gateways: { cp: { type: 'coolpay', baseUrl: gateway.url, apiKey: 'test', timeoutSeconds: options.timeoutSeconds ?? 2 } },
    scheduler: { sweep: '* * * * * *', pendingPollSeconds: 1, ...scheduler },
    logging: { level: 'info' },
    plans: [{ id: 'monthly', description: 'Monthly', amount: '9.99', currency: 'USD', every: 'MONTH', gateway: 'cp' }],
    subscriptions: subs.map((s) => ({ id: s.id, planId: 'monthly', paymentToken: s.token, startDate: today })),
  });
}

export function cycleOneAttempts(dbFile: string): AttemptRow[] {
  return attempts(dbFile).filter((a) => a.cycle === 1);
}

export function countByState(rows: readonly AttemptRow[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const a of rows) counts[a.state] = (counts[a.state] ?? 0) + 1;
  return counts;
}

/**
 * Both ledgers agree on cycle 1: the gateway captured exactly once per subscription (order_id
 * `<id>:1:<attempt>`, nothing else), and the database holds exactly one captured attempt per
 * subscription with that same key, its cycle row paid, and no attempt left in_flight/unknown/pending.
 */
export async function assertExactlyOnce(gateway: FakeGatewayProcess, dbFile: string, ids: readonly string[]): Promise<void> {
  const ledger = await gateway.ledger();
  const bySubscription = new Map<string, string[]>();
  for (const capture of ledger) {
    const match = /^(.+):1:(\d+)$/.exec(capture.order_id);
    expect(match, `unexpected order_id ${capture.order_id}`).not.toBeNull();
    bySubscription.set(match![1]!, [...(bySubscription.get(match![1]!) ?? []), capture.order_id]);
    expect(capture).toMatchObject({ amount: 999, currency: 'USD' });
  }
  const doubles = [...bySubscription].filter(([, keys]) => keys.length > 1);
  expect(doubles, 'subscriptions charged twice at the gateway').toEqual([]);
  expect([...bySubscription.keys()].sort()).toEqual([...ids].sort());
  expect(ledger).toHaveLength(ids.length);

  const rows = cycleOneAttempts(dbFile);
  const stuck = rows.filter((a) => a.state === 'in_flight' || a.state === 'unknown' || a.state === 'pending');
  expect(stuck, 'attempts left unsettled').toEqual([]);
  const captured = new Map<string, string[]>();
  for (const a of rows.filter((r) => r.state === 'captured')) captured.set(a.subscription_id, [...(captured.get(a.subscription_id) ?? []), a.idempotency_key]);
  expect([...captured.keys()].sort()).toEqual([...ids].sort());
  for (const [id, keys] of captured) {
    expect(keys, `captured attempts of ${id}`).toHaveLength(1);
    expect(bySubscription.get(id), `gateway order_id of ${id}`).toEqual(keys);
  }
  const cycleOne = cycles(dbFile).filter((c) => c.cycle === 1);
  expect(cycleOne).toHaveLength(ids.length);
  expect(cycleOne.filter((c) => c.status !== 'paid'), 'cycle 1 rows not paid').toEqual([]);
}
