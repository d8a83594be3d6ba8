import { describe, expect, it } from 'vitest';
import { VirtualClock } from '../../src/clock.js';
import { createGateways, MemorySimulatorLedger, type SimulatorLedger } from '../../src/gateways/index.js';
import { collectRequest } from './helpers.js';

describe('createGateways', () => {
  it('builds one gateway per config name, giving each simulator its own ledger', async () => {
    const ledgers = new Map<string, SimulatorLedger>();
    const gateways = createGateways(
      {
        sim: { type: 'simulator' },
        sim2: { type: 'simulator' },
        coolpay: { type: 'coolpay', baseUrl: 'https://api.coolpay.example', apiKey: 'k', timeoutSeconds: 30 },
        psp: { type: 'http', url: 'https://psp.example/api', secret: 's', timeoutSeconds: 10 },
      },
      {
        clock: new VirtualClock(0),
        simulatorLedger: (name) => {
          const ledger = new MemorySimulatorLedger();
          ledgers.set(name, ledger);
          return ledger;
        },
      },
    );
    expect([...gateways.keys()]).toEqual(['sim', 'sim2', 'coolpay', 'psp']);
    expect([...gateways.values()].map((g) => g.name)).toEqual(['sim', 'sim2', 'coolpay', 'psp']);
    expect([...ledgers.keys()]).toEqual(['sim', 'sim2']);
    await gateways.get('sim')!.charge(collectRequest('tok_ok'));
    expect(await ledgers.get('sim')!.list()).toHaveLength(1);
    expect(await ledgers.get('sim2')!.list()).toHaveLength(0);
  });

  it('fails at start on a bad adapter option', () => {
    expect(() =>
      createGateways(
        { coolpay: { type: 'coolpay', baseUrl: 'nope', apiKey: 'k', timeoutSeconds: 30 } },
        { clock: new VirtualClock(0), simulatorLedger: () => new MemorySimulatorLedger() },
      ),
    ).toThrow(/baseUrl/);
  });
});
