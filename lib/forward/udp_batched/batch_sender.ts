/**
 * Sends a run of datagrams from a sending {@linkcode DatagramBatch} with one sendmmsg, runs of
 * equal-size datagrams to one destination segmented ({@linkcode SegmentedBatch}) when the kernel can.
 * @module
 */

import type { ErrnoReader } from "../../ffi/errno.ts";
import type { AbiLayout } from "../../ffi/layout.ts";
import type { DatagramBatch } from "./datagram_batch.ts";
import {
  isSegmentationRefusal,
  kernelSegments,
  SegmentedBatch,
  type SegmentOwner,
} from "./segmented_batch.ts";
import type { EngineLibc, UdpSockets } from "./udp_sockets.ts";

/** sendmmsg over a batch, segmenting where it may. */
export class BatchSender {
  readonly #libc: EngineLibc["symbols"];
  readonly #errno: ErrnoReader;
  /** Undefined when this kernel does not segment (see {@linkcode kernelSegments}). */
  readonly #runs: SegmentedBatch | undefined;
  /** errno of the last failed {@linkcode send}. */
  errno = 0;
  /** Datagrams of the last successful {@linkcode send} that left in segmented runs. */
  segmented = 0;

  constructor(
    libc: EngineLibc["symbols"],
    layout: AbiLayout,
    errno: ErrnoReader,
    sockets: UdpSockets,
  ) {
    this.#libc = libc;
    this.#errno = errno;
    this.#runs = kernelSegments(libc, layout, sockets) ? new SegmentedBatch(layout) : undefined;
  }

  /**
   * Sends datagrams `[first, end)` of `batch` (byte counts in `lengths`) on `fd`: `owners` is the
   * connected socket's destination, or per datagram the destination its address names. Returns how
   * many datagrams left, or -1 (errno in {@linkcode errno}) when the first could not. A run the
   * kernel refuses to segment (route MTU, device without checksum offload) was not sent: its owner
   * stops segmenting and 0 is returned, so that the caller sends those datagrams again.
   */
  send(
    fd: number,
    batch: DatagramBatch,
    first: number,
    end: number,
    lengths: Int32Array,
    owners: SegmentOwner | readonly (SegmentOwner | undefined)[],
  ): number {
    this.segmented = 0;
    const runs = this.#runs;
    const count = runs === undefined || end - first < 2
      ? end - first
      : runs.build(batch, first, end, lengths, owners);
    if (runs === undefined || count === end - first) {
      const done = this.#libc.sendmmsg(fd, batch.from(first), end - first, 0);
      if (done < 0) this.errno = this.#errno.get();
      return done;
    }
    const done = this.#libc.sendmmsg(fd, runs.from(0), count, 0);
    if (done < 0) {
      const errno = this.#errno.get();
      const owner = runs.owner(0);
      if (runs.datagrams(0) > 1 && owner !== undefined && isSegmentationRefusal(errno)) {
        owner.segment = false;
        return 0;
      }
      this.errno = errno;
      return -1;
    }
    let sent = 0;
    for (let m = 0; m < done; m++) {
      const datagrams = runs.datagrams(m);
      sent += datagrams;
      if (datagrams > 1) this.segmented += datagrams;
    }
    return sent;
  }
}
