/**
 * The one owner of the engine's in-memory accounting: how many subscriptions
 * it holds (claimed, queued, in flight, waiting for their outcome's commit).
 * A sweep claims no more than `room`, so the dispatch queue never holds more
 * than `bound` rows however much work is due: the rest waits in the database.
 * Every change goes through these three methods; nothing else touches the count.
 */
export class Holdings {
  #active = 0;
  #highWater = 0;
  /** Room worth a claim of its own: a quarter of the bound (a claim is a commit; one per finished row would be one per charge). */
  readonly #refillAt: number;

  /**
   * @param onFreed called when rows are finished and a claim is worth making (wantsWork).
   * @param slots calls the dispatcher runs at once: with fewer rows held than that, a slot would idle, so any room is worth claiming.
   */
  constructor(
    readonly bound: number,
    private readonly onFreed: () => void,
    private readonly slots = bound,
  ) {
    this.#refillAt = Math.max(1, Math.floor(bound / 4));
  }

  /**
   * Whether claiming now is worth a commit: room for a quarter of the bound,
   * or so few rows held that gateway slots would idle. Until then the rows
   * already queued keep every slot busy, and finishing rows wake nobody.
   */
  get wantsWork(): boolean {
    return this.wantsWorkAfter(0);
  }

  /** wantsWork once `finishing` more rows are done (a claim riding with the commit of their outcomes). */
  wantsWorkAfter(finishing: number): boolean {
    const room = this.room + finishing;
    return room > 0 && (room >= this.#refillAt || this.#active - finishing < this.slots);
  }

  /** Rows held now. */
  get active(): number {
    return this.#active;
  }

  /** The most rows ever held at once: never above `bound`. */
  get highWater(): number {
    return this.#highWater;
  }

  /** How many more rows a claim may take. */
  get room(): number {
    return this.bound - this.#active;
  }

  /**
   * Rows a claim just leased. `finishing`: rows whose outcomes that claim's
   * commit recorded; their finish() follows in a few microtasks, so the
   * high-water mark already counts them gone.
   */
  hold(n: number, finishing = 0): void {
    this.#active += n;
    if (this.#active - finishing > this.#highWater) this.#highWater = this.#active - finishing;
  }

  /** Rows done with (outcome recorded or lifecycle step written): wakes the loop when a claim is worth making, as due work may be waiting. */
  finish(n: number): void {
    if (n <= 0) return;
    this.#active -= n;
    if (this.wantsWork) this.onFreed();
  }

  /**
   * Rows let go without waking the loop: given back not due yet (nothing to
   * do, an open circuit), refused until their lease expires, or abandoned by
   * a failed job or a stop. A wake-up would only find them not due.
   */
  drop(n: number): void {
    this.#active -= n;
  }
}
