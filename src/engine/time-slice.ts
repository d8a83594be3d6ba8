/**
 * Letting the event loop turn. A zero-latency gateway (the simulator)
 * answers in a resolved promise and SQLite commits synchronously, so a
 * backlog of thousands of due charges could run from one claim to the next
 * without the event loop ever turning: the HTTP server (liveness, metrics,
 * the API), signals and timers would wait for the whole backlog.
 */
import type { Clock } from '../clock.js';

/** How long microtask work may hold the event loop before it lets it turn. */
export const SLICE_BUDGET_MS = 10;

/**
 * Resolves on the event loop's next turn (setImmediate), or 1 ms later on
 * `clock`, whichever comes first: the clock's timer is what moves work on
 * fake timers (tests), where setImmediate only runs when real time passes.
 */
export async function nextTurn(clock: Clock): Promise<void> {
  const timer = new AbortController();
  await Promise.race([new Promise((resolve) => setImmediate(resolve)), clock.sleepUntil(clock.now() + 1, timer.signal)]);
  timer.abort(CANCELLED);
}

/**
 * The reason given when a sleep is cut short. abort() without one builds a
 * DOMException, stack trace included, every time: on PostgreSQL, where the
 * loop turns between round trips, that was 1% of the daemon's samples.
 */
export const CANCELLED = 'cancelled';

/**
 * Time slices for work that runs in microtasks: `yieldIfBusy()` resolves at
 * once (undefined) while the current slice lasts, and on the next turn once
 * it has run for `budgetMs` of `elapsedMs`. A slice starts whenever the event
 * loop turns (an immediate runs once per turn).
 */
export class TimeSlicer {
  private sliceStart: number;
  private marking = false;

  constructor(
    private readonly clock: Clock,
    private readonly elapsedMs: () => number,
    private readonly budgetMs = SLICE_BUDGET_MS,
  ) {
    this.sliceStart = elapsedMs();
  }

  yieldIfBusy(): Promise<void> | undefined {
    if (!this.marking) {
      this.marking = true;
      setImmediate(() => {
        this.marking = false;
        this.sliceStart = this.elapsedMs();
      });
    }
    if (this.elapsedMs() - this.sliceStart < this.budgetMs) return undefined;
    this.sliceStart = this.elapsedMs();
    return nextTurn(this.clock);
  }
}
