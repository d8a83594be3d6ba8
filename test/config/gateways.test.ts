/**
 * Issue 7, item 4 (config part; SPEC section 7): a config without
 * `gateways:` used to get a simulator, so a real-looking token was "charged"
 * through it and the cycle marked paid: no money moved, and exactly-once means
 * it is never billed again. There is no implicit gateway in the daemon's
 * config now; scenario files keep the simulator (simulate runs only that).
 */
import { describe, expect, it } from 'vitest';
import { ConfigError, configWarnings, formatProblems, parseConfig, parseScenario } from '../../src/config/index.js';

function messagesOf(text: string): string[] {
  try {
    parseConfig(text, 'g.yaml', {});
  } catch (err) {
    if (err instanceof ConfigError) return formatProblems(err.problems);
    throw err;
  }
  throw new Error('expected the configuration to be rejected');
}

const PLANS = ['plans:', '  - id: gold', '    amount: "9.99"', '    currency: USD', '    every: MONTH', '  - { id: silver, amount: "4.99", currency: USD, every: MONTH }'];
const NO_GATEWAY = 'no gateway to charge through: none is configured and there is no implicit simulator';

describe('no implicit gateway', () => {
  it('refuses plans when no gateway is configured, naming each plan at its line', () => {
    const messages = messagesOf([...PLANS, 'subscriptions:', '  - { id: s, planId: gold, paymentToken: card_4242, startDate: "2025-01-01" }', ''].join('\n'));
    expect(messages).toEqual([expect.stringMatching(new RegExp(`^g\\.yaml:2:5: plans\\[0\\]\\.gateway: ${NO_GATEWAY}`)), expect.stringMatching(new RegExp(`^g\\.yaml:6:5: plans\\[1\\]\\.gateway: ${NO_GATEWAY}`))]);
  });

  it('an empty gateways: section is refused as well', () => {
    const messages = messagesOf(['gateways: {}', ...PLANS, ''].join('\n'));
    expect(messages).toContainEqual('g.yaml:1:11: gateways: at least one gateway is required');
    expect(messages.filter((m) => m.includes(NO_GATEWAY))).toHaveLength(2);
  });

  it('the only configured gateway is still used when a plan names none', () => {
    const config = parseConfig([...PLANS, 'gateways: { cp: { type: coolpay, baseUrl: "http://127.0.0.1:1", apiKey: k } }', ''].join('\n'), 'g.yaml', {});
    expect(config.plans.map((p) => p.gateway)).toEqual(['cp', 'cp']);
    expect(configWarnings(config)).toEqual([]);
  });

  it('warns when a simulator gateway is configured: no money moves', () => {
    const config = parseConfig([...PLANS, 'gateways: { sim: { type: simulator } }', ''].join('\n'), 'g.yaml', {});
    expect(configWarnings(config)).toEqual(['gateway sim is a simulator: no money moves; plans using it are marked paid without charging anyone']);
  });

  it('a scenario file may leave gateways out: simulate always runs the simulator', () => {
    const scenario = parseScenario(['start: "2025-01-01T00:00:00Z"', 'until: "2025-02-01T00:00:00Z"', ...PLANS, ''].join('\n'), 's.yaml', {});
    expect(scenario.gateways).toEqual({ sim: { type: 'simulator' } });
    expect(scenario.plans.map((p) => p.gateway)).toEqual(['sim', 'sim']);
  });
});
