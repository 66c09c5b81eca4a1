/**
 * Counters in shared memory: one row of `fields` float64 numbers per writer (the main thread and
 * each engine thread), so every writer advances its own row without atomics and a reader (the
 * metrics scrape on the main thread) sums the rows. Float64 holds integers exactly up to 2^53.
 * @module
 */

/** A block of counters shared between threads, one row per writer. */
export class SharedCounterBlock {
  /** The memory, posted to every writer. */
  readonly buffer: SharedArrayBuffer;
  readonly #fields: number;
  readonly #all: Float64Array<SharedArrayBuffer>;

  /** A new zeroed block with `rows` writers, or a view of an existing `buffer`. */
  constructor(fields: number, rows: number, buffer?: SharedArrayBuffer) {
    this.#fields = fields;
    this.buffer = buffer ?? new SharedArrayBuffer(fields * rows * Float64Array.BYTES_PER_ELEMENT);
    this.#all = new Float64Array(this.buffer);
    if (this.#all.length !== fields * rows) throw new RangeError("Counter block of the wrong size");
  }

  /** The row of writer `row`, to advance in place. */
  row(row: number): Float64Array<SharedArrayBuffer> {
    return this.#all.subarray(row * this.#fields, (row + 1) * this.#fields);
  }

  /** Field `field` summed over every row. */
  sum(field: number): number {
    const all = this.#all;
    let total = 0;
    for (let at = field; at < all.length; at += this.#fields) total += all[at]!;
    return total;
  }
}

/**
 * Defines on `target` one number property per entry of `fields` (name → field index): reading
 * sums the field over every row, writing adds the difference to row 0 (the main thread's).
 */
export function defineSummedCounters(
  target: object,
  block: SharedCounterBlock,
  fields: Readonly<Record<string, number>>,
): void {
  const main = block.row(0);
  for (const [name, field] of Object.entries(fields)) {
    Object.defineProperty(target, name, {
      enumerable: true,
      get: () => block.sum(field),
      set: (value: number) => main[field]! += value - block.sum(field),
    });
  }
}
