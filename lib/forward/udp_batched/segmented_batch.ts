/**
 * UDP generic segmentation offload (UDP_SEGMENT) over a sending {@linkcode DatagramBatch}: runs of
 * datagrams for one destination with the same length (the last of a run may be shorter, never empty: an empty datagram would vanish in a run) become one
 * message whose iovecs are the run's iovecs and whose control message carries that length. The
 * kernel then walks its send path (and on loopback the receive path up to the socket) once per run
 * instead of once per datagram, and splits the run into the original datagrams before they reach
 * the receiver (or the wire): datagram boundaries, sizes and order stay exactly as received.
 *
 * A run is at most {@linkcode MAX_SEGMENTS} datagrams and {@linkcode MAX_RUN_BYTES} bytes. The
 * kernel refuses a run (EINVAL, EIO) when the route's MTU cannot carry one datagram of it unfragmented
 * or the device cannot checksum it: nothing of it was sent, and the caller sends those datagrams one
 * by one instead ({@linkcode isSegmentationRefusal}).
 * @module
 */

import { Errno } from "../../ffi/errno.ts";
import type { AbiLayout } from "../../ffi/layout.ts";
import { NativeArena } from "../../ffi/native_memory.ts";
import { encodeSockaddr } from "../../ffi/sockaddr.ts";
import { MAX_UDP_PAYLOAD_BYTES_IPV4 } from "../udp_payload.ts";
import { BATCH, type DatagramBatch } from "./datagram_batch.ts";
import type { EngineLibc, UdpSockets } from "./udp_sockets.ts";

/** Datagrams per run (the kernel's UDP_MAX_SEGMENTS is 64 on older kernels, 128 on newer). */
const MAX_SEGMENTS = 64;
/** Bytes per run: the payload of one IPv4 packet, the kernel's limit for a segmented send. */
export const MAX_RUN_BYTES = MAX_UDP_PAYLOAD_BYTES_IPV4;

/** How long the start-up probe waits for its two datagrams. */
const PROBE_WAIT_MS = 100;

/** Whether `errno` of a failed segmented send means "send these datagrams one by one". */
export function isSegmentationRefusal(errno: number): boolean {
  return errno === Errno.EINVAL || errno === Errno.EIO || errno === Errno.ENOPROTOOPT;
}

/** One destination of a run, and whether runs to it may be segmented. */
export interface SegmentOwner {
  segment: boolean;
}

/** Headers and control messages for up to {@linkcode BATCH} runs, allocated once per thread. */
export class SegmentedBatch {
  readonly #layout: AbiLayout;
  readonly #arena: NativeArena;
  readonly #controlOffset: number;
  /** `#from[m]`: the headers from run m on. */
  readonly #from: Uint8Array<ArrayBuffer>[] = [];
  /** Datagrams in each built run, and its destination. */
  readonly #runLengths = new Int32Array(BATCH);
  readonly #owners: (SegmentOwner | undefined)[] = new Array(BATCH).fill(undefined);

  constructor(layout: AbiLayout) {
    this.#layout = layout;
    const { mmsghdr, cmsg, constants } = layout;
    this.#controlOffset = BATCH * mmsghdr.size;
    this.#arena = new NativeArena(this.#controlOffset + BATCH * cmsg.u16Space);
    const view = this.#arena.view;
    for (let m = 0; m < BATCH; m++) {
      const control = this.#controlOffset + m * cmsg.u16Space;
      this.#arena.setSize(control + cmsg.len, cmsg.u16Len);
      view.setInt32(control + cmsg.level, constants.SOL_UDP, true);
      view.setInt32(control + cmsg.type, constants.UDP_SEGMENT, true);
      this.#from.push(this.#arena.slice(m * mmsghdr.size, (BATCH - m) * mmsghdr.size));
    }
  }

