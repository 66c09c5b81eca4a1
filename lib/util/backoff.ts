/**
 * Exponential backoff with jitter, for every retry loop (API requests, watches, bind retries).
 * The defaults are client-go's: 0.8 s growing to 30 s, jitter between half and full step, reset
 * after 2 min without failures.
 *
 * @module
 */

/** Options of {@linkcode Backoff}. */
export interface BackoffOptions {
  /** First delay. @default 800 */
  initialMs?: number;
  /** Largest delay. @default 30000 */
  maxMs?: number;
  /** Start over from `initialMs` when the last failure is older than this. @default 120000 */
  resetAfterMs?: number;
  /**
   * Range of the factor applied to each step, `[low, high]`; the result never exceeds `maxMs`.
   * @default [0.5, 1]
   */
  jitter?: readonly [number, number];
  /** Random source in [0, 1), replaceable in tests. @default Math.random */
  random?: () => number;
  /** Clock, replaceable in tests. @default Date.now */
  now?: () => number;
}

/** Produces growing, jittered delays for consecutive failures. */
export class Backoff {
  readonly #initialMs: number;
  readonly #maxMs: number;
  readonly #resetAfterMs: number;
  readonly #jitter: readonly [number, number];
  readonly #random: () => number;
  readonly #now: () => number;
  #failures = 0;
  #lastFailureAt = Number.NEGATIVE_INFINITY;

  /** @throws {RangeError} when a duration is negative, `maxMs < initialMs`, or jitter is inverted. */
  constructor(options: BackoffOptions = {}) {
    this.#initialMs = options.initialMs ?? 800;
    this.#maxMs = options.maxMs ?? 30_000;
    this.#resetAfterMs = options.resetAfterMs ?? 120_000;
    this.#jitter = options.jitter ?? [0.5, 1];
    if (this.#initialMs < 0 || this.#maxMs < this.#initialMs || this.#resetAfterMs < 0) {
      throw new RangeError(
        `Invalid backoff: initialMs ${this.#initialMs}, maxMs ${this.#maxMs}, ` +
          `resetAfterMs ${this.#resetAfterMs} (need 0 <= initialMs <= maxMs, resetAfterMs >= 0)`,
      );
    }
    const [low, high] = this.#jitter;
    if (!(low >= 0 && high >= low)) {
      throw new RangeError(`Invalid backoff jitter [${low}, ${high}] (need 0 <= low <= high)`);
    }
    this.#random = options.random ?? Math.random;
    this.#now = options.now ?? Date.now;
  }

  /** Records a failure and returns how long to wait before the next attempt. */
  next(): number {
    const now = this.#now();
    if (now - this.#lastFailureAt > this.#resetAfterMs) this.#failures = 0;
    this.#lastFailureAt = now;
    const step = Math.min(this.#maxMs, this.#initialMs * 2 ** Math.min(this.#failures, 52));
    this.#failures++;
    const [low, high] = this.#jitter;
    return Math.round(Math.min(this.#maxMs, step * (low + (high - low) * this.#random())));
  }

  /** Forgets past failures. */
  reset(): void {
    this.#failures = 0;
    this.#lastFailureAt = Number.NEGATIVE_INFINITY;
  }
}
