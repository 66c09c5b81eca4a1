/**
 * Token buckets by key (a client address): each key may take `burst` tokens at once and gets
 * `ratePerSecond` back per second. Memory stays bounded by the keys seen recently: buckets that have
 * refilled completely are forgotten (a full bucket and no bucket mean the same).
 * @module
 */

interface Bucket {
  tokens: number;
  atMs: number;
}

/** Per-key token buckets with one rate and burst. */
export class TokenBuckets {
  readonly #perMs: number;
  readonly #burst: number;
  /** How long an empty bucket takes to refill completely. */
  readonly #refillMs: number;
  readonly #buckets = new Map<string, Bucket>();
  #nextSweepMs = 0;

  /**
   * @param ratePerSecond Tokens given back per second (> 0).
   * @param burst Tokens a key may take at once (>= 1).
   * @throws {RangeError} when either is out of range.
   */
  constructor(ratePerSecond: number, burst: number) {
    if (!(ratePerSecond > 0)) {
      throw new RangeError(`ratePerSecond must be > 0, got ${ratePerSecond}`);
    }
    if (!(burst >= 1)) throw new RangeError(`burst must be >= 1, got ${burst}`);
    this.#perMs = ratePerSecond / 1000;
    this.#burst = burst;
    this.#refillMs = burst / this.#perMs;
  }

  /** Buckets held now (for tests of the memory bound). */
  get size(): number {
    return this.#buckets.size;
  }

  /** Takes one token of `key`; false when its bucket is empty. */
  take(key: string, nowMs: number): boolean {
    if (nowMs >= this.#nextSweepMs) this.#sweep(nowMs);
    let bucket = this.#buckets.get(key);
    if (bucket === undefined) {
      bucket = { tokens: this.#burst, atMs: nowMs };
      this.#buckets.set(key, bucket);
    } else {
      bucket.tokens = Math.min(this.#burst, bucket.tokens + (nowMs - bucket.atMs) * this.#perMs);
      bucket.atMs = nowMs;
    }
    if (bucket.tokens < 1) return false;
    bucket.tokens--;
    return true;
  }

  /** Forgets buckets that are full again. */
  #sweep(nowMs: number): void {
    for (const [key, bucket] of this.#buckets) {
      if (bucket.tokens + (nowMs - bucket.atMs) * this.#perMs >= this.#burst) {
        this.#buckets.delete(key);
      }
    }
    this.#nextSweepMs = nowMs + Math.max(1000, this.#refillMs);
  }
}