  /**
   * Builds runs over datagrams `[first, end)` of `batch`, whose byte counts are `lengths[k]`.
   * `owners` is the connected socket's one destination, or per datagram the destination whose
   * address the batch carries (a run never spans two). Runs to an owner whose `segment` is false
   * are single datagrams. Returns the run count.
   */
  build(
    batch: DatagramBatch,
    first: number,
    end: number,
    lengths: Int32Array,
    owners: SegmentOwner | readonly (SegmentOwner | undefined)[],
  ): number {
    const { mmsghdr, cmsg } = this.#layout;
    const arena = this.#arena;
    const perDatagram = Array.isArray(owners);
    let runs = 0;
    let k = first;
    while (k < end) {
      const size = lengths[k]!;
      const owner = perDatagram ? owners[k] : owners as SegmentOwner;
      let stop = k + 1;
      if (size > 0 && owner !== undefined && owner.segment) {
        let bytes = size;
        while (
          stop < end && stop - k < MAX_SEGMENTS && lengths[stop]! <= size &&
          lengths[stop]! > 0 && bytes + lengths[stop]! <= MAX_RUN_BYTES &&
          (!perDatagram || owners[stop] === owner)
        ) {
          bytes += lengths[stop]!;
          if (lengths[stop++]! < size) break; // a shorter datagram ends the run
        }
      }
      const hdr = runs * mmsghdr.size;
      if (perDatagram) {
        arena.setPointerTo(hdr + mmsghdr.name, batch.arena, batch.nameOffset(k));
        arena.view.setUint32(hdr + mmsghdr.nameLen, batch.nameLength(k), true);
      } else arena.setNull(hdr + mmsghdr.name);
      arena.setPointerTo(hdr + mmsghdr.iov, batch.arena, batch.iovecOffset(k));
      arena.setSize(hdr + mmsghdr.iovLen, (stop - k) * batch.iovecsPerDatagram);
      if (stop - k > 1) {
        const control = this.#controlOffset + runs * cmsg.u16Space;
        arena.view.setUint16(control + cmsg.headerSize, size, true);
        arena.setPointer(hdr + mmsghdr.control, control);
        arena.setSize(hdr + mmsghdr.controlLen, cmsg.u16Space);
      } else {
        arena.setNull(hdr + mmsghdr.control);
        arena.setSize(hdr + mmsghdr.controlLen, 0);
      }
      this.#owners[runs] = owner;
      this.#runLengths[runs++] = stop - k;
      k = stop;
    }
    return runs;
  }

  /** The headers from run `m` on (what sendmmsg takes). */
  from(m: number): Uint8Array<ArrayBuffer> {
    return this.#from[m]!;
  }

  /** Datagrams in run `m`. */
  datagrams(m: number): number {
    return this.#runLengths[m]!;
  }

  /** The destination of run `m`. */
  owner(m: number): SegmentOwner | undefined {
    return this.#owners[m];
  }
}

/**
 * Whether this kernel segments sends (Linux 4.18+): two 8-byte datagrams sent as one run between
 * two loopback sockets must arrive as two 8-byte datagrams. An older kernel ignores the control
 * message and would deliver one 16-byte datagram, so the engine never segments there.
 */
export function kernelSegments(
  libc: EngineLibc["symbols"],
  layout: AbiLayout,
  sockets: UdpSockets,
): boolean {
  const { mmsghdr, iovec, cmsg, constants } = layout;
  const receiver = sockets.listen("127.0.0.1", 0, false);
  let sender = -1;
  try {
    sender = sockets.connect(encodeSockaddr(layout, "127.0.0.1", sockets.port(receiver)), 4);
    const iov = mmsghdr.size;
    const control = iov + iovec.size;
    const data = control + cmsg.u16Space;
    const arena = new NativeArena(data + 16);
    arena.setPointer(iov + iovec.base, data);
    arena.setSize(iov + iovec.len, 16);
    arena.setPointer(mmsghdr.iov, iov);
    arena.setSize(mmsghdr.iovLen, 1);
    arena.setSize(control + cmsg.len, cmsg.u16Len);
    arena.view.setInt32(control + cmsg.level, constants.SOL_UDP, true);
    arena.view.setInt32(control + cmsg.type, constants.UDP_SEGMENT, true);
    arena.view.setUint16(control + cmsg.headerSize, 8, true);
    arena.setPointer(mmsghdr.control, control);
    arena.setSize(mmsghdr.controlLen, cmsg.u16Space);
    if (libc.sendmmsg(sender, arena.bytes, 1, 0) !== 1) return false;
    const buffer = new Uint8Array(32);
    const sizes: number[] = [];
    const deadline = Date.now() + PROBE_WAIT_MS; // delivery on loopback is normally immediate
    while (sizes.length < 2 && Date.now() < deadline) {
      const size = Number(
        libc.recv(receiver, buffer, BigInt(buffer.length), constants.MSG_DONTWAIT),
      );
      if (size >= 0) sizes.push(size);
    }
    return sizes[0] === 8 && sizes[1] === 8;
  } catch {
    return false;
  } finally {
    if (sender >= 0) sockets.close(sender);
    sockets.close(receiver);
  }
}
