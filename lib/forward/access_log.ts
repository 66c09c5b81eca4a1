/**
 * Access log records: one structured record per TCP connection and per UDP session, written when it
 * ends, through logtape under the category `["undying-proxy", "access"]` (so it goes wherever the
 * other logs go, as JSON or text, and can be routed on its own). Off unless a spec or the program
 * asks for it; optionally sampled.
 * @module
 */

import { getLogger } from "@logtape/logtape";
import type { Protocol, UdpErrorType } from "./state.ts";

/** The logger category of access records. */
export const ACCESS_LOG_CATEGORY: readonly string[] = ["undying-proxy", "access"];

const log = getLogger(ACCESS_LOG_CATEGORY);

/**
 * Why a connection or session ended:
 * - `client_closed` / `target_closed`: that side ended (EOF or error, see `endDetail`) first;
 * - `idle_timeout`: no data within the idle or read timeout; `write_timeout`: a send was stuck;
 * - `dial_failed`: the target could not be reached (type and error in `endDetail`);
 * - `refused`: we refused the client (e.g. a missing, malformed or late PROXY header);
 * - `drained`: the program shut down; `replaced`: the listener moved to another port by a spec
 *   change; `removed`: the object or its protocol part was removed;
 * - `error`: an unexpected error in the forwarder.
 */
export type EndReason =
  | "client_closed"
  | "target_closed"
  | "idle_timeout"
  | "write_timeout"
  | "dial_failed"
  | "refused"
  | "drained"
  | "replaced"
  | "removed"
  | "error";

/** What ends a UDP session after each kind of failure (when no other reason is given). */
export const UDP_FAILURE_REASONS: Readonly<Partial<Record<UdpErrorType, EndReason>>> = {
  ResolveTargetAddress: "dial_failed",
  DialUDPTarget: "dial_failed",
  ReadFromTarget: "target_closed",
  WriteToTarget: "target_closed",
  WriteToClient: "client_closed",
};

/** Why a listener stops: what its remaining connections and sessions end with. */
export type StopCause = Extract<EndReason, "drained" | "replaced" | "removed">;

/** One access record (the properties of the log record). */
export interface AccessRecord {
  /** Object as `namespace/name` (or the bare name in file mode without namespace). */
  readonly forwarder: string;
  readonly namespace: string;
  readonly name: string;
  readonly protocol: Protocol;
  /** The client: the address a PROXY header carried when one was accepted, else the peer's. */
  readonly clientAddress: string;
  readonly clientPort: number;
  /** The socket peer when it differs from the client (a load balancer that sent a PROXY header). */
  readonly peerAddress?: string;
  readonly peerPort?: number;
  readonly listenPort: number;
  /** The configured target host, and the address it resolved to (absent if it did not). */
  readonly targetHost: string;
  readonly targetAddress?: string;
  readonly targetPort: number;
  readonly bytesClientToTarget: number;
  readonly bytesTargetToClient: number;
  /** UDP only. */
  readonly datagramsClientToTarget?: number;
  readonly datagramsTargetToClient?: number;
  /** When it started (ISO 8601); the log record's own timestamp is when it ended. */
  readonly startTime: string;
  readonly durationMs: number;
  readonly endReason: EndReason;
  /** The error or detail behind `endReason`, when there is one. */
  readonly endDetail?: string;
}

/**
 * Whether one connection or session gets a record: `enabled`, and kept by sampling at `sampleRate`
 * (1 = every one, 0.01 = about one in a hundred).
 */
export function sampled(enabled: boolean, sampleRate: number): boolean {
  return enabled && (sampleRate >= 1 || Math.random() < sampleRate);
}

/**
 * Writes one access record at level info. The message repeats the main fields for the text format
 * (which shows only the message); the JSON format has every field as a property.
 */
export function writeAccessRecord(record: AccessRecord): void {
  // Rendered here rather than as a template with placeholders: logtape parses a template on every
  // call, which costs more than the rest of the record. No value holds braces (addresses, DNS
  // names, numbers, reasons), so the text needs no escaping.
  const message = `${record.protocol} ${record.clientAddress} port ${record.clientPort} -> ` +
    `${record.targetHost}:${record.targetPort} via ${record.forwarder} ended: ${record.endReason} ` +
    `after ${record.durationMs} ms, ${record.bytesClientToTarget} B up, ` +
    `${record.bytesTargetToClient} B down`;
  log.info(message, { ...record });
}

/** `namespace` and `name` of a forwarder called `namespace/name` (namespace "" without one). */
export function splitForwarderName(forwarder: string): { namespace: string; name: string } {
  const slash = forwarder.indexOf("/");
  return slash < 0
    ? { namespace: "", name: forwarder }
    : { namespace: forwarder.slice(0, slash), name: forwarder.slice(slash + 1) };
}

/** An error's message (or the value as text), for `endDetail`. */
export function detailOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
