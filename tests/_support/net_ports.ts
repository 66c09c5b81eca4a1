/**
 * Free loopback ports for tests that need a port number before anything listens on it (a spec's
 * `listenPort`, or a closed port that refuses connections).
 * @module
 */

/** A port that is free for `transport` on `hostname` (default 127.0.0.1) right now. */
export function freePort(transport: "tcp" | "udp", hostname = "127.0.0.1"): number {
  if (transport === "tcp") {
    const listener = Deno.listen({ hostname, port: 0 });
    listener.close();
    return listener.addr.port;
  }
  const socket = Deno.listenDatagram({ transport, hostname, port: 0 });
  socket.close();
  return (socket.addr as Deno.NetAddr).port;
}
