/**
 * Non-blocking UDP sockets through libc for an engine thread: a listening socket (dual-stack on
 * "::", SO_REUSEPORT when threads share the port, a large receive buffer) and a session's upstream
 * socket, connected to the target so that sends need no address and the kernel hands it only the
 * target's replies. Errors are thrown as {@linkcode OsError}s named by errno.
 * @module
 */

import { Errno, type ErrnoReader, OsError } from "../../ffi/errno.ts";
import type { AbiLayout } from "../../ffi/layout.ts";
import type { BATCH_SYMBOLS, SOCKET_SYMBOLS } from "../../ffi/libc.ts";
import { encodeSockaddr } from "../../ffi/sockaddr.ts";

/** What the engine opens libc with. */
export type EngineLibc = Deno.DynamicLibrary<typeof SOCKET_SYMBOLS & typeof BATCH_SYMBOLS>;

/** Receive buffer asked for on listening sockets (the kernel caps it at net.core.rmem_max). */
const LISTEN_RCVBUF_BYTES = 4 << 20;

/** Socket calls of one engine thread. */
export class UdpSockets {
  readonly #libc: EngineLibc["symbols"];
  readonly #layout: AbiLayout;
  readonly #errno: ErrnoReader;
  /** Scratch for option values and getsockname (allocated once). */
  readonly #int = new Uint8Array(new ArrayBuffer(4));
  readonly #name = new Uint8Array(new ArrayBuffer(32));
  readonly #nameLength = new Uint8Array(new ArrayBuffer(4));

  constructor(libc: EngineLibc, layout: AbiLayout, errno: ErrnoReader) {
    this.#libc = libc.symbols;
    this.#layout = layout;
    this.#errno = errno;
  }

  /**
   * A bound, non-blocking UDP socket on `hostname:port` ("::" accepts IPv4 too; falls back to
   * "0.0.0.0" when the host has no IPv6).
   */
  listen(hostname: string, port: number, reusePort: boolean): number {
    try {
      return this.#listen(hostname, port, reusePort);
    } catch (error) {
      if (hostname !== "::" || !(error instanceof OsError) || error.errno !== Errno.EAFNOSUPPORT) {
        throw error;
      }
      return this.#listen("0.0.0.0", port, reusePort);
    }
  }

  /** A non-blocking socket of the target's family, connected to `target`. */
  connect(target: Uint8Array, family: 4 | 6): number {
    const fd = this.#socket(family);
    if (this.#libc.connect(fd, target, target.length) !== 0) this.#failWith(fd, "connect");
    return fd;
  }

  /** The port `fd` is bound to. */
  port(fd: number): number {
    new DataView(this.#nameLength.buffer).setUint32(0, this.#name.length, true);
    if (this.#libc.getsockname(fd, this.#name, this.#nameLength) !== 0) {
      throw new OsError("getsockname", this.#errno.get());
    }
    return new DataView(this.#name.buffer).getUint16(this.#layout.sockaddr.port, false);
  }

  /** Closes `fd` (errors ignored: the descriptor is gone either way). */
  close(fd: number): void {
    this.#libc.close(fd);
  }

  #listen(hostname: string, port: number, reusePort: boolean): number {
    const { constants } = this.#layout;
    const address = encodeSockaddr(this.#layout, hostname, port);
    const family = address.length === this.#layout.sockaddr.in4Size ? 4 : 6;
    const fd = this.#socket(family);
    if (family === 6 && hostname === "::") {
      this.#setInt(fd, constants.IPPROTO_IPV6, constants.IPV6_V6ONLY, 0);
    }
    if (reusePort) this.#setInt(fd, constants.SOL_SOCKET, constants.SO_REUSEPORT, 1);
    // Best effort: a larger buffer absorbs bursts; the kernel caps it silently.
    const view = new DataView(this.#int.buffer);
    view.setInt32(0, LISTEN_RCVBUF_BYTES, true);
    this.#libc.setsockopt(fd, constants.SOL_SOCKET, constants.SO_RCVBUF, this.#int, 4);
    if (this.#libc.bind(fd, address, address.length) !== 0) this.#failWith(fd, "bind");
    return fd;
  }

  #socket(family: 4 | 6): number {
    const { constants } = this.#layout;
    const fd = this.#libc.socket(
      family === 4 ? constants.AF_INET : constants.AF_INET6,
      constants.SOCK_DGRAM | constants.SOCK_NONBLOCK | constants.SOCK_CLOEXEC,
      0,
    );
    if (fd < 0) throw new OsError("socket", this.#errno.get());
    return fd;
  }

  #setInt(fd: number, level: number, option: number, value: number): void {
    new DataView(this.#int.buffer).setInt32(0, value, true);
    if (this.#libc.setsockopt(fd, level, option, this.#int, 4) !== 0) {
      this.#failWith(fd, "setsockopt");
    }
  }

  /** Throws the current errno for `call` after closing `fd`. */
  #failWith(fd: number, call: string): never {
    const errno = this.#errno.get();
    this.#libc.close(fd);
    throw new OsError(call, errno);
  }
}
