/**
 * `type: simulator`: a deterministic in-process gateway driven by the card
 * tokens in ./tokens.ts. It behaves like a real idempotent gateway: the first
 * send of a key decides and records the result in a ledger, and every later
 * send or status query of that key answers from the ledger, so a re-sent key
 * never captures twice. Recording happens before the answer is returned,
 * which is what lets `tok_timeout` lose an answer whose charge still counts.
 */
import type { Clock } from '../clock.js';
import {
  GatewayUnavailableError,
  type CollectRequest,
  type Gateway,
  type GatewayResult,
  type StatusResult,
} from './gateway.js';
import { openJsonLines, type JsonLinesFile } from './jsonl-file.js';
import { chargeDecision, linkDecision, parseToken, type IssuerDecision } from './tokens.js';

/** What the simulated gateway remembers about one idempotency key. */
export interface SimLedgerEntry {
  readonly key: string;
  readonly subscriptionId: string;
  readonly cycle: number;
  readonly attempt: number;
  readonly amountMinor: number;
  readonly currency: string;
  /** The gateway's current word on the key (a pending result may later be replaced by its settlement). */
  readonly result: GatewayResult;
  /** When the key was first seen, epoch ms from the gateway's clock. */
  readonly createdAt: number;
}

/**
 * Where the simulator keeps its results. `put` replaces any entry with the
 * same key (a pending payment settling); `get` sees it as soon as `put`
 * resolves. The simulator answers only after `put`, so an entry must be
 * durable no later than anything recorded from that answer: the file ledger
 * fsyncs before `put` resolves; the daemon's database ledger is written by
 * the same commit as the outcome the engine records (engine/runtime.ts).
 */
export interface SimulatorLedger {
  get(key: string): Promise<SimLedgerEntry | undefined>;
  put(entry: SimLedgerEntry): Promise<void>;
  list(): Promise<SimLedgerEntry[]>;
}

/** A ledger that lives as long as the process: tests and `simulate`. */
export class MemorySimulatorLedger implements SimulatorLedger {
  private readonly entries = new Map<string, SimLedgerEntry>();

  async get(key: string): Promise<SimLedgerEntry | undefined> {
    return this.entries.get(key);
  }

  async put(entry: SimLedgerEntry): Promise<void> {
    this.entries.set(entry.key, entry);
  }

  async list(): Promise<SimLedgerEntry[]> {
    return [...this.entries.values()];
  }
}

/**
 * A ledger in a JSON-lines file: one line per `put`, appended and fsynced
 * before `put` resolves, replayed at open (the last line for a key wins).
 * A torn last line from a crash is dropped: its `put` never resolved, so the
 * simulator never answered for it.
 */
export class FileSimulatorLedger implements SimulatorLedger {
  private readonly entries = new Map<string, SimLedgerEntry>();
  private readonly file: JsonLinesFile;

  constructor(readonly path: string) {
    this.file = openJsonLines(path);
    for (const record of this.file.records) {
      const entry = record as SimLedgerEntry;
      if (typeof entry?.key !== 'string' || typeof entry.result?.kind !== 'string') {
        this.file.close();
        throw new Error(`${path}: a line is not a simulator ledger entry`);
      }
      this.entries.set(entry.key, entry);
    }
  }

  async get(key: string): Promise<SimLedgerEntry | undefined> {
    return this.entries.get(key);
  }

  async put(entry: SimLedgerEntry): Promise<void> {
    this.file.append(entry);
    this.entries.set(entry.key, entry);
  }

  async list(): Promise<SimLedgerEntry[]> {
    return [...this.entries.values()];
  }

  close(): void {
    this.file.close();
  }
}

export interface SimulatorGatewayOptions {
  /** Config name of this gateway (`sim`). */
  readonly name: string;
  readonly ledger: SimulatorLedger;
  /** Stamps `createdAt`; the simulator never reads the system time. */
  readonly clock: Clock;
  /** How `tok_slow_MS` waits. Default: a real setTimeout. */
  readonly sleep?: (ms: number) => Promise<void>;
}

const realSleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Where a simulated payment link points; never resolvable (`.invalid`). */
export function simulatorLinkUrl(idempotencyKey: string): string {
  return `https://pay.example.invalid/l/${encodeURIComponent(idempotencyKey)}`;
}

