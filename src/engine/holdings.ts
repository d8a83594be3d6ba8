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

  /** @param onFreed called when rows are finished: room again, due work may be claimed now. */
  constructor(
    readonly bound: number,
    private readonly onFreed: () => void,
  ) {}

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

  /** Rows a claim just leased. */
  hold(n: number): void {
    this.#active += n;
    if (this.#active > this.#highWater) this.#highWater = this.#active;
  }

  /** Rows done with (outcome recorded or lifecycle step written): wakes the loop, as due work may be waiting. */
  finish(n: number): void {
    if (n <= 0) return;
    this.#active -= n;
    this.onFreed();
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
