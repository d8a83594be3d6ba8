/**
 * The clock guard (SPEC section 6): between sweeps it compares how far the
 * wall clock and the monotonic clock moved. When they disagree by more than
 * `maxJumpMs` the wall clock was stepped (NTP step, VM resume, an operator's
 * `date -s`), and instants read from it must not drive billing: the engine
 * starts no attempt and readiness fails until the wall clock is back in line
 * with the last trusted reference, or the daemon restarts.
 *
 * On PostgreSQL the database's clock judges due work and leases for every
 * daemon on it, so the guard also compares this host's clock with the
 * database's (measured by the engine now and then): a host further off than
 * `maxJumpMs` holds too, until the two agree again.
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
  /** This host's clock minus the database's, beyond the measurement's uncertainty (PostgreSQL; null: not measured). */
  private databaseSkew: number | null = null;
  /** The database's clock when the comparison first found this host off (null: in line). */
  private databaseOffSince: number | null = null;
  /** Whether the last check() found the guard holding (either reason). */
  private holding = false;

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
   * Records a reading of the database's clock: `databaseAt` read between
   * this clock's `hostBefore` and `hostAfter`. Taken into account by the next
   * check().
   */
  compareWithDatabase(hostBefore: number, hostAfter: number, databaseAt: number): void {
    const uncertainty = Math.max(0, hostAfter - hostBefore) / 2;
    const skew = (hostBefore + hostAfter) / 2 - databaseAt;
    this.databaseSkew = Math.sign(skew) * Math.max(0, Math.abs(skew) - uncertainty);
    if (Math.abs(this.databaseSkew) <= this.maxJumpMs) this.databaseOffSince = null;
    else this.databaseOffSince ??= databaseAt;
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
      this.held = null;
    } else if (this.held) {
      this.held = { ...this.held, skew };
    } else {
      const since = this.trustedNow();
      const reason = `wall clock ${skew > 0 ? 'jumped ahead' : 'went back'} by ${Math.round(Math.abs(skew) / 1000)} s against the monotonic clock (limit ${this.maxJumpMs / 1000} s): it reads ${new Date(wall).toISOString()}, elapsed time says ${new Date(since).toISOString()}`;
      this.held = { reason, since, skew };
    }
    const holding = !this.state().ok;
    const change = holding === this.holding ? null : holding ? 'held' : 'released';
    this.holding = holding;
    return change;
  }

  /** Why the database comparison holds, or null. */
  private databaseHold(): string | null {
    const off = this.databaseSkew;
    if (off === null || Math.abs(off) <= this.maxJumpMs) return null;
    return `this host's clock is ${Math.round(Math.abs(off) / 1000)} s ${off > 0 ? 'ahead of' : 'behind'} the database's (limit ${this.maxJumpMs / 1000} s): fix this host's clock (NTP)`;
  }

  /** The current state, for readiness and stats. */
  state(): ClockGuardState {
    if (this.held) return { ok: false, reason: this.held.reason, since: this.held.since };
    const database = this.databaseHold();
    return database ? { ok: false, reason: database, since: this.databaseOffSince } : { ok: true, reason: null, since: null };
  }

  /**
   * This host's clock minus the database's as last measured (PostgreSQL; 0 when
   * never measured, and always on SQLite): turns an instant of the database's
   * clock (a row's work_at) into the instant this host's clock reads then.
   */
  databaseOffsetMs(): number {
    return this.databaseSkew ?? 0;
  }

  /** Skew in ms of the current hold (0 when ok). */
  skewMs(): number {
    if (this.held) return this.held.skew;
    return this.databaseHold() ? (this.databaseSkew ?? 0) : 0;
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
