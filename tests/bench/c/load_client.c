// Benchmark load generator (single thread, epoll), always against 127.0.0.1.
//   bench_load tcp-rate PORT CONNS CONCURRENCY SECONDS SIZE
//       short connections: connect, SIZE-byte echo, close; CONCURRENCY in flight until CONNS are done
//       or SECONDS passed. Prints JSON {done, errors, elapsedNs, latUs[]} (connect to last echo byte).
//   bench_load tcp-hold PORT COUNT
//       opens COUNT connections, echoes one byte on each, prints "ready", waits for a line or EOF on
//       stdin, closes them all, prints "closed".
//   bench_load udp-rr PORT SESSIONS SIZE WINDOW SECONDS [WARMUP_SECONDS]
//       SESSIONS sockets (one per client session); after one warm-up round trip per session keeps
//       WINDOW datagrams in flight round-robin over the sessions, for WARMUP_SECONDS (then prints
//       "measuring") and then SECONDS. Prints JSON {sessions, warm, received, lost, elapsedNs} of
//       the SECONDS.
//   bench_load udp-hold PORT SESSIONS
//       the warm-up round trip of udp-rr, then "ready", wait for stdin, close, "closed".
//   bench_load udp-lat PORT SIZE COUNT [WARMUP]
//       one session, one datagram in flight, after WARMUP untimed round trips; prints JSON
//       {received, lost, latUs[]}.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define EVENTS 256
#define SLOT_TIMEOUT_NS 3000000000LL

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

static struct sockaddr_in target(int port) {
  struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(port)};
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return addr;
}

static void print_latencies(const double *lat, long n) {
  printf("\"latUs\":[");
  for (long i = 0; i < n; i++) printf(i ? ",%.1f" : "%.1f", lat[i]);
  printf("]");
}

static void wait_stdin(void) {
  char line[64];
  if (fgets(line, sizeof line, stdin) == NULL) return;
}

// ---- TCP short connections ----

enum { IDLE, CONNECTING, READING };
struct slot {
  int fd, state;
  long got;
  uint64_t t0;
};

struct tcp_rate {
  int ep, port, size;
  long conns, started, done, errors;
  struct slot *slots;
  double *lat;
  char *payload;
};

static void slot_close(struct tcp_rate *r, struct slot *s, int failed) {
  close(s->fd);  // closing removes it from the epoll set
  s->state = IDLE;
  if (failed) r->errors++;
}

static void slot_send(struct tcp_rate *r, struct slot *s) {
  if (write(s->fd, r->payload, r->size) != r->size) {
    slot_close(r, s, 1);
    return;
  }
  s->state = READING;
  s->got = 0;
}

static void slot_start(struct tcp_rate *r, struct slot *s, uint32_t index) {
  s->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  if (s->fd < 0) {
    r->errors++;
    return;
  }
  int one = 1;
  setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  r->started++;
  s->t0 = now_ns();
  struct sockaddr_in addr = target(r->port);
  struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.u32 = index};
  epoll_ctl(r->ep, EPOLL_CTL_ADD, s->fd, &ev);
  if (connect(s->fd, (struct sockaddr *)&addr, sizeof addr) == 0) {
    slot_send(r, s);
  } else if (errno == EINPROGRESS) {
    s->state = CONNECTING;
  } else {
    slot_close(r, s, 1);
  }
}

static void slot_event(struct tcp_rate *r, struct slot *s, uint32_t events) {
  if (s->state == CONNECTING) {
    int err = 0;
    socklen_t len = sizeof err;
    getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0 || (events & (EPOLLERR | EPOLLHUP))) {
      slot_close(r, s, 1);
      return;
    }
    if (!(events & EPOLLOUT)) return;
    slot_send(r, s);
    return;
  }
  if (s->state != READING || !(events & (EPOLLIN | EPOLLERR | EPOLLHUP))) return;
  char buf[4096];
  ssize_t n = read(s->fd, buf, sizeof buf);
  if (n < 0 && errno == EAGAIN) return;
  if (n <= 0) {
    slot_close(r, s, 1);
    return;
  }
  s->got += n;
  if (s->got < r->size) return;
  r->lat[r->done++] = (now_ns() - s->t0) / 1000.0;
  slot_close(r, s, 0);
}

