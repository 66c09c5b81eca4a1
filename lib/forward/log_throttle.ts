/**
 * Rate limit for log lines that traffic can trigger (dial errors, drops), so a flood of failures
 * writes one line per interval with the number of suppressed repeats.
 * @module
 */

/** Lets one event through per interval and counts the rest. */
export class LogThrottle {
  readonly #intervalMs: number;
  #nextAtMs = 0;
  #suppressed = 0;

  /** @param intervalMs Minimum time between two events let through. */
  constructor(intervalMs: number = 10_000) {
    this.#intervalMs = intervalMs;
  }

  /**
   * Records one event.
   * @returns The number of events suppressed since the last one let through, or `undefined` when
   *   this one is suppressed too.
   */
  take(nowMs: number = Date.now()): number | undefined {
    if (nowMs < this.#nextAtMs) {
      this.#suppressed++;
      return undefined;
    }
    this.#nextAtMs = nowMs + this.#intervalMs;
    const suppressed = this.#suppressed;
    this.#suppressed = 0;
    return suppressed;
  }
}
