import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { VirtualClock } from '../../src/clock.js';
import {
  createSimulatorGateway,
  FileSimulatorLedger,
  GatewayUnavailableError,
  MemorySimulatorLedger,
  type Gateway,
  type SimulatorLedger,
} from '../../src/gateways/index.js';
import { collectRequest } from './helpers.js';

const START = Date.parse('2025-01-31T10:00:00Z');

function simulator(ledger: SimulatorLedger = new MemorySimulatorLedger(), sleeps: number[] = []) {
  const clock = new VirtualClock(START);
  const gateway = createSimulatorGateway({
    name: 'sim',
    ledger,
    clock,
    sleep: async (ms) => {
      sleeps.push(ms);
    },
  });
  return { gateway, ledger, clock, sleeps };
}

describe('simulator gateway: charge mode', () => {
  it.each([
    ['tok_ok', { kind: 'captured', externalId: 'sim_sub-1:1:1' }],
    // Not in the token table (SPEC section 7): a hard decline, so a real token sent here by mistake is never marked paid.
    ['tok_anything', { kind: 'declined', code: 'unknown_test_token', hard: true, externalId: 'sim_sub-1:1:1' }],
    ['tok_visa_4242', { kind: 'declined', code: 'unknown_test_token', hard: true, externalId: 'sim_sub-1:1:1' }],
    ['4242424242424242', { kind: 'declined', code: 'unknown_test_token', hard: true, externalId: 'sim_sub-1:1:1' }],
    ['card_1NvXyZ2eZvKYlo2C', { kind: 'declined', code: 'unknown_test_token', hard: true, externalId: 'sim_sub-1:1:1' }],
    ['tok_insufficient', { kind: 'declined', code: 'insufficient_funds', hard: false, externalId: 'sim_sub-1:1:1' }],
    ['tok_do_not_honor', { kind: 'declined', code: 'do_not_honor', hard: false, externalId: 'sim_sub-1:1:1' }],
    ['tok_stolen', { kind: 'declined', code: 'stolen_card', hard: true, externalId: 'sim_sub-1:1:1' }],
    ['tok_lost', { kind: 'declined', code: 'lost_card', hard: true, externalId: 'sim_sub-1:1:1' }],
    ['tok_closed', { kind: 'declined', code: 'closed_account', hard: true, externalId: 'sim_sub-1:1:1' }],
    [null, { kind: 'declined', code: 'invalid_card_number', hard: true, externalId: 'sim_sub-1:1:1' }],
    ['tok_pending', { kind: 'pending', externalId: 'sim_sub-1:1:1' }],
  ])('%s answers %o and records it', async (token, expected) => {
    const { gateway, ledger } = simulator();
    const request = collectRequest(token);
    await expect(gateway.charge(request)).resolves.toEqual(expected);
    expect(await ledger.list()).toEqual([
      {
        key: 'sub-1:1:1',
        subscriptionId: 'sub-1',
        cycle: 1,
        attempt: 1,
        amountMinor: 999,
        currency: 'USD',
        result: expected,
        createdAt: START,
      },
    ]);
  });

  it('tok_insufficient declines every attempt of every cycle', async () => {
    const { gateway } = simulator();
    for (const [cycle, attempt] of [[1, 1], [1, 2], [1, 3], [2, 1]] as const) {
      const result = await gateway.charge(collectRequest('tok_insufficient', { cycle, attempt }));
      expect(result).toMatchObject({ kind: 'declined', code: 'insufficient_funds', hard: false });
    }
  });

  it('a re-sent key answers the recorded result and never decides again', async () => {
    const { gateway, ledger, clock } = simulator();
    const first = await gateway.charge(collectRequest('tok_ok'));
    clock.advance(60_000);
    // Same key, even with a different token: the gateway already decided this key.
    const again = await gateway.charge(collectRequest('tok_stolen'));
    expect(again).toEqual(first);
    const entries = await ledger.list();
    expect(entries).toHaveLength(1);
    expect(entries[0]!.createdAt).toBe(START);
  });

  it('a re-sent declined key stays declined', async () => {
    const { gateway } = simulator();
    const first = await gateway.charge(collectRequest('tok_stolen'));
    await expect(gateway.charge(collectRequest('tok_stolen'))).resolves.toEqual(first);
  });

  it('tok_flaky_2 declines attempts 1 and 2 of each cycle and captures attempt 3', async () => {
    const { gateway } = simulator();
    for (const cycle of [1, 2]) {
      const results = [];
      for (const attempt of [1, 2, 3]) results.push(await gateway.charge(collectRequest('tok_flaky_2', { cycle, attempt })));
      expect(results.map((r) => (r.kind === 'declined' ? `${r.code}/${r.hard ? 'hard' : 'soft'}` : r.kind))).toEqual([
        'do_not_honor/soft',
        'do_not_honor/soft',
        'captured',
      ]);
    }
  });

  it('tok_flaky_0 captures the first attempt', async () => {
    const { gateway } = simulator();
    await expect(gateway.charge(collectRequest('tok_flaky_0'))).resolves.toMatchObject({ kind: 'captured' });
  });

  it('tok_timeout throws unavailable, but the charge went through: status and a re-send both say captured', async () => {
    const { gateway, ledger } = simulator();
    const request = collectRequest('tok_timeout');
    const error = await gateway.charge(request).catch((err: unknown) => err);
    expect(error).toBeInstanceOf(GatewayUnavailableError);
    expect((error as GatewayUnavailableError).code).toBe('GATEWAY_TIMEOUT');
    await expect(gateway.status(request.idempotencyKey, request)).resolves.toEqual({ kind: 'captured', externalId: 'sim_sub-1:1:1' });
    await expect(gateway.charge(request)).resolves.toEqual({ kind: 'captured', externalId: 'sim_sub-1:1:1' });
    expect(await ledger.list()).toHaveLength(1);
  });

  it('tok_pending answers pending; a status query then finds it captured, and keeps saying so', async () => {
    const { gateway, ledger } = simulator();
    const request = collectRequest('tok_pending');
    await expect(gateway.charge(request)).resolves.toEqual({ kind: 'pending', externalId: 'sim_sub-1:1:1' });
    await expect(gateway.status(request.idempotencyKey, request)).resolves.toEqual({ kind: 'captured', externalId: 'sim_sub-1:1:1' });
    expect((await ledger.get(request.idempotencyKey))?.result).toEqual({ kind: 'captured', externalId: 'sim_sub-1:1:1' });
    await expect(gateway.status(request.idempotencyKey, request)).resolves.toMatchObject({ kind: 'captured' });
    await expect(gateway.charge(request)).resolves.toMatchObject({ kind: 'captured' });
  });

  it('tok_slow_MS waits MS through the injected sleep, then captures', async () => {
    const sleeps: number[] = [];
    const { gateway } = simulator(new MemorySimulatorLedger(), sleeps);
    await expect(gateway.charge(collectRequest('tok_slow_1500'))).resolves.toMatchObject({ kind: 'captured' });
    expect(sleeps).toEqual([1500]);
  });

  it('two concurrent sends of a slow key make one capture, and status meanwhile says pending', async () => {
    let wake!: () => void;
    const ledger = new MemorySimulatorLedger();
    const gateway = createSimulatorGateway({
      name: 'sim',
      ledger,
      clock: new VirtualClock(START),
      sleep: () => new Promise<void>((resolve) => (wake = resolve)),
    });
    const request = collectRequest('tok_slow_1000');
    const first = gateway.charge(request);
    const second = gateway.charge(request);
    await new Promise((resolve) => setImmediate(resolve));
    await expect(gateway.status(request.idempotencyKey, request)).resolves.toEqual({ kind: 'pending', externalId: 'sim_sub-1:1:1' });
    wake();
    const [a, b] = await Promise.all([first, second]);
    expect(a).toEqual({ kind: 'captured', externalId: 'sim_sub-1:1:1' });
    expect(b).toEqual(a);
    expect(await ledger.list()).toHaveLength(1);
  });

  it('tok_5xx throws unavailable on every send and records nothing, so status says not_found', async () => {
    const { gateway, ledger } = simulator();
    const request = collectRequest('tok_5xx');
    for (let i = 0; i < 2; i++) {
      const error = await gateway.charge(request).catch((err: unknown) => err);
      expect(error).toBeInstanceOf(GatewayUnavailableError);
      expect((error as GatewayUnavailableError).code).toBe('GATEWAY_UNAVAILABLE');
    }
    await expect(gateway.status(request.idempotencyKey, request)).resolves.toEqual({ kind: 'not_found' });
    expect(await ledger.list()).toEqual([]);
  });

  it('status of a key never sent is not_found', async () => {
    const { gateway } = simulator();
    const request = collectRequest('tok_ok');
    await expect(gateway.status(request.idempotencyKey, request)).resolves.toEqual({ kind: 'not_found' });
  });

  it('status of a settled key is its recorded result', async () => {
    const { gateway } = simulator();
    const request = collectRequest('tok_insufficient');
    const result = await gateway.charge(request);
    await expect(gateway.status(request.idempotencyKey, request)).resolves.toEqual(result);
  });
});

