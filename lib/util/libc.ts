/**
 * The few libc calls Deno has no API for, through FFI (`--allow-ffi`): the file descriptor limit, the
 * number of open descriptors, `/proc` files (Deno's `--allow-read` never covers `/proc/self`), and
 * resetting a TCP connection (RST instead of FIN). Every function returns `undefined`/`false` when
 * FFI is not permitted or libc is not there, so callers keep a portable fallback.
 * @module
 */

const SYMBOLS = {
  getrlimit: { parameters: ["i32", "buffer"], result: "i32" },
  open: { parameters: ["buffer", "i32"], result: "i32" },
  read: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  close: { parameters: ["i32"], result: "i32" },
  connect: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  getsockname: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
  getpeername: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
  syscall: { parameters: ["i64", "i64", "buffer", "u64"], result: "i64" },
} as const;

type Libc = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];

const RLIMIT_NOFILE = 7;
const O_RDONLY_CLOEXEC = 0o2000000;
const O_DIRECTORY = 0o200000;
/** getdents64 syscall numbers: x86_64, and the generic table (aarch64). */
const SYS_GETDENTS64 = 217n;
const SYS_GETDENTS64_AARCH64 = 61n;

let loaded: Libc | null | undefined;

function libc(): Libc | undefined {
  if (loaded === undefined) {
    loaded = null;
    try {
      if (Deno.permissions.querySync({ name: "ffi" }).state === "granted") {
        loaded = Deno.dlopen("libc.so.6", SYMBOLS).symbols;
      }
    } catch {
      // No glibc (e.g. musl) or no permission: the callers' fallbacks apply.
    }
  }
  return loaded ?? undefined;
}

/** True when the libc calls below work (FFI permitted, glibc present). */
export function libcAvailable(): boolean {
  return libc() !== undefined;
}

/** The soft and hard `RLIMIT_NOFILE` of this process (`Infinity` when unlimited). */
export function fileLimit(): { soft: number; hard: number } | undefined {
  const symbols = libc();
  if (symbols === undefined) return undefined;
  const limits = new BigUint64Array(2);
  if (symbols.getrlimit(RLIMIT_NOFILE, new Uint8Array(limits.buffer)) !== 0) return undefined;
  const number = (value: bigint) => value >= 2n ** 53n ? Infinity : Number(value);
  return { soft: number(limits[0]!), hard: number(limits[1]!) };
}

/** File descriptors open in this process now (entries of `/proc/self/fd`). */
export function openFdCount(): number | undefined {
  return openFds()?.length;
}

/** The file descriptors open in this process now, from `/proc/self/fd`. */
function openFds(): number[] | undefined {
  const symbols = libc();
  if (symbols === undefined) return undefined;
  const fd = symbols.open(cString("/proc/self/fd"), O_DIRECTORY | O_RDONLY_CLOEXEC);
  if (fd < 0) return undefined;
  const getdents = Deno.build.arch === "aarch64" ? SYS_GETDENTS64_AARCH64 : SYS_GETDENTS64;
  const buffer = new Uint8Array(16 * 1024);
  const view = new DataView(buffer.buffer);
  const fds: number[] = [];
  try {
    for (;;) {
      const n = Number(symbols.syscall(getdents, BigInt(fd), buffer, BigInt(buffer.length)));
      if (n < 0) return undefined;
      if (n === 0) break;
      // struct linux_dirent64: ino (8), off (8), reclen (2), type (1), name (NUL-terminated).
      for (let offset = 0; offset < n; offset += view.getUint16(offset + 16, true)) {
        const end = buffer.indexOf(0, offset + 19);
        const name = new TextDecoder().decode(buffer.subarray(offset + 19, end));
        if (/^\d+$/.test(name) && Number(name) !== fd) fds.push(Number(name));
      }
    }
  } finally {
    symbols.close(fd);
  }
  return fds;
}

