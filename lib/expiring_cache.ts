/**
 * A small bounded cache of asynchronously computed values that expire: concurrent lookups of one
 * key share one computation, failures are not kept, and the oldest entry makes room for a new one.
 * @module
 */

/** Options of {@linkcode ExpiringCache}. */
export interface ExpiringCacheOptions {
  /** Most entries kept (computations in flight included). */
  readonly maxEntries: number;
  /** Clock in milliseconds. @default Date.now */
  readonly now?: () => number;
}

interface Entry<V> {
  readonly value: Promise<V>;
  /** `Infinity` while the computation runs. */
  expiresAt: number;
}

/** Values by key, each kept for as long as its `ttlMs` says. */
export class ExpiringCache<K, V> {
  readonly #entries = new Map<K, Entry<V>>();
  readonly #maxEntries: number;
  readonly #now: () => number;

  /** @throws {RangeError} when `maxEntries` is not a positive integer. */
  constructor(options: ExpiringCacheOptions) {
    if (!Number.isInteger(options.maxEntries) || options.maxEntries < 1) {
      throw new RangeError(`maxEntries ${options.maxEntries} must be a positive integer`);
    }
    this.#maxEntries = options.maxEntries;
    this.#now = options.now ?? Date.now;
  }

  /** Entries kept now, expired ones not yet dropped included. */
  get size(): number {
    return this.#entries.size;
  }

  /**
   * The value of `key`: the kept one while it has not expired, else `compute()`'s, kept for
   * `ttlMs(value)` milliseconds (0 keeps nothing). A rejection is passed on and not kept.
   */
  get(key: K, compute: () => Promise<V>, ttlMs: (value: V) => number): Promise<V> {
    const found = this.#entries.get(key);
    if (found !== undefined && found.expiresAt > this.#now()) return found.value;
    this.#entries.delete(key);
    while (this.#entries.size >= this.#maxEntries) {
      const oldest = this.#entries.keys().next();
      if (oldest.done) break;
      this.#entries.delete(oldest.value);
    }
    const entry: Entry<V> = { value: compute(), expiresAt: Number.POSITIVE_INFINITY };
    this.#entries.set(key, entry);
    entry.value.then(
      (value) => {
        entry.expiresAt = this.#now() + ttlMs(value);
        if (!(entry.expiresAt > this.#now())) this.#forget(key, entry);
      },
      () => this.#forget(key, entry),
    );
    return entry.value;
  }

  #forget(key: K, entry: Entry<V>): void {
    if (this.#entries.get(key) === entry) this.#entries.delete(key);
  }
}
