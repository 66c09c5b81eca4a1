/**
 * `UdpCounters` backed by shared memory: engine threads advance their own rows, the main thread
 * (metrics scrape, supervisor) reads sums through ordinary properties and writes into its own row
 * (row 0), e.g. bind errors.
 * @module
 */

import { SharedCounterBlock } from "../../ffi/shared_counters.ts";
import {
  UDP_ERROR_TYPES,
  UDP_REJECT_REASONS,
  type UdpCounters,
  type UdpErrorType,
  type UdpRejectReason,
} from "../state.ts";
import { E, F, PLAIN_FIELDS, R, UDP_FIELD_COUNT } from "./counter_fields.ts";

/** Counters of one UDP forwarder, summed over the main thread and `threads` engine threads. */
export class SharedUdpCounters implements UdpCounters {
  /** Row 0 is the main thread's; engine thread `i` (0-based) writes row `i + 1`. */
  readonly block: SharedCounterBlock;
  declare bytesClientToTarget: number;
  declare bytesTargetToClient: number;
  declare datagramsClientToTarget: number;
  declare datagramsTargetToClient: number;
  declare activeSessions: number;
  declare sessionsTotal: number;
  declare droppedDatagrams: number;
  declare truncatedDatagrams: number;
  declare segmentedDatagrams: number;
  readonly errors: Record<UdpErrorType, number>;
  readonly rejected: Record<UdpRejectReason, number>;

  constructor(threads: number) {
    const block = new SharedCounterBlock(UDP_FIELD_COUNT, threads + 1);
    this.block = block;
    const main = block.row(0);
    const define = (target: object, name: string, field: number) =>
      Object.defineProperty(target, name, {
        enumerable: true,
        get: () => block.sum(field),
        set: (value: number) => main[field]! += value - block.sum(field),
      });
    for (const name of PLAIN_FIELDS) define(this, name, F[name]);
    const errors = {} as Record<UdpErrorType, number>;
    for (const type of UDP_ERROR_TYPES) define(errors, type, E[type]);
    this.errors = errors;
    const rejected = {} as Record<UdpRejectReason, number>;
    for (const reason of UDP_REJECT_REASONS) define(rejected, reason, R[reason]);
    this.rejected = rejected;
  }
}
