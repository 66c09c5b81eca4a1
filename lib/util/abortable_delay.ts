/**
 * A timer promise that an abort signal ends early (resolving, not rejecting), so waits inside the
 * data plane never outlive their owner and never leak timers.
 * @module
 */

/** Resolves after `ms` milliseconds, or as soon as `signal` aborts. */
export function abortableDelay(ms: number, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done);
  });
}
