/**
 * Per-gateway circuit breaker (SPEC section 6): a gateway that failed
 * `failureThreshold` calls in a row gets no new attempts for `openMs`, then
 * one probe; an answer closes it again.
 *
 * Only unavailable outcomes (timeout, connection error, 5xx, a garbled
 * answer) are failures. A decline or a `not_found` is an answer: the gateway
 * is up and said something. Status queries are never held back (they are how
 * recovery learns what happened), but their outcomes count like any call's,
 * so an answered status query closes the breaker as well as a probe does.
 *
 * Time comes from the injected clock only; the state is computed when asked,
 * so no timer has to run for `open` to become `half_open`.
 */
import type { Clock } from '../clock.js';

export type CircuitState = 'closed' | 'open' | 'half_open';

export interface CircuitOptions {
  /** Unavailable outcomes in a row that open the breaker (default 10). */
  readonly failureThreshold: number;
  /** How long an open breaker refuses new attempts before one probe (default 30 s). */
  readonly openMs: number;
}

export const DEFAULT_CIRCUIT_OPTIONS: CircuitOptions = { failureThreshold: 10, openMs: 30_000 };

/** One gateway's breaker as readiness and metrics report it. */
export interface CircuitView {
  readonly gateway: string;
  readonly state: CircuitState;
  /** Epoch ms at which the breaker entered `state`. */
  readonly since: number;
  readonly consecutiveFailures: number;
  /** While open: when the probe may go. Otherwise null. */
  readonly reopenAt: number | null;
}

interface Breaker {
  /** closed, or open since `openedAt` (half_open is open past openMs). */
  open: boolean;
  since: number;
  openedAt: number;
  failures: number;
  /** While half_open: when the probe granted last was handed out (null: none outstanding). */
  probeAt: number | null;
}

/** The breakers of every gateway this engine calls, created on first use. */
export class CircuitBreakers {
  private readonly breakers = new Map<string, Breaker>();
  private readonly options: CircuitOptions;

  constructor(
    private readonly clock: Clock,
    options: Partial<CircuitOptions> = {},
  ) {
    this.options = { ...DEFAULT_CIRCUIT_OPTIONS, ...options };
    if (!(this.options.failureThreshold >= 1) || !(this.options.openMs > 0)) {
      throw new TypeError('circuit breaker: failureThreshold must be >= 1 and openMs > 0');
    }
  }

  /** Lists `gateway` (closed) before its first call, so readiness names every configured gateway. */
  track(gateway: string): void {
    this.get(gateway);
  }

  private get(gateway: string): Breaker {
    let b = this.breakers.get(gateway);
    if (!b) {
      b = { open: false, since: this.clock.now(), openedAt: 0, failures: 0, probeAt: null };
      this.breakers.set(gateway, b);
    }
    return b;
  }

  private stateOf(b: Breaker, now: number): CircuitState {
    if (!b.open) return 'closed';
    return now >= b.openedAt + this.options.openMs ? 'half_open' : 'open';
  }

  /** The breaker's state now. */
  state(gateway: string): CircuitState {
    const b = this.breakers.get(gateway);
    return b ? this.stateOf(b, this.clock.now()) : 'closed';
  }

  /**
   * May a new attempt start on `gateway` now? Closed: yes. Open: no.
   * Half open: yes for exactly one caller (the probe); a probe that never
   * reports back (its intent failed) is replaced after another openMs.
   */
  allowAttempt(gateway: string): boolean {
    const b = this.breakers.get(gateway);
    if (!b) return true;
    const now = this.clock.now();
    const state = this.stateOf(b, now);
    if (state === 'closed') return true;
    if (state === 'open') return false;
    if (b.probeAt !== null && now < b.probeAt + this.options.openMs) return false;
    b.probeAt = now;
    return true;
  }

  /**
   * When a refused attempt should be tried again: the instant the breaker
   * half-opens (or, with a probe outstanding, when that probe is given up).
   * Null when attempts are allowed.
   */
  retryAt(gateway: string): number | null {
    const b = this.breakers.get(gateway);
    if (!b?.open) return null;
    const halfOpenAt = b.openedAt + this.options.openMs;
    const now = this.clock.now();
    if (now < halfOpenAt) return halfOpenAt;
    return b.probeAt === null ? now : Math.max(now, b.probeAt + this.options.openMs);
  }

  /** The gateway answered (captured, declined, pending, not_found): closes the breaker. Returns true if it was open. */
  recordAnswer(gateway: string): boolean {
    const b = this.get(gateway);
    const wasOpen = b.open;
    if (wasOpen) b.since = this.clock.now();
    b.open = false;
    b.failures = 0;
    b.probeAt = null;
    return wasOpen;
  }

  /**
   * An unavailable outcome: counts toward opening; a failed probe (or any
   * failure while half open) opens it again. Returns true if this call opened it.
   */
  recordFailure(gateway: string): boolean {
    const b = this.get(gateway);
    const now = this.clock.now();
    b.failures++;
    const state = this.stateOf(b, now);
    if (state === 'half_open' || (state === 'closed' && b.failures >= this.options.failureThreshold)) {
      b.open = true;
      b.openedAt = now;
      b.since = now;
      b.probeAt = null;
      return true;
    }
    // Already open: failures of status queries meanwhile do not push the probe further away.
    return false;
  }

  /** Every breaker seen so far, by gateway name. */
  views(): CircuitView[] {
    const now = this.clock.now();
    return [...this.breakers.entries()]
      .sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0))
      .map(([gateway, b]) => {
        const state = this.stateOf(b, now);
        return {
          gateway,
          state,
          since: state === 'half_open' ? b.openedAt + this.options.openMs : b.since,
          consecutiveFailures: b.failures,
          reopenAt: state === 'open' ? b.openedAt + this.options.openMs : null,
        };
      });
  }
}
