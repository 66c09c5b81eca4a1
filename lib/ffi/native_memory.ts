/**
 * The one place where the FFI engines compute addresses. A {@linkcode NativeArena} is an
 * ArrayBuffer allocated once (never transferred, detached or resized, so its backing store never
 * moves) whose absolute address is taken once; struct fields that hold pointers get that address
 * plus an offset, written as two 32-bit halves (no BigInt on the hot path).
 * @module
 */

const TWO_32 = 2 ** 32;

/** A fixed block of memory shared with native code. */
export class NativeArena {
  /** The whole arena, for passing to libc as a `"buffer"` argument and for copying bytes. */
  readonly bytes: Uint8Array<ArrayBuffer>;
  /** Little-endian field access (both supported architectures are little-endian). */
  readonly view: DataView<ArrayBuffer>;
  /** Absolute address of byte 0 (below 2^53 on every 64-bit Linux address space). */
  readonly #base: number;

  /** Allocates `size` zeroed bytes. */
  constructor(size: number) {
    // `new ArrayBuffer` always has an off-heap backing store: its address is stable.
    const buffer = new ArrayBuffer(size);
    this.bytes = new Uint8Array(buffer);
    this.view = new DataView(buffer);
    const pointer = Deno.UnsafePointer.of(this.bytes);
    this.#base = Number(Deno.UnsafePointer.value(pointer));
    if (!Number.isSafeInteger(this.#base + size)) throw new Error("Arena address out of range");
  }

  /** Writes at `at` a pointer to byte `offset` of this arena. */
  setPointer(at: number, offset: number): void {
    this.setPointerTo(at, this, offset);
  }

  /** Writes at `at` a pointer to byte `offset` of `other` (another arena). */
  setPointerTo(at: number, other: NativeArena, offset: number): void {
    if (offset < 0 || offset > other.bytes.length) throw new RangeError(`Offset ${offset} outside`);
    const address = other.#base + offset;
    this.view.setUint32(at, address % TWO_32, true);
    this.view.setUint32(at + 4, Math.floor(address / TWO_32), true);
  }

  /** The absolute address of byte `offset` (for fields written by other means than this arena). */
  address(offset: number): number {
    return this.#base + offset;
  }

  /** Writes a NULL pointer at `at`. */
  setNull(at: number): void {
    this.view.setUint32(at, 0, true);
    this.view.setUint32(at + 4, 0, true);
  }

  /** Writes a 64-bit size (`size_t`, `socklen_t` fields use `setUint32`) below 2^53. */
  setSize(at: number, value: number): void {
    this.view.setUint32(at, value % TWO_32, true);
    this.view.setUint32(at + 4, Math.floor(value / TWO_32), true);
  }

  /** Views `length` bytes from `offset` (created once by callers, not per datagram). */
  slice(offset: number, length: number): Uint8Array<ArrayBuffer> {
    return new Uint8Array(this.bytes.buffer, offset, length);
  }
}
