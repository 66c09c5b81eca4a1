/** Bounded polling for test support code. */

/** How long and how often `waitUntil` polls. */
export interface WaitOptions {
  /** @default 60000 */
  readonly timeoutMs?: number;
  /** @default 200 */
  readonly intervalMs?: number;
}

/**
 * Calls `check` until it returns a value other than `undefined`, and returns that value.
 * @throws Error naming `what` and the last check error when `timeoutMs` passes first
 */
export async function waitUntil<T>(
  what: string,
  check: () => Promise<T | undefined>,
  options: WaitOptions = {},
): Promise<T> {
  const timeoutMs = options.timeoutMs ?? 60_000;
  const intervalMs = options.intervalMs ?? 200;
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (true) {
    try {
      const value = await check();
      if (value !== undefined) return value;
    } catch (error) {
      lastError = error;
    }
    if (Date.now() >= deadline) {
      const detail = lastError === undefined ? "" : `; last error: ${lastError}`;
      throw new Error(`Timed out after ${timeoutMs} ms waiting for ${what}${detail}`);
    }
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}
