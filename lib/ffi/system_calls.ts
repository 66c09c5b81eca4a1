/**
 * The few libc calls Deno has no API for, run inside the system worker (`system_worker.ts`, the
 * only thread besides the engines that holds FFI): the file descriptor limit, the number of open
 * descriptors, allow-listed `/proc` files (Deno's `--allow-read` never covers `/proc/self`), and
 * resetting a TCP connection (RST instead of FIN). Descriptors are process-wide, so these act on
 * the main thread's sockets too.
 * @module
 */

/** The libc symbols the system worker opens. */
export const SYSTEM_SYMBOLS = {
  getrlimit: { parameters: ["i32", "buffer"], result: "i32" },
  open: { parameters: ["buffer", "i32"], result: "i32" },
  read: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  close: { parameters: ["i32"], result: "i32" },
  connect: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  getsockname: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
  getpeername: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
  syscall: { parameters: ["i64", "i64", "buffer", "u64"], result: "i64" },
} as const satisfies Deno.ForeignLibraryInterface;

type Libc = Deno.DynamicLibrary<typeof SYSTEM_SYMBOLS>["symbols"];

/** The only files `readProcFile` opens: what the limit and kernel-drop metrics read. */
export const PROC_FILES: ReadonlySet<string> = new Set([
  "/proc/self/limits",
  "/proc/self/status",
  "/proc/net/snmp",
  "/proc/net/udp",
  "/proc/net/udp6",
]);

/** A TCP socket to reset: its descriptor, or its local and remote ports (found among the open ones). */
export type TcpSocketRef =
  | { readonly fd: number }
  | { readonly localPort: number; readonly remotePort: number };

const RLIMIT_NOFILE = 7;
const O_RDONLY_CLOEXEC = 0o2000000;
const O_DIRECTORY = 0o200000;
/** getdents64 syscall numbers: x86_64, and the generic table (aarch64). */
const SYS_GETDENTS64 = 217n;
const SYS_GETDENTS64_AARCH64 = 61n;
/** Most bytes of one `/proc` file. */
const PROC_FILE_MAX_BYTES = 16 * 1024 * 1024;

/** The libc calls of the system worker. */
export class SystemCalls {
  readonly #libc: Libc;

  /** @param libc libc opened with {@linkcode SYSTEM_SYMBOLS}. */
  constructor(libc: Libc) {
    this.#libc = libc;
  }

  /** The soft and hard `RLIMIT_NOFILE` of this process (`Infinity` when unlimited). */
  fileLimit(): { soft: number; hard: number } | undefined {
    const limits = new BigUint64Array(2);
    if (this.#libc.getrlimit(RLIMIT_NOFILE, new Uint8Array(limits.buffer)) !== 0) return undefined;
    const number = (value: bigint) => value >= 2n ** 53n ? Infinity : Number(value);
    return { soft: number(limits[0]!), hard: number(limits[1]!) };
  }

  /** File descriptors open in this process now (entries of `/proc/self/fd`). */
  openFdCount(): number | undefined {
    return this.#openFds()?.length;
  }

  /** The text of an allow-listed `/proc` file ({@linkcode PROC_FILES}); undefined otherwise. */
  readProcFile(path: string): string | undefined {
    if (!PROC_FILES.has(path)) return undefined;
    const libc = this.#libc;
    const fd = libc.open(cString(path), O_RDONLY_CLOEXEC);
    if (fd < 0) return undefined;
    const chunks: Uint8Array[] = [];
    let total = 0;
    try {
      while (total < PROC_FILE_MAX_BYTES) {
        const chunk = new Uint8Array(Math.min(64 * 1024, PROC_FILE_MAX_BYTES - total));
        const n = Number(libc.read(fd, chunk, BigInt(chunk.length)));
        if (n < 0) return undefined;
        if (n === 0) break;
        chunks.push(chunk.subarray(0, n));
        total += n;
      }
    } finally {
      libc.close(fd);
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
   * Aborts a TCP connection: the peer gets an RST, not a FIN (`connect(AF_UNSPEC)` disconnects
   * the socket at once; the descriptor stays open and its owner closes it as usual). False when
   * the socket is not found or not connected.
   */
  resetTcp(socket: TcpSocketRef): boolean {
    const fd = "fd" in socket ? socket.fd : this.#findSocket(socket.localPort, socket.remotePort);
    if (fd === undefined || fd < 0) return false;
    const unspecified = new Uint8Array(16); // struct sockaddr with sa_family AF_UNSPEC (0)
    return this.#libc.connect(fd, unspecified, unspecified.length) === 0;
  }

  /** The descriptor of the connected socket with these ports (checked again on a cached hit). */
  #findSocket(localPort: number, remotePort: number): number | undefined {
    const key = `${localPort}:${remotePort}`;
    const cached = this.#socketIndex(false).get(key);
    if (cached !== undefined && this.#portsOf(cached) === key) return cached;
    return this.#socketIndex(true).get(key);
  }

  /** A listing is reused this long; a miss lists again unless the listing is younger than the floor. */
  static readonly #INDEX_TTL_MS = 100;
  static readonly #INDEX_MIN_AGE_MS = 5;
  #index: { readonly atMs: number; readonly byPorts: Map<string, number> } | undefined;

  /** Open sockets by `localPort:remotePort`; `missed` asks for a fresher listing. */
  #socketIndex(missed: boolean): Map<string, number> {
    const nowMs = performance.now();
    const maxAgeMs = missed ? SystemCalls.#INDEX_MIN_AGE_MS : SystemCalls.#INDEX_TTL_MS;
    if (this.#index !== undefined && nowMs - this.#index.atMs < maxAgeMs) {
      return this.#index.byPorts;
    }
    const byPorts = new Map<string, number>();
    for (const fd of this.#openFds() ?? []) {
      const ports = this.#portsOf(fd);
      if (ports !== undefined) byPorts.set(ports, fd);
    }
    this.#index = { atMs: nowMs, byPorts };
    return byPorts;
  }

  /** `localPort:remotePort` of a connected IPv4/IPv6 socket, else undefined. */
  #portsOf(fd: number): string | undefined {
    const local = socketPort(this.#libc.getsockname, fd);
    const remote = local === undefined ? undefined : socketPort(this.#libc.getpeername, fd);
    return remote === undefined ? undefined : `${local}:${remote}`;
  }

  /** The file descriptors open in this process now, from `/proc/self/fd`. */
  #openFds(): number[] | undefined {
    const libc = this.#libc;
    const fd = libc.open(cString("/proc/self/fd"), O_DIRECTORY | O_RDONLY_CLOEXEC);
    if (fd < 0) return undefined;
    const getdents = Deno.build.arch === "aarch64" ? SYS_GETDENTS64_AARCH64 : SYS_GETDENTS64;
    const buffer = new Uint8Array(16 * 1024);
    const view = new DataView(buffer.buffer);
    const fds: number[] = [];
    try {
      for (;;) {
        const n = Number(libc.syscall(getdents, BigInt(fd), buffer, BigInt(buffer.length)));
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
      libc.close(fd);
    }
    return fds;
  }
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
