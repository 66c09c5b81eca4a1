/**
 * Raw HTTP peers on loopback for Kubernetes client tests: an HTTP CONNECT proxy (for `proxy-url`)
 * and request-head reading for hand-written answers.
 * @module
 */
import { startTcpServer, type TcpTestServer, writeAll } from "./net_tcp.ts";

/** An HTTP proxy that tunnels every CONNECT to one loopback port, whatever host was asked for. */
export interface ConnectProxy extends AsyncDisposable {
  /** `http://127.0.0.1:<port>`. */
  readonly url: string;
  /** The `host:port` of every CONNECT request, in order. */
  readonly targets: readonly string[];
}

/**
 * Reads from `conn` until the end of an HTTP request head (a blank line).
 * @returns the head, or undefined when the peer closed first
 */
export async function readRequestHead(conn: Deno.Conn): Promise<string | undefined> {
  const buffer = new Uint8Array(16 * 1024);
  const decoder = new TextDecoder();
  let head = "";
  while (!head.includes("\r\n\r\n")) {
    const n = await conn.read(buffer);
    if (n === null) return undefined;
    head += decoder.decode(buffer.subarray(0, n), { stream: true });
  }
  return head;
}

/** Starts a CONNECT proxy whose tunnels all lead to 127.0.0.1:`targetPort`. */
export function startConnectProxy(targetPort: number): ConnectProxy {
  const targets: string[] = [];
  const server: TcpTestServer = startTcpServer(async (conn) => {
    const target = /^CONNECT (\S+) HTTP\/1\.[01]\r\n/.exec(await readRequestHead(conn) ?? "")?.[1];
    if (target === undefined) {
      await writeAll(conn, new TextEncoder().encode("HTTP/1.1 405 Method Not Allowed\r\n\r\n"));
      return;
    }
    targets.push(target);
    using upstream = await Deno.connect({ hostname: "127.0.0.1", port: targetPort });
    await writeAll(conn, new TextEncoder().encode("HTTP/1.1 200 Connection established\r\n\r\n"));
    // The tunnel ends when either side ends; the caller closes `conn`, `using` closes upstream.
    await Promise.race([copy(conn, upstream), copy(upstream, conn)]);
  });
  return {
    url: `http://127.0.0.1:${server.port}`,
    targets,
    [Symbol.asyncDispose]: () => server.close(),
  };
}

async function copy(from: Deno.Conn, to: Deno.Conn): Promise<void> {
  const buffer = new Uint8Array(64 * 1024);
  try {
    for (;;) {
      const n = await from.read(buffer);
      if (n === null) return;
      await writeAll(to, buffer.subarray(0, n));
    }
  } catch {
    // One side closed: the tunnel is over.
  }
}
