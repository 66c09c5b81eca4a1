/**
 * Budgets of one forwarding thread that keep the process within its limits whatever arrives:
 * sockets (so that it never runs out of file descriptors: at EMFILE Deno itself can fail while
 * reporting an error, and every port goes down; a TCP connection takes 2, a UDP session 1), and the
 * bytes of UDP session buffers (so that a session flood cannot exceed the memory limit).
 * @module
 */

/**
 * A counter of units in use (sockets, bytes) against a fixed maximum, in shared memory: the
 * batched UDP engine's threads take from the same budget as the thread that created it (each
 * attaches with {@linkcode Budget.share}).
 */
export class Budget {
  /** Most units in use at once. */
  readonly max: number;
  readonly #inUse: BigInt64Array<SharedArrayBuffer>;

  /**
   * @param max A positive number (or Infinity).
   * @param share Another budget's {@linkcode Budget.share}, to count in the same memory.
   */
  constructor(max: number, share?: SharedArrayBuffer) {
    if (!(max >= 1)) throw new RangeError(`Invalid budget ${max}: must be at least 1`);
    this.max = max;
    this.#inUse = new BigInt64Array(share ?? new SharedArrayBuffer(8), 0, 1);
  }

  /** The shared count, for `new Budget(max, share)` in another thread. */
  get share(): SharedArrayBuffer {
    return this.#inUse.buffer;
  }

  /** Units taken and not given back (over every thread sharing this budget). */
  get inUse(): number {
    return Number(Atomics.load(this.#inUse, 0));
  }

  /** Takes `count` (an integer) units if they fit; false (nothing taken) when they do not. */
  take(count: number): boolean {
    const units = BigInt(count);
    if (Number(Atomics.add(this.#inUse, 0, units)) + count <= this.max) return true;
    Atomics.sub(this.#inUse, 0, units);
    return false;
  }

  /** Gives back `count` units taken before. */
  give(count: number): void {
    Atomics.sub(this.#inUse, 0, BigInt(count));
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
