/**
 * Log lines to a byte sink (stderr) without letting a slow reader of that sink stall forwarding.
 * Ordinary log lines are written synchronously while nothing is pending (ordered, and not lost at
 * exit); lines that must never slow the program (access records) are queued and written
 * asynchronously in batches, and dropped (counted) once more than a bound is pending. While a
 * batch is in flight every line queues behind it, so lines never interleave or reorder.
 * @module
 */

/** Where lines go: a file or stream with both write flavours (e.g. `Deno.stderr`). */
export interface LineSink {
  writeSync(bytes: Uint8Array): number;
  write(bytes: Uint8Array): Promise<number>;
}

const encoder = new TextEncoder();

/** Writes log lines to a {@linkcode LineSink}; see the module documentation. */
export class LineWriter {
  readonly #sink: LineSink;
  readonly #maxPendingChars: number;
  #queue: string[] = [];
  #pendingChars = 0;
  #flushing: Promise<void> | undefined;
  #dropped = 0;

  /** @param maxPendingChars Queued characters beyond which `writeLater()` drops lines. */
  constructor(sink: LineSink, maxPendingChars: number) {
    this.#sink = sink;
    this.#maxPendingChars = maxPendingChars;
  }

  /** Lines `writeLater()` dropped so far. */
  get dropped(): number {
    return this.#dropped;
  }

  /** Writes `line` at once when nothing is pending, else queues it (never drops it). */
  writeNow(line: string): void {
    if (this.#flushing === undefined) {
      const bytes = encoder.encode(line);
      let written = 0;
      while (written < bytes.length) written += this.#sink.writeSync(bytes.subarray(written));
      return;
    }
    this.#enqueue(line);
  }

  /**
   * Queues `line` for an asynchronous batched write; false (counted in `dropped`) when more than
   * the bound is pending already.
   */
  writeLater(line: string): boolean {
    if (this.#pendingChars + line.length > this.#maxPendingChars) {
      this.#dropped++;
      return false;
    }
    this.#enqueue(line);
    this.#flushing ??= this.#drain();
    return true;
  }

  /** Resolves once every queued line is written (or found unwritable). */
  async flush(): Promise<void> {
    while (this.#flushing !== undefined) await this.#flushing;
  }

  #enqueue(line: string): void {
    this.#queue.push(line);
    this.#pendingChars += line.length;
  }

  async #drain(): Promise<void> {
    let inFlight = 0;
    try {
      // Lines logged in the same task go out in one write.
      await new Promise((resolve) => setTimeout(resolve, 0));
      while (this.#queue.length > 0) {
        const text = this.#queue.join("");
        inFlight = this.#queue.length;
        this.#queue = [];
        const bytes = encoder.encode(text);
        let written = 0;
        while (written < bytes.length) written += await this.#sink.write(bytes.subarray(written));
        this.#pendingChars -= text.length;
        inFlight = 0;
      }
    } catch {
      // The sink is gone (e.g. a closed pipe): what was in flight and queued is lost, and counted.
      this.#dropped += inFlight + this.#queue.length;
      this.#queue = [];
      this.#pendingChars = 0;
    } finally {
      this.#flushing = undefined;
    }
  }
}
