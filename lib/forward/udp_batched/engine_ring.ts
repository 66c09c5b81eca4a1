/**
 * The io_uring side of a batched UDP engine thread (`--udp-engine=io_uring`, or `auto` where the
 * kernel allows it). With many sessions every datagram goes to another socket, where epoll and
 * recvmmsg/sendmmsg cost a system call per socket; here instead:
 * - every listening socket and every session's upstream socket has a multishot recvmsg into a
 *   ring of provided buffers (one ring for clients' datagrams, one for replies), so datagrams
 *   arrive without a call per socket;
 * - single datagrams to a target, and replies to many clients, go out as SEND entries
 *   (MSG_DONTWAIT: a full socket buffer completes with -EAGAIN, never parks the send in the ring,
 *   so a send is done when the `io_uring_enter` that submitted it returns, and its buffer goes
 *   back to the kernel then), submitted together with the wait for more datagrams; a send that
 *   succeeds posts no completion unless its session waits for a blocked socket to drain; runs of
 *   datagrams to one address keep sendmmsg (they are segmented);
 * - the doorbell is polled through the ring, so one `io_uring_enter` submits and waits for
 *   everything; the wait has no time limit of its own (the kernel would arm and cancel a timer on
 *   every wait): one TIMEOUT entry, armed for the next sweep, ends it instead.
 * `user_data` carries a kind (top 4 bits) and a value: a listener's or session's serial, a send
 * record. Imports no third-party code.
 * @module
 */

import { BufferRing, CompletionFlag, Ring, type UringLibc } from "../../ffi/io_uring.ts";
import { NativeArena } from "../../ffi/native_memory.ts";
import { SLOT_BYTES } from "./datagram_batch.ts";

/** What a completion is about (`user_data >>> 28`). */
export const Kind = {
  LISTENER: 1,
  UPSTREAM: 2,
  SEND: 3,
  REPLY: 4,
  DOORBELL: 5,
  CANCEL: 6,
  TIMER: 7,
} as const;
/** The value bits of `user_data`. */
export const VALUE_MASK = 0x0fff_ffff;

/**
 * Buffers per ring. Each holds the largest datagram (64 KiB) and its pages stay resident once a
 * large datagram used them, so this bounds the memory a flood of large datagrams leaves behind
 * (2 x 128 x 64 KiB per thread). When a ring runs dry, the receives pause until the pass gives
 * buffers back; the datagrams wait in the socket's buffer meanwhile.
 */
const BUFFERS = 128;
/** `struct io_uring_recvmsg_out` before each name and payload. */
const OUT_BYTES = 16;
/**
 * Records of sends (what to uncount if one fails). A failure's completion is posted by the
 * `io_uring_enter` that submits the send, and read in the pass after at the latest: fewer sends
 * than two passes of completions (2 x 8192) follow a send before then, so no record is reused
 * while its completion may still come.
 */
const SEND_RECORDS = 16384;
/**
 * Slots of the registered file table: sockets with a lower fd are registered, so sends on them skip
 * the kernel's fd lookup (the table takes 8 bytes of kernel memory a slot).
 */
const FILE_SLOTS = 65_536;
/** Buffers given back once the queued sends are submitted, at most (then they are submitted). */
export const SENT_BUFFERS_FLUSH = BUFFERS / 2;
const MSG_DONTWAIT = 0x40;
const CLIENT_GROUP = 0;
const REPLY_GROUP = 1;

/** Gives the first `count` buffers of `ids` back to `buffers`, and publishes them. */
function recycleAll(buffers: BufferRing, ids: Int32Array, count: number): void {
  for (let k = 0; k < count; k++) buffers.recycle(ids[k]!);
  buffers.publish();
}

/** The ring, its buffers and the records of sends in flight, of one engine thread. */
export class EngineRing<Owner> {
  readonly ring: Ring;
  /** Datagrams from clients: header, a name of `nameRoom` bytes, then the payload. */
  readonly clientBuffers: BufferRing;
  /**
   * Replies from targets: the payload only (connected sockets, so no name; a buffer holds the
   * largest datagram, so none is cut).
   */
  readonly replyBuffers: BufferRing;
  readonly #nameRoom: number;
  /** The `msghdr` of the listeners' multishot receives: room for a name, no control data. */
  readonly #withName = new NativeArena(64);
  readonly #sendOwners: (Owner | undefined)[] = new Array(SEND_RECORDS).fill(undefined);
  readonly #sendBytes = new Int32Array(SEND_RECORDS);
  #sendSeq = 0;
  /** Sends before this one are submitted; records before `#releasedSeq` are released. */
  #submittedSeq = 0;
  #releasedSeq = 0;
  /** Buffers of queued sends, given back once those are submitted. */
  readonly #sentClientBuffers = new Int32Array(BUFFERS);
  #sentClientCount = 0;
  readonly #sentReplyBuffers = new Int32Array(BUFFERS);
  #sentReplyCount = 0;
  /** The armed timer's serial, and when it fires (Infinity: none is armed). */
  #timerSerial = 0;
  #timerDueMs = Infinity;

