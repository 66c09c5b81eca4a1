/**
 * io_uring(7) through FFI, for one engine thread: a submission and a completion ring mapped from
 * the kernel, and rings of provided buffers. The ring is set up with SINGLE_ISSUER and
 * DEFER_TASKRUN, so the kernel posts completions only inside this thread's `io_uring_enter`: the
 * rings are plain memory read and written by one thread, with the system call as the barrier.
 *
 * Field offsets are those of `<linux/io_uring.h>`, the same on every architecture (fixed-size
 * fields), and so are the three system call numbers. Addresses go in as two 32-bit halves, `user_data`
 * as its low 32 bits (the high half stays 0), so nothing on the hot path is a BigInt.
 * @module
 */

import { ErrnoReader, OsError } from "./errno.ts";
import { NativeArena } from "./native_memory.ts";

/** The system calls and mappings of io_uring (syscall(2): glibc has no wrappers). */
export const URING_SYMBOLS = {
  io_uring_setup: { name: "syscall", parameters: ["i64", "u32", "buffer"], result: "i32" },
  io_uring_enter: {
    name: "syscall",
    parameters: ["i64", "i32", "u32", "u32", "u32", "buffer", "usize"],
    result: "i32",
  },
  io_uring_register: {
    name: "syscall",
    parameters: ["i64", "i32", "u32", "buffer", "u32"],
    result: "i32",
  },
  mmap: { parameters: ["pointer", "usize", "i32", "i32", "i32", "i64"], result: "pointer" },
  munmap: { parameters: ["pointer", "usize"], result: "i32" },
  close: { parameters: ["i32"], result: "i32" },
  __errno_location: { parameters: [], result: "pointer" },
} as const satisfies Deno.ForeignLibraryInterface;

/** libc opened with {@linkcode URING_SYMBOLS}. */
export type UringLibc = Deno.DynamicLibrary<typeof URING_SYMBOLS>;

// BigInt constants: a 64-bit FFI parameter given a JS number deoptimizes the caller.
const SYS_SETUP = 425n;
const SYS_ENTER = 426n;
const SYS_REGISTER = 427n;
const GETEVENTS_ARG_BYTES = 24n;
const NO_OFFSET = 0n;
const OFF_SQES = 0x10000000n;

const SETUP_CQSIZE = 1 << 3;
const SETUP_SINGLE_ISSUER = 1 << 12;
const SETUP_DEFER_TASKRUN = 1 << 13;
const ENTER_GETEVENTS = 1 << 0;
const ENTER_EXT_ARG = 1 << 3;
const FEAT_SINGLE_MMAP = 1 << 0;
const FEAT_EXT_ARG = 1 << 8;
const FEAT_CQE_SKIP = 1 << 11;
const REGISTER_FILES = 2;
const REGISTER_FILES_UPDATE = 6;
const REGISTER_PBUF_RING = 22;
const PROT_READ_WRITE = 3;
const MAP_SHARED_POPULATE = 0x8001;
const TWO_32 = 2 ** 32;
const MAP_FAILED = 2n ** 64n - 1n;

/** Operations the engines submit (`enum io_uring_op`). */
const Op = {
  POLL_ADD: 6,
  RECVMSG: 10,
  TIMEOUT: 11,
  TIMEOUT_REMOVE: 12,
  ASYNC_CANCEL: 14,
  SEND: 26,
  RECV: 27,
} as const;

/** Bits of a completion's `flags`. */
export const CompletionFlag = {
  /** A provided buffer was used; its id is `flags >>> 16`. */
  BUFFER: 1 << 0,
  /** A multishot request stays armed and posts more completions. */
  MORE: 1 << 1,
} as const;

const SQE_FLAG_FIXED_FILE = 1 << 0;
const SQE_FLAG_BUFFER_SELECT = 1 << 5;
const SQE_FLAG_CQE_SKIP_SUCCESS = 1 << 6;
const RECV_MULTISHOT = 1 << 1;
const POLL_ADD_MULTI = 1 << 0;
const POLLIN = 0x0001;

