/**
 * The io_uring side of a batched UDP engine thread (`--udp-engine=io_uring`, or `auto` where the
 * kernel allows it). With many sessions every datagram goes to another upstream socket, where
 * epoll and recvmmsg/sendmmsg cost a system call per socket; here instead:
 * - each session's upstream socket has a multishot recvmsg into a ring of provided buffers, so
 *   replies arrive without a call per socket;
 * - single datagrams to a target, and replies to many clients, go out as SEND entries
 *   (MSG_DONTWAIT: a full socket buffer completes with -EAGAIN, never parks the send in the ring),
 *   submitted together;
 * - the epoll set (listening sockets, doorbell) is polled through the ring, so one
 *   `io_uring_enter` submits and waits for everything.
 * Listening sockets keep recvmmsg, and runs of datagrams to one address keep sendmmsg (they are
 * segmented).
 * `user_data` carries a kind (top 4 bits) and a value: a session's serial, a send record.
 * Imports no third-party code.
 * @module
 */

import { BufferRing, CompletionFlag, Ring, URING_SYMBOLS } from "../../ffi/io_uring.ts";
import { openLibc } from "../../ffi/libc.ts";
import { NativeArena } from "../../ffi/native_memory.ts";
import { SLOT_BYTES } from "./datagram_batch.ts";

/** What a completion is about (`user_data >>> 28`). */
export const Kind = { UPSTREAM: 1, SEND: 2, EPOLL: 3, CANCEL: 4, REPLY: 5 } as const;
/** The value bits of `user_data`. */
export const VALUE_MASK = 0x0fff_ffff;

/** Provided buffers for replies: enough for a burst from every session between two waits. */
const BUFFERS = 512;
/** `struct io_uring_recvmsg_out` before each payload (a connected socket: no name, no control). */
const OUT_BYTES = 16;
/** Sends in flight at most (records of what to uncount if one fails). */
const SEND_RECORDS = 4096;
const MSG_DONTWAIT = 0x40;
const BUFFER_GROUP = 0;

/** The ring, its reply buffers and the records of sends in flight, of one engine thread. */
export class UpstreamRing<Owner> {
  readonly ring: Ring;
  readonly buffers: BufferRing;
  /** An empty `msghdr` for the multishot receives (connected sockets: no name, no control). */
  readonly #msghdr = new NativeArena(64);
  readonly #sendOwners: (Owner | undefined)[] = new Array(SEND_RECORDS).fill(undefined);
  readonly #sendBytes = new Int32Array(SEND_RECORDS);
  #sendSeq = 0;
  /** Sends queued or in flight whose completion was not read yet. */
  inFlight = 0;

  /**
   * Sets up the ring and polls `epollFd` through it.
   * @throws OsError when the kernel refuses io_uring (EPERM: `kernel.io_uring_disabled` or a
   * seccomp profile, e.g. RuntimeDefault; ENOSYS: no io_uring).
   */
  constructor(epollFd: number) {
    const libc = openLibc(URING_SYMBOLS);
    this.ring = new Ring(libc, { entries: 1024, completions: 8192 });
    try {
      this.buffers = new BufferRing(BUFFER_GROUP, BUFFERS, OUT_BYTES + SLOT_BYTES);
      this.ring.register(this.buffers);
      this.watchEpoll(epollFd);
      this.ring.submit(0, 0);
    } catch (error) {
      this.ring.close();
      throw error;
    }
  }

  /** (Again) polls the epoll set through the ring. */
  watchEpoll(epollFd: number): void {
    this.ring.pollMultishot(epollFd, Kind.EPOLL << 28);
  }

  /** (Again) receives on a session's upstream socket. */
  arm(fd: number, serial: number): void {
    this.ring.recvMsgMultishot(fd, this.#msghdr, 0, BUFFER_GROUP, (Kind.UPSTREAM << 28) | serial);
  }

  /** Ends the receives of session `serial` (before its socket is closed: the ring holds it). */
  cancel(serial: number): void {
    this.ring.cancel((Kind.UPSTREAM << 28) | serial, Kind.CANCEL << 28);
  }

  /** Queues `length` bytes at `offset` of `arena` to `fd` (connected), recording `owner`. */
  send(fd: number, arena: NativeArena, offset: number, length: number, owner: Owner): void {
    const userData = (Kind.SEND << 28) | this.#record(owner, length);
    this.ring.send(fd, arena, offset, length, MSG_DONTWAIT, userData);
  }

  /**
   * Queues a reply of `length` bytes at `offset` of `arena` from `fd` to the sockaddr at
   * `nameOffset` of `names`, recording `owner`.
   */
  sendTo(
    fd: number,
    arena: NativeArena,
    offset: number,
    length: number,
    names: NativeArena,
    nameOffset: number,
    nameLength: number,
    owner: Owner,
  ): void {
    const userData = (Kind.REPLY << 28) | this.#record(owner, length);
    this.ring.sendTo(
      fd,
      arena,
      offset,
      length,
      MSG_DONTWAIT,
      userData,
      names,
      nameOffset,
      nameLength,
    );
  }

  #record(owner: Owner, length: number): number {
    const index = this.#sendSeq++ & (SEND_RECORDS - 1);
    this.#sendOwners[index] = owner;
    this.#sendBytes[index] = length;
    this.inFlight++;
    return index;
  }

  /** Whether the send records are so full that completions should be read before more sends. */
  get sendsCrowded(): boolean {
    return this.inFlight > SEND_RECORDS / 2;
  }

  /** The owner of send record `index`, which is released. */
  takeSendOwner(index: number): Owner | undefined {
    const owner = this.#sendOwners[index];
    this.#sendOwners[index] = undefined;
    this.inFlight--;
    return owner;
  }

  /** Bytes of send record `index`. */
  sendBytes(index: number): number {
    return this.#sendBytes[index]!;
  }

  /** Offset in `buffers.data` of the payload in buffer `id`. */
  payloadOffset(id: number): number {
    return this.buffers.offsetOf(id) + OUT_BYTES;
  }

  /** Payload bytes in buffer `id` (what fit, when cut). */
  payloadLength(id: number): number {
    return this.buffers.data.view.getUint32(this.buffers.offsetOf(id) + 8, true);
  }

  /** `msg_flags` of the datagram in buffer `id` (MSG_TRUNC when cut). */
  messageFlags(id: number): number {
    return this.buffers.data.view.getUint32(this.buffers.offsetOf(id) + 12, true);
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