static int tcp_rate(int port, long conns, int concurrency, double seconds, int size) {
  struct tcp_rate r = {.port = port, .size = size, .conns = conns};
  r.ep = epoll_create1(0);
  r.slots = calloc(concurrency, sizeof *r.slots);
  r.lat = calloc(conns, sizeof *r.lat);
  r.payload = malloc(size);
  memset(r.payload, 'x', size);
  uint64_t start = now_ns(), stopAt = start + (uint64_t)(seconds * 1e9);
  uint64_t hardStop = stopAt + 5000000000ull;
  struct epoll_event events[EVENTS];
  for (;;) {
    uint64_t t = now_ns();
    int active = 0;
    for (int i = 0; i < concurrency; i++) {
      struct slot *s = &r.slots[i];
      if (s->state != IDLE && t - s->t0 > SLOT_TIMEOUT_NS) slot_close(&r, s, 1);
      if (s->state == IDLE && r.started < conns && t < stopAt) slot_start(&r, s, i);
      if (s->state != IDLE) active++;
    }
    if (active == 0 || t > hardStop) break;
    int n = epoll_wait(r.ep, events, EVENTS, 100);
    for (int i = 0; i < n; i++) slot_event(&r, &r.slots[events[i].data.u32], events[i].events);
  }
  uint64_t elapsed = now_ns() - start;
  for (int i = 0; i < concurrency; i++)
    if (r.slots[i].state != IDLE) slot_close(&r, &r.slots[i], 1);
  printf("{\"done\":%ld,\"errors\":%ld,\"elapsedNs\":%llu,", r.done, r.errors,
         (unsigned long long)elapsed);
  print_latencies(r.lat, r.done);
  printf("}\n");
  return 0;
}

static int tcp_hold(int port, int count) {
  int *fds = calloc(count, sizeof *fds);
  struct sockaddr_in addr = target(port);
  struct timeval tv = {.tv_sec = 5};
  int ok = 0;
  for (int i = 0; i < count; i++) {
    fds[i] = socket(AF_INET, SOCK_STREAM, 0);
    setsockopt(fds[i], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char c = 'x';
    if (connect(fds[i], (struct sockaddr *)&addr, sizeof addr) == 0 && write(fds[i], &c, 1) == 1 &&
        read(fds[i], &c, 1) == 1)
      ok++;
  }
  printf("ready %d\n", ok);
  fflush(stdout);
  wait_stdin();
  for (int i = 0; i < count; i++) close(fds[i]);
  printf("closed\n");
  return 0;
}

// ---- UDP ----

struct udp {
  int ep, sessions, size;
  int *fds;
  char *buf;
};

static void udp_open(struct udp *u, int port, int sessions, int size) {
  u->sessions = sessions;
  u->size = size;
  u->ep = epoll_create1(0);
  u->fds = calloc(sessions, sizeof *u->fds);
  u->buf = calloc(1, size > 65536 ? size : 65536);
  struct sockaddr_in addr = target(port);
  for (int i = 0; i < sessions; i++) {
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0) {
      perror("udp socket");
      exit(1);
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = i};
    epoll_ctl(u->ep, EPOLL_CTL_ADD, fd, &ev);
    u->fds[i] = fd;
  }
}

// One round trip per session, paced WARM_CHUNK sessions at a time so a forwarder's receive buffer
// does not overflow; unanswered sessions are retried for up to WARM_ROUNDS rounds. Returns how many
// sessions got a reply (socat, which forks per session, loses datagrams while it forks). Bounded by
// WARM_MAX_NS in all.
#define WARM_CHUNK 64
#define WARM_ROUNDS 20
#define WARM_MAX_NS 5000000000ull
static int udp_warm(struct udp *u) {
  char *replied = calloc(u->sessions, 1);
  int warm = 0;
  struct epoll_event events[EVENTS];
  uint64_t giveUpAt = now_ns() + WARM_MAX_NS;
  for (int round = 0; round < WARM_ROUNDS && warm < u->sessions; round++) {
    for (int first = 0; first < u->sessions && now_ns() < giveUpAt; first += WARM_CHUNK) {
      int last = first + WARM_CHUNK < u->sessions ? first + WARM_CHUNK : u->sessions, waiting = 0;
      for (int i = first; i < last; i++)
        if (!replied[i] && send(u->fds[i], u->buf, u->size, 0) >= 0) waiting++;
      uint64_t until = now_ns() + 300000000ull;
      while (waiting > 0 && now_ns() < until) {
        int n = epoll_wait(u->ep, events, EVENTS, 50);
        for (int e = 0; e < n; e++) {
          int i = events[e].data.u32;
          while (recv(u->fds[i], u->buf, 65536, 0) >= 0)
            if (!replied[i]) replied[i] = 1, warm++, waiting--;
        }
      }
    }
  }
  free(replied);
  return warm;
}

