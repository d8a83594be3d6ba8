/**
 * Stopping the dispatcher while a re-send waits in the queue. A status query
 * that hears "not found" sends the same key again, under the same lease, and
 * that re-send queues behind the calls already out. A stop clears the queue,
 * so the re-send is never made: its row must be given back like any other
 * call not started, and the stop must not wait for it.
 */
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { VirtualClock } from '../../src/clock.js';
import type { Subscription } from '../../src/domain/index.js';
import { CircuitBreakers } from '../../src/engine/circuit.js';
import { Dispatcher } from '../../src/engine/dispatch.js';
import { Holdings } from '../../src/engine/holdings.js';
import { safeObserver } from '../../src/engine/observer.js';
import type { GroupCommitWriter, OutcomeItem, OutcomeResult } from '../../src/engine/writer.js';
import type { Gateway, GatewayResult } from '../../src/gateways/gateway.js';
import { attemptOf, create, policy } from '../domain/helpers.js';

const T0 = Date.parse('2025-03-01T10:00:00Z');
const MINUTE = 60_000;

/** A promise with its resolver, for holding a gateway call open. */
function gate<T>(): { promise: Promise<T>; open: (value: T) => void } {
  let open!: (value: T) => void;
  const promise = new Promise<T>((resolve) => (open = resolve));
  return { promise, open };
}

/** Lets pending microtasks and immediates run. */
const settle = () => new Promise<void>((resolve) => setImmediate(resolve));

async function settled(promise: Promise<unknown>): Promise<boolean> {
  let done = false;
  void promise.then(() => (done = true));
  for (let i = 0; i < 5; i++) await settle();
  return done;
}

function subscription(id: string): Subscription {
  return { ...create(T0 - 30 * 86_400_000).subscription, id, gateway: 'fake' };
}

describe('Dispatcher.stop', () => {
  it('a re-send queued behind a call in flight is given back at stop, and the stop does not wait for it', async () => {
    const clock = new VirtualClock(T0);
    const logger = pino({ level: 'silent' });
    const charging = gate<GatewayResult>();
    const charges: string[] = [];
    const gateway: Gateway = {
      name: 'fake',
      charge: (request) => {
        charges.push(request.subscriptionId);
        return charging.promise;
      },
      sendLink: () => Promise.reject(new Error('not used')),
      status: async () => ({ kind: 'not_found' }),
    };
    // The store's answers: "not found" becomes a re-send of the same key, anything else is recorded.
    const writer = {
      flushWhenIdle() {},
      flush: async () => {},
      record: async (item: OutcomeItem): Promise<OutcomeResult> =>
        item.outcome.kind === 'not_found'
          ? { kind: 'resend', subscription: item.subscription, version: item.version, attempt: { ...item.attempt, sends: item.attempt.sends + 1 } }
          : { kind: 'lease_lost' },
    } as unknown as GroupCommitWriter;
    const holdings = new Holdings(8, () => {});
    const dispatcher = new Dispatcher({
      gateways: new Map([['fake', gateway]]),
      circuits: new CircuitBreakers(clock),
      writer,
      holdings,
      clock,
      elapsedMs: () => clock.now(),
      observe: safeObserver(undefined, logger),
      logger,
      policy: policy(),
      concurrency: 1,
      ratePerSecond: null,
    });

    const reconciled = subscription('sub_reconciled');
    const charged = subscription('sub_charged');
    holdings.hold(2);
    dispatcher.enqueue({ kind: 'status', subscription: reconciled, version: 1, token: 'claim/1', attempt: attemptOf(reconciled, T0) });
    dispatcher.enqueue({ kind: 'send', subscription: charged, version: 1, token: 'claim/2', attempt: attemptOf(charged, T0) });
    await settle();
    // The status query heard "not found"; its re-send queued behind the charge now out.
    expect(charges).toEqual(['sub_charged']);

    const givenBack: Array<[string, string[]]> = [];
    const stopped = dispatcher.stop(MINUTE, async (token, ids) => {
      givenBack.push([token, ids]);
    });
    charging.open({ kind: 'captured', externalId: 'pay_1' });
    expect(await settled(stopped)).toBe(true);
    expect(await stopped).toEqual({ unsent: 1, abandonedInFlight: 0 });
    expect(givenBack).toEqual([['claim/1', ['sub_reconciled']]]);
    expect(charges).toEqual(['sub_charged']); // the re-send was never made
    expect(holdings.active).toBe(0);
  });
});
