/**
 * Non-blocking TCP sockets and pipes through libc for a splice engine thread: listening sockets
 * (dual-stack on "::", SO_REUSEPORT when threads share the port, TCP_NODELAY for the accepted
 * ones), accept4, non-blocking connect, TCP_NODELAY, half-close, abort with RST, pipes of about
 * 1 MiB, and the thread's doorbell (a UDP socket on 127.0.0.1). Errors are thrown as
 * {@linkcode OsError}s named by errno, or returned as `-errno` on the hot path.
 * @module
 */

import { Errno, type ErrnoReader, OsError } from "../../ffi/errno.ts";
import type { AbiLayout } from "../../ffi/layout.ts";
import type { SOCKET_SYMBOLS, TCP_SYMBOLS } from "../../ffi/libc.ts";
import { encodeSockaddr } from "../../ffi/sockaddr.ts";
import { SocketCalls } from "../../ffi/socket_calls.ts";

/** What the engine opens libc with. */
export type SpliceLibc = Deno.DynamicLibrary<typeof SOCKET_SYMBOLS & typeof TCP_SYMBOLS>;

/** Accept queue length asked for (the kernel caps it at net.core.somaxconn). */
const BACKLOG = 4096;

/** The two ends of a pipe. */
export interface Pipe {
  readonly read: number;
  readonly write: number;
}

/** Socket and pipe calls of one engine thread. */
export class TcpSockets extends SocketCalls {
  readonly #libc: SpliceLibc["symbols"];
  /** Scratch for getsockopt and pipe2 (allocated once). */
  readonly #int = new Uint8Array(new ArrayBuffer(8));
  readonly #intView = new DataView(this.#int.buffer);
  /** getsockopt's value length (in: room, out: used). */
  readonly #optionLength = new Uint8Array(new ArrayBuffer(4));
  /** accept4's address length (in: room, out: used). */
  readonly #peerLength = new Uint8Array(new ArrayBuffer(4));
  readonly #peerLengthView = new DataView(this.#peerLength.buffer);
  readonly #linger: Uint8Array<ArrayBuffer>;

