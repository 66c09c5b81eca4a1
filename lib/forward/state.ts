/**
 * Observable state of the data plane: the per-protocol listener state the supervisor reports and the
 * counters the forwarders advance (read on scrape by the metrics module).
 * @module
 */

/** A forwarded protocol. */
export type Protocol = "tcp" | "udp";

/** Where one protocol part of a forwarder stands. */
export type ListenerState =
  | { readonly phase: "pending" }
  | { readonly phase: "listening"; readonly port: number }
  /** Bind failed (`reason` is the OS error); retried with capped exponential backoff. */
  | { readonly phase: "failed"; readonly reason: string; readonly retryInMs: number }
  /** Another forwarder (`holder`) has the same protocol+port; taken over once it is free. */
  | { readonly phase: "conflict"; readonly holder: string; readonly port: number }
  /**
   * Bound, but the target resolved to a forbidden `address` (`rule` says why): nothing is
   * forwarded; back to `listening` once the target resolves to an allowed address.
   */
  | {
    readonly phase: "forbidden";
    readonly port: number;
    readonly address: string;
    readonly rule: string;
  };

/** State of one forwarder's parts; a part missing from its spec is absent here. */
export interface ForwarderStatus {
  readonly name: string;
  readonly tcp?: ListenerState;
  readonly udp?: ListenerState;
}

/** TCP error types, a superset of the Go operator's `type` label values. */
export const TCP_ERROR_TYPES = [
  "Accept",
  "DialServerTarget",
  "DialTimeout",
  "ResolveTargetAddress",
  "CopyClientToTarget",
  "CopyTargetToClient",
  "IdleTimeout",
  "Listen",
  /** A new connection shed at once: the sockets budget (--max-open-sockets) was used up. */
  "SocketLimit",
  /** A connection still open when the drain grace period ended, aborted (RST). */
  "DrainTimeout",
  "ProxyHeaderMissing",
  "ProxyHeaderMalformed",
  "ProxyHeaderTimeout",
] as const;
/** One TCP error type. */
export type TcpErrorType = typeof TCP_ERROR_TYPES[number];

/** UDP error types, a superset of the Go operator's `type` label values. */
export const UDP_ERROR_TYPES = [
  "ResolveListenAddress",
  "ResolveTargetAddress",
  "Listen",
  "DialUDPTarget",
  "WriteToTarget",
  "ReadFromClient",
  "ReadFromTarget",
  "WriteToClient",
  "SessionLimit",
  "Truncated",
  /** A new client refused: the sockets budget (--max-open-sockets) was used up. */
  "SocketLimit",
  /** A new client refused: the session buffer budget (--udp-buffer-budget-bytes) was used up. */
  "BufferBudget",
  /**
   * The target answered with ICMP unreachable (nothing listens there); counted by the batched
   * engine (the portable engine's sockets do not report it).
   */
  "TargetUnreachable",
  /** A session still open when the drain grace period ended, closed. */
  "DrainTimeout",
  "ProxyHeaderTooLarge",
] as const;
/** One UDP error type. */
export type UdpErrorType = typeof UDP_ERROR_TYPES[number];

/** Why TCP connections were closed at accept, without dialling the target. */
export const TCP_REJECT_REASONS = [
  "SourceNotAllowed",
  "MaxConnections",
  "MaxConnectionsPerSource",
  "ConnectionRate",
  "TargetForbidden",
] as const;
/** One TCP reject reason. */
export type TcpRejectReason = typeof TCP_REJECT_REASONS[number];

/** Why UDP datagrams were dropped before a session existed for their client. */
export const UDP_REJECT_REASONS = [
  "SourceNotAllowed",
  "MaxSessions",
  "MaxSessionsPerSource",
  "TargetForbidden",
] as const;
/** One UDP reject reason. */
export type UdpRejectReason = typeof UDP_REJECT_REASONS[number];

/** Live counters of one TCP listener; plain numbers advanced in place (no allocation per event). */
export interface TcpCounters {
  bytesClientToTarget: number;
  bytesTargetToClient: number;
  activeConnections: number;
  connectionsTotal: number;
  readonly errors: Record<TcpErrorType, number>;
  /** Connections closed at accept, by reason (counted in `connectionsTotal` too). */
  readonly rejected: Record<TcpRejectReason, number>;
}

/** Live counters of one UDP listener. */
export interface UdpCounters {
  bytesClientToTarget: number;
  bytesTargetToClient: number;
  datagramsClientToTarget: number;
  datagramsTargetToClient: number;
  activeSessions: number;
  sessionsTotal: number;
  /** Datagrams from new clients dropped because the session cap was reached. */
  droppedDatagrams: number;
  /** Datagrams that did not fit the configured buffer (counted, logged, never hidden). */
  truncatedDatagrams: number;
  /** Datagrams the batched engine sent in segmented runs (UDP GSO); 0 on the portable engine. */
  segmentedDatagrams: number;
  readonly errors: Record<UdpErrorType, number>;
  /** Datagrams dropped before a session existed, by reason. */
  readonly rejected: Record<UdpRejectReason, number>;
}

/** Counters of one forwarder, by protocol part. */
export interface ForwarderCounters {
  readonly name: string;
  readonly tcp?: TcpCounters;
  readonly udp?: UdpCounters;
}

/** Fresh TCP counters, all zero. */
export function newTcpCounters(): TcpCounters {
  return {
    bytesClientToTarget: 0,
    bytesTargetToClient: 0,
    activeConnections: 0,
    connectionsTotal: 0,
    errors: zeroes(TCP_ERROR_TYPES),
    rejected: zeroes(TCP_REJECT_REASONS),
  };
}

/** Fresh UDP counters, all zero. */
export function newUdpCounters(): UdpCounters {
  return {
    bytesClientToTarget: 0,
    bytesTargetToClient: 0,
    datagramsClientToTarget: 0,
    datagramsTargetToClient: 0,
    activeSessions: 0,
    sessionsTotal: 0,
    droppedDatagrams: 0,
    truncatedDatagrams: 0,
    segmentedDatagrams: 0,
    errors: zeroes(UDP_ERROR_TYPES),
    rejected: zeroes(UDP_REJECT_REASONS),
  };
}

function zeroes<T extends string>(types: readonly T[]): Record<T, number> {
  return Object.fromEntries(types.map((type) => [type, 0])) as Record<T, number>;
}
