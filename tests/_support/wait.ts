/**
 * Bounded waiting for tests: poll for a condition instead of sleeping or asserting on time.
 * @module
 */

/** Options of {@linkcode waitUntil}. */
export interface WaitOptions {
  /** Give up after this long. @default 60000 */
  readonly timeoutMs?: number;
  /**
   * Longest pause between two checks. The first checks follow each other after 10 ms, then the
   * pause doubles up to this, so quick conditions are seen at once and slow ones (an API server
   * round trip, a kubectl run) are not polled in a busy loop. @default 250
   */
  readonly intervalMs?: number;
}

/**
 * Calls `check` until it returns something other than `undefined` or `false`, and returns that.
 * A check that throws is tried again; its last error is named when the time is up.
 * @throws Error naming `what` (and the last error) when `timeoutMs` passes first
 */
export async function waitUntil<T>(
  what: string,
  check: () => T | Promise<T>,
  options: WaitOptions = {},
): Promise<Exclude<T, undefined | false>> {
  const timeoutMs = options.timeoutMs ?? 60_000;
  const maxIntervalMs = options.intervalMs ?? 250;
  const deadline = Date.now() + timeoutMs;
  let pauseMs = Math.min(10, maxIntervalMs);
  let lastError: unknown;
  while (true) {
    try {
      const value = await check();
      if (value !== undefined && value !== false) return value as Exclude<T, undefined | false>;
    } catch (error) {
      lastError = error;
    }
    if (Date.now() >= deadline) {
      const detail = lastError === undefined ? "" : `; last error: ${lastError}`;
      throw new Error(`Timed out after ${timeoutMs} ms waiting for ${what}${detail}`);
    }
    await new Promise((resolve) => setTimeout(resolve, pauseMs));
    pauseMs = Math.min(maxIntervalMs, pauseMs * 2);
  }
}

/** Resolves `promise`, or rejects after `timeoutMs` naming `what` (the promise keeps running). */
export async function within<T>(promise: Promise<T>, timeoutMs: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`Timed out after ${timeoutMs} ms: ${what}`)),
          timeoutMs,
        );
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