  constructor(libc: SpliceLibc, layout: AbiLayout, errno: ErrnoReader) {
    super(libc, layout, errno);
    this.#libc = libc.symbols;
    // struct linger { l_onoff = 1, l_linger = 0 }: close() sends RST.
    this.#linger = new Uint8Array(new ArrayBuffer(layout.tcp.lingerSize));
    new DataView(this.#linger.buffer).setInt32(0, 1, true);
  }

  /**
   * A listening, non-blocking TCP socket on `hostname:port` ("::" accepts IPv4 too; falls back to
   * "0.0.0.0" when the host has no IPv6).
   */
  listen(hostname: string, port: number, reusePort: boolean): number {
    return this.dualStack(hostname, (address) => this.#listen(address, port, reusePort));
  }

  /**
   * A new non-blocking connection from `listener`, or `-errno` (EAGAIN: none waiting). With `peer`
   * (room for a `sockaddr_in6`), the client's address is written there.
   */
  accept(listener: number, peer: Uint8Array | null = null): number {
    const { constants } = this.layout;
    if (peer !== null) this.#peerLengthView.setUint32(0, peer.length, true);
    const fd = this.#libc.accept4(
      listener,
      peer,
      peer === null ? null : this.#peerLength,
      constants.SOCK_NONBLOCK | constants.SOCK_CLOEXEC,
    );
    return fd >= 0 ? fd : -this.errno.get();
  }

  /**
   * A non-blocking socket of the target's family with TCP_NODELAY, connecting to `target`;
   * `connected` is false while the connect is in progress (EPOLLOUT tells when it ends).
   */
  connect(target: Uint8Array, family: 4 | 6): { fd: number; connected: boolean } {
    const fd = this.socket(family, this.layout.tcp.SOCK_STREAM);
    this.#noDelay(fd);
    if (this.#libc.connect(fd, target, target.length) === 0) return { fd, connected: true };
    const errno = this.errno.get();
    if (errno === Errno.EINPROGRESS) return { fd, connected: false };
    this.#libc.close(fd);
    throw new OsError("connect", errno);
  }

  /** The pending error of `fd` (SO_ERROR: 0 once a connect succeeded). */
  socketError(fd: number): number {
    const { constants, tcp } = this.layout;
    this.#intView.setInt32(0, 0, true);
    new DataView(this.#optionLength.buffer).setUint32(0, 4, true);
    if (
      this.#libc.getsockopt(
        fd,
        constants.SOL_SOCKET,
        tcp.SO_ERROR,
        this.#int,
        this.#optionLength,
      ) !==
        0
    ) {
      return this.errno.get();
    }
    return this.#intView.getInt32(0, true);
  }

  /** Small writes go out at once, as on the portable engine (best effort). */
  #noDelay(fd: number): void {
    const { tcp } = this.layout;
    this.#intView.setInt32(0, 1, true);
    this.#libc.setsockopt(fd, tcp.IPPROTO_TCP, tcp.TCP_NODELAY, this.#int, 4);
  }

  /** Sends FIN (the other direction stays open); errors ignored (the peer may be gone). */
  shutdownWrite(fd: number): void {
    this.#libc.shutdown(fd, this.layout.tcp.SHUT_WR);
  }

  /** Closes `fd` with a reset (SO_LINGER 0): the peer sees an abort, never a clean end. */
  abort(fd: number): void {
    const { constants, tcp } = this.layout;
    this.#libc.setsockopt(fd, constants.SOL_SOCKET, tcp.SO_LINGER, this.#linger, tcp.lingerSize);
    this.#libc.close(fd);
  }

  /** The soft limit of open descriptors of the process (RLIMIT_NOFILE), or Infinity if unknown. */
  fileLimit(): number {
    const limit = new Uint8Array(new ArrayBuffer(16)); // struct rlimit: two 64-bit numbers
    if (this.#libc.getrlimit(this.layout.tcp.RLIMIT_NOFILE, limit) !== 0) return Infinity;
    const view = new DataView(limit.buffer);
    const soft = view.getUint32(0, true) + view.getUint32(4, true) * 2 ** 32;
    return soft >= 2 ** 53 ? Infinity : soft;
  }

  /**
   * A non-blocking pipe, resized to `bytes` when the kernel allows it (pipe-max-size,
   * pipe-user-pages-soft); `resized` false means it kept the default (64 KiB).
   */
  pipe(bytes: number): { pipe: Pipe; resized: boolean } {
    const { tcp } = this.layout;
    if (this.#libc.pipe2(this.#int, tcp.O_NONBLOCK | tcp.O_CLOEXEC) !== 0) {
      throw new OsError("pipe2", this.errno.get());
    }
    const pipe = { read: this.#intView.getInt32(0, true), write: this.#intView.getInt32(4, true) };
    const resized = this.#libc.fcntl(pipe.write, tcp.F_SETPIPE_SZ, bytes) >= 0;
    return { pipe, resized };
  }

  #listen(hostname: string, port: number, reusePort: boolean): number {
    const { constants, tcp } = this.layout;
    const address = encodeSockaddr(this.layout, hostname, port);
    const family = address.length === this.layout.sockaddr.in4Size ? 4 : 6;
    const fd = this.socket(family, this.layout.tcp.SOCK_STREAM);
    if (family === 6 && hostname === "::") {
      this.setInt(fd, constants.IPPROTO_IPV6, constants.IPV6_V6ONLY, 0);
    }
    // As Deno.listen: a port in TIME_WAIT can be bound again at once.
    this.setInt(fd, constants.SOL_SOCKET, tcp.SO_REUSEADDR, 1);
    if (reusePort) this.setInt(fd, constants.SOL_SOCKET, constants.SO_REUSEPORT, 1);
    // Accepted sockets inherit TCP_NODELAY: one setsockopt per listener, not per connection.
    this.setInt(fd, tcp.IPPROTO_TCP, tcp.TCP_NODELAY, 1);
    if (this.#libc.bind(fd, address, address.length) !== 0) this.failWith(fd, "bind");
    if (this.#libc.listen(fd, BACKLOG) !== 0) this.failWith(fd, "listen");
    return fd;
  }
}
