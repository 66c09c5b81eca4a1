/**
 * Non-blocking UDP sockets through libc for an engine thread: a listening socket (dual-stack on
 * "::", SO_REUSEPORT when threads share the port, a large receive buffer) and a session's upstream
 * socket, connected to the target so that sends need no address and the kernel hands it only the
 * target's replies. Errors are thrown as {@linkcode OsError}s named by errno.
 * @module
 */

import type { ErrnoReader } from "../../ffi/errno.ts";
import type { AbiLayout } from "../../ffi/layout.ts";
import type { BATCH_SYMBOLS, SOCKET_SYMBOLS } from "../../ffi/libc.ts";
import { encodeSockaddr } from "../../ffi/sockaddr.ts";
import { SocketCalls } from "../../ffi/socket_calls.ts";

/** What the engine opens libc with. */
export type EngineLibc = Deno.DynamicLibrary<typeof SOCKET_SYMBOLS & typeof BATCH_SYMBOLS>;

/** Receive buffer asked for on listening sockets (the kernel caps it at net.core.rmem_max). */
const LISTEN_RCVBUF_BYTES = 4 << 20;

/** UDP socket calls of one engine thread. */
export class UdpSockets extends SocketCalls {
  readonly #libc: EngineLibc["symbols"];

  constructor(libc: EngineLibc, layout: AbiLayout, errno: ErrnoReader) {
    super(libc, layout, errno);
    this.#libc = libc.symbols;
  }

  /**
   * A bound, non-blocking UDP socket on `hostname:port` ("::" accepts IPv4 too; falls back to
   * "0.0.0.0" when the host has no IPv6).
   */
  listen(hostname: string, port: number, reusePort: boolean): number {
    return this.dualStack(hostname, (address) => this.#listen(address, port, reusePort));
  }

  /** A non-blocking socket of the target's family, connected to `target`. */
  connect(target: Uint8Array, family: 4 | 6): number {
    const fd = this.socket(family, this.layout.constants.SOCK_DGRAM);
    if (this.#libc.connect(fd, target, target.length) !== 0) this.failWith(fd, "connect");
    return fd;
  }

  #listen(hostname: string, port: number, reusePort: boolean): number {
    const { constants } = this.layout;
    const address = encodeSockaddr(this.layout, hostname, port);
    const family = address.length === this.layout.sockaddr.in4Size ? 4 : 6;
    const fd = this.socket(family, constants.SOCK_DGRAM);
    if (family === 6 && hostname === "::") {
      this.setInt(fd, constants.IPPROTO_IPV6, constants.IPV6_V6ONLY, 0);
    }
    if (reusePort) this.setInt(fd, constants.SOL_SOCKET, constants.SO_REUSEPORT, 1);
    // Best effort: a larger buffer absorbs bursts; the kernel caps it silently.
    this.trySetInt(fd, constants.SOL_SOCKET, constants.SO_RCVBUF, LISTEN_RCVBUF_BYTES);
    if (this.#libc.bind(fd, address, address.length) !== 0) this.failWith(fd, "bind");
    return fd;
  }
}
