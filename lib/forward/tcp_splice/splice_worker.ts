/**
 * Entry point of a splice TCP engine thread (started through `EngineThreads` with FFI and read
 * access to this module only): opens libc, checks the struct layouts of this machine, runs the
 * {@linkcode SpliceEngineLoop} and applies the main thread's requests between polls. Imports no
 * third-party code.
 * @module
 */

/// <reference lib="deno.worker" />

import type { EngineNotice } from "../../ffi/engine_messages.ts";
import { WorkerControl } from "../../ffi/ffi_worker.ts";
import { currentLayout } from "../../ffi/layout.ts";
import { openLibc, SOCKET_SYMBOLS, TCP_SYMBOLS } from "../../ffi/libc.ts";
import { errorMessage } from "../../util/error_message.ts";
import { SpliceEngineLoop } from "./engine_loop.ts";
import type { TcpAnswer, ToTcpEngine } from "./messages.ts";

let loop: SpliceEngineLoop | undefined;

function post(message: TcpAnswer | EngineNotice): void {
  self.postMessage(message);
}

function start(control: SharedArrayBuffer, row: number): void {
  try {
    const layout = currentLayout();
    if (layout === undefined) {
      throw new Error(`no struct layout for ${Deno.build.os}/${Deno.build.arch}`);
    }
    const libc = openLibc({ ...SOCKET_SYMBOLS, ...TCP_SYMBOLS });
    loop = new SpliceEngineLoop(libc, layout, new WorkerControl(control), row, post);
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

self.onmessage = (event: MessageEvent<ToTcpEngine>) => {
  const message = event.data;
  if (message.kind === "start") start(message.control, message.row);
  else loop?.handle(message);
};
