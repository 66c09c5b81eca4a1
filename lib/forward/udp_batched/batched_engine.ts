/**
 * The threads of the batched UDP engine (see `engine_loop.ts`), started with scoped permissions;
 * each has a doorbell, so messages wake it from `epoll_wait` at once.
 * @module
 */

import { EngineThreads } from "../../ffi/engine_threads.ts";
import { workerModuleUrl } from "../../ffi/ffi_worker.ts";
import type { FromEngine, ToEngine } from "./messages.ts";

/** A request to an engine thread (it carries a `seq`). */
export type UdpRequest = Extract<ToEngine, { seq: number }>;
/** An engine thread's answer to a request (it repeats the `seq`). */
export type UdpAnswer = Extract<FromEngine, { seq: number }>;

/** Running batched UDP engine threads. */
export type BatchedUdpEngine = EngineThreads<UdpRequest, UdpAnswer>;

/** Starts `threads` engine threads and waits until each has opened libc. */
export function startBatchedUdpEngine(threads: number): Promise<BatchedUdpEngine> {
  return EngineThreads.start<UdpRequest, UdpAnswer>(
    workerModuleUrl(import.meta.url, "engine_worker"),
    "udp-engine",
    threads,
  );
}
