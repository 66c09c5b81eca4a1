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

/**
 * What the splice TCP engine adds: accept4(2), listen(2), getsockopt(2), shutdown(2), pipe2(2),
 * getrlimit(2), recv(2) and send(2) for small copies, fcntl(2) (variadic; called with one int argument, which both ABIs pass like a fixed one) and
 * splice(2). Their `size_t` lengths are declared `u32` and their `ssize_t` results `i32`: a 64-bit
 * parameter given a JS number leaves Deno's fast call path, and a 64-bit result comes back as a
 * BigInt; lengths stay below 2^31 (one pipe or buffer), so the low halves carry the whole value (a
 * zero-extended 32-bit argument; on both ABIs the kernel's result fits the low register half).
 */
export const TCP_SYMBOLS = {
  listen: { parameters: ["i32", "i32"], result: "i32" },
  accept4: { parameters: ["i32", "buffer", "buffer", "i32"], result: "i32" },
  getsockopt: { parameters: ["i32", "i32", "i32", "buffer", "buffer"], result: "i32" },
  shutdown: { parameters: ["i32", "i32"], result: "i32" },
  pipe2: { parameters: ["buffer", "i32"], result: "i32" },
  fcntl: { parameters: ["i32", "i32", "i32"], result: "i32" },
  getrlimit: { parameters: ["i32", "buffer"], result: "i32" },
  splice: { parameters: ["i32", "pointer", "i32", "pointer", "u32", "u32"], result: "i32" },
  /** recv(2) and send(2) with the same 32-bit length and result as splice. */
  recvInto: { name: "recv", parameters: ["i32", "buffer", "u32", "i32"], result: "i32" },
  send: { parameters: ["i32", "buffer", "u32", "i32"], result: "i32" },
} as const satisfies Deno.ForeignLibraryInterface;

/** Opens libc with `symbols`. @throws when FFI is not permitted or a symbol is missing. */
export function openLibc<S extends Deno.ForeignLibraryInterface>(
  symbols: S,
): Deno.DynamicLibrary<S> {
  return Deno.dlopen(LIBC_PATH, symbols);
}
