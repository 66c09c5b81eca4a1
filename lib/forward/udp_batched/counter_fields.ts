/**
 * Where each UDP counter lives in a shared counter row (see `SharedCounterBlock`): the plain
 * counters first, then one field per error type. Used by the engine threads and the main thread.
 * @module
 */

import { UDP_ERROR_TYPES, type UdpErrorType } from "../state.ts";

/** The plain (non-error) counters of `UdpCounters`, in row order. */
export const PLAIN_FIELDS = [
  "bytesClientToTarget",
  "bytesTargetToClient",
  "datagramsClientToTarget",
  "datagramsTargetToClient",
  "activeSessions",
  "sessionsTotal",
  "droppedDatagrams",
  "truncatedDatagrams",
] as const;

/** One plain counter. */
export type PlainField = typeof PLAIN_FIELDS[number];

/** Fields per row. */
export const UDP_FIELD_COUNT = PLAIN_FIELDS.length + UDP_ERROR_TYPES.length;

/** Row index of each plain counter, for the hot path. */
export const F: Readonly<Record<PlainField, number>> = Object.fromEntries(
  PLAIN_FIELDS.map((name, index) => [name, index]),
) as Record<PlainField, number>;

/** Row index of each error type. */
export const E: Readonly<Record<UdpErrorType, number>> = Object.fromEntries(
  UDP_ERROR_TYPES.map((type, index) => [type, PLAIN_FIELDS.length + index]),
) as Record<UdpErrorType, number>;
