/**
 * The threads of the splice TCP engine (see `engine_loop.ts`), started with scoped permissions.
 * @module
 */

import { EngineThreads } from "../../ffi/engine_threads.ts";
import { workerModuleUrl } from "../../ffi/ffi_worker.ts";
import type { TcpAnswer, TcpRequest } from "./messages.ts";

/** Running splice engine threads. */
export type SpliceTcpEngine = EngineThreads<TcpRequest, TcpAnswer>;

/** Starts `threads` splice engine threads and waits until each has opened libc. */
export function startSpliceTcpEngine(threads: number): Promise<SpliceTcpEngine> {
  return EngineThreads.start<TcpRequest, TcpAnswer>(
    workerModuleUrl(import.meta.url, "splice_worker"),
    "splice-tcp",
    threads,
  );
}