/** Words (u32) per submission entry and per completion entry. */
const SQE_WORDS = 16;
const CQE_WORDS = 4;
/** Bytes of a `struct __kernel_timespec`. */
const TIMESPEC_BYTES = 16;

/** Writes `ms` milliseconds as the `struct __kernel_timespec` at `at` (its high halves stay 0). */
function writeTimespec(view: DataView, at: number, ms: number): void {
  view.setUint32(at, Math.floor(ms / 1000), true);
  view.setUint32(at + 8, (ms % 1000) * 1_000_000, true);
}

/** Sizes of a ring (the kernel rounds both up to powers of two). */
export interface RingSize {
  readonly entries: number;
  readonly completions: number;
}

/** One io_uring instance, used by the thread that opened it only. */
export class Ring {
  /** The ring's file descriptor. */
  readonly fd: number;
  /** Whether a send can skip its completion when it succeeds (Linux 5.17+). */
  readonly skipsSuccess: boolean;
  readonly #libc: UringLibc["symbols"];
  readonly #errno: ErrnoReader;
  readonly #mapping: { pointer: Deno.PointerObject; bytes: bigint }[];
  /** The shared rings (submission and completion share one mapping) as words. */
  readonly #words: Uint32Array;
  readonly #ints: Int32Array;
  readonly #sqe32: Uint32Array;
  readonly #sqe16: Uint16Array;
  readonly #sqe8: Uint8Array;
  readonly #sqTailAt: number;
  readonly #sqMask: number;
  readonly #sqEntries: number;
  readonly #cqHeadAt: number;
  readonly #cqTailAt: number;
  readonly #cqMask: number;
  readonly #cqesAt: number;
  /** `struct io_uring_getevents_arg` and the timespec it points to. */
  readonly #wait = new NativeArena(40);
  /** The timeout written in `#wait`, in milliseconds. */
  #timeoutMs = 0;
  /** `struct io_uring_getevents_arg` without a timespec: a wait without a time limit. */
  readonly #waitForever = new NativeArena(24);
  /** A timespec per submission entry, for TIMEOUT entries (read when submitted). */
  readonly #timespecs: NativeArena;
  /** Which fds are in the registered file table (at their own index), see {@linkcode fix}. */
  #fixed = new Uint8Array(0);
  /** `struct io_uring_files_update` and the fd it points to. */
  readonly #fileUpdate = new NativeArena(24);
  #sqTail: number;
  #queued = 0;

