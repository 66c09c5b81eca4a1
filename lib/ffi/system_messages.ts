/**
 * Messages between the main thread (`system_worker_client.ts`) and the system worker
 * (`system_worker.ts`): each request carries a `seq` that its answer repeats.
 * @module
 */
import type { TcpSocketRef } from "./system_calls.ts";

/** Main thread → system worker. */
export type SystemRequest =
  | { readonly seq: number; readonly kind: "fdLimit" }
  | { readonly seq: number; readonly kind: "openFdCount" }
  | { readonly seq: number; readonly kind: "readProcFile"; readonly path: string }
  | { readonly seq: number; readonly kind: "resetTcp"; readonly socket: TcpSocketRef };

/** Main thread → system worker: a port another thread sends its requests on. */
export interface SystemChannel {
  readonly kind: "channel";
  readonly port: MessagePort;
}

/** System worker → main thread: first `ready` or `failed`, then one answer per request. */
export type SystemAnswer =
  | { readonly kind: "ready" }
  | { readonly kind: "failed"; readonly message: string }
  | { readonly kind: "answer"; readonly seq: number; readonly value: unknown };
