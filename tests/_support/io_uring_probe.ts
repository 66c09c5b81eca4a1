/**
 * Which native UDP engine `--udp-engine=auto` runs here: "io_uring" when this process may set up
 * an io_uring (the kernel and any seccomp profile allow it), else "batched" (epoll). Probed once,
 * through FFI (tests run with `--allow-ffi`).
 * @module
 */

import { Ring, URING_SYMBOLS } from "../../lib/ffi/io_uring.ts";

function ioUringAllowed(): boolean {
  const libc = Deno.dlopen("libc.so.6", URING_SYMBOLS);
  try {
    new Ring(libc, { entries: 2, completions: 4 }).close();
    return true;
  } catch {
    return false;
  } finally {
    libc.close();
  }
}

/** The UDP engine `auto` picks on this machine when FFI is permitted. */
export const AUTO_NATIVE_UDP_ENGINE: "io_uring" | "batched" = ioUringAllowed()
  ? "io_uring"
  : "batched";