  /**
   * Sets up a ring. @throws OsError naming `io_uring_setup` when the kernel refuses (EPERM:
   * disabled by `kernel.io_uring_disabled` or a seccomp profile; ENOSYS: no io_uring).
   */
  constructor(libc: UringLibc, size: RingSize) {
    this.#libc = libc.symbols;
    this.#errno = new ErrnoReader(libc.symbols.__errno_location);
    const params = new Uint32Array(30);
    params[1] = size.completions;
    params[2] = SETUP_CQSIZE | SETUP_SINGLE_ISSUER | SETUP_DEFER_TASKRUN;
    this.fd = this.#libc.io_uring_setup(SYS_SETUP, size.entries, params);
    if (this.fd < 0) throw new OsError("io_uring_setup", this.#errno.get());
    const features = params[5]!;
    if ((features & FEAT_SINGLE_MMAP) === 0 || (features & FEAT_EXT_ARG) === 0) {
      this.#libc.close(this.fd);
      throw new Error("io_uring lacks single mmap or extended wait arguments (Linux 5.11+)");
    }
    this.skipsSuccess = (features & FEAT_CQE_SKIP) !== 0;
    const sq = 10, cq = 20; // word offsets of io_sqring_offsets and io_cqring_offsets
    this.#sqEntries = params[0]!;
    const cqEntries = params[1]!;
    const ringBytes = Math.max(
      params[sq + 6]! + this.#sqEntries * 4,
      params[cq + 5]! + cqEntries * CQE_WORDS * 4,
    );
    this.#mapping = [];
    const ring = this.#map(ringBytes, NO_OFFSET);
    const sqes = this.#map(this.#sqEntries * SQE_WORDS * 4, OFF_SQES);
    this.#words = new Uint32Array(ring);
    this.#ints = new Int32Array(ring);
    this.#sqe32 = new Uint32Array(sqes);
    this.#sqe16 = new Uint16Array(sqes);
    this.#sqe8 = new Uint8Array(sqes);
    this.#sqTailAt = params[sq + 1]! / 4;
    this.#sqMask = this.#words[params[sq + 2]! / 4]!;
    const array = params[sq + 6]! / 4;
    for (let i = 0; i < this.#sqEntries; i++) this.#words[array + i] = i;
    this.#cqHeadAt = params[cq]! / 4;
    this.#cqTailAt = params[cq + 1]! / 4;
    this.#cqMask = this.#words[params[cq + 2]! / 4]!;
    this.#cqesAt = params[cq + 5]! / 4;
    this.#sqTail = this.#words[this.#sqTailAt]!;
    this.#timespecs = new NativeArena(this.#sqEntries * TIMESPEC_BYTES);
    this.#wait.setPointer(16, 24); // ts: the timespec right after the argument
    this.#fileUpdate.setPointer(8, 16); // fds: the int right after the struct
  }

  #map(bytes: number, offset: bigint): ArrayBuffer {
    const length = BigInt(bytes);
    const pointer = this.#libc.mmap(
      null,
      length,
      PROT_READ_WRITE,
      MAP_SHARED_POPULATE,
      this.fd,
      offset,
    );
    if (pointer === null || BigInt(Deno.UnsafePointer.value(pointer)) === MAP_FAILED) {
      const errno = this.#errno.get();
      this.close();
      throw new OsError("mmap", errno);
    }
    this.#mapping.push({ pointer, bytes: length });
    return Deno.UnsafePointerView.getArrayBuffer(pointer, bytes);
  }

  /** A zeroed submission entry (as a word index), submitting the queued ones when all are used. */
  #entry(op: number, fd: number, userData: number): number {
    if (this.#queued === this.#sqEntries) this.submit(0, 0);
    const w = (this.#sqTail & this.#sqMask) * SQE_WORDS;
    const sqe = this.#sqe32;
    for (let k = w; k < w + SQE_WORDS; k++) sqe[k] = 0;
    this.#sqe8[w * 4] = op;
    sqe[w + 1] = fd;
    sqe[w + 8] = userData;
    this.#sqTail = (this.#sqTail + 1) >>> 0;
    this.#queued++;
    return w;
  }

  #setAddress(w: number, word: number, arena: NativeArena, offset: number): void {
    const address = arena.address(offset);
    this.#sqe32[w + word] = address % TWO_32;
    this.#sqe32[w + word + 1] = Math.floor(address / TWO_32);
  }

  /**
   * Queues a multishot recvmsg(2) into buffers of `group`: one completion per datagram, whose
   * buffer starts with `struct io_uring_recvmsg_out`, then the name (as long as `msghdr`'s
   * `msg_namelen`), then the payload. `msghdr` must outlive the request.
   */
  recvMsgMultishot(
    fd: number,
    msghdr: NativeArena,
    offset: number,
    group: number,
    userData: number,
  ): void {
    const w = this.#entry(Op.RECVMSG, fd, userData);
    this.#sqe8[w * 4 + 1] = SQE_FLAG_BUFFER_SELECT;
    this.#sqe16[w * 2 + 1] = RECV_MULTISHOT;
    this.#setAddress(w, 4, msghdr, offset);
    this.#sqe32[w + 6] = 1;
    this.#sqe16[w * 2 + 20] = group;
  }