describe('simulator gateway: link mode', () => {
  const linkUrl = 'https://pay.example.invalid/l/sub-1%3A1%3A1';

  it('sendLink records a pending result with the link URL; a re-send gives the same link', async () => {
    const { gateway, ledger } = simulator();
    const request = collectRequest('tok_ok');
    const expected = { kind: 'pending', externalId: 'sim_sub-1:1:1', linkUrl };
    await expect(gateway.sendLink(request)).resolves.toEqual(expected);
    await expect(gateway.sendLink(request)).resolves.toEqual(expected);
    expect(await ledger.list()).toHaveLength(1);
  });

  it.each([
    ['tok_ok', { kind: 'captured' }],
    ['tok_unknown', { kind: 'declined', code: 'unknown_test_token', hard: true }],
    [null, { kind: 'captured' }],
    ['tok_timeout', { kind: 'captured' }],
    ['tok_insufficient', { kind: 'declined', code: 'insufficient_funds', hard: false }],
    ['tok_do_not_honor', { kind: 'declined', code: 'do_not_honor', hard: false }],
    ['tok_stolen', { kind: 'declined', code: 'stolen_card', hard: true }],
    ['tok_lost', { kind: 'declined', code: 'lost_card', hard: true }],
    ['tok_closed', { kind: 'declined', code: 'closed_account', hard: true }],
  ])('with token %s, a status query resolves the link to %o and records it', async (token, expected) => {
    const { gateway, ledger } = simulator();
    const request = collectRequest(token);
    await gateway.sendLink(request);
    const result = await gateway.status(request.idempotencyKey, request);
    expect(result).toEqual({ ...expected, externalId: 'sim_sub-1:1:1' });
    expect((await ledger.get(request.idempotencyKey))?.result).toEqual(result);
    await expect(gateway.status(request.idempotencyKey, request)).resolves.toEqual(result);
  });

  it('tok_flaky_1 leaves the link of attempt 1 unpaid and pays the link of attempt 2', async () => {
    const { gateway } = simulator();
    const results = [];
    for (const attempt of [1, 2]) {
      const request = collectRequest('tok_flaky_1', { attempt });
      await gateway.sendLink(request);
      results.push(await gateway.status(request.idempotencyKey, request));
    }
    expect(results).toEqual([
      { kind: 'declined', code: 'do_not_honor', hard: false, externalId: 'sim_sub-1:1:1' },
      { kind: 'captured', externalId: 'sim_sub-1:1:2' },
    ]);
  });

  it('tok_pending keeps the link pending', async () => {
    const { gateway } = simulator();
    const request = collectRequest('tok_pending');
    await gateway.sendLink(request);
    await expect(gateway.status(request.idempotencyKey, request)).resolves.toEqual({ kind: 'pending', externalId: 'sim_sub-1:1:1', linkUrl });
    await expect(gateway.status(request.idempotencyKey, request)).resolves.toMatchObject({ kind: 'pending' });
  });
});

