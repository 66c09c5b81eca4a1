/**
 * The socket calls both native engines make alike (the UDP and TCP socket modules extend it):
 * non-blocking sockets, options, the bound port, close, and the thread's doorbell (a UDP socket on
 * 127.0.0.1 the main thread sends a datagram to, to wake `epoll_wait`). Errors are thrown as
 * {@linkcode OsError}s named by errno.
 * @module
 */

import { Errno, type ErrnoReader, OsError } from "./errno.ts";
import type { AbiLayout } from "./layout.ts";
import type { SOCKET_SYMBOLS } from "./libc.ts";
import { encodeSockaddr } from "./sockaddr.ts";

/** Room for one doorbell datagram (they carry no data); `size_t` is a BigInt in Deno's FFI. */
const DOORBELL_BYTES = 16;
const DOORBELL_BYTES_T = BigInt(DOORBELL_BYTES);

/** Socket calls of one engine thread. */
export class SocketCalls {
  protected readonly layout: AbiLayout;
  protected readonly errno: ErrnoReader;
  readonly #libc: Deno.DynamicLibrary<typeof SOCKET_SYMBOLS>["symbols"];
  /** Scratch for option values and getsockname (allocated once). */
  readonly #int = new Uint8Array(new ArrayBuffer(4));
  readonly #name = new Uint8Array(new ArrayBuffer(32));
  readonly #nameLength = new Uint8Array(new ArrayBuffer(4));
  readonly #doorbellBuffer = new Uint8Array(new ArrayBuffer(DOORBELL_BYTES));

  constructor(
    libc: Deno.DynamicLibrary<typeof SOCKET_SYMBOLS>,
    layout: AbiLayout,
    errno: ErrnoReader,
  ) {
    this.#libc = libc.symbols;
    this.layout = layout;
    this.errno = errno;
  }

  /** A non-blocking UDP socket on 127.0.0.1 (port chosen by the kernel): the thread's doorbell. */
  doorbell(): number {
    const fd = this.socket(4, this.layout.constants.SOCK_DGRAM);
    const address = encodeSockaddr(this.layout, "127.0.0.1", 0);
    if (this.#libc.bind(fd, address, address.length) !== 0) this.failWith(fd, "bind");
    return fd;
  }

  /** Reads every pending datagram of the doorbell `fd` (they only wake the thread). */
  drainDoorbell(fd: number): void {
    const { MSG_DONTWAIT } = this.layout.constants;
    while (this.#libc.recv(fd, this.#doorbellBuffer, DOORBELL_BYTES_T, MSG_DONTWAIT) >= 0);
  }

  /** The local address of `fd` (a `sockaddr_in` or `sockaddr_in6`, copied). */
  localAddress(fd: number): Uint8Array {
    const length = new DataView(this.#nameLength.buffer);
    length.setUint32(0, this.#name.length, true);
    if (this.#libc.getsockname(fd, this.#name, this.#nameLength) !== 0) {
      throw new OsError("getsockname", this.errno.get());
    }
    return this.#name.slice(0, Math.min(this.#name.length, length.getUint32(0, true)));
  }

  /** The port `fd` is bound to. */
  port(fd: number): number {
    return new DataView(this.localAddress(fd).buffer).getUint16(this.layout.sockaddr.port, false);
  }

  /** Closes `fd` (errors ignored: the descriptor is gone either way). */
  close(fd: number): void {
    this.#libc.close(fd);
  }

  /**
   * `bind(hostname)` for a listener; when `hostname` is "::" and the host has no IPv6, for
   * "0.0.0.0" instead.
   */
  protected dualStack(hostname: string, bind: (hostname: string) => number): number {
    try {
      return bind(hostname);
    } catch (error) {
      if (hostname !== "::" || !(error instanceof OsError) || error.errno !== Errno.EAFNOSUPPORT) {
        throw error;
      }
      return bind("0.0.0.0");
    }
  }

  /** A non-blocking, close-on-exec socket of `family` and `type` (SOCK_DGRAM, SOCK_STREAM). */
  protected socket(family: 4 | 6, type: number): number {
    const { constants } = this.layout;
    const fd = this.#libc.socket(
      family === 4 ? constants.AF_INET : constants.AF_INET6,
      type | constants.SOCK_NONBLOCK | constants.SOCK_CLOEXEC,
      0,
    );
    if (fd < 0) throw new OsError("socket", this.errno.get());
    return fd;
  }

  /** Sets an int option; closes `fd` and throws when refused. */
  protected setInt(fd: number, level: number, option: number, value: number): void {
    if (!this.trySetInt(fd, level, option, value)) this.failWith(fd, "setsockopt");
  }

  /** Sets an int option; false when refused. */
  protected trySetInt(fd: number, level: number, option: number, value: number): boolean {
    new DataView(this.#int.buffer).setInt32(0, value, true);
    return this.#libc.setsockopt(fd, level, option, this.#int, 4) === 0;
  }

  /** Throws the current errno for `call` after closing `fd`. */
  protected failWith(fd: number, call: string): never {
    const errno = this.errno.get();
    this.#libc.close(fd);
    throw new OsError(call, errno);
  }
}
