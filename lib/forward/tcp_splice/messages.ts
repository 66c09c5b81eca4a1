/**
 * Messages between the main thread (`splice_forwarder.ts`, through `EngineThreads`) and a splice
 * TCP engine thread (`engine_worker.ts`). Requests carry a `seq` that the answer repeats.
 * @module
 */

import type { StartMessage } from "../../ffi/engine_messages.ts";

/**
 * Who may connect to a listener and what its new connections do: the spec's fields as the portable
 * engine reads them (and `--default-source-ranges` when the spec has none).
 */
export interface TcpListenerPolicy {
  /** CIDR ranges clients must come from; empty = everyone. */
  readonly sourceRanges: readonly string[];
  /** Connections open at once over every thread (`spec.maxConnections`), or undefined. */
  readonly maxConnections: number | undefined;
  /** Connections open at once per client address, or undefined. */
  readonly maxConnectionsPerSource: number | undefined;
  /** New connections per second per client address, or undefined. */
  readonly connectionsPerSecondPerSource: number | undefined;
  /** Burst of the per-source rate, or undefined (the rate, at least 1). */
  readonly connectionBurstPerSource: number | undefined;
  /** The PROXY protocol header sent to the target before the client's bytes, if any. */
  readonly proxyProtocol: "v1" | "v2" | undefined;
  /** Share of new connections that get an access record, 0 (none) to 1 (all). */
  readonly accessLogShare: number;
  /** Clients start with a PROXY header (from a load balancer); its client is the client. */
  readonly acceptProxyProtocol: boolean;
  /** Deadline for a client's whole PROXY header. */
  readonly proxyHeaderTimeoutMs: number;
}

/** Why a listener's remaining connections end when it closes (their access records say so). */
export type TcpCloseCause = "drained" | "replaced" | "removed";

/**
 * Why a connection ended, as `EndReason` of `access_log.ts` names it (spelled out here: engine
 * threads import no module that loads third-party code, not even for types).
 */
export type TcpEndReason =
  | "client_closed"
  | "target_closed"
  | "idle_timeout"
  | "dial_failed"
  | "refused"
  | "error"
  | TcpCloseCause;

/** What one connection did, for its access record (the main thread adds the forwarder's fields). */
export interface ConnectionRecord {
  readonly clientAddress: string;
  readonly clientPort: number;
  /** The socket peer, when a load balancer's PROXY header carried the client. */
  readonly peerAddress?: string;
  readonly peerPort?: number;
  /** The target address dialled (absent when the target name did not resolve). */
  readonly targetAddress?: string;
  readonly bytesClientToTarget: number;
  readonly bytesTargetToClient: number;
  /** Wall-clock milliseconds. */
  readonly startMs: number;
  readonly endMs: number;
  readonly reason: TcpEndReason;
  readonly detail?: string;
}

/** Everyone may connect (up to the descriptor share). */
export const OPEN_TCP_POLICY: TcpListenerPolicy = {
  sourceRanges: [],
  maxConnections: undefined,
  maxConnectionsPerSource: undefined,
  connectionsPerSecondPerSource: undefined,
  connectionBurstPerSource: undefined,
  proxyProtocol: undefined,
  accessLogShare: 0,
  acceptProxyProtocol: false,
  proxyHeaderTimeoutMs: 5000,
};

/** Main thread → engine thread: a request. */
export type TcpRequest =
  | {
    readonly kind: "listen";
    readonly seq: number;
    readonly id: number;
    /** Forwarder name, for logs. */
    readonly name: string;
    /** IP literal to bind ("::" binds dual-stack). */
    readonly hostname: string;
    readonly port: number;
    readonly reusePort: boolean;
    /** Engine threads sharing the process's descriptors (each admits its share). */
    readonly threads: number;
    readonly dialTimeoutMs: number;
    /** 0 = never. */
    readonly idleTimeoutMs: number;
    /** Connections this thread admits on all its listeners at most (the sockets budget's share). */
    readonly maxConnections: number;
    /** A `SharedTcpCounters` block. */
    readonly counters: SharedArrayBuffer;
    /** A `ListenerSettings` (the target or "forbidden"; updated in place). */
    readonly settings: SharedArrayBuffer;
    /** One Int32: connections open over every thread (for `policy.maxConnections`). */
    readonly connectionsInUse: SharedArrayBuffer;
    readonly policy: TcpListenerPolicy;
  }
  /** New rules for new connections (open ones keep going). */
  | {
    readonly kind: "policy";
    readonly seq: number;
    readonly id: number;
    readonly policy: TcpListenerPolicy;
    /** From `ListenerSettings.nextPolicy()`. */
    readonly generation: number;
  }
  /** Closes the listening socket (its port is free once answered); connections keep going. */
  | { readonly kind: "stopAccepting"; readonly seq: number; readonly id: number }
  /** Answered once the listener has no connection left. */
  | { readonly kind: "drain"; readonly seq: number; readonly id: number }
  /** Aborts (RST) every connection left and forgets the listener. */
  | {
    readonly kind: "close";
    readonly seq: number;
    readonly id: number;
    /** What the access records of connections still open say. @default "drained" */
    readonly cause?: TcpCloseCause;
  };

/** Main thread → engine thread. */
export type ToTcpEngine = StartMessage | TcpRequest;

/** Engine thread → main thread: an answer. */
export type TcpAnswer =
  | { readonly kind: "listening"; readonly seq: number; readonly port: number }
  | { readonly kind: "listenFailed"; readonly seq: number; readonly message: string }
  /** `count`: connections aborted (by `close`; 0 otherwise). */
  | { readonly kind: "done"; readonly seq: number; readonly count: number };
