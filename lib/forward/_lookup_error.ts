/**
 * Tells a failed name lookup apart from other socket errors, for the `ResolveTargetAddress` and
 * `ResolveListenAddress` error types.
 * @module
 */

/** True when `error` is Deno's failed `getaddrinfo` (a plain Error with this message). */
export function isLookupError(error: unknown): boolean {
  return error instanceof Error && error.message.startsWith("failed to lookup address");
}
