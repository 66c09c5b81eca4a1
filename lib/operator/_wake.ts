/**
 * Small concurrency helpers of the operator loop (private to `lib/operator/`).
 * @module
 */

import { abortableDelay } from "../util/abortable_delay.ts";

/** Wakes the loop: at once when triggered, else after a delay. */
export class Wake {
  #pending = false;
  #woken: AbortController | undefined;

  /** Wakes the current or the next `wait()` at once. */
  trigger(): void {
    this.#pending = true;
    this.#woken?.abort();
  }

  /** Waits until triggered (since the last wait), `ms` passed, or `signal` aborted. */
  async wait(ms: number, signal: AbortSignal): Promise<void> {
    if (!this.#pending && !signal.aborted) {
      this.#woken = new AbortController();
      await abortableDelay(ms, AbortSignal.any([signal, this.#woken.signal]));
      this.#woken = undefined;
    }
    this.#pending = false;
  }
}

/** Runs `fn` over `items` with at most `limit` calls in flight. */
export async function forEachLimit<T>(
  items: readonly T[],
  limit: number,
  fn: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const item = items[next++] as T;
      await fn(item);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}
