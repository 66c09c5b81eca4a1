/**
 * Struct layouts and constants of the Linux C ABI that the FFI engines use, one module per
 * architecture (`layout_x86_64.ts`, `layout_aarch64.ts`); this module picks the one for the running
 * machine. Nothing else in the program hard-codes an offset or a struct size.
 * @module
 */

import { LAYOUT_AARCH64 } from "./layout_aarch64.ts";
import { LAYOUT_X86_64 } from "./layout_x86_64.ts";

/** Offsets and sizes (bytes) of the structs the engines build, and the constants they pass. */
export interface AbiLayout {
  readonly arch: "x86_64" | "aarch64";
  /** `struct epoll_event`: packed (12 bytes) on x86-64, naturally aligned (16) on aarch64. */
  readonly epollEvent: { readonly size: number; readonly events: number; readonly data: number };
  /** `struct iovec`. */
  readonly iovec: { readonly size: number; readonly base: number; readonly len: number };
  /** `struct mmsghdr`: a `struct msghdr` followed by `msg_len`. */
  readonly mmsghdr: {
    readonly size: number;
    readonly name: number;
    readonly nameLen: number;
    readonly iov: number;
    readonly iovLen: number;
    readonly control: number;
    readonly controlLen: number;
    readonly flags: number;
    readonly len: number;
  };
  /** `struct sockaddr_in` / `sockaddr_in6` sizes and field offsets. */
  readonly sockaddr: {
    readonly in4Size: number;
    readonly in6Size: number;
    readonly family: number;
    readonly port: number;
    readonly in4Addr: number;
    readonly in6Addr: number;
  };
  /** `socklen_t` of the largest address (`sockaddr_in6`). */
  readonly maxSockaddrSize: number;
  readonly constants: {
    readonly AF_INET: number;
    readonly AF_INET6: number;
    readonly SOCK_DGRAM: number;
    readonly SOCK_NONBLOCK: number;
    readonly SOCK_CLOEXEC: number;
    readonly SOL_SOCKET: number;
    readonly SO_REUSEPORT: number;
    readonly SO_RCVBUF: number;
    readonly SO_SNDBUF: number;
    readonly IPPROTO_IPV6: number;
    readonly IPV6_V6ONLY: number;
    readonly MSG_TRUNC: number;
    readonly MSG_DONTWAIT: number;
    readonly MSG_WAITFORONE: number;
    readonly EPOLL_CLOEXEC: number;
    readonly EPOLL_CTL_ADD: number;
    readonly EPOLL_CTL_DEL: number;
    readonly EPOLLIN: number;
  };
}

/** The layout of the running machine, or undefined when it is not Linux on x86-64 or aarch64. */
export function currentLayout(): AbiLayout | undefined {
  if (Deno.build.os !== "linux") return undefined;
  if (Deno.build.arch === "x86_64") return LAYOUT_X86_64;
  if (Deno.build.arch === "aarch64") return LAYOUT_AARCH64;
  return undefined;
}
