/**
 * Messages between the main thread ({@linkcode ForwardWorkers}) and a forwarding worker
 * (`forward_worker.ts`).
 * @module
 */

import type { ForwarderSpec } from "../spec.ts";
import type { ForwarderStatus, TcpCounters } from "./state.ts";
import type { SupervisorOptions } from "./supervisor_options.ts";
import type { WorkerLogRecord } from "./worker_logs.ts";

/** Main thread → worker. */
export type ToWorker =
  | {
    readonly kind: "start";
    readonly options: SupervisorOptions;
    /** A channel to the system worker (TCP resets), when it runs. */
    readonly systemPort?: MessagePort;
  }
  | { readonly kind: "apply"; readonly desired: readonly ForwarderSpec[] }
  | { readonly kind: "close"; readonly graceMs: number };

/** TCP counters of one forwarder in one worker. */
export interface WorkerTcpCounters {
  readonly name: string;
  readonly tcp: TcpCounters;
}

/** Worker → main thread. */
export type FromWorker =
  | { readonly kind: "counters"; readonly counters: readonly WorkerTcpCounters[] }
  | { readonly kind: "statuses"; readonly statuses: readonly ForwarderStatus[] }
  /** A log record (access records included), emitted by the main thread's logging. */
  | { readonly kind: "log"; readonly record: WorkerLogRecord }
  | {
    readonly kind: "closed";
    readonly counters: readonly WorkerTcpCounters[];
    /** Connections cut at the end of a drain grace period. */
    readonly forcedCloses: number;
  };