  /**
   * Queues a multishot recv(2) into buffers of `group`: one completion per datagram, its result
   * the payload's length. On a datagram socket an empty datagram completes with 0 and ends the
   * request (no buffer, no MORE): receive again.
   */
  recvMultishot(fd: number, group: number, userData: number): void {
    const w = this.#entry(Op.RECV, fd, userData);
    this.#sqe8[w * 4 + 1] = SQE_FLAG_BUFFER_SELECT;
    this.#sqe16[w * 2 + 1] = RECV_MULTISHOT;
    this.#sqe16[w * 2 + 20] = group;
  }

  /**
   * Queues send(2) of `length` bytes at `offset` of `data`. With MSG_DONTWAIT in `flags`, a full
   * socket completes with -EAGAIN instead of waiting inside the ring. `quiet`: no completion when
   * it succeeds (where {@linkcode skipsSuccess}).
   */
  send(
    fd: number,
    data: NativeArena,
    offset: number,
    length: number,
    flags: number,
    userData: number,
    quiet: boolean,
  ): number {
    const w = this.#entry(Op.SEND, fd, userData);
    this.#sqe8[w * 4 + 1] =
      (fd < this.#fixed.length && this.#fixed[fd] === 1 ? SQE_FLAG_FIXED_FILE : 0) |
      (quiet && this.skipsSuccess ? SQE_FLAG_CQE_SKIP_SUCCESS : 0);
    this.#setAddress(w, 4, data, offset);
    this.#sqe32[w + 6] = length;
    this.#sqe32[w + 7] = flags;
    return w;
  }

  /** As {@linkcode send}, to the `nameLength`-byte sockaddr at `nameOffset` of `names`. */
  sendTo(
    fd: number,
    data: NativeArena,
    offset: number,
    length: number,
    flags: number,
    userData: number,
    quiet: boolean,
    names: NativeArena,
    nameOffset: number,
    nameLength: number,
  ): void {
    const w = this.send(fd, data, offset, length, flags, userData, quiet);
    this.#setAddress(w, 2, names, nameOffset);
    this.#sqe16[w * 2 + 22] = nameLength;
  }

  /**
   * Queues a multishot poll for input on `fd`: a completion each time `fd` is woken (not when it
   * stays readable: read until empty, or poll again by other means).
   */
  pollMultishot(fd: number, userData: number): void {
    const w = this.#entry(Op.POLL_ADD, fd, userData);
    this.#sqe32[w + 6] = POLL_ADD_MULTI;
    this.#sqe32[w + 7] = POLLIN;
  }

  /**
   * Queues a timer of `timeoutMs` milliseconds (from its submission): it completes with -ETIME when
   * the time is up, or -ECANCELED when {@linkcode removeTimeout} ends it first.
   */
  timeout(timeoutMs: number, userData: number): void {
    const w = this.#entry(Op.TIMEOUT, -1, userData);
    const at = (w / SQE_WORDS) * TIMESPEC_BYTES;
    writeTimespec(this.#timespecs.view, at, timeoutMs);
    this.#setAddress(w, 4, this.#timespecs, at);
    this.#sqe32[w + 6] = 1;
  }

  /** Queues the removal of the timer with `target` as `user_data` (result 0 or -ENOENT). */
  removeTimeout(target: number, userData: number): void {
    this.#aimedAt(Op.TIMEOUT_REMOVE, target, userData);
  }

  /** Queues the cancellation of the request with `target` as `user_data` (result 0 or -ENOENT). */
  cancel(target: number, userData: number): void {
    this.#aimedAt(Op.ASYNC_CANCEL, target, userData);
  }

  /** Queues `op` on the request with `target` as `user_data`. */
  #aimedAt(op: number, target: number, userData: number): void {
    const w = this.#entry(op, -1, userData);
    this.#sqe32[w + 4] = target;
  }

  /**
   * Submits the queued entries and waits until `waitFor` completions are ready or `timeoutMs`
   * passed (0: no wait; Infinity: no time limit, so no timer per wait: a {@linkcode timeout}
   * entry bounds it instead). Returns the number submitted; -1 when interrupted (EINTR) or the
   * completion ring is full (EBUSY). @throws OsError on any other failure.
   */
  submit(waitFor: number, timeoutMs: number): number {
    const wait = timeoutMs === Infinity ? this.#waitForever : this.#wait;
    if (timeoutMs !== this.#timeoutMs && timeoutMs !== Infinity) {
      this.#timeoutMs = timeoutMs;
      writeTimespec(this.#wait.view, 24, timeoutMs);
    }
    return this.#enter(
      waitFor,
      waitFor > 0 ? ENTER_GETEVENTS | ENTER_EXT_ARG : ENTER_EXT_ARG,
      wait,
    );
  }

  /**
   * Submits the queued entries and collects what completed meanwhile (with DEFER_TASKRUN, finished
   * receives are posted only when asked for events), without waiting. Returns as {@linkcode submit}.
   */
  poll(): number {
    return this.#enter(0, ENTER_GETEVENTS | ENTER_EXT_ARG, this.#waitForever);
  }

  /** One `io_uring_enter` for {@linkcode submit} and {@linkcode poll}. */
  #enter(waitFor: number, flags: number, wait: NativeArena): number {
    this.#words[this.#sqTailAt] = this.#sqTail;
    const submitted = this.#libc.io_uring_enter(
      SYS_ENTER,
      this.fd,
      this.#queued,
      waitFor,
      flags,
      wait.bytes,
      GETEVENTS_ARG_BYTES,
    );
    if (submitted >= 0) {
      this.#queued -= submitted;
      return submitted;
    }
    const errno = this.#errno.get();
    // ETIME: the wait timed out (what was queued was still submitted).
    if (errno === 62) {
      this.#queued = 0;
      return 0;
    }
    if (errno === 4 || errno === 16) return -1;
    throw new OsError("io_uring_enter", errno);
  }

  /** Entries queued and not submitted yet. */
  get queued(): number {
    return this.#queued;
  }

  /** Index of the oldest unread completion. */
  get head(): number {
    return this.#words[this.#cqHeadAt]!;
  }

  /** Index after the newest completion. */
  get tail(): number {
    return this.#words[this.#cqTailAt]!;
  }

  /** `user_data` (its low 32 bits) of completion `index`. */
  userData(index: number): number {
    return this.#words[this.#cqesAt + (index & this.#cqMask) * CQE_WORDS]!;
  }

  /** Result of completion `index`: bytes or a count, or -errno. */
  result(index: number): number {
    return this.#ints[this.#cqesAt + (index & this.#cqMask) * CQE_WORDS + 2]!;
  }

  /** Flags of completion `index` (see {@linkcode CompletionFlag}). */
  flags(index: number): number {
    return this.#words[this.#cqesAt + (index & this.#cqMask) * CQE_WORDS + 3]!;
  }

  /** Marks the completions before `head` as read. */
  consume(head: number): void {
    this.#words[this.#cqHeadAt] = head >>> 0;
  }

  /**
   * Registers an empty table of `count` files. Sends on an fd below `count` that {@linkcode fix}
   * put in the table then name its slot, and the kernel skips looking the fd up.
   * @throws OsError when refused (EMFILE: `count` above RLIMIT_NOFILE).
   */
  registerFiles(count: number): void {
    const fds = new Int32Array(count).fill(-1);
    const done = this.#libc.io_uring_register(
      SYS_REGISTER,
      this.fd,
      REGISTER_FILES,
      new Uint8Array(fds.buffer),
      count,
    );
    if (done < 0) throw new OsError("io_uring_register", this.#errno.get());
    this.#fixed = new Uint8Array(count);
  }

  /**
   * Puts `fd` in the file table (at index `fd`) when it fits; false when not. The table holds the
   * file open: {@linkcode unfix} before closing `fd`. @throws OsError when the kernel refuses.
   */
  fix(fd: number): boolean {
    if (fd >= this.#fixed.length) return false;
    this.#updateFile(fd, fd);
    this.#fixed[fd] = 1;
    return true;
  }

  /**
   * Takes `fd` out of the file table (before it is closed). Submit the entries queued for it first:
   * they name its slot, which `fd`'s next owner may take.
   */
  unfix(fd: number): void {
    if (fd >= this.#fixed.length || this.#fixed[fd] === 0) return;
    this.#updateFile(fd, -1);
    this.#fixed[fd] = 0;
  }

  #updateFile(slot: number, fd: number): void {
    const update = this.#fileUpdate.view;
    update.setUint32(0, slot, true);
    update.setInt32(16, fd, true);
    const done = this.#libc.io_uring_register(
      SYS_REGISTER,
      this.fd,
      REGISTER_FILES_UPDATE,
      this.#fileUpdate.bytes,
      1,
    );
    if (done < 0) throw new OsError("io_uring_register", this.#errno.get());
  }

  /** Registers `buffers` as provided-buffer group `group`. @throws OsError when refused. */
  register(buffers: BufferRing): void {
    const reg = new NativeArena(40);
    reg.setPointerTo(0, buffers.ringMemory, buffers.ringOffset);
    reg.view.setUint32(8, buffers.count, true);
    reg.view.setUint16(12, buffers.group, true);
    const done = this.#libc.io_uring_register(
      SYS_REGISTER,
      this.fd,
      REGISTER_PBUF_RING,
      reg.bytes,
      1,
    );
    if (done < 0) throw new OsError("io_uring_register", this.#errno.get());
  }

  /** Unmaps the rings and closes the ring (which cancels what is in flight). */
  close(): void {
    for (const { pointer, bytes } of this.#mapping.splice(0)) this.#libc.munmap(pointer, bytes);
    this.#libc.close(this.fd);
  }
}

/**
 * `count` buffers of `size` bytes the kernel picks from for receives of group `group`
 * (`struct io_uring_buf_ring`). A buffer the kernel used returns with {@linkcode recycle}; the
 * kernel sees recycled buffers after {@linkcode publish}.
 */
export class BufferRing {
  /** The buffers, one after the other. */
  readonly data: NativeArena;
  /** The memory holding the ring, and where in it the page-aligned ring starts. */
  readonly ringMemory: NativeArena;
  readonly ringOffset: number;
  readonly #words: Uint32Array;
  readonly #halves: Uint16Array;
  #tail = 0;
  #pending = 0;

  /** `count`: a power of two up to 32768. */
  constructor(readonly group: number, readonly count: number, readonly size: number) {
    if (count < 1 || count > 32768 || (count & (count - 1)) !== 0) {
      throw new RangeError(`Buffer count ${count} is not a power of two up to 32768`);
    }
    const page = 4096;
    this.ringMemory = new NativeArena(count * 16 + page);
    this.ringOffset = (page - this.ringMemory.address(0) % page) % page;
    this.#words = new Uint32Array(this.ringMemory.bytes.buffer, this.ringOffset, count * 4);
    this.#halves = new Uint16Array(this.ringMemory.bytes.buffer, this.ringOffset, count * 8);
    this.data = new NativeArena(count * size);
    for (let id = 0; id < count; id++) this.recycle(id);
    this.publish();
  }

  /** Byte offset in {@linkcode data} of buffer `id`. */
  offsetOf(id: number): number {
    return id * this.size;
  }

  /** Gives buffer `id` back to the kernel (seen after the next {@linkcode publish}). */
  recycle(id: number): void {
    const slot = ((this.#tail + this.#pending) & (this.count - 1)) * 4;
    const address = this.data.address(id * this.size);
    this.#words[slot] = address % TWO_32;
    this.#words[slot + 1] = Math.floor(address / TWO_32);
    this.#words[slot + 2] = this.size;
    this.#halves[slot * 2 + 6] = id;
    this.#pending++;
  }

  /** Makes the recycled buffers visible to the kernel. */
  publish(): void {
    if (this.#pending === 0) return;
    this.#tail = (this.#tail + this.#pending) & 0xffff;
    this.#pending = 0;
    this.#halves[7] = this.#tail; // the ring's tail overlays the first entry's last field
  }
}
