/**
 * Where each UDP counter lives in a shared counter row (see `SharedCounterBlock`): the plain
 * counters first, then one field per error type. Used by the engine threads and the main thread.
 * @module
 */

import {
  UDP_ERROR_TYPES,
  UDP_REJECT_REASONS,
  type UdpErrorType,
  type UdpRejectReason,
} from "../state.ts";

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
  "segmentedDatagrams",
] as const;

/** One plain counter. */
export type PlainField = typeof PLAIN_FIELDS[number];

/** Fields per row: the plain counters, the error types, then the reject reasons. */
export const UDP_FIELD_COUNT = PLAIN_FIELDS.length + UDP_ERROR_TYPES.length +
  UDP_REJECT_REASONS.length;

/** Row index of each plain counter, for the hot path. */
export const F: Readonly<Record<PlainField, number>> = Object.fromEntries(
  PLAIN_FIELDS.map((name, index) => [name, index]),
) as Record<PlainField, number>;

/** Row index of each error type. */
export const E: Readonly<Record<UdpErrorType, number>> = Object.fromEntries(
  UDP_ERROR_TYPES.map((type, index) => [type, PLAIN_FIELDS.length + index]),
) as Record<UdpErrorType, number>;

/** Row index of each reject reason (after the error types). */
export const R: Readonly<Record<UdpRejectReason, number>> = Object.fromEntries(
  UDP_REJECT_REASONS.map((reason, index) => [
    reason,
    PLAIN_FIELDS.length + UDP_ERROR_TYPES.length + index,
  ]),
) as Record<UdpRejectReason, number>;
