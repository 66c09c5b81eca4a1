/**
 * Entry point of a batched UDP engine thread (started through `EngineThreads` with FFI and read
 * access to this module only): opens libc and runs the {@linkcode EngineLoop}, which applies the
 * main thread's messages between polls (see `serveEngineThread`). Imports no third-party code.
 * @module
 */

import { serveEngineThread } from "../../ffi/engine_thread_entry.ts";
import { BATCH_SYMBOLS, openLibc, SOCKET_SYMBOLS } from "../../ffi/libc.ts";
import { URING_SYMBOLS } from "../../ffi/io_uring.ts";
import { EngineLoop } from "./engine_loop.ts";
import type { ToEngine } from "./messages.ts";

serveEngineThread<ToEngine>((layout, control, row, post) =>
  new EngineLoop(
    openLibc({ ...SOCKET_SYMBOLS, ...BATCH_SYMBOLS }),
    openLibc(URING_SYMBOLS),
    layout,
    control,
    row,
    post,
  )
);
