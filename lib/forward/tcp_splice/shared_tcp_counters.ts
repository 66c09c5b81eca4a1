/**
 * `TcpCounters` in shared memory for the splice engine: one row per writer (row 0 the main thread,
 * row `i + 1` engine thread `i`), summed on read. Field indexes are exported for the engine threads.
 * @module
 */

import { defineSummedCounters, SharedCounterBlock } from "../../ffi/shared_counters.ts";
import { TCP_ERROR_TYPES, type TcpCounters, type TcpErrorType } from "../state.ts";

/** The plain (non-error) counters, in row order. */
const PLAIN_FIELDS = [
  "bytesClientToTarget",
  "bytesTargetToClient",
  "activeConnections",
  "connectionsTotal",
] as const;

/** Fields per row: the plain counters, then one per error type. */
export const TCP_FIELD_COUNT = PLAIN_FIELDS.length + TCP_ERROR_TYPES.length;

/** Row index of each plain counter. */
export const F: Readonly<Record<typeof PLAIN_FIELDS[number], number>> = Object.fromEntries(
  PLAIN_FIELDS.map((name, index) => [name, index]),
) as Record<typeof PLAIN_FIELDS[number], number>;

/** Row index of each error type. */
export const E: Readonly<Record<TcpErrorType, number>> = Object.fromEntries(
  TCP_ERROR_TYPES.map((type, index) => [type, PLAIN_FIELDS.length + index]),
) as Record<TcpErrorType, number>;

/** Counters of one TCP forwarder, summed over the main thread and `threads` engine threads. */
export class SharedTcpCounters implements TcpCounters {
  readonly block: SharedCounterBlock;
  declare bytesClientToTarget: number;
  declare bytesTargetToClient: number;
  declare activeConnections: number;
  declare connectionsTotal: number;
  readonly errors: Record<TcpErrorType, number>;

  constructor(threads: number) {
    this.block = new SharedCounterBlock(TCP_FIELD_COUNT, threads + 1);
    defineSummedCounters(this, this.block, F);
    const errors = {} as Record<TcpErrorType, number>;
    defineSummedCounters(errors, this.block, E);
    this.errors = errors;
  }
}
