/**
 * Entry point of a splice TCP engine thread (started through `EngineThreads` with FFI and read
 * access to this module only): opens libc and runs the {@linkcode SpliceEngineLoop}, which applies
 * the main thread's requests between polls (see `serveEngineThread`). Imports no third-party code.
 * @module
 */

import { serveEngineThread } from "../../ffi/engine_thread_entry.ts";
import { openLibc, SOCKET_SYMBOLS, TCP_SYMBOLS } from "../../ffi/libc.ts";
import { SpliceEngineLoop } from "./engine_loop.ts";
import type { ToTcpEngine } from "./messages.ts";

serveEngineThread<ToTcpEngine>((layout, control, row, post) =>
  new SpliceEngineLoop(openLibc({ ...SOCKET_SYMBOLS, ...TCP_SYMBOLS }), layout, control, row, post)
);