describe('FileSimulatorLedger', () => {
  let dir: string;
  const ledgers: FileSimulatorLedger[] = [];
  const open = (file: string) => {
    const ledger = new FileSimulatorLedger(file);
    ledgers.push(ledger);
    return ledger;
  };

  afterEach(() => {
    for (const ledger of ledgers.splice(0)) ledger.close();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  const tempFile = () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rebill-sim-ledger-'));
    return path.join(dir, 'nested', 'sim.jsonl');
  };

  it('survives a re-open: a re-sent key replays, a pending charge settles from the file', async () => {
    const file = tempFile();
    const first = simulator(open(file)).gateway;
    const ok = await first.charge(collectRequest('tok_ok', { cycle: 1 }));
    await first.charge(collectRequest('tok_pending', { cycle: 2 }));
    ledgers.pop()!.close();

    const reopened = open(file);
    const second = simulator(reopened).gateway;
    // A different token on the same key proves the answer comes from the file, not a new decision.
    await expect(second.charge(collectRequest('tok_stolen', { cycle: 1 }))).resolves.toEqual(ok);
    const pending = collectRequest('tok_pending', { cycle: 2 });
    await expect(second.status(pending.idempotencyKey, pending)).resolves.toMatchObject({ kind: 'captured' });
    ledgers.pop()!.close();

    const third = open(file);
    expect((await third.list()).map((e) => [e.key, e.result.kind])).toEqual([
      ['sub-1:1:1', 'captured'],
      ['sub-1:2:1', 'captured'],
    ]);
  });

  it('keeps tok_timeout captures across a restart', async () => {
    const file = tempFile();
    const request = collectRequest('tok_timeout');
    await expect(simulator(open(file)).gateway.charge(request)).rejects.toBeInstanceOf(GatewayUnavailableError);
    ledgers.pop()!.close();
    const gateway = simulator(open(file)).gateway;
    await expect(gateway.status(request.idempotencyKey, request)).resolves.toMatchObject({ kind: 'captured' });
  });

  it('ignores a truncated last line from a crash and appends cleanly after it', async () => {
    const file = tempFile();
    const ledger = open(file);
    await simulator(ledger).gateway.charge(collectRequest('tok_ok', { cycle: 1 }));
    ledgers.pop()!.close();
    fs.appendFileSync(file, '{"key":"sub-1:2:1","subscriptionId":"sub-1","cyc');

    const reopened = open(file);
    expect((await reopened.list()).map((e) => e.key)).toEqual(['sub-1:1:1']);
    await simulator(reopened).gateway.charge(collectRequest('tok_insufficient', { cycle: 2 }));
    ledgers.pop()!.close();

    const lines = fs.readFileSync(file, 'utf8').split('\n').filter(Boolean);
    expect(lines.map((l) => JSON.parse(l).key)).toEqual(['sub-1:1:1', 'sub-1:2:1']);
    expect((await open(file).get('sub-1:2:1'))?.result).toMatchObject({ kind: 'declined', code: 'insufficient_funds' });
  });

  it('refuses a damaged line in the middle of the file', () => {
    const file = tempFile();
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, 'not json\n{"key":"a","result":{"kind":"captured","externalId":"x"}}\n');
    expect(() => open(file)).toThrow(/sim\.jsonl:1/);
  });
});

describe('simulator gateway as a Gateway', () => {
  it('has its config name', () => {
    const gateway: Gateway = simulator().gateway;
    expect(gateway.name).toBe('sim');
  });
});
