/**
 * Stopping the wake-up loop at every await of a pass: `stop()` must resolve
 * once the current step ends, never after the sleep the pass was about to
 * start. A SIGTERM that landed while the loop read the next due instant (a
 * PostgreSQL round trip) used to begin a full sleep of `maxSleepMs` after
 * stop had looked for a sleeper to cut short and found none, so the daemon
 * outlived the drain limit by up to a minute.
 */
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { VirtualClock } from '../../src/clock.js';
import { Holdings } from '../../src/engine/holdings.js';
import { FailureLog, WakeUpLoop } from '../../src/engine/loop.js';
import type { SweepReport } from '../../src/engine/sweep.js';

const MINUTE = 60_000;
const EMPTY: SweepReport = { claimed: 0, held: false } as unknown as SweepReport;

/** A promise with its resolver, for holding one step of the loop open. */
function gate<T>(): { promise: Promise<T>; open: (value: T) => void } {
  let open!: (value: T) => void;
  const promise = new Promise<T>((resolve) => (open = resolve));
  return { promise, open };
}

/** Lets the loop's microtasks run. */
const settle = () => new Promise<void>((resolve) => setImmediate(resolve));

function loopWith(step: { sweep?: () => Promise<SweepReport>; nextWakeAt?: () => Promise<number | null> }) {
  const clock = new VirtualClock(Date.UTC(2026, 0, 30));
  const logger = pino({ level: 'silent' });
  const loop = new WakeUpLoop({
    clock,
    logger,
    holdings: new Holdings(64, () => {}),
    failures: new FailureLog(logger, () => clock.now()),
    maxSleepMs: MINUTE,
    sweep: step.sweep ?? (async () => EMPTY),
    nextWakeAt: step.nextWakeAt ?? (async () => null),
  });
  return { clock, loop };
}

/** Whether `promise` has settled after the loop's pending microtasks ran. */
async function settled(promise: Promise<unknown>): Promise<boolean> {
  let done = false;
  void promise.then(() => (done = true));
  await settle();
  return done;
}

describe('WakeUpLoop.stop', () => {
  it('a stop while the loop reads the next due instant ends the loop without the sleep it was about to start', async () => {
    const reading = gate<number | null>();
    let reads = 0;
    const { clock, loop } = loopWith({
      nextWakeAt: () => {
        reads++;
        return reading.promise;
      },
    });
    loop.start();
    await settle();
    expect(reads).toBe(1);
    const stopped = loop.stop();
    reading.open(null); // nothing due: the loop would sleep maxSleepMs
    expect(await settled(stopped)).toBe(true);
    expect(clock.now()).toBe(Date.UTC(2026, 0, 30)); // no time had to pass
  });

  it('a stop while the loop sweeps ends it after that sweep', async () => {
    const sweeping = gate<SweepReport>();
    const { loop } = loopWith({ sweep: () => sweeping.promise });
    loop.start();
    await settle();
    const stopped = loop.stop();
    expect(await settled(stopped)).toBe(false); // the sweep under way finishes first
    sweeping.open(EMPTY);
    expect(await settled(stopped)).toBe(true);
  });

  it('a stop while the loop sleeps cuts the sleep short', async () => {
    const { loop } = loopWith({});
    loop.start();
    await settle();
    expect(await settled(loop.stop())).toBe(true);
  });
});
