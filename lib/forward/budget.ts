/**
 * Budgets of one forwarding thread that keep the process within its limits whatever arrives:
 * sockets (so that it never runs out of file descriptors: at EMFILE Deno itself can fail while
 * reporting an error, and every port goes down; a TCP connection takes 2, a UDP session 1), and the
 * bytes of UDP session buffers (so that a session flood cannot exceed the memory limit).
 * @module
 */

/** A counter of units in use (sockets, bytes) against a fixed maximum. */
export class Budget {
  /** Most units in use at once. */
  readonly max: number;
  #inUse = 0;

  /** @param max A positive number (or Infinity). */
  constructor(max: number) {
    if (!(max >= 1)) throw new RangeError(`Invalid budget ${max}: must be at least 1`);
    this.max = max;
  }

  /** Units taken and not given back. */
  get inUse(): number {
    return this.#inUse;
  }

  /** Takes `count` units if they fit; false (nothing taken) when they do not. */
  take(count: number): boolean {
    if (this.#inUse + count > this.max) return false;
    this.#inUse += count;
    return true;
  }

  /** Gives back `count` units taken before. */
  give(count: number): void {
    this.#inUse = Math.max(0, this.#inUse - count);
  }
}

/** Descriptors kept free for everything else (listeners, metrics, API server, config reads). */
export function fdReserve(limit: number): number {
  return Math.max(64, Math.ceil(limit / 10));
}

/**
 * The default sockets budget for a soft `RLIMIT_NOFILE` of `limit` with `openAtStart` descriptors
 * already open: the limit minus those and a reserve ({@linkcode fdReserve}), at least 16.
 */
export function defaultSocketBudget(limit: number, openAtStart: number): number {
  if (!Number.isFinite(limit)) return 1_000_000;
  return Math.max(16, limit - openAtStart - fdReserve(limit));
}
