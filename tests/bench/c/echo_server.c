// Benchmark target: a single-threaded epoll echo server on 127.0.0.1.
//   bench_echo tcp PORT   echo every byte back on each TCP connection
//   bench_echo udp PORT   echo every datagram back to its sender (recvmmsg/sendmmsg batches)
// PORT 0 picks a free port. Prints "ready PORT" once listening, then serves until killed.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#define BATCH 64
#define UDP_MAX 65536

static void die(const char *what) {
  perror(what);
  exit(1);
}

static int bound_socket(int type, int port) {
  int fd = socket(AF_INET, type, 0);
  if (fd < 0) die("socket");
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  int bufBytes = 4 << 20;
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bufBytes, sizeof bufBytes);
  setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &bufBytes, sizeof bufBytes);
  struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(port)};
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(fd, (struct sockaddr *)&addr, sizeof addr) < 0) die("bind");
  return fd;
}

static void announce(int fd) {
  struct sockaddr_in addr;
  socklen_t len = sizeof addr;
  getsockname(fd, (struct sockaddr *)&addr, &len);
  printf("ready %d\n", ntohs(addr.sin_port));
  fflush(stdout);
}

// Writes all of buf, waiting for writability when the socket buffer is full.
static int write_all(int fd, const char *buf, ssize_t len) {
  while (len > 0) {
    ssize_t n = write(fd, buf, len);
    if (n < 0) {
      if (errno == EAGAIN) {
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        poll(&p, 1, 1000);
        continue;
      }
      return -1;
    }
    buf += n;
    len -= n;
  }
  return 0;
}

static void serve_tcp(int port) {
  int lfd = bound_socket(SOCK_STREAM | SOCK_NONBLOCK, port);
  if (listen(lfd, 4096) < 0) die("listen");
  int ep = epoll_create1(0);
  struct epoll_event ev = {.events = EPOLLIN, .data.fd = lfd};
  epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
  announce(lfd);
  static char buf[256 * 1024];
  struct epoll_event events[BATCH];
  for (;;) {
    int n = epoll_wait(ep, events, BATCH, -1);
    for (int i = 0; i < n; i++) {
      int fd = events[i].data.fd;
      if (fd == lfd) {
        int c;
        while ((c = accept4(lfd, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
          int one = 1;
          setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
          struct epoll_event cev = {.events = EPOLLIN, .data.fd = c};
          epoll_ctl(ep, EPOLL_CTL_ADD, c, &cev);
        }
        continue;
      }
      ssize_t got = read(fd, buf, sizeof buf);
      if (got > 0 && write_all(fd, buf, got) == 0) continue;
      if (got < 0 && errno == EAGAIN) continue;
      close(fd);  // EOF or error: the peer is done
    }
  }
}

static void serve_udp(int port) {
  int fd = bound_socket(SOCK_DGRAM, port);
  announce(fd);
  static char bufs[BATCH][UDP_MAX];
  struct sockaddr_in addrs[BATCH];
  struct iovec iovs[BATCH];
  struct mmsghdr msgs[BATCH];
  for (;;) {
    for (int i = 0; i < BATCH; i++) {
      iovs[i] = (struct iovec){.iov_base = bufs[i], .iov_len = UDP_MAX};
      msgs[i].msg_hdr = (struct msghdr){.msg_name = &addrs[i],
                                        .msg_namelen = sizeof addrs[i],
                                        .msg_iov = &iovs[i],
                                        .msg_iovlen = 1};
    }
    int n = recvmmsg(fd, msgs, BATCH, MSG_WAITFORONE, NULL);
    if (n < 0) continue;
    for (int i = 0; i < n; i++) iovs[i].iov_len = msgs[i].msg_len;
    int sent = 0;
    while (sent < n) {
      int s = sendmmsg(fd, msgs + sent, n - sent, 0);
      if (s <= 0) break;  // a send error drops the rest of the batch, like a lossy network
      sent += s;
    }
  }
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: %s tcp|udp PORT\n", argv[0]);
    return 2;
  }
  struct rlimit lim;
  if (getrlimit(RLIMIT_NOFILE, &lim) == 0) {
    lim.rlim_cur = lim.rlim_max;
    setrlimit(RLIMIT_NOFILE, &lim);
  }
  int port = atoi(argv[2]);
  if (strcmp(argv[1], "tcp") == 0) serve_tcp(port);
  if (strcmp(argv[1], "udp") == 0) serve_udp(port);
  fprintf(stderr, "unknown protocol %s (expected tcp or udp)\n", argv[1]);
  return 2;
}
