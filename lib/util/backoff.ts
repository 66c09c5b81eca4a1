/**
 * Exponential backoff with jitter (client-go's defaults: 0.8 s growing to 30 s, reset after 2 min
 * without failures) and an abortable sleep.
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
  readonly #random: () => number;
  readonly #now: () => number;
  #failures = 0;
  #lastFailureAt = Number.NEGATIVE_INFINITY;

  /** @throws {RangeError} when a duration is negative or `maxMs < initialMs`. */
  constructor(options: BackoffOptions = {}) {
    this.#initialMs = options.initialMs ?? 800;
    this.#maxMs = options.maxMs ?? 30_000;
    this.#resetAfterMs = options.resetAfterMs ?? 120_000;
    if (this.#initialMs < 0 || this.#maxMs < this.#initialMs || this.#resetAfterMs < 0) {
      throw new RangeError(
        `Invalid backoff: initialMs ${this.#initialMs}, maxMs ${this.#maxMs}, ` +
          `resetAfterMs ${this.#resetAfterMs} (need 0 <= initialMs <= maxMs, resetAfterMs >= 0)`,
      );
    }
    this.#random = options.random ?? Math.random;
    this.#now = options.now ?? Date.now;
  }

  /** Records a failure and returns how long to wait before the next attempt (half to full step). */
  next(): number {
    const now = this.#now();
    if (now - this.#lastFailureAt > this.#resetAfterMs) this.#failures = 0;
    this.#lastFailureAt = now;
    const step = Math.min(this.#maxMs, this.#initialMs * 2 ** Math.min(this.#failures, 30));
    this.#failures++;
    return Math.round(step * (0.5 + this.#random() / 2));
  }

  /** Forgets past failures. */
  reset(): void {
    this.#failures = 0;
    this.#lastFailureAt = Number.NEGATIVE_INFINITY;
  }
}

/** Waits `ms`, or rejects with the signal's reason as soon as `signal` aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  if (signal?.aborted) return Promise.reject(signal.reason);
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
