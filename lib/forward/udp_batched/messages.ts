/**
 * Messages between the main thread (`batched_engine.ts`) and an engine thread
 * (`engine_worker.ts`). Addresses travel as encoded `sockaddr` bytes; requests carry a `seq` that
 * the answer repeats.
 * @module
 */

import type { UdpErrorType } from "../state.ts";

/**
 * What one session reserves from the session memory budget (`--udp-buffer-budget-bytes`): the
 * engine's buffers belong to the thread, allocated once; a session holds its state, its client's
 * address and its socket (measured 2.4 KiB of process memory per session, docs/performance.md),
 * rounded up to a page.
 */
export const BATCHED_SESSION_BYTES = 4096;

/** A `Budget` as another thread attaches to it: its maximum and its shared count. */
export interface BudgetShare {
  readonly max: number;
  readonly share: SharedArrayBuffer;
}

/**
 * Who may open sessions on a listener and what its new sessions send first: the spec's fields, as
 * the portable engine reads them (and `--default-source-ranges` when the spec has none).
 */
export interface ListenerPolicy {
  /** CIDR ranges clients must come from; empty = everyone. */
  readonly sourceRanges: readonly string[];
  /** Sessions open at once over every thread (`spec.maxSessions`), or undefined. */
  readonly maxSessions: number | undefined;
  /** Sessions open at once per client address (`spec.maxSessionsPerSource`), or undefined. */
  readonly maxSessionsPerSource: number | undefined;
  /** Every datagram to the target starts with a PROXY protocol v2 header. */
  readonly proxyV2: boolean;
  /** Share of new sessions that get an access record, 0 (none) to 1 (all). */
  readonly accessLogShare: number;
}

/** Why a listener's remaining sessions end when it closes (their access records say so). */
export type CloseCause = "drained" | "replaced" | "removed";

/** What one session did, for its access record (the main thread adds the forwarder's fields). */
export interface SessionRecord {
  readonly clientAddress: string;
  readonly clientPort: number;
  /** The target address the session sent to. */
  readonly targetAddress: string;
  readonly bytesClientToTarget: number;
  readonly bytesTargetToClient: number;
  readonly datagramsClientToTarget: number;
  readonly datagramsTargetToClient: number;
  /** Wall-clock milliseconds. */
  readonly startMs: number;
  readonly endMs: number;
  /** Set when the session ended by a timeout or with its listener; else `errorType` says why. */
  readonly reason?: "idle_timeout" | "write_timeout" | CloseCause;
  readonly errorType?: UdpErrorType;
  readonly detail?: string;
}

/** Everyone may open sessions (up to the program's cap); no header. */
export const OPEN_POLICY: ListenerPolicy = {
  sourceRanges: [],
  maxSessions: undefined,
  maxSessionsPerSource: undefined,
  proxyV2: false,
  accessLogShare: 0,
};

/** Main thread → engine thread. */
export type ToEngine =
  | {
    readonly kind: "start";
    readonly control: SharedArrayBuffer;
    /** This thread's row in every counter block. */
    readonly row: number;
  }
  | {
    readonly kind: "listen";
    readonly seq: number;
    readonly id: number;
    /** IP literal to bind ("::" binds dual-stack). */
    readonly hostname: string;
    readonly port: number;
    readonly reusePort: boolean;
    readonly maxSessions: number;
    readonly bufferBytes: number;
    readonly counters: SharedArrayBuffer;
    /** One Int32: sessions open over every thread (the cap is shared). */
    readonly sessionsInUse: SharedArrayBuffer;
    /** A `ListenerSettings` (target and timeouts, updated in place). */
    readonly settings: SharedArrayBuffer;
    /** The sockets budget (`Budget.share`; one socket per session), shared with the main thread. */
    readonly sockets: BudgetShare;
    /** The session memory budget (`Budget.share`; `BATCHED_SESSION_BYTES` per session). */
    readonly sessionBytes: BudgetShare;
    readonly policy: ListenerPolicy;
  }
  /** New rules for new sessions (open ones keep theirs). */
  | {
    readonly kind: "policy";
    readonly seq: number;
    readonly id: number;
    readonly policy: ListenerPolicy;
    /** From `ListenerSettings.nextPolicy()`. */
    readonly generation: number;
  }
  | { readonly kind: "drain"; readonly seq: number; readonly id: number }
  /** Use io_uring for the sessions' upstream sockets (sent before any `listen`). */
  | { readonly kind: "ioUring"; readonly seq: number }
  /** Poll without sleeping for `microseconds` after traffic (0: off); see `BusyPoll`. */
  | { readonly kind: "busyPoll"; readonly seq: number; readonly microseconds: number }
  | {
    readonly kind: "close";
    readonly seq: number;
    readonly id: number;
    /** What the access records of sessions still open say. @default "drained" */
    readonly cause?: CloseCause;
  };

/** Engine thread → main thread. */
export type FromEngine =
  /** Started; the main thread rings `doorbellPort` (UDP on 127.0.0.1) after each message. */
  | { readonly kind: "ready"; readonly doorbellPort: number }
  | { readonly kind: "failed"; readonly message: string }
  | { readonly kind: "listening"; readonly seq: number; readonly port: number }
  | { readonly kind: "listenFailed"; readonly seq: number; readonly message: string }
  /** A draining listener has no sessions left (or `drain` found none). */
  | { readonly kind: "drained"; readonly seq: number }
  | { readonly kind: "closed"; readonly seq: number }
  | { readonly kind: "configured"; readonly seq: number }
  /** The answer to `ioUring`: `refused` says why the thread keeps epoll, if it does. */
  | { readonly kind: "ioUring"; readonly seq: number; readonly refused?: string }
  /** A session of listener `id` that had an access record ended. */
  | { readonly kind: "record"; readonly id: number; readonly record: SessionRecord }
  | {
    readonly kind: "log";
    readonly level: "warn" | "error";
    readonly message: string;
    readonly properties: Record<string, unknown>;
  }
  | { readonly kind: "stopped" };
