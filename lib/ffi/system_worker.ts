/**
 * Entry point of the system worker (started by `system_worker_client.ts` with FFI and read access
 * to this module only): opens libc and answers the main thread's requests with
 * {@linkcode SystemCalls}. Imports no third-party code.
 * @module
 */

/// <reference lib="deno.worker" />

import { openLibc } from "./libc.ts";
import { SYSTEM_SYMBOLS, SystemCalls } from "./system_calls.ts";
import type { SystemAnswer, SystemChannel, SystemRequest } from "./system_messages.ts";
import { errorMessage } from "../util/error_message.ts";

function post(message: SystemAnswer): void {
  self.postMessage(message);
}

let calls: SystemCalls | undefined;
try {
  calls = new SystemCalls(openLibc(SYSTEM_SYMBOLS).symbols);
  post({ kind: "ready" });
} catch (error) {
  post({ kind: "failed", message: errorMessage(error) });
}

/** The answer to one request (undefined or false when it cannot be done). */
function answer(request: SystemRequest): unknown {
  if (calls === undefined) return undefined;
  switch (request.kind) {
    case "fdLimit":
      return calls.fileLimit();
    case "openFdCount":
      return calls.openFdCount();
    case "readProcFile":
      return calls.readProcFile(request.path);
    case "resetTcp":
      return calls.resetTcp(request.socket);
  }
}

/** Answers `request` through `reply`. */
function serve(request: SystemRequest, reply: (message: SystemAnswer) => void): void {
  let value: unknown;
  try {
    value = answer(request);
  } catch {
    value = undefined;
  }
  reply({ kind: "answer", seq: request.seq, value });
}

self.onmessage = (event: MessageEvent<SystemRequest | SystemChannel>) => {
  const message = event.data;
  if (message.kind !== "channel") {
    serve(message, post);
    return;
  }
  const port = message.port;
  port.onmessage = (request: MessageEvent<SystemRequest>) =>
    serve(request.data, (answer) => port.postMessage(answer));
};
