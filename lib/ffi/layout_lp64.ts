/**
 * What the struct layouts and constants of the supported architectures share: both are LP64 Linux
 * with the same `iovec`, `msghdr`, `sockaddr`, `cmsghdr` and the asm-generic constants the engines
 * use; only `struct epoll_event` differs (see `layout_x86_64.ts`, `layout_aarch64.ts`).
 * @module
 */

import type { AbiLayout } from "./abi_layout.ts";

/** The part of {@linkcode AbiLayout} that is the same on x86-64 and aarch64 Linux. */
export const LP64_LINUX: Omit<AbiLayout, "arch" | "epollEvent"> = {
  iovec: { size: 16, base: 0, len: 8 },
  mmsghdr: {
    size: 64,
    name: 0,
    nameLen: 8,
    iov: 16,
    iovLen: 24,
    control: 32,
    controlLen: 40,
    flags: 48,
    len: 56,
  },
  sockaddr: { in4Size: 16, in6Size: 28, family: 0, port: 2, in4Addr: 4, in6Addr: 8 },
  cmsg: { headerSize: 16, len: 0, level: 8, type: 12, u16Space: 24, u16Len: 18 },
  maxSockaddrSize: 28,
  constants: {
    AF_INET: 2,
    AF_INET6: 10,
    SOCK_DGRAM: 2,
    SOCK_NONBLOCK: 0o4000,
    SOCK_CLOEXEC: 0o2000000,
    SOL_SOCKET: 1,
    SO_REUSEPORT: 15,
    SO_RCVBUF: 8,
    SO_SNDBUF: 7,
    IPPROTO_IPV6: 41,
    IPV6_V6ONLY: 26,
    MSG_TRUNC: 0x20,
    MSG_DONTWAIT: 0x40,
    MSG_WAITFORONE: 0x10000,
    EPOLL_CLOEXEC: 0o2000000,
    EPOLL_CTL_ADD: 1,
    EPOLL_CTL_DEL: 2,
    EPOLLIN: 0x001,
    SOL_UDP: 17,
    UDP_SEGMENT: 103,
  },
  tcp: {
    SOCK_STREAM: 1,
    SO_REUSEADDR: 2,
    SO_ERROR: 4,
    SO_KEEPALIVE: 9,
    SO_LINGER: 13,
    lingerSize: 8,
    IPPROTO_TCP: 6,
    TCP_NODELAY: 1,
    SHUT_WR: 1,
    MSG_NOSIGNAL: 0x4000,
    O_NONBLOCK: 0o4000,
    O_CLOEXEC: 0o2000000,
    F_SETPIPE_SZ: 1031,
    SPLICE_F_MOVE: 1,
    SPLICE_F_NONBLOCK: 2,
    EPOLL_CTL_MOD: 3,
    EPOLLOUT: 0x004,
    EPOLLERR: 0x008,
    EPOLLHUP: 0x010,
    EPOLLRDHUP: 0x2000,
    EPOLLET: 0x80000000,
    RLIMIT_NOFILE: 7,
  },
};