  /**
   * Sets up the ring; `nameRoom`: bytes for a client's sockaddr (`sockaddr_in6`).
   * @throws OsError when the kernel refuses io_uring (EPERM: `kernel.io_uring_disabled` or a
   * seccomp profile, e.g. RuntimeDefault; ENOSYS: no io_uring).
   */
  constructor(libc: UringLibc, nameRoom: number) {
    this.#nameRoom = nameRoom;
    this.#withName.view.setUint32(8, nameRoom, true); // msg_namelen
    this.ring = new Ring(libc, { entries: 1024, completions: 8192 });
    try {
      this.clientBuffers = new BufferRing(CLIENT_GROUP, BUFFERS, OUT_BYTES + nameRoom + SLOT_BYTES);
      this.replyBuffers = new BufferRing(REPLY_GROUP, BUFFERS, SLOT_BYTES);
      this.ring.register(this.clientBuffers);
      this.ring.register(this.replyBuffers);
      this.#registerFiles();
    } catch (error) {
      this.ring.close();
      throw error;
    }
  }

  /**
   * Registers the largest file table RLIMIT_NOFILE allows (fds stay below it), from
   * {@linkcode FILE_SLOTS} down to 256 slots; without one, sends look their fd up.
   */
  #registerFiles(): void {
    for (let slots = FILE_SLOTS; slots >= 256; slots /= 2) {
      try {
        this.ring.registerFiles(slots);
        return;
      } catch {
        // EMFILE: more slots than RLIMIT_NOFILE; try half.
      }
    }
  }

  /** Registers socket `fd` (a listener's or a session's), for faster sends; see {@linkcode closing}. */
  opened(fd: number): void {
    try {
      this.ring.fix(fd);
    } catch {
      // Sends on it look the fd up.
    }
  }

  /**
   * Before socket `fd` is closed: submits what is queued (sends name their socket by its number,
   * which a new socket could take) and takes it out of the file table (which holds it open).
   */
  closing(fd: number): void {
    if (this.ring.queued > 0) this.submit(0, 0);
    this.ring.unfix(fd);
  }

  /** (Again) receives on listening socket `fd` of listener `serial`. */
  listen(fd: number, serial: number): void {
    this.ring.recvMsgMultishot(fd, this.#withName, 0, CLIENT_GROUP, (Kind.LISTENER << 28) | serial);
  }

  /** (Again) receives on a session's upstream socket (an empty datagram ends the receive). */
  arm(fd: number, serial: number): void {
    this.ring.recvMultishot(fd, REPLY_GROUP, (Kind.UPSTREAM << 28) | serial);
  }

  /** (Again) polls the doorbell. */
  pollDoorbell(fd: number): void {
    this.ring.pollMultishot(fd, Kind.DOORBELL << 28);
  }

  /**
   * Makes sure a wait without a time limit ends by `dueMs` (at the latest; `nowMs`: the time now):
   * one timer entry stays armed, replaced only when an earlier time is due, so a wait arms no
   * timer of its own.
   */
  wakeBy(dueMs: number, nowMs: number): void {
    if (dueMs >= this.#timerDueMs) return;
    if (this.#timerDueMs !== Infinity) {
      this.ring.removeTimeout((Kind.TIMER << 28) | this.#timerSerial, Kind.CANCEL << 28);
    }
    this.#timerSerial = (this.#timerSerial + 1) & VALUE_MASK;
    this.#timerDueMs = dueMs;
    this.ring.timeout(Math.max(0, dueMs - nowMs), (Kind.TIMER << 28) | this.#timerSerial);
  }

  /** The timer `serial` completed (fired, or replaced): when it is the armed one, none is. */
  timerEnded(serial: number): void {
    if (serial === this.#timerSerial) this.#timerDueMs = Infinity;
  }

  /** Ends the receives of listener `serial` (before its socket is closed: the ring holds it). */
  cancelListener(serial: number): void {
    this.ring.cancel((Kind.LISTENER << 28) | serial, Kind.CANCEL << 28);
  }

  /** Ends the receives of session `serial` (before its socket is closed: the ring holds it). */
  cancelSession(serial: number): void {
    this.ring.cancel((Kind.UPSTREAM << 28) | serial, Kind.CANCEL << 28);
  }

  /**
   * Queues `length` bytes at `offset` of `arena` to `fd` (connected), recording `owner`; client
   * buffer `buffer` (or -1) goes back once submitted. `quiet`: no completion if it succeeds.
   */
  send(
    fd: number,
    arena: NativeArena,
    offset: number,
    length: number,
    owner: Owner,
    buffer: number,
    quiet: boolean,
  ): void {
    const userData = (Kind.SEND << 28) | this.#record(owner, length);
    this.ring.send(fd, arena, offset, length, MSG_DONTWAIT, userData, quiet);
    if (buffer >= 0) this.#sentClientBuffers[this.#sentClientCount++] = buffer;
  }

  /**
   * Queues the reply in reply buffer `buffer` (`length` bytes; -1 and 0 for an empty reply) from
   * `fd` to the sockaddr at `nameOffset` of `names`, recording `owner`; the buffer goes back once
   * submitted. `quiet`: no completion if it succeeds.
   */
  sendTo(
    fd: number,
    buffer: number,
    length: number,
    names: NativeArena,
    nameOffset: number,
    nameLength: number,
    owner: Owner,
    quiet: boolean,
  ): void {
    const userData = (Kind.REPLY << 28) | this.#record(owner, length);
    this.ring.sendTo(
      fd,
      this.replyBuffers.data,
      this.replyPayloadOffset(buffer),
      length,
      MSG_DONTWAIT,
      userData,
      quiet,
      names,
      nameOffset,
      nameLength,
    );
    if (buffer >= 0) this.#sentReplyBuffers[this.#sentReplyCount++] = buffer;
  }

  /** Buffers waiting for their sends' submission (the larger count of the two rings). */
  get sentBuffers(): number {
    return Math.max(this.#sentClientCount, this.#sentReplyCount);
  }

  /**
   * Submits what is queued and waits for `waitFor` completions or `timeoutMs` (see
   * {@linkcode Ring.submit}); once everything queued is submitted, the sent buffers go back.
   */
  submit(waitFor: number, timeoutMs: number): number {
    return this.#submitted(this.ring.submit(waitFor, timeoutMs));
  }

  /**
   * Submits what is queued and collects what completed, without waiting (see {@linkcode Ring.poll});
   * returns how many completions are ready.
   */
  poll(): number {
    this.#submitted(this.ring.poll());
    return (this.ring.tail - this.ring.head) >>> 0;
  }

  /** Once everything queued is submitted, gives the sent buffers back; returns `submitted`. */
  #submitted(submitted: number): number {
    if (this.ring.queued === 0) {
      this.#submittedSeq = this.#sendSeq;
      recycleAll(this.clientBuffers, this.#sentClientBuffers, this.#sentClientCount);
      this.#sentClientCount = 0;
      recycleAll(this.replyBuffers, this.#sentReplyBuffers, this.#sentReplyCount);
      this.#sentReplyCount = 0;
    }
    return submitted;
  }

  #record(owner: Owner, length: number): number {
    const index = this.#sendSeq++ & (SEND_RECORDS - 1);
    this.#sendOwners[index] = owner;
    this.#sendBytes[index] = length;
    return index;
  }

  /** Sends submitted so far (a bound for {@linkcode releaseRecords}). */
  get submittedSends(): number {
    return this.#submittedSeq;
  }

  /**
   * Releases the records of the sends before `upTo` (of {@linkcode submittedSends}) once the
   * completions their submission posted are read: a quiet send that succeeded leaves no completion
   * to release its record, which must not keep its owner alive.
   */
  releaseRecords(upTo: number): void {
    const owners = this.#sendOwners;
    for (; this.#releasedSeq !== upTo; this.#releasedSeq++) {
      owners[this.#releasedSeq & (SEND_RECORDS - 1)] = undefined;
    }
  }

  /** The owner of send record `index`, which is released. */
  takeSendOwner(index: number): Owner | undefined {
    const owner = this.#sendOwners[index];
    this.#sendOwners[index] = undefined;
    return owner;
  }

  /** Bytes of send record `index`. */
  sendBytes(index: number): number {
    return this.#sendBytes[index]!;
  }

  /** Offset in `clientBuffers.data` of the sockaddr in buffer `id`. */
  clientNameOffset(id: number): number {
    return this.clientBuffers.offsetOf(id) + OUT_BYTES;
  }

  /** Length of the sockaddr in client buffer `id`. */
  clientNameLength(id: number): number {
    return this.clientBuffers.data.view.getUint32(this.clientBuffers.offsetOf(id), true);
  }

  /** Offset in `clientBuffers.data` of the payload in buffer `id`. */
  clientPayloadOffset(id: number): number {
    return this.clientBuffers.offsetOf(id) + OUT_BYTES + this.#nameRoom;
  }

  /** Offset in `replyBuffers.data` of the payload in buffer `id` (-1: an empty reply, none). */
  replyPayloadOffset(id: number): number {
    return id < 0 ? 0 : this.replyBuffers.offsetOf(id);
  }

  /** Payload bytes (what fit, when cut) in buffer `id` of `buffers`. */
  static payloadLength(buffers: BufferRing, id: number): number {
    return buffers.data.view.getUint32(buffers.offsetOf(id) + 8, true);
  }

  /** `msg_flags` of the datagram in buffer `id` of `buffers` (MSG_TRUNC when cut). */
  static messageFlags(buffers: BufferRing, id: number): number {
    return buffers.data.view.getUint32(buffers.offsetOf(id) + 12, true);
  }

  /** The buffer a completion used, or -1. */
  static bufferOf(flags: number): number {
    return (flags & CompletionFlag.BUFFER) !== 0 ? flags >>> 16 : -1;
  }

  /** Unmaps and closes the ring (the kernel cancels what is in flight). */
  close(): void {
    this.ring.close();
  }
}
