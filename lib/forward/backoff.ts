/**
 * Capped exponential backoff with jitter, for bind retries.
 * @module
 */

/** Share of the delay that jitter may add or remove. */
const JITTER = 0.2;

/**
 * The delay before retry number `attempt` (0 for the first retry): `initialMs * 2^attempt`, capped at
 * `maxMs`, then moved by up to ±20% at random so that many forwarders do not retry in lockstep. Never
 * above `maxMs`.
 */
export function backoffDelayMs(
  attempt: number,
  initialMs: number,
  maxMs: number,
  random: () => number = Math.random,
): number {
  const base = Math.min(maxMs, initialMs * 2 ** Math.min(attempt, 52));
  const jittered = base * (1 - JITTER + 2 * JITTER * random());
  return Math.round(Math.min(maxMs, jittered));
}
