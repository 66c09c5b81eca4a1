/**
 * The libc functions the FFI engines call, opened with `Deno.dlopen` (only inside an engine worker,
 * which holds the FFI permission). Engines open the symbol sets they need; the socket and epoll set
 * is shared. Buffers are passed as `"buffer"` (a typed array, no pointer object on the hot path).
 * @module
 */

/** The glibc shared object (the Docker image and every supported host are glibc-based). */
export const LIBC_PATH = "libc.so.6";

/**
 * socket(2), bind(2), connect(2), setsockopt(2), getsockname(2), close(2), recv(2), epoll(7),
 * errno.
 */
export const SOCKET_SYMBOLS = {
  socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
  bind: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  connect: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  setsockopt: { parameters: ["i32", "i32", "i32", "buffer", "u32"], result: "i32" },
  getsockname: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
  close: { parameters: ["i32"], result: "i32" },
  recv: { parameters: ["i32", "buffer", "usize", "i32"], result: "isize" },
  epoll_create1: { parameters: ["i32"], result: "i32" },
  epoll_ctl: { parameters: ["i32", "i32", "i32", "buffer"], result: "i32" },
  epoll_wait: { parameters: ["i32", "buffer", "i32", "i32"], result: "i32" },
  __errno_location: { parameters: [], result: "pointer" },
} as const satisfies Deno.ForeignLibraryInterface;

/** recvmmsg(2) and sendmmsg(2): many datagrams per call. */
export const BATCH_SYMBOLS = {
  recvmmsg: { parameters: ["i32", "buffer", "u32", "i32", "pointer"], result: "i32" },
  sendmmsg: { parameters: ["i32", "buffer", "u32", "i32"], result: "i32" },
} as const satisfies Deno.ForeignLibraryInterface;

/** Opens libc with `symbols`. @throws when FFI is not permitted or a symbol is missing. */
export function openLibc<S extends Deno.ForeignLibraryInterface>(
  symbols: S,
): Deno.DynamicLibrary<S> {
  return Deno.dlopen(LIBC_PATH, symbols);
}
