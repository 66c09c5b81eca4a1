/**
 * A batch of `struct mmsghdr` for recvmmsg/sendmmsg with their iovecs, address slots and (for
 * receiving batches) data slots, all in one {@linkcode NativeArena} allocated once per engine
 * thread. Sending batches point their iovecs into a receiving batch's slots: a datagram is never
 * copied between receiving and sending. A sending batch with headers gives every datagram two
 * iovecs, a header (a PROXY protocol header, say) and the data.
 * @module
 */

import type { AbiLayout } from "../../ffi/layout.ts";
import { NativeArena } from "../../ffi/native_memory.ts";

/** Datagrams per recvmmsg/sendmmsg call. */
export const BATCH = 64;
/** Bytes per data slot: room for the largest UDP payload (65,527 B over IPv6). */
export const SLOT_BYTES = 65_536;
/** Bytes per address slot (a `sockaddr_in6` rounded up). */
const NAME_STRIDE = 32;

/** Headers, iovecs, addresses and data of up to {@linkcode BATCH} datagrams. */
export class DatagramBatch {
  readonly arena: NativeArena;
  readonly #layout: AbiLayout;
  readonly #iovOffset: number;
  readonly #nameOffset: number;
  readonly #slotOffset: number;
  readonly #withNames: boolean;
  /** Iovecs per datagram: 2 with headers, else 1. */
  readonly iovecsPerDatagram: number;
  /** `#from[k]`: the headers from index k on, the argument for a call starting at k. */
  readonly #from: Uint8Array<ArrayBuffer>[] = [];
  #iovLen = -1;

  /**
   * @param withNames Whether datagrams carry an address (listening socket) or not (connected).
   * @param slots Own data slots (receiving batch), or none: iovecs point elsewhere ({@linkcode point}).
   * @param headers A sending batch whose datagrams start with a header ({@linkcode setHeader}).
   */
  constructor(
    layout: AbiLayout,
    options: { withNames: boolean; slots: boolean; headers?: boolean },
  ) {
    this.#layout = layout;
    this.#withNames = options.withNames;
    this.iovecsPerDatagram = options.headers === true ? 2 : 1;
    const { mmsghdr, iovec } = layout;
    this.#iovOffset = BATCH * mmsghdr.size;
    this.#nameOffset = this.#iovOffset + BATCH * this.iovecsPerDatagram * iovec.size;
    this.#slotOffset = this.#nameOffset + BATCH * NAME_STRIDE;
    const arena = new NativeArena(this.#slotOffset + (options.slots ? BATCH * SLOT_BYTES : 0));
    this.arena = arena;
    for (let k = 0; k < BATCH; k++) {
      const hdr = k * mmsghdr.size;
      const iov = this.iovecOffset(k);
      if (options.withNames) {
        arena.setPointer(hdr + mmsghdr.name, this.#nameOffset + k * NAME_STRIDE);
      } else arena.setNull(hdr + mmsghdr.name);
      arena.setPointer(hdr + mmsghdr.iov, iov);
      arena.setSize(hdr + mmsghdr.iovLen, this.iovecsPerDatagram);
      arena.setNull(hdr + mmsghdr.control);
      arena.setSize(hdr + mmsghdr.controlLen, 0);
      if (options.slots) arena.setPointer(iov + iovec.base, this.#slotOffset + k * SLOT_BYTES);
      this.#from.push(arena.slice(hdr, (BATCH - k) * mmsghdr.size));
    }
  }

  /** The headers from index `k` on (what recvmmsg/sendmmsg take). */
  from(k: number): Uint8Array<ArrayBuffer> {
    return this.#from[k]!;
  }

  /** Readies headers `[k, BATCH)` of a receiving batch: address room and `maxBytes` per datagram. */
  prepareReceive(k: number, maxBytes: number): void {
    const { mmsghdr, iovec, maxSockaddrSize } = this.#layout;
    if (maxBytes !== this.#iovLen) {
      for (let j = 0; j < BATCH; j++) {
        this.arena.setSize(this.#iovOffset + j * iovec.size + iovec.len, maxBytes);
      }
      this.#iovLen = maxBytes;
    }
    if (!this.#withNames) return;
    const view = this.arena.view;
    for (let j = k; j < BATCH; j++) {
      view.setUint32(j * mmsghdr.size + mmsghdr.nameLen, maxSockaddrSize, true);
    }
  }

  /** Bytes received (or sent) in datagram `j`. */
  length(j: number): number {
    const { mmsghdr } = this.#layout;
    return this.arena.view.getUint32(j * mmsghdr.size + mmsghdr.len, true);
  }

  /** `msg_flags` of datagram `j` after a receive (MSG_TRUNC tells a cut datagram). */
  flags(j: number): number {
    const { mmsghdr } = this.#layout;
    return this.arena.view.getInt32(j * mmsghdr.size + mmsghdr.flags, true);
  }

  /** Offset in {@linkcode arena} of the address of datagram `j`. */
  nameOffset(j: number): number {
    return this.#nameOffset + j * NAME_STRIDE;
  }

  /** Length of the address of datagram `j` after a receive. */
  nameLength(j: number): number {
    const { mmsghdr } = this.#layout;
    return this.arena.view.getUint32(j * mmsghdr.size + mmsghdr.nameLen, true);
  }

  /** Data of datagram `j` of a receiving batch, `length` bytes (tests and self-checks). */
  data(j: number, length: number): Uint8Array<ArrayBuffer> {
    return this.arena.slice(this.#slotOffset + j * SLOT_BYTES, length);
  }

  /** Offset in {@linkcode arena} of the iovec of datagram `k` (iovecs are consecutive). */
  iovecOffset(k: number): number {
    return this.#iovOffset + k * this.iovecsPerDatagram * this.#layout.iovec.size;
  }

  /** Points datagram `k` of a sending batch at `length` bytes of slot `j` of `source`. */
  point(k: number, source: DatagramBatch, j: number, length: number): void {
    this.pointAt(k, source.arena, source.dataOffset(j), length);
  }

  /** Offset in {@linkcode arena} of the data slot of datagram `j` of a receiving batch. */
  dataOffset(j: number): number {
    return this.#slotOffset + j * SLOT_BYTES;
  }

  /** Points datagram `k` of a sending batch at `length` bytes at `offset` of `arena`. */
  pointAt(k: number, arena: NativeArena, offset: number, length: number): void {
    const { iovec } = this.#layout;
    const iov = this.iovecOffset(k) + (this.iovecsPerDatagram - 1) * iovec.size;
    this.arena.setPointerTo(iov + iovec.base, arena, offset);
    this.arena.setSize(iov + iovec.len, length);
  }

  /** Points the header of datagram `k` of a batch with headers at `length` bytes of `arena`. */
  setHeader(k: number, arena: NativeArena, length: number): void {
    const { iovec } = this.#layout;
    const iov = this.iovecOffset(k);
    this.arena.setPointerTo(iov + iovec.base, arena, 0);
    this.arena.setSize(iov + iovec.len, length);
  }

  /** Sets the address of datagram `k` of a sending batch. */
  setName(k: number, sockaddr: Uint8Array): void {
    const { mmsghdr } = this.#layout;
    this.arena.bytes.set(sockaddr, this.#nameOffset + k * NAME_STRIDE);
    this.arena.view.setUint32(k * mmsghdr.size + mmsghdr.nameLen, sockaddr.length, true);
  }
}
