/**
 * The one abortable timer of the code base: waits never outlive their owner and never leak timers.
 * @module
 */

/** Resolves after `ms` milliseconds, or as soon as `signal` aborts (resolving, not rejecting). */
export function abortableDelay(ms: number, signal?: AbortSignal): Promise<void> {
  if (signal?.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener("abort", done, { once: true });
  });
}

/** Waits `ms`, or rejects with the signal's reason as soon as `signal` aborts. */
export async function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  await abortableDelay(ms, signal);
  signal?.throwIfAborted();
}
