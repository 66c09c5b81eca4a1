/**
 * TCP test peers on loopback: a generic server, an echo server that keeps half-close semantics, a
 * black hole where `connect()` hangs, and small read/write helpers.
 * @module
 */

/** A test server; `close()` closes the listener and every accepted connection. */
export interface TcpTestServer extends AsyncDisposable {
  readonly hostname: string;
  readonly port: number;
  /** Connections accepted so far. */
  readonly accepted: number;
  /** Remote ports of the accepted connections, in order. */
  readonly remotePorts: readonly number[];
  close(): Promise<void>;
}

/** Starts a server on `hostname` (default 127.0.0.1), `port` (default 0), running `handler` per connection. */
export function startTcpServer(
  handler: (conn: Deno.TcpConn) => Promise<void>,
  options: { hostname?: string; port?: number } = {},
): TcpTestServer {
  const hostname = options.hostname ?? "127.0.0.1";
  const listener = Deno.listen({ hostname, port: options.port ?? 0 });
  const conns = new Set<Deno.TcpConn>();
  const tasks = new Set<Promise<void>>();
  const remotePorts: number[] = [];
  const loop = (async () => {
    for (;;) {
      let conn: Deno.TcpConn;
      try {
        conn = await listener.accept();
      } catch {
        return;
      }
      conns.add(conn);
      remotePorts.push(conn.remoteAddr.port);
      const task = handler(conn).catch(() => {}).finally(() => {
        conns.delete(conn);
        tasks.delete(task);
        tryClose(conn);
      });
      tasks.add(task);
    }
  })();
  const close = async () => {
    tryClose(listener);
    await loop;
    for (const conn of conns) tryClose(conn);
    await Promise.all(tasks);
  };
  return {
    hostname,
    port: listener.addr.port,
    get accepted() {
      return remotePorts.length;
    },
    remotePorts,
    close,
    [Symbol.asyncDispose]: close,
  };
}

/** Echoes every byte back; after the client's EOF it finishes echoing and half-closes. */
export function startTcpEcho(options: { hostname?: string; port?: number } = {}): TcpTestServer {
  return startTcpServer(async (conn) => {
    const buffer = new Uint8Array(64 * 1024);
    for (;;) {
      const n = await conn.read(buffer);
      if (n === null) break;
      await writeAll(conn, buffer.subarray(0, n));
    }
    await conn.closeWrite();
    // Wait for the peer to close its side too.
    await conn.read(buffer).catch(() => null);
  }, options);
}

/** A port where `connect()` hangs: a listener that never accepts, with its backlog filled. */
export interface TcpBlackHole extends AsyncDisposable {
  readonly hostname: string;
  readonly port: number;
  /**
   * Starts accepting (a hung connect gets through when its kernel sends the SYN again, after about
   * a second) and resolves with the first connection that is not one of those that filled the
   * backlog.
   */
  acceptOther(): Promise<Deno.TcpConn>;
  close(): Promise<void>;
}

/** How long a connect to a listener with room in its backlog may take before it counts as hung. */
const PROBE_MS = 1000;
/** Linux caps the backlog Deno asks for at 4096 (`somaxconn`); never try more. */
const MAX_FILL = 5000;

/** Starts a {@linkcode TcpBlackHole} on 127.0.0.1 (connects until one hangs: the backlog is full). */
export async function startTcpBlackHole(): Promise<TcpBlackHole> {
  const hostname = "127.0.0.1";
  const listener = Deno.listen({ hostname, port: 0 });
  const port = listener.addr.port;
  const fillers: Deno.TcpConn[] = [];
  const close = () => {
    for (const conn of fillers) tryClose(conn);
    tryClose(listener);
    return Promise.resolve();
  };
  for (;;) {
    if (fillers.length > MAX_FILL) {
      await close();
      throw new Error(`Cannot fill the backlog of port ${port} with ${MAX_FILL} connections`);
    }
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), PROBE_MS);
    try {
      fillers.push(await Deno.connect({ hostname, port, signal: abort.signal }));
    } catch {
      break; // This connect hung: the backlog is full.
    } finally {
      clearTimeout(timer);
    }
  }
  const acceptOther = async () => {
    const fillerPorts = new Set(fillers.map((conn) => conn.localAddr.port));
    for await (const conn of listener) {
      if (!fillerPorts.has(conn.remoteAddr.port)) return conn;
      tryClose(conn);
    }
    throw new Error(`The listener of port ${port} closed`);
  };
  return { hostname, port, acceptOther, close, [Symbol.asyncDispose]: close };
}

/** Writes all of `data`. */
export async function writeAll(conn: Deno.Conn, data: Uint8Array): Promise<void> {
  for (let written = 0; written < data.length;) {
    written += await conn.write(data.subarray(written));
  }
}

/** Writes `data` and half-closes while reading everything the peer sends until its EOF. */
export async function echoThrough(conn: Deno.TcpConn, data: Uint8Array): Promise<Uint8Array> {
  const reading = readAll(conn);
  await writeAll(conn, data);
  await conn.closeWrite();
  return await reading;
}

/** Reads until EOF. */
export async function readAll(conn: Deno.Conn): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  const buffer = new Uint8Array(64 * 1024);
  for (;;) {
    const n = await conn.read(buffer);
    if (n === null) break;
    chunks.push(buffer.slice(0, n));
  }
  return concat(chunks);
}

/** Reads exactly `length` bytes; throws on an early EOF. */
export async function readExactly(conn: Deno.Conn, length: number): Promise<Uint8Array> {
  const result = new Uint8Array(length);
  for (let filled = 0; filled < length;) {
    const n = await conn.read(result.subarray(filled));
    if (n === null) throw new Error(`EOF after ${filled} of ${length} bytes`);
    filled += n;
  }
  return result;
}

/** `length` bytes of a repeatable pseudo-random pattern (cheap, not crypto). */
export function patternBytes(length: number, seed = 1): Uint8Array {
  const bytes = new Uint8Array(length);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    bytes[i] = x & 0xff;
  }
  return bytes;
}

/** The bytes of `chunks`, one after the other. */
export function concat(chunks: Uint8Array[]): Uint8Array {
  const result = new Uint8Array(chunks.reduce((sum, chunk) => sum + chunk.length, 0));
  let offset = 0;
  for (const chunk of chunks) {
    result.set(chunk, offset);
    offset += chunk.length;
  }
  return result;
}

function tryClose(closer: { close(): void }): void {
  try {
    closer.close();
  } catch {
    // Already closed.
  }
}
