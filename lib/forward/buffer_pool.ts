/**
 * Pools of fixed-size I/O buffers, carved out of large slabs whose memory the kernel commits page by
 * page, only where data is actually written.
 *
 * Why: every idle TCP direction and every UDP session keeps a read pending, and a pending read holds
 * its whole buffer. With ordinary `new Uint8Array(n)` buffers that memory is resident (and zeroed)
 * up front, so 1000 idle UDP sessions with lossless 64 KiB buffers cost 64 MiB. A slab larger than
 * glibc's largest dynamic mmap threshold (32 MiB on 64-bit; musl maps large blocks too) is always a
 * fresh anonymous mapping: its untouched pages cost nothing, a 64-byte datagram commits one 4 KiB
 * page, and the slab is unmapped (its memory returned) when it is garbage-collected.
 *
 * Slots are reused last-released-first, so already-committed slots are reused before fresh ones and
 * the resident set stays at the high-water mark of what was touched. A slab is dropped once all its
 * slots are free, except one spare (so a forwarder going between zero and one client does not map a
 * new slab each time).
 * @module
 */

/** Bytes per slab: above glibc's 32 MiB mmap-threshold ceiling, so every slab is its own mapping. */
export const LAZY_SLAB_BYTES = 33 * 1024 * 1024;

interface Slab {
  readonly buffer: ArrayBuffer;
  /** Stack of released slot indexes (a typed array: a plain array this long would be a dictionary). */
  readonly free: Uint32Array;
  /** Entries of `free` in use; `free[freeCount - 1]` is handed out next. */
  freeCount: number;
  /** Slots from here on were never handed out (no loop fills `free` up front). */
  fresh: number;
  /** 1 where the slot is handed out, to catch a double release (which would share a buffer). */
  readonly used: Uint8Array;
}

/** Fixed-size buffers from lazily committed slabs; `release()` every buffer exactly once. */
export class BufferPool {
  /** Size of every buffer this pool hands out. */
  readonly slotBytes: number;
  readonly #slotsPerSlab: number;
  /** Slabs in creation order; buffers come from the first slab with a free slot. */
  #slabs: Slab[] = [];
  readonly #byBuffer = new Map<ArrayBufferLike, Slab>();
  #inUse = 0;

  /** @param slotBytes Size of each buffer (a positive integer). */
  constructor(slotBytes: number, slabBytes: number = LAZY_SLAB_BYTES) {
    if (!Number.isSafeInteger(slotBytes) || slotBytes < 1) {
      throw new RangeError(`Invalid slotBytes ${slotBytes}: must be a positive integer`);
    }
    this.slotBytes = slotBytes;
    this.#slotsPerSlab = Math.max(1, Math.floor(slabBytes / slotBytes));
  }

  /** Buffers handed out and not yet released. */
  get inUse(): number {
    return this.#inUse;
  }

  /** Slabs currently mapped (including the spare). */
  get slabs(): number {
    return this.#slabs.length;
  }

  /** A buffer of `slotBytes` bytes; its contents are whatever the previous user left. */
  acquire(): Uint8Array {
    let slab = this.#slabs.find((candidate) =>
      candidate.freeCount > 0 || candidate.fresh < this.#slotsPerSlab
    );
    if (slab === undefined) {
      slab = this.#newSlab();
      this.#slabs.push(slab);
      this.#byBuffer.set(slab.buffer, slab);
    }
    const index = slab.freeCount > 0 ? slab.free[--slab.freeCount]! : slab.fresh++;
    slab.used[index] = 1;
    this.#inUse++;
    return new Uint8Array(slab.buffer, index * this.slotBytes, this.slotBytes);
  }

  /**
   * Gives `buffer` back. Only once no read or write uses it any more.
   * @throws {Error} when `buffer` is not an outstanding buffer of this pool.
   */
  release(buffer: Uint8Array): void {
    const slab = this.#byBuffer.get(buffer.buffer);
    const index = buffer.byteOffset / this.slotBytes;
    if (slab === undefined || slab.used[index] !== 1 || buffer.length !== this.slotBytes) {
      throw new Error("BufferPool.release(): not an outstanding buffer of this pool");
    }
    slab.used[index] = 0;
    slab.free[slab.freeCount++] = index;
    this.#inUse--;
    if (slab.freeCount === slab.fresh) this.#dropEmptySlabs();
  }

  #newSlab(): Slab {
    const count = this.#slotsPerSlab;
    return {
      buffer: new ArrayBuffer(count * this.slotBytes),
      free: new Uint32Array(count),
      freeCount: 0,
      fresh: 0,
      used: new Uint8Array(count),
    };
  }

  /**
   * Unmaps every empty slab but one: at the next garbage collection, which is asked for soon (V8
   * does not collect by itself while nothing else allocates, and the memory would stay resident).
   */
  #dropEmptySlabs(): void {
    let spare = false;
    let dropped = false;
    this.#slabs = this.#slabs.filter((slab) => {
      if (slab.freeCount < slab.fresh) return true;
      if (!spare) return spare = true;
      this.#byBuffer.delete(slab.buffer);
      dropped = true;
      return false;
    });
    if (dropped) collectSoon();
  }
}

/** Delay before a requested collection: slabs dropped meanwhile are freed by the same one. */
const COLLECT_DELAY_MS = 1000;
let collectTimer: ReturnType<typeof setTimeout> | undefined;

/**
 * Runs a full garbage collection in a second, when the runtime exposes `gc()` (V8 flag
 * `--expose-gc`, set by the compile task); without it the memory is reused for new buffers.
 */
function collectSoon(): void {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc === undefined || collectTimer !== undefined) return;
  collectTimer = setTimeout(() => {
    collectTimer = undefined;
    gc();
  }, COLLECT_DELAY_MS);
  Deno.unrefTimer(collectTimer);
}

const shared = new Map<number, BufferPool>();

/** The pool of `slotBytes`-sized buffers shared by every forwarder of this thread. */
export function sharedBufferPool(slotBytes: number): BufferPool {
  let pool = shared.get(slotBytes);
  if (pool === undefined) {
    pool = new BufferPool(slotBytes);
    shared.set(slotBytes, pool);
  }
  return pool;
}
