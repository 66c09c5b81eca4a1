/**
 * UDP test peers on loopback: an echo server that records the source ports it saw (or a silent
 * sink, or one with its own answer), a client helper for request/response with a timeout, and
 * sockets whose sends stall.
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

/** Options of {@linkcode startUdpEcho}. */
export interface UdpEchoOptions {
  /** @default "127.0.0.1" */
  readonly hostname?: string;
  /** @default 0 (any free port) */
  readonly port?: number;
  /** False: only count datagrams (a black hole for UDP). @default true */
  readonly echo?: boolean;
  /** What to answer instead of the datagram itself. */
  readonly reply?: (request: Uint8Array) => Uint8Array;
}

/**
 * Starts a UDP server on `hostname`, port 0, that echoes every datagram to its sender (or answers
 * with `reply`), or only counts it when `echo` is false.
 */
export function startUdpEcho(options: UdpEchoOptions = {}): UdpTestServer {
  const hostname = options.hostname ?? "127.0.0.1";
  const socket = Deno.listenDatagram({ transport: "udp", hostname, port: options.port ?? 0 });
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
      if (options.echo === false) continue;
      await socket.send(options.reply?.(data) ?? data, from).catch(() => {});
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
  /** Like `request()`, with the address the answer came from. */
  exchange(
    data: Uint8Array,
    port: number,
    timeoutMs?: number,
  ): Promise<{ data: Uint8Array; from: Deno.NetAddr }>;
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
  const exchange = async (data: Uint8Array, port: number, timeoutMs = 5000) => {
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
      const [reply, from] = await Promise.race([receiving, timeout]);
      return { data: reply.slice(), from: { ...from as Deno.NetAddr } };
    } finally {
      clearTimeout(timer);
      receiving.catch(() => {});
    }
  };
  return {
    socket,
    send,
    exchange,
    request: async (data, port, timeoutMs) => (await exchange(data, port, timeoutMs)).data,
    [Symbol.dispose]() {
      try {
        socket.close();
      } catch {
        // Closed by a timed-out request.
      }
    },
  };
}

/**
 * Makes the sends of real sockets stall: a full socket send buffer, which a loopback socket never
 * has (its datagrams are delivered or dropped at once). The first `count` sends over every wrapped
 * socket wait until `release()`, then go to the real socket.
 */
export class SendStalls {
  #toStall: number;
  #stalled = 0;
  readonly #waiting: Array<() => void> = [];

  /** @param count How many sends stall (the first ones, over every wrapped socket). */
  constructor(count: number) {
    this.#toStall = count;
  }

  /** Sends stalled so far. */
  get stalled(): number {
    return this.#stalled;
  }

  /** `socket`, except that its sends stall while stalls remain. */
  wrap(socket: Deno.DatagramConn): Deno.DatagramConn {
    const send = (data: Uint8Array, addr: Deno.Addr): Promise<number> => {
      if (this.#toStall === 0) return socket.send(data, addr);
      this.#toStall--;
      this.#stalled++;
      return new Promise<void>((resolve) => this.#waiting.push(resolve))
        .then(() => socket.send(data, addr));
    };
    return new Proxy(socket, {
      get(target, key) {
        if (key === "send") return send;
        const value = Reflect.get(target, key, target);
        return typeof value === "function" ? value.bind(target) : value;
      },
    });
  }

  /** Lets every stalled send go on (to its socket, which may be closed by then). */
  release(): void {
    for (const resolve of this.#waiting.splice(0)) resolve();
  }
}
