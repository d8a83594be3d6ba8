/**
 * The clock guard (SPEC section 6): between sweeps it compares how far the
 * wall clock and the monotonic clock moved. When they disagree by more than
 * `maxJumpMs` the wall clock was stepped (NTP step, VM resume, an operator's
 * `date -s`), and instants read from it must not drive billing: the engine
 * starts no attempt and readiness fails until the wall clock is back in line
 * with the last trusted reference, or the daemon restarts.
 */
import type { Clock } from '../clock.js';

/** What readiness reports about the clock. */
export interface ClockGuardState {
  /** false: no attempt starts (the wall clock jumped). */
  readonly ok: boolean;
  /** Why not, naming the jump; null when ok. */
  readonly reason: string | null;
  /** Wall-clock ms (trusted estimate) at which the guard started holding; null when ok. */
  readonly since: number | null;
}

export class ClockGuard {
  private readonly monotonic: () => number;
  /** Last instant both clocks agreed on: wall ms and monotonic ms read together. */
  private refWall: number;
  private refMono: number;
  private held: { reason: string; since: number; skew: number } | null = null;

  constructor(
    private readonly clock: Clock,
    private readonly maxJumpMs: number,
  ) {
    this.monotonic = clock.monotonic ? () => clock.monotonic!() : () => clock.now();
    this.refWall = clock.now();
    this.refMono = this.monotonic();
  }

  /** Wall minus monotonic progress since the trusted reference (positive: the wall clock jumped ahead). */
  private skew(): { wall: number; mono: number; skew: number } {
    const wall = this.clock.now();
    const mono = this.monotonic();
    return { wall, mono, skew: wall - this.refWall - (mono - this.refMono) };
  }

  /**
   * Called at each sweep: re-checks the clocks and returns whether the state
   * changed (`held` or `released`), so the caller logs each transition once.
   */
  check(): 'held' | 'released' | null {
    const { wall, mono, skew } = this.skew();
    if (Math.abs(skew) <= this.maxJumpMs) {
      // In line: this is the new trusted reference (slow drift is absorbed sweep by sweep).
      this.refWall = wall;
      this.refMono = mono;
      if (!this.held) return null;
      this.held = null;
      return 'released';
    }
    if (this.held) {
      this.held = { ...this.held, skew };
      return null;
    }
    const since = this.trustedNow();
    const reason = `wall clock ${skew > 0 ? 'jumped ahead' : 'went back'} by ${Math.round(Math.abs(skew) / 1000)} s against the monotonic clock (limit ${this.maxJumpMs / 1000} s): it reads ${new Date(wall).toISOString()}, elapsed time says ${new Date(since).toISOString()}`;
    this.held = { reason, since, skew };
    return 'held';
  }

  /** The current state, for readiness and stats. */
  state(): ClockGuardState {
    return this.held ? { ok: false, reason: this.held.reason, since: this.held.since } : { ok: true, reason: null, since: null };
  }

  /** Skew in ms of the current hold (0 when ok). */
  skewMs(): number {
    return this.held?.skew ?? 0;
  }

  /**
   * The instant to record with: the wall clock while it is in line, otherwise
   * the trusted reference moved on by elapsed (monotonic) time, so an outcome
   * that lands during a jump is settled at the real instant (no cycle skipped
   * because the wall clock said a year had passed).
   */
  trustedNow(): number {
    const { wall, mono, skew } = this.skew();
    return Math.abs(skew) <= this.maxJumpMs ? wall : this.refWall + (mono - this.refMono);
  }
}