/** Creates the deterministic simulator gateway (SPEC section 7, token table in ./tokens.ts). */
export function createSimulatorGateway(options: SimulatorGatewayOptions): Gateway {
  const { name, ledger, clock } = options;
  const sleep = options.sleep ?? realSleep;
  /**
   * Sends of a key that have not been recorded yet. A second send of the same
   * key joins the first instead of deciding again: without this, two
   * concurrent sends of a slow key would both capture.
   */
  const inFlight = new Map<string, Promise<GatewayResult>>();

  const externalIdOf = (key: string) => `${name}_${key}`;

  async function record(request: CollectRequest, result: GatewayResult, createdAt: number): Promise<GatewayResult> {
    await ledger.put({
      key: request.idempotencyKey,
      subscriptionId: request.subscriptionId,
      cycle: request.cycle,
      attempt: request.attempt,
      amountMinor: request.amount.amountMinor,
      currency: request.amount.currency,
      result,
      createdAt,
    });
    return result;
  }

  function resultOf(decision: IssuerDecision, key: string): GatewayResult {
    const externalId = externalIdOf(key);
    switch (decision.kind) {
      case 'approve':
        return { kind: 'captured', externalId };
      case 'decline':
        return { kind: 'declined', code: decision.code, hard: decision.hard, externalId };
      case 'pending':
        return { kind: 'pending', externalId };
    }
  }

  /** Runs `send` once per key: replays a recorded result, joins a send in progress. */
  function once(request: CollectRequest, send: () => Promise<GatewayResult>): Promise<GatewayResult> {
    const key = request.idempotencyKey;
    const running = inFlight.get(key);
    if (running) return running;
    const promise = (async () => {
      const recorded = await ledger.get(key);
      return recorded ? recorded.result : send();
    })().finally(() => inFlight.delete(key));
    inFlight.set(key, promise);
    return promise;
  }

  return {
    name,

    charge(request) {
      return once(request, async () => {
        const createdAt = clock.now();
        const behaviour = parseToken(request.paymentToken);
        switch (behaviour.kind) {
          case 'server_error':
            // Nothing is recorded: the gateway never processed the request, so status says not_found.
            throw new GatewayUnavailableError(`simulator gateway "${name}" answered 500 (tok_5xx)`);
          case 'lose_response':
            await record(request, resultOf({ kind: 'approve' }, request.idempotencyKey), createdAt);
            throw new GatewayUnavailableError(
              `simulator gateway "${name}": no answer for ${request.idempotencyKey} (response lost; the charge went through)`,
              { code: 'GATEWAY_TIMEOUT' },
            );
          case 'slow':
            await sleep(behaviour.delayMs);
            break;
          default:
            break;
        }
        return record(request, resultOf(chargeDecision(behaviour, request.attempt), request.idempotencyKey), createdAt);
      });
    },

    sendLink(request) {
      return once(request, () =>
        record(
          request,
          { kind: 'pending', externalId: externalIdOf(request.idempotencyKey), linkUrl: simulatorLinkUrl(request.idempotencyKey) },
          clock.now(),
        ),
      );
    },

    async status(idempotencyKey, request): Promise<StatusResult> {
      // The gateway has seen a key whose send is still running (tok_slow): not final yet.
      if (inFlight.has(idempotencyKey)) return { kind: 'pending', externalId: externalIdOf(idempotencyKey) };
      const entry = await ledger.get(idempotencyKey);
      if (!entry) return { kind: 'not_found' };
      const current = entry.result;
      if (current.kind !== 'pending') return current;
      // A pending key settles on a status query: a link by what its customer's token does,
      // a pending charge (tok_pending) by being captured. The settlement is recorded so
      // every later query gives the same answer.
      const behaviour = parseToken(request.paymentToken);
      const decision = current.linkUrl !== undefined ? linkDecision(behaviour, entry.attempt) : ({ kind: 'approve' } as const);
      if (decision.kind === 'pending') return current;
      const settled = resultOf(decision, idempotencyKey);
      await ledger.put({ ...entry, result: { ...settled, externalId: current.externalId } });
      return { ...settled, externalId: current.externalId };
    },

    async close() {
      // The ledger belongs to whoever created it; nothing else is held here.
    },
  };
}
