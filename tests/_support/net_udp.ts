/**
 * UDP test peers on loopback: an echo server that records the source ports it saw (or a silent
 * sink), and a client helper for request/response with a timeout.
 * @module
 */

/** A UDP test server. */
export interface UdpTestServer extends AsyncDisposable {
  readonly hostname: string;
  readonly port: number;
  /** Source ports seen, in order of first appearance. */
  readonly sourcePorts: readonly number[];
  /** Datagrams received so far. */
  readonly received: number;
  close(): Promise<void>;
}

/**
 * Starts a UDP server on `hostname` (default 127.0.0.1), port 0, that echoes every datagram to its
 * sender, or only counts it when `echo` is false (a black hole for UDP).
 */
export function startUdpEcho(options: { hostname?: string; echo?: boolean } = {}): UdpTestServer {
  const hostname = options.hostname ?? "127.0.0.1";
  const socket = Deno.listenDatagram({ transport: "udp", hostname, port: 0 });
  const sourcePorts: number[] = [];
  const seen = new Set<number>();
  let received = 0;
  const loop = (async () => {
    const buffer = new Uint8Array(65_536);
    for (;;) {
      let data: Uint8Array;
      let from: Deno.Addr;
      try {
        [data, from] = await socket.receive(buffer);
      } catch {
        return;
      }
      received++;
      const port = (from as Deno.NetAddr).port;
      if (!seen.has(port)) {
        seen.add(port);
        sourcePorts.push(port);
      }
      if (options.echo !== false) await socket.send(data, from).catch(() => {});
    }
  })();
  const close = async () => {
    try {
      socket.close();
    } catch {
      // Already closed.
    }
    await loop;
  };
  return {
    hostname,
    port: (socket.addr as Deno.NetAddr).port,
    sourcePorts,
    get received() {
      return received;
    },
    close,
    [Symbol.asyncDispose]: close,
  };
}

/** A UDP client socket on 127.0.0.1 that closes with `using`. */
export interface UdpTestClient extends Disposable {
  readonly socket: Deno.DatagramConn;
  /** Sends `data` to `port` and resolves with the first datagram that comes back. */
  request(data: Uint8Array, port: number, timeoutMs?: number): Promise<Uint8Array>;
  /** Sends `data` to `port` without waiting. */
  send(data: Uint8Array, port: number): Promise<void>;
}

/** Opens a {@linkcode UdpTestClient}; a pending receive ends when the client is disposed. */
export function udpClient(hostname = "127.0.0.1"): UdpTestClient {
  const socket = Deno.listenDatagram({ transport: "udp", hostname, port: 0 });
  const buffer = new Uint8Array(65_536);
  const send = async (data: Uint8Array, port: number) => {
    await socket.send(data, { transport: "udp", hostname, port });
  };
  return {
    socket,
    send,
    async request(data, port, timeoutMs = 5000) {
      await send(data, port);
      const receiving = socket.receive(buffer);
      let timer: ReturnType<typeof setTimeout> | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          // Closing the socket is the only way to end a pending receive.
          socket.close();
          reject(new Error(`No UDP reply from port ${port} within ${timeoutMs} ms`));
        }, timeoutMs);
      });
      try {
        const [reply] = await Promise.race([receiving, timeout]);
        return reply.slice();
      } finally {
        clearTimeout(timer);
        receiving.catch(() => {});
      }
    },
    [Symbol.dispose]() {
      try {
        socket.close();
      } catch {
        // Closed by a timed-out request.
      }
    },
  };
}