/** The text of a `/proc` file (bounded to `maxBytes`), read without Deno's `/proc` restriction. */
export function readProcFile(path: string, maxBytes = 1024 * 1024): string | undefined {
  const symbols = libc();
  if (symbols === undefined) return undefined;
  const fd = symbols.open(cString(path), O_RDONLY_CLOEXEC);
  if (fd < 0) return undefined;
  const chunks: Uint8Array[] = [];
  let total = 0;
  try {
    while (total < maxBytes) {
      const chunk = new Uint8Array(Math.min(64 * 1024, maxBytes - total));
      const n = Number(symbols.read(fd, chunk, BigInt(chunk.length)));
      if (n < 0) return undefined;
      if (n === 0) break;
      chunks.push(chunk.subarray(0, n));
      total += n;
    }
  } finally {
    symbols.close(fd);
  }
  const bytes = new Uint8Array(total);
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.length;
  }
  return new TextDecoder().decode(bytes);
}

/**
 * Aborts a TCP connection: the peer gets an RST, not a FIN (`connect(AF_UNSPEC)` disconnects the
 * socket at once; the descriptor stays open and Deno closes it as usual). False when that is not
 * possible here; the caller then just closes.
 */
export function resetTcp(conn: Deno.TcpConn): boolean {
  const symbols = libc();
  const fd = symbols === undefined ? undefined : descriptorOf(conn);
  if (symbols === undefined || fd === undefined) return false;
  const unspecified = new Uint8Array(16); // struct sockaddr with sa_family AF_UNSPEC (0)
  return symbols.connect(fd, unspecified, unspecified.length) === 0;
}

/**
 * The file descriptor of a connection: Deno keeps it on accepted connections (an internal symbol);
 * for connections it dialed, it is found by local and remote port among the open sockets (aborts
 * are rare; one listing serves the aborts of the next 100 ms).
 */
function descriptorOf(conn: Deno.TcpConn): number | undefined {
  const symbol = Object.getOwnPropertySymbols(conn).find((s) =>
    s.description === "Deno.internal.fd"
  );
  const fd = symbol === undefined
    ? undefined
    : (conn as unknown as Record<symbol, unknown>)[symbol];
  if (typeof fd === "number" && fd >= 0) return fd;
  try {
    const key = `${conn.localAddr.port}:${conn.remoteAddr.port}`;
    return socketIndex(false).get(key) ?? socketIndex(true).get(key);
  } catch {
    return undefined; // closed meanwhile: no address any more
  }
}

/** A listing is reused this long; a miss lists again unless the listing is younger than the floor. */
const SOCKET_INDEX_TTL_MS = 100;
const SOCKET_INDEX_MIN_AGE_MS = 5;
let socketIndexCache: { readonly atMs: number; readonly byPorts: Map<string, number> } | undefined;

/** Open sockets by `localPort:remotePort`; `missed` asks for a fresher listing. */
function socketIndex(missed: boolean): Map<string, number> {
  const nowMs = performance.now();
  const maxAgeMs = missed ? SOCKET_INDEX_MIN_AGE_MS : SOCKET_INDEX_TTL_MS;
  if (socketIndexCache !== undefined && nowMs - socketIndexCache.atMs < maxAgeMs) {
    return socketIndexCache.byPorts;
  }
  const byPorts = new Map<string, number>();
  const symbols = libc();
  if (symbols !== undefined) {
    for (const fd of openFds() ?? []) {
      const local = socketPort(symbols.getsockname, fd);
      const remote = local === undefined ? undefined : socketPort(symbols.getpeername, fd);
      if (remote !== undefined) byPorts.set(`${local}:${remote}`, fd);
    }
  }
  socketIndexCache = { atMs: nowMs, byPorts };
  return byPorts;
}

/** The port of an IPv4/IPv6 socket address from `getsockname`/`getpeername`, else undefined. */
function socketPort(
  call: (fd: number, address: Uint8Array, length: Uint8Array) => number,
  fd: number,
): number | undefined {
  const address = new Uint8Array(128);
  const length = new Uint32Array([address.length]);
  if (call(fd, address, new Uint8Array(length.buffer)) !== 0) return undefined;
  const family = address[0]! | (address[1]! << 8);
  if (family !== 2 && family !== 10) return undefined; // AF_INET, AF_INET6
  return (address[2]! << 8) | address[3]!;
}

function cString(text: string): Uint8Array<ArrayBuffer> {
  return new TextEncoder().encode(`${text}\0`);
}
