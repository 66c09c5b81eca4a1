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

/**
 * Asks every thread to use io_uring for its sessions' sockets (before any listener); resolves with
 * why a thread could not (the kernel's refusal), or undefined when all do.
 */
export async function enableIoUring(engine: BatchedUdpEngine): Promise<string | undefined> {
  const answers = await engine.requestAll({ kind: "ioUring" });
  for (const answer of answers) {
    if (answer.kind !== "ioUring") throw new Error(`Unexpected answer ${answer.kind} to ioUring`);
    if (answer.refused !== undefined) return answer.refused;
  }
  return undefined;
}

/** Sets every thread's busy-polling window (`--udp-busy-poll`) in microseconds; 0 turns it off. */
export async function setBusyPoll(engine: BatchedUdpEngine, microseconds: number): Promise<void> {
  for (const answer of await engine.requestAll({ kind: "busyPoll", microseconds })) {
    if (answer.kind !== "configured") {
      throw new Error(`Unexpected answer ${answer.kind} to busyPoll`);
    }
  }
}

/** Starts `threads` engine threads and waits until each has opened libc. */
export function startBatchedUdpEngine(threads: number): Promise<BatchedUdpEngine> {
  return EngineThreads.start<UdpRequest, UdpAnswer>(
    workerModuleUrl(import.meta.url, "engine_worker"),
    "udp-engine",
    threads,
  );
}
