/**
 * What a splice engine thread remembers of a connection that gets an access record: when it
 * started, who the client is, the target address, and why it ended (the first reason given wins,
 * as on the portable engine); the bytes are the directions' own counts. Plain code, no I/O.
 * @module
 */

import type { ConnectionRecord, TcpEndReason } from "./messages.ts";

/** The record of one connection, filled in while it runs. */
export interface ConnectionTally {
  readonly startMs: number;
  readonly clientAddress: string;
  readonly clientPort: number;
  /** The socket peer, when a load balancer's PROXY header carried the client. */
  readonly peer: { readonly hostname: string; readonly port: number } | undefined;
  readonly targetAddress: string | undefined;
  reason: TcpEndReason | undefined;
  detail: string | undefined;
}

/** Whether a new connection gets an access record: always at share 1, never at 0, else at random. */
export function sampledIn(share: number): boolean {
  return share >= 1 || (share > 0 && Math.random() < share);
}

/** Records why the connection ends, unless a reason was recorded already. */
export function endWith(
  tally: ConnectionTally | undefined,
  reason: TcpEndReason,
  detail?: string,
): void {
  if (tally === undefined || tally.reason !== undefined) return;
  tally.reason = reason;
  tally.detail = detail;
}

/**
 * The finished record ("error" when no reason was given: an unexpected end); the target address
 * only when the dial had `connected`, as on the portable engine.
 */
export function recordOf(
  tally: ConnectionTally,
  traffic: { connected: boolean; bytesClientToTarget: number; bytesTargetToClient: number },
  endMs: number,
): ConnectionRecord {
  const { connected, bytesClientToTarget, bytesTargetToClient } = traffic;
  return {
    clientAddress: tally.clientAddress,
    clientPort: tally.clientPort,
    ...(tally.peer !== undefined &&
      { peerAddress: tally.peer.hostname, peerPort: tally.peer.port }),
    ...(connected && tally.targetAddress !== undefined && { targetAddress: tally.targetAddress }),
    bytesClientToTarget,
    bytesTargetToClient,
    startMs: tally.startMs,
    endMs,
    reason: tally.reason ?? "error",
    ...(tally.detail !== undefined && { detail: tally.detail }),
  };
}
