/**
 * The shape of a per-architecture struct layout module (`layout_x86_64.ts`, `layout_aarch64.ts`);
 * `layout.ts` picks the one of the running machine.
 * @module
 */

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
  /**
   * `struct cmsghdr` carrying one `uint16_t` (UDP_SEGMENT): header size, field offsets and the
   * `CMSG_SPACE` / `CMSG_LEN` of a 2-byte payload.
   */
  readonly cmsg: {
    readonly headerSize: number;
    readonly len: number;
    readonly level: number;
    readonly type: number;
    readonly u16Space: number;
    readonly u16Len: number;
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
    readonly SOL_UDP: number;
    /** UDP generic segmentation offload: one send of equal-size datagrams (Linux 4.18+). */
    readonly UDP_SEGMENT: number;
  };
  /** What the splice TCP engine adds (asm-generic values: the same on x86-64 and aarch64). */
  readonly tcp: {
    readonly SOCK_STREAM: number;
    readonly SO_REUSEADDR: number;
    readonly SO_ERROR: number;
    readonly SO_KEEPALIVE: number;
    readonly SO_LINGER: number;
    /** `struct linger` (two ints). */
    readonly lingerSize: number;
    readonly IPPROTO_TCP: number;
    readonly TCP_NODELAY: number;
    readonly SHUT_WR: number;
    readonly MSG_NOSIGNAL: number;
    readonly O_NONBLOCK: number;
    readonly O_CLOEXEC: number;
    readonly F_SETPIPE_SZ: number;
    readonly SPLICE_F_MOVE: number;
    readonly SPLICE_F_NONBLOCK: number;
    readonly EPOLL_CTL_MOD: number;
    readonly EPOLLOUT: number;
    readonly EPOLLERR: number;
    readonly EPOLLHUP: number;
    readonly EPOLLRDHUP: number;
    /** 1 << 31: stored as an unsigned 32-bit number. */
    readonly EPOLLET: number;
    readonly RLIMIT_NOFILE: number;
  };
}
