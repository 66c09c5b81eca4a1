/**
 * Clients from chosen loopback source addresses (127.0.0.2, 127.0.0.3, ... are distinct sources on
 * Linux without setup), for source allow-lists and per-source limits. `Deno.connect` cannot choose
 * its local address, so TCP clients use `node:net` with `localAddress`.
 * @module
 */

import net from "node:net";

/** A TCP client connected from a chosen source address. */
export interface SourcedTcpClient extends AsyncDisposable {
  /** Resolves when the proxy closed (or reset) the connection. */
  readonly closed: Promise<void>;
  /**
   * Writes `text` and resolves with what came back: `text` when an echo target answered, less
   * (usually "") when the connection was closed first.
   */
  echo(text: string, timeoutMs?: number): Promise<string>;
  close(): Promise<void>;
}

/** Connects from `source` to `hostname:port` (resolves once connected, or closed at once). */
export function tcpFrom(
  source: string,
  port: number,
  hostname = source.includes(":") ? "::1" : "127.0.0.1",
): Promise<SourcedTcpClient> {
  const socket = net.connect({ host: hostname, port, localAddress: source });
  let received = "";
  let wake: (() => void) | undefined;
  const closed = new Promise<void>((resolve) => {
    socket.on("close", () => {
      resolve();
      wake?.();
    });
  });
  socket.on("error", () => {});
  socket.on("data", (chunk: Uint8Array) => {
    received += new TextDecoder().decode(chunk);
    wake?.();
  });
  let ended = false;
  closed.then(() => ended = true);
  const close = async () => {
    socket.destroy();
    await closed;
  };
  const client: SourcedTcpClient = {
    closed,
    async echo(text, timeoutMs = 5000) {
      const start = received.length;
      if (!ended) socket.write(text);
      const deadline = Date.now() + timeoutMs;
      while (!ended && received.length - start < text.length && Date.now() < deadline) {
        let timer: ReturnType<typeof setTimeout> | undefined;
        await new Promise<void>((resolve) => {
          wake = resolve;
          timer = setTimeout(resolve, Math.max(1, deadline - Date.now()));
        });
        clearTimeout(timer);
      }
      return received.slice(start);
    },
    close,
    [Symbol.asyncDispose]: close,
  };
  return new Promise((resolve) => {
    socket.once("connect", () => resolve(client));
    closed.then(() => resolve(client));
  });
}

/** A UDP socket bound to a chosen source address that closes with `using`. */
export interface SourcedUdpClient extends Disposable {
  /** Sends `text` to `to:port` and resolves with the answer, or undefined after `timeoutMs`. */
  request(text: string, port: number, timeoutMs?: number): Promise<string | undefined>;
}

/** A UDP client on `source` (any port) sending to `to` (default the loopback of its family). */
export function udpFrom(
  source: string,
  to = source.includes(":") ? "::1" : "127.0.0.1",
): SourcedUdpClient {
  const socket = Deno.listenDatagram({ transport: "udp", hostname: source, port: 0 });
  const buffer = new Uint8Array(2048);
  let pending: Promise<[Uint8Array, Deno.Addr]> | undefined;
  return {
    async request(text, port, timeoutMs = 1000) {
      await socket.send(new TextEncoder().encode(text), { transport: "udp", hostname: to, port });
      pending ??= socket.receive(buffer);
      let timer: ReturnType<typeof setTimeout> | undefined;
      const timeout = new Promise<undefined>((resolve) => {
        timer = setTimeout(() => resolve(undefined), timeoutMs);
      });
      try {
        const result = await Promise.race([pending, timeout]);
        if (result === undefined) return undefined;
        pending = undefined;
        return new TextDecoder().decode(result[0]);
      } finally {
        clearTimeout(timer);
      }
    },
    [Symbol.dispose]() {
      pending?.catch(() => {});
      socket.close();
    },
  };
}
