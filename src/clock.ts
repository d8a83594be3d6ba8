/**
 * The only module that reads the system time. Everything else receives a
 * Clock, which is what makes virtual-clock simulation and fake-timer tests
 * run the very same engine code as production.
 */

export interface Clock {
  /** Current instant in epoch milliseconds. */
  now(): number;
  /** Resolves once the clock reaches `at` (epoch ms) or the signal aborts. */
  sleepUntil(at: number, signal?: AbortSignal): Promise<void>;
  /**
   * Milliseconds on a clock that never steps (arbitrary origin), to tell a
   * stepped wall clock from elapsed time (SPEC section 6, clock guard).
   * Absent: the wall clock is taken as monotonic (a virtual clock cannot jump).
   */
  monotonic?(): number;
}

/** Wall-clock time via Date.now() and setTimeout (both replaced by fake timers in tests). */
export const systemClock: Clock = {
  now: () => Date.now(),
  // performance.now() follows elapsed time, not the wall clock (fake timers replace it with `performance`).
  monotonic: () => performance.now(),
  sleepUntil(at, signal) {
    return new Promise<void>((resolve) => {
      if (signal?.aborted) return resolve();
      // setTimeout caps at 2^31-1 ms; re-arming happens in the caller's loop.
      const timer = setTimeout(done, Math.min(Math.max(0, at - Date.now()), 2_147_483_647));
      function done() {
        signal?.removeEventListener('abort', done);
        clearTimeout(timer);
        resolve();
      }
      signal?.addEventListener('abort', done, { once: true });
    });
  },
};

/**
 * A clock that only moves when told to. `simulate` advances it to the next
 * instant anything is due; tests set it directly.
 */
export class VirtualClock implements Clock {
  private current: number;
  private waiters: Array<{ at: number; resolve: () => void }> = [];

  constructor(start: number) {
    this.current = start;
  }

  now(): number {
    return this.current;
  }

  sleepUntil(at: number, signal?: AbortSignal): Promise<void> {
    if (at <= this.current || signal?.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      const waiter = { at, resolve };
      this.waiters.push(waiter);
      signal?.addEventListener(
        'abort',
        () => {
          this.waiters = this.waiters.filter((w) => w !== waiter);
          resolve();
        },
        { once: true },
      );
    });
  }

  /** Moves time forward (never back) and wakes every sleeper whose instant has come. */
  set(to: number): void {
    if (to < this.current) throw new RangeError('a virtual clock never moves backwards');
    this.current = to;
    const due = this.waiters.filter((w) => w.at <= to);
    this.waiters = this.waiters.filter((w) => w.at > to);
    for (const w of due) w.resolve();
  }

  advance(ms: number): void {
    this.set(this.current + ms);
  }
}
