/**
 * Messages between the main thread (`splice_forwarder.ts`, through `EngineThreads`) and a splice
 * TCP engine thread (`engine_worker.ts`). Requests carry a `seq` that the answer repeats.
 * @module
 */

import type { StartMessage } from "../../ffi/engine_messages.ts";

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
    /** A `ListenerSettings` (the target; updated in place). */
    readonly settings: SharedArrayBuffer;
  }
  /** Closes the listening socket (its port is free once answered); connections keep going. */
  | { readonly kind: "stopAccepting"; readonly seq: number; readonly id: number }
  /** Answered once the listener has no connection left. */
  | { readonly kind: "drain"; readonly seq: number; readonly id: number }
  /** Aborts (RST) every connection left and forgets the listener. */
  | { readonly kind: "close"; readonly seq: number; readonly id: number };

/** Main thread → engine thread. */
export type ToTcpEngine = StartMessage | TcpRequest;

/** Engine thread → main thread: an answer. */
export type TcpAnswer =
  | { readonly kind: "listening"; readonly seq: number; readonly port: number }
  | { readonly kind: "listenFailed"; readonly seq: number; readonly message: string }
  /** `count`: connections aborted (by `close`; 0 otherwise). */
  | { readonly kind: "done"; readonly seq: number; readonly count: number };
