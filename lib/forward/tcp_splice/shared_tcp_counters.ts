/**
 * `TcpCounters` in shared memory for the splice engine: one row per writer (row 0 the main thread,
 * row `i + 1` engine thread `i`), summed on read. Field indexes are exported for the engine threads.
 * @module
 */

import { defineSummedCounters, SharedCounterBlock } from "../../ffi/shared_counters.ts";
import {
  TCP_ERROR_TYPES,
  TCP_REJECT_REASONS,
  type TcpCounters,
  type TcpErrorType,
  type TcpRejectReason,
} from "../state.ts";

/** The plain (non-error) counters, in row order. */
const PLAIN_FIELDS = [
  "bytesClientToTarget",
  "bytesTargetToClient",
  "activeConnections",
  "connectionsTotal",
] as const;

/** Fields per row: the plain counters, one per error type, then one per reject reason. */
export const TCP_FIELD_COUNT = PLAIN_FIELDS.length + TCP_ERROR_TYPES.length +
  TCP_REJECT_REASONS.length;

/** Row index of each plain counter. */
export const F: Readonly<Record<typeof PLAIN_FIELDS[number], number>> = Object.fromEntries(
  PLAIN_FIELDS.map((name, index) => [name, index]),
) as Record<typeof PLAIN_FIELDS[number], number>;

/** Row index of each error type. */
export const E: Readonly<Record<TcpErrorType, number>> = Object.fromEntries(
  TCP_ERROR_TYPES.map((type, index) => [type, PLAIN_FIELDS.length + index]),
) as Record<TcpErrorType, number>;

/** Row index of each reject reason (after the error types). */
export const R: Readonly<Record<TcpRejectReason, number>> = Object.fromEntries(
  TCP_REJECT_REASONS.map((reason, index) => [
    reason,
    PLAIN_FIELDS.length + TCP_ERROR_TYPES.length + index,
  ]),
) as Record<TcpRejectReason, number>;

/** Counters of one TCP forwarder, summed over the main thread and `threads` engine threads. */
export class SharedTcpCounters implements TcpCounters {
  readonly block: SharedCounterBlock;
  declare bytesClientToTarget: number;
  declare bytesTargetToClient: number;
  declare activeConnections: number;
  declare connectionsTotal: number;
  readonly errors: Record<TcpErrorType, number>;
  readonly rejected: Record<TcpRejectReason, number>;

  constructor(threads: number) {
    this.block = new SharedCounterBlock(TCP_FIELD_COUNT, threads + 1);
    defineSummedCounters(this, this.block, F);
    const errors = {} as Record<TcpErrorType, number>;
    defineSummedCounters(errors, this.block, E);
    this.errors = errors;
    const rejected = {} as Record<TcpRejectReason, number>;
    defineSummedCounters(rejected, this.block, R);
    this.rejected = rejected;
  }
}
