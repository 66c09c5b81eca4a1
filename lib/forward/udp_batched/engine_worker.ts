/**
 * Entry point of a batched UDP engine thread (started by `batched_engine.ts` with FFI and read
 * access to this module only): opens libc, checks the struct layouts of this machine, runs the
 * {@linkcode EngineLoop} and applies the main thread's messages between polls. Imports no
 * third-party code.
 * @module
 */

/// <reference lib="deno.worker" />

import { WorkerControl } from "../../ffi/ffi_worker.ts";
import { currentLayout } from "../../ffi/layout.ts";
import { BATCH_SYMBOLS, openLibc, SOCKET_SYMBOLS } from "../../ffi/libc.ts";
import { EngineLoop } from "./engine_loop.ts";
import type { FromEngine, ToEngine } from "./messages.ts";
import { errorMessage } from "../../util/error_message.ts";

let loop: EngineLoop | undefined;

function post(message: FromEngine): void {
  self.postMessage(message);
}

function start(control: SharedArrayBuffer, row: number): void {
  try {
    const layout = currentLayout();
    if (layout === undefined) {
      throw new Error(`no struct layout for ${Deno.build.os}/${Deno.build.arch}`);
    }
    const libc = openLibc({ ...SOCKET_SYMBOLS, ...BATCH_SYMBOLS });
    loop = new EngineLoop(libc, layout, new WorkerControl(control), row, post);
  } catch (error) {
    post({ kind: "failed", message: errorMessage(error) });
    return;
  }
  post({ kind: "ready", doorbellPort: loop.doorbellPort });
  loop.run().then(
    () => post({ kind: "stopped" }),
    (error: unknown) => {
      post({ kind: "failed", message: errorMessage(error) });
      post({ kind: "stopped" });
    },
  );
}

self.onmessage = (event: MessageEvent<ToEngine>) => {
  const message = event.data;
  if (message.kind === "start") start(message.control, message.row);
  else loop?.handle(message);
};
