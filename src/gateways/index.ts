/**
 * Public surface of the gateways layer: the Gateway interface, the three
 * adapters, the simulator's ledgers and token table, the fake CoolPay server,
 * and `createGateways`, which turns the `gateways:` config section into
 * instances.
 */
import type { Clock } from '../clock.js';
import { createCoolpayGateway } from './coolpay.js';
import type { Gateway } from './gateway.js';
import { createHttpGateway } from './http.js';
import { createSimulatorGateway, type SimulatorLedger } from './simulator.js';

export * from './gateway.js';
export { parseToken, chargeDecision, linkDecision, attemptFromOrderId, UNKNOWN_TEST_TOKEN, type TokenBehaviour, type IssuerDecision } from './tokens.js';
export {
  createSimulatorGateway,
  simulatorLinkUrl,
  MemorySimulatorLedger,
  FileSimulatorLedger,
  type SimulatorGatewayOptions,
  type SimulatorLedger,
  type SimLedgerEntry,
} from './simulator.js';
export {
  createCoolpayGateway,
  readCoolpayCallback,
  signCoolpayCallback,
  verifyCoolpayCallback,
  CallbackBodyError,
  COOLPAY_CHECKSUM_HEADER,
  type CoolpayGatewayOptions,
} from './coolpay.js';
export { createHttpGateway, signHttpGatewayPayload, type HttpGatewayOptions } from './http.js';
export { declineFromOperation, ACQUIRER_CODES } from './acquirer-codes.js';
export { startFakeGateway, type FakeGateway, type FakeGatewayOptions, type FakeCapture } from './fake-server.js';

/** One entry of the `gateways:` config section, as the config schema produces it. */
export type GatewayConfig =
  | { readonly type: 'simulator' }
  | { readonly type: 'coolpay'; readonly baseUrl: string; readonly apiKey: string; readonly timeoutSeconds: number; readonly callbackSecret?: string | undefined }
  | { readonly type: 'http'; readonly url: string; readonly secret: string; readonly timeoutSeconds: number };

export interface GatewayDeps {
  readonly clock: Clock;
  /** The simulator ledger for the gateway of this config name (memory, file, or the daemon's database). */
  readonly simulatorLedger: (gatewayName: string) => SimulatorLedger;
  /** How simulator `tok_slow_MS` waits; default a real timer. */
  readonly sleep?: (ms: number) => Promise<void>;
}

/** Builds one Gateway per config entry, keyed by its config name. Adapters validate their options here. */
export function createGateways(configs: Readonly<Record<string, GatewayConfig>>, deps: GatewayDeps): Map<string, Gateway> {
  const gateways = new Map<string, Gateway>();
  for (const [name, config] of Object.entries(configs)) gateways.set(name, createGateway(name, config, deps));
  return gateways;
}

function createGateway(name: string, config: GatewayConfig, deps: GatewayDeps): Gateway {
  switch (config.type) {
    case 'simulator':
      return createSimulatorGateway({
        name,
        ledger: deps.simulatorLedger(name),
        clock: deps.clock,
        ...(deps.sleep ? { sleep: deps.sleep } : {}),
      });
    case 'coolpay':
      return createCoolpayGateway({ name, baseUrl: config.baseUrl, apiKey: config.apiKey, timeoutSeconds: config.timeoutSeconds });
    case 'http':
      return createHttpGateway({ name, url: config.url, secret: config.secret, timeoutSeconds: config.timeoutSeconds });
    default: {
      const unknown: never = config;
      throw new TypeError(`gateway "${name}": unknown type ${JSON.stringify((unknown as { type?: unknown }).type)}`);
    }
  }
}