// With `warmup` seconds, the load runs that long first, then "measuring" is printed and the
// counts start from zero (the bench reads the forwarder's CPU time at that line).
static int udp_rr(int port, int sessions, int size, int window, double seconds, double warmup) {
  struct udp u;
  udp_open(&u, port, sessions, size);
  int warm = udp_warm(&u);
  long received = 0, lost = 0, outstanding = 0, next = 0;
  struct epoll_event events[EVENTS];
  uint64_t start = now_ns(), lastRecv = start;
  uint64_t measureAt = start + (uint64_t)(warmup * 1e9);
  uint64_t stopAt = measureAt + (uint64_t)(seconds * 1e9);
  int measuring = warmup <= 0;
  for (;;) {
    uint64_t t = now_ns();
    if (t >= stopAt) break;
    if (!measuring && t >= measureAt) {
      measuring = 1;
      received = 0;
      lost = 0;
      start = t;
      printf("measuring\n");
      fflush(stdout);
    }
    if (t - lastRecv > 200000000ull) {  // nothing came back for 200 ms: count what is in flight
      lost += outstanding;
      outstanding = 0;
      lastRecv = t;
    }
    while (outstanding < window) {
      if (send(u.fds[next], u.buf, size, 0) == size) outstanding++;
      else lost++;
      next = (next + 1) % sessions;
    }
    int n = epoll_wait(u.ep, events, EVENTS, 20);
    for (int e = 0; e < n; e++) {
      int fd = u.fds[events[e].data.u32];
      while (recv(fd, u.buf, 65536, 0) >= 0) {
        received++;
        if (outstanding > 0) outstanding--;
        lastRecv = now_ns();
      }
    }
  }
  printf("{\"sessions\":%d,\"warm\":%d,\"received\":%ld,\"lost\":%ld,\"elapsedNs\":%llu}\n",
         sessions, warm, received, lost, (unsigned long long)(now_ns() - start));
  return 0;
}

static int udp_hold(int port, int sessions) {
  struct udp u;
  udp_open(&u, port, sessions, 64);
  int warm = udp_warm(&u);
  printf("ready %d\n", warm);
  fflush(stdout);
  wait_stdin();
  for (int i = 0; i < sessions; i++) close(u.fds[i]);
  printf("closed\n");
  return 0;
}

// The first `warmup` round trips are neither timed nor counted: a fresh forwarder warms up in them.
static int udp_lat(int port, int size, long count, long warmup) {
  struct udp u;
  udp_open(&u, port, 1, size);
  udp_warm(&u);
  int fd = u.fds[0];
  double *lat = calloc(count, sizeof *lat);
  long received = 0, lost = 0;
  uint64_t seq = 0;
  for (long i = -warmup; i < count; i++) {
    seq++;
    memcpy(u.buf, &seq, sizeof seq);
    uint64_t t0 = now_ns();
    send(fd, u.buf, size, 0);
    for (;;) {  // skip late replies to earlier datagrams; give up after 200 ms
      struct epoll_event ev;
      if (epoll_wait(u.ep, &ev, 1, 200) <= 0) {
        if (i >= 0) lost++;
        break;
      }
      uint64_t got = 0;
      if (recv(fd, u.buf, 65536, 0) < (ssize_t)sizeof got) continue;
      memcpy(&got, u.buf, sizeof got);
      if (got != seq) continue;
      if (i >= 0) lat[received++] = (now_ns() - t0) / 1000.0;
      break;
    }
  }
  printf("{\"received\":%ld,\"lost\":%ld,", received, lost);
  print_latencies(lat, received);
  printf("}\n");
  return 0;
}

static void usage(void) {
  fprintf(stderr,
          "usage: bench_load tcp-rate PORT CONNS CONCURRENCY SECONDS SIZE | tcp-hold PORT COUNT |\n"
          "       udp-rr PORT SESSIONS SIZE WINDOW SECONDS [WARMUP_SECONDS] | udp-hold PORT SESSIONS |\n"
          "       udp-lat PORT SIZE COUNT [WARMUP]\n");
  exit(2);
}

int main(int argc, char **argv) {
  struct rlimit lim;
  if (getrlimit(RLIMIT_NOFILE, &lim) == 0) {
    lim.rlim_cur = lim.rlim_max;
    setrlimit(RLIMIT_NOFILE, &lim);
  }
  if (argc < 3) usage();
  const char *cmd = argv[1];
  int port = atoi(argv[2]);
  if (strcmp(cmd, "tcp-rate") == 0 && argc == 7)
    return tcp_rate(port, atol(argv[3]), atoi(argv[4]), atof(argv[5]), atoi(argv[6]));
  if (strcmp(cmd, "tcp-hold") == 0 && argc == 4) return tcp_hold(port, atoi(argv[3]));
  if (strcmp(cmd, "udp-rr") == 0 && (argc == 7 || argc == 8))
    return udp_rr(port, atoi(argv[3]), atoi(argv[4]), atoi(argv[5]), atof(argv[6]),
                  argc == 8 ? atof(argv[7]) : 0);
  if (strcmp(cmd, "udp-hold") == 0 && argc == 4) return udp_hold(port, atoi(argv[3]));
  if (strcmp(cmd, "udp-lat") == 0 && (argc == 5 || argc == 6))
    return udp_lat(port, atoi(argv[3]), atol(argv[4]), argc == 6 ? atol(argv[5]) : 0);
  usage();
  return 2;
}
