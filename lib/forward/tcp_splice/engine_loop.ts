/**
 * The loop of one splice TCP engine thread: one `epoll_wait` over every listening socket and every
 * connection's two sockets; accept4, a non-blocking connect to the target, then per direction
 * recv(2)/send(2) through one buffer of the thread while the flow is small, and splice(2)
 * socket → pipe → socket (the bytes never enter JavaScript) from its first read that fills that
 * buffer on.
 *
 * Right after the non-blocking connect, the client's first bytes are read and sent on the dialing
 * socket: a nearby target has usually accepted by then, and a send that succeeds ends the dial
 * without waiting for its EPOLLOUT (one that would block parks the bytes until the dial ends).
 * Connection sockets are registered edge-triggered for in, out and RDHUP once (the client's after
 * that first read; its events wait for the dial); an event on a socket moves the direction reading
 * from it and, when it became writable, the direction blocked on it. A direction reads until EAGAIN
 * or EOF; a recv shorter than the buffer means the socket was drained (and an event collected
 * before that read is ignored), unless the peer's FIN was seen (it may have come with the data:
 * EPOLLRDHUP is remembered, and then the loop reads on to the end). A send that does not take every
 * byte keeps the rest (only then a copy) until the destination is writable again. A direction at
 * EOF half-closes its destination once its pipe or parked bytes are sent; when both ended, both
 * sockets close. A poll's events that report a peer's end (FIN, reset, error) are handled after its
 * new clients and data, and after polling again without waiting when it brought both: ending a
 * connection does not delay a new one. A failed read or write aborts the connection: both sockets
 * close with RST and the failure is counted once (as on the portable engine, by direction). Sockets
 * are closed after the batch of events that may still name them (an fd closed and reused within a
 * batch would otherwise get a stale event).
 *
 * Same behaviour as the portable engine: TCP_NODELAY both ways, dial timeout, idle timeout over both
 * directions, live target updates for new connections (shared memory), drain, every counter; the
 * access policy at accept (`admission.ts`: a refused client is closed before any dial), PROXY
 * headers sent first to the target (parked before the client's bytes) and read from a load balancer
 * (`header_wait.ts`: the client waits, counted, until its header is judged), access records
 * (`connection_tally.ts`: posted to the main thread when a recorded connection ends).
 *
 * Descriptors: a connection needs up to 6 (two sockets, two pipes while bulk data moves). Each thread
 * admits at most its share of the process's RLIMIT_NOFILE, less a reserve for the rest of the
 * program ({@linkcode connectionBudget}), and at most its share of `--max-open-sockets`; clients
 * beyond it are accepted and reset at once (counted as SocketLimit), so admitted connections
 * always get their pipes. Should accept4 still run out
 * (EMFILE), a reserved pipe is given up to accept the waiting client and reset it: a client never
 * hangs in the accept queue.
 *
 * The main thread rings the thread's doorbell (a UDP socket on 127.0.0.1, see `EngineThreads`) after
 * each message: the loop then yields to the event loop to receive it. Otherwise it waits in
 * `epoll_wait` until the next dial deadline, idle check or pipe trim is due, at most 1 s (an idle
 * thread uses no CPU), and yields at least once a second should a doorbell datagram be lost; it
 * stops when the shared stop flag is set. Imports no third-party code.
 * @module
 */

import { Errno, ErrnoReader, OsError } from "../../ffi/errno.ts";
import type { WorkerControl } from "../../ffi/ffi_worker.ts";
import type { AbiLayout } from "../../ffi/layout.ts";
import type { EngineNotice } from "../../ffi/engine_messages.ts";
import { NativeArena } from "../../ffi/native_memory.ts";
import { decodeSockaddr } from "../../ffi/sockaddr.ts";
import { errorMessage } from "../../util/error_message.ts";
import { LogThrottle } from "../log_throttle.ts";
import type { SourceGate } from "../policy/source_gate.ts";
import type { TcpErrorType, TcpRejectReason } from "../state.ts";
import { type EngineTarget, ListenerSettings } from "../udp_batched/listener_settings.ts";
import { TcpAdmission } from "./admission.ts";
import type {
  TcpAnswer,
  TcpCloseCause,
  TcpEndReason,
  TcpListenerPolicy,
  TcpRequest,
} from "./messages.ts";
import { streamProxyHeader } from "./proxy_header.ts";
import { type HeaderProgress, HeaderWait } from "./header_wait.ts";
import type { Endpoint } from "../proxy_protocol/encode.ts";
import { type ConnectionTally, endWith, recordOf, sampledIn } from "./connection_tally.ts";
import { PIPE_BYTES, PipePool } from "./pipe_pool.ts";
import { E, F, R, TCP_FIELD_COUNT } from "./shared_tcp_counters.ts";
import { type Pipe, type SpliceLibc, TcpSockets } from "./tcp_sockets.ts";

/** Events per epoll_wait. */
const MAX_EVENTS = 256;
/**
 * Longest wait for events: bounds how late a stop flag or message is seen if its doorbell datagram
 * were lost (messages and stop requests ring the doorbell, which wakes the wait at once).
 */
const IDLE_POLL_MS = 1000;
/** The loop yields to the event loop at least this often (a safety net for a lost doorbell). */
const SAFETY_YIELD_MS = 1000;
/** How often idle connections are checked (at most). */
const SWEEP_MS = 10;
/**
 * Bytes a direction copies through the thread's buffer per recv/send; a read that fills it makes
 * the direction splice from then on (a flow that moves bulk).
 */
export const COPY_BYTES = 16 * 1024;
/**
 * Dials in progress beyond which new connections send nothing early: bytes read for a dial that
 * has not connected yet wait in memory (at most `COPY_BYTES` each), so a slow target holds at most
 * this many such buffers per thread; the client's bytes stay in its socket otherwise.
 */
const EARLY_SENDS_WHILE_DIALING = 64;
/**
 * A poll of fewer events accepts one client per ready listening socket: at such a load more
 * clients rarely wait, and the accept4 that would only find the queue empty is spared
 * (level-triggered, a client left waiting is reported again by the next poll).
 */
const FEW_EVENTS = 4;
/**
 * Polls without waiting after a batch that brought new clients or data together with peers' ends,
 * before the ends are handled (each while the previous poll still brought new work).
 */
const REPOLLS = 2;
/** Connections accepted per ready listening socket per poll, so one port cannot starve others. */
const ACCEPTS_PER_EVENT = 64;
/** Splices per direction per event before other connections get their turn. */
const ROUNDS_PER_EVENT = 16;
/** What one read of a direction found: more to do, a drained source, or an aborted connection. */
type ReadStatus = 0 | 1 | 2;
const MORE = 0;
const DRAINED = 1;
const FAILED = 2;
/** Empty pipes kept per thread for reuse. */
const IDLE_PIPES = 64;
/** Longest wait for a policy message the main thread announced before clients are accepted. */
const POLICY_WAIT_MS = 100;
/** Room for a client's `sockaddr_in6` from accept4. */
const PEER_BYTES = 32;
/** Descriptors a connection may hold: two sockets and two pipes. */
const FDS_PER_CONNECTION = 6;

/**
 * Connections one of `threads` engine threads admits under a descriptor limit of `fileLimit`:
 * its share of the limit less a reserve (64 plus 1/16 of the limit) for the rest of the program.
 * Pooled pipes fit in the share: pipes are taken from the pool before new ones are made, so
 * pooled and used pipes together never exceed the most ever in use.
 */
export function connectionBudget(fileLimit: number, threads: number): number {
  if (!Number.isFinite(fileLimit)) return Infinity;
  const reserve = 64 + Math.ceil(fileLimit / 16);
  return Math.max(1, Math.floor((fileLimit - reserve) / (FDS_PER_CONNECTION * threads)));
}

interface Listener {
  readonly id: number;
  readonly name: string;
  fd: number;
  readonly port: number;
  readonly counters: Float64Array<SharedArrayBuffer>;
  readonly settings: ListenerSettings;
  generation: number;
  target: EngineTarget | undefined;
  /** The target rules forbid the target: new clients are closed at accept. */
  forbidden: boolean;
  /** Source ranges and connection limits of new clients. */
  readonly admission: TcpAdmission;
  /** The generation of the policy applied (see `ListenerSettings.policyGeneration`). */
  policyGeneration: number;
  /** Since when accepts wait for a newer policy, or undefined. */
  policyWaitSinceMs: number | undefined;
  /** New connections send this PROXY header to the target first. */
  proxyProtocol: "v1" | "v2" | undefined;
  /** Share of new connections with an access record (0 = none). */
  accessLogShare: number;
  /** Clients start with a PROXY header from a load balancer, read within `proxyHeaderTimeoutMs`. */
  acceptProxy: boolean;
  proxyHeaderTimeoutMs: number;
  /** Clients whose PROXY header is awaited (they count as connections). */
  readonly waiting: Set<Waiting>;
  readonly dialTimeoutMs: number;
  readonly idleTimeoutMs: number;
  readonly connections: Set<Connection>;
  /** Set while draining: the request to answer once no connection is left. */
  drainSeq: number | undefined;
  nextIdleSweepMs: number;
  readonly logs: Record<"accept" | "dial" | "copy" | "reject", LogThrottle>;
}

/** One direction of a connection: `from` → buffer or pipe → `to`. */
interface Direction {
  /** Source and destination sockets (the upstream one is set once the dial started). */
  from: number;
  to: number;
  /** Moves bulk: reads splice into a pipe (else recv into the thread's buffer). */
  splicing: boolean;
  pipe: Pipe | undefined;
  /** What `to` did not take of a copy (only while it blocks). */
  parked: Uint8Array | undefined;
  /** Bytes in the pipe or parked. */
  pending: number;
  /** Parked bytes of ours (a PROXY header), not counted as the client's. */
  uncounted: number;
  /** Bytes of the client's (or target's) this direction delivered. */
  moved: number;
  /** The source reported EPOLLRDHUP (or an error): read until EOF, a short read is no drain. */
  rdhup: boolean;
  /** The source reported EPOLLERR (a reset may hide behind the FIN a read reports first). */
  failed: boolean;
  /** The poll in which the source was last read dry. */
  drainedBatch: number;
  eof: boolean;
  /** EOF passed on (or the connection ended). */
  done: boolean;
  readonly bytesField: number;
  readonly errorType: TcpErrorType;
}

interface Connection {
  readonly listener: Listener;
  readonly client: number;
  /** The gate that admitted the connection and the client's address as it counts it. */
  readonly gate: SourceGate | undefined;
  readonly source: string;
  /** Set when the connection gets an access record. */
  readonly tally: ConnectionTally | undefined;
  upstream: number;
  dialing: boolean;
  dialDeadlineMs: number;
  lastActiveMs: number;
  /** Client → target. */
  readonly up: Direction;
  /** Target → client. */
  readonly down: Direction;
  closed: boolean;
}

/** A client whose PROXY header is awaited (accepted, counted, not yet admitted or dialled). */
interface Waiting {
  readonly listener: Listener;
  readonly fd: number;
  readonly peer: Endpoint;
  readonly header: HeaderWait;
  /** Whether the connection gets an access record (decided at accept). */
  readonly sampled: boolean;
  /** The client reported EPOLLRDHUP while its header was read. */
  rdhup: boolean;
}

/** A client whose PROXY header was read: the client it carried and the bytes after it. */
interface Arrival {
  readonly client: Endpoint;
  /** The socket peer when the header carried a client. */
  readonly peer: Endpoint | undefined;
  readonly rest: Uint8Array;
  readonly tally: ConnectionTally | undefined;
  readonly rdhup: boolean;
}

/** Counter of each way a client's PROXY header is refused. */
const HEADER_FAULTS: Readonly<Record<"missing" | "malformed" | "timeout", TcpErrorType>> = {
  missing: "ProxyHeaderMissing",
  malformed: "ProxyHeaderMalformed",
  timeout: "ProxyHeaderTimeout",
};

/** One engine thread's sockets, connections and pipes. */
export class SpliceEngineLoop {
  readonly #libc: SpliceLibc["symbols"];
  readonly #layout: AbiLayout;
  readonly #errno: ErrnoReader;
  readonly #sockets: TcpSockets;
  readonly #pipes: PipePool;
  readonly #control: WorkerControl;
  readonly #row: number;
  readonly #post: (message: TcpAnswer | EngineNotice) => void;
  readonly #epoll: number;
  readonly #doorbell: number;
  /** The address of the client accepted last. */
  readonly #peer = new Uint8Array(new ArrayBuffer(PEER_BYTES));
  /** The doorbell rang in this round of polls: yield to the event loop to take the message. */
  #rang = false;
  /** A listener waits for a policy message: yield to the event loop after this batch. */
  #policyWait = false;
  /** The doorbell's port, for the main thread. */
  readonly doorbellPort: number;
  /** Bytes of small copies (shared by every connection of the thread: a copy is sent at once). */
  readonly #copyBuffer = new Uint8Array(new ArrayBuffer(COPY_BYTES));
  readonly #events: NativeArena;
  readonly #event: NativeArena;
  readonly #listeners = new Map<number, Listener>();
  readonly #listenersByFd: (Listener | undefined)[] = [];
  readonly #connectionsByFd: (Connection | undefined)[] = [];
  readonly #waitingByFd: (Waiting | undefined)[] = [];
  readonly #dialing = new Set<Connection>();
  /** Sockets to close (true: with RST) after the current batch of events. */
  readonly #toClose: number[] = [];
  readonly #toAbort: number[] = [];
  /** Events of this batch that report a peer's end (pairs of fd and events), handled last. */
  readonly #ending: number[] = [];
  /** Connections and directions (pairs) whose turn ended before their source was drained. */
  #unfinished: (Connection | Direction)[] = [];
  /** The other list of {@linkcode #unfinished}'s pair (empty; swapped to avoid allocations). */
  #unfinishedSpare: (Connection | Direction)[] = [];
  /** A pipe held back to free two descriptors when accept runs out of them. */
  #reserve: Pipe | undefined;
  #nowMs = Date.now();
  /** Connections this thread admits (see {@linkcode connectionBudget}), and has open. */
  #maxConnections = Infinity;
  #openConnections = 0;
  #nextSweepMs = 0;
  /** Counts polls: a direction drained in this batch ignores the batch's older events. */
  #batch = 0;
  readonly #connectionEvents: number;
  /** Events that report a peer's FIN, a reset or an error. */
  readonly #endingEvents: number;
  readonly #spliceFlags: number;
  readonly #sendFlags: number;

  constructor(
    libc: SpliceLibc,
    layout: AbiLayout,
    control: WorkerControl,
    row: number,
    post: (message: TcpAnswer | EngineNotice) => void,
  ) {
    this.#libc = libc.symbols;
    this.#layout = layout;
    this.#errno = new ErrnoReader(libc.symbols.__errno_location);
    this.#sockets = new TcpSockets(libc, layout, this.#errno);
    this.#pipes = new PipePool(this.#sockets, IDLE_PIPES, () =>
      this.#post({
        kind: "log",
        level: "warn",
        message: "The kernel refused {bytes}-byte pipes (pipe-max-size or pipe-user-pages-soft); " +
          "bulk copies move 64 KiB per call",
        properties: { bytes: PIPE_BYTES },
      }));
    this.#control = control;
    this.#row = row;
    this.#post = post;
    this.#epoll = this.#libc.epoll_create1(layout.constants.EPOLL_CLOEXEC);
    if (this.#epoll < 0) throw new OsError("epoll_create1", this.#errno.get());
    this.#events = new NativeArena(MAX_EVENTS * layout.epollEvent.size);
    this.#event = new NativeArena(16);
    const { constants, tcp } = layout;
    this.#connectionEvents = (constants.EPOLLIN | tcp.EPOLLOUT | tcp.EPOLLRDHUP | tcp.EPOLLET) >>>
      0;
    this.#endingEvents = tcp.EPOLLRDHUP | tcp.EPOLLERR | tcp.EPOLLHUP;
    this.#spliceFlags = tcp.SPLICE_F_MOVE | tcp.SPLICE_F_NONBLOCK;
    this.#sendFlags = tcp.MSG_NOSIGNAL | constants.MSG_DONTWAIT;
    this.#reserve = this.#sockets.pipe(4096).pipe;
    this.#doorbell = this.#sockets.doorbell();
    this.doorbellPort = this.#sockets.port(this.#doorbell);
    this.#control_(layout.constants.EPOLL_CTL_ADD, this.#doorbell, layout.constants.EPOLLIN);
  }

  /** Applies one request from the main thread. */
  handle(message: TcpRequest): void {
    this.#nowMs = Date.now();
    const listener = this.#listeners.get(message.id);
    switch (message.kind) {
      case "listen":
        this.#listen(message);
        break;
      case "stopAccepting":
        if (listener !== undefined) this.#stopAccepting(listener);
        this.#post({ kind: "done", seq: message.seq, count: 0 });
        break;
      case "drain":
        if (listener === undefined || this.#idle(listener)) {
          this.#post({ kind: "done", seq: message.seq, count: 0 });
        } else {
          listener.drainSeq = message.seq;
        }
        break;
      case "close": {
        const count = listener === undefined
          ? 0
          : this.#close(listener, message.cause ?? "drained");
        this.#post({ kind: "done", seq: message.seq, count });
        break;
      }
      case "policy":
        if (listener !== undefined) {
          this.#applyPolicy(listener, message.policy);
          listener.policyGeneration = Math.max(listener.policyGeneration, message.generation);
        }
        this.#post({ kind: "done", seq: message.seq, count: 0 });
        break;
    }
    this.#closeDeferred();
  }

  /** Runs until the stop flag is set; then closes every socket. */
  async run(): Promise<void> {
    let lastYieldMs = Date.now();
    while (!this.#control.stopRequested) {
      const waitMs = this.#unfinished.length > 0
        ? 0
        : Math.max(0, Math.min(IDLE_POLL_MS, this.#nextSweepMs - this.#nowMs));
      const count = this.#poll(waitMs);
      this.#rang = false;
      let urgent = this.#handleEvents(count);
      // New clients or data came with ends: what arrived meanwhile (a target's answer to the new
      // client, most often) goes before the ends too.
      for (let n = 0; n < REPOLLS && urgent > 0 && this.#ending.length > 0; n++) {
        urgent = this.#handleEvents(this.#poll(0));
      }
      if (this.#ending.length > 0) this.#handleEnding();
      if (this.#unfinished.length > 0) this.#continueUnfinished();
      if (this.#nowMs >= this.#nextSweepMs) this.#sweep();
      this.#closeDeferred();
      const posted = this.#control.takePosted();
      if (
        this.#rang || posted || this.#policyWait || this.#nowMs - lastYieldMs >= SAFETY_YIELD_MS
      ) {
        this.#policyWait = false;
        await new Promise((resolve) => setTimeout(resolve, 0));
        lastYieldMs = Date.now();
      }
    }
    for (const listener of [...this.#listeners.values()]) this.#close(listener, "drained");
    this.#closeDeferred();
    this.#pipes.close();
    if (this.#reserve !== undefined) this.#closePipe(this.#reserve);
    this.#sockets.close(this.#doorbell);
    this.#sockets.close(this.#epoll);
  }

  /** epoll_wait for up to `waitMs` into `#events`: how many events (0 after EINTR). */
  #poll(waitMs: number): number {
    const count = this.#libc.epoll_wait(this.#epoll, this.#events.bytes, MAX_EVENTS, waitMs);
    this.#nowMs = Date.now();
    if (count >= 0) return count;
    const errno = this.#errno.get();
    if (errno !== Errno.EINTR) throw new OsError("epoll_wait", errno);
    return 0;
  }

  /**
   * Handles a batch of `count` events: accepts, data and dial progress at once, the events that
   * report a peer's end later (`#ending`). Returns how many events were handled at once.
   */
  #handleEvents(count: number): number {
    const { size, events: eventsAt, data } = this.#layout.epollEvent;
    const view = this.#events.view;
    let urgent = 0;
    this.#batch++;
    for (let i = 0; i < count; i++) {
      const at = i * size;
      const fd = view.getUint32(at + data, true);
      const listener = this.#listenersByFd[fd];
      if (listener !== undefined) {
        urgent++;
        this.#accept(listener, count < FEW_EVENTS ? 1 : Math.min(ACCEPTS_PER_EVENT, count));
        continue;
      }
      const connection = this.#connectionsByFd[fd];
      if (connection !== undefined) {
        const flags = view.getUint32(at + eventsAt, true);
        if ((flags & this.#endingEvents) !== 0) {
          this.#ending.push(fd, flags);
        } else {
          urgent++;
          this.#onEvent(connection, fd, flags);
        }
      } else if (fd === this.#doorbell) {
        this.#sockets.drainDoorbell(this.#doorbell);
        this.#rang = true;
      } else {
        const waiting = this.#waitingByFd[fd];
        if (waiting !== undefined) {
          if ((view.getUint32(at + eventsAt, true) & this.#layout.tcp.EPOLLRDHUP) !== 0) {
            waiting.rdhup = true;
          }
          this.#readHeader(waiting);
        }
      }
    }
    return urgent;
  }

  #listen(message: Extract<TcpRequest, { kind: "listen" }>): void {
    let fd: number;
    let port: number;
    try {
      fd = this.#sockets.listen(message.hostname, message.port, message.reusePort);
      try {
        port = this.#sockets.port(fd);
        this.#control_(this.#layout.constants.EPOLL_CTL_ADD, fd, this.#layout.constants.EPOLLIN);
      } catch (error) {
        this.#sockets.close(fd);
        throw error;
      }
    } catch (error) {
      this.#post({ kind: "listenFailed", seq: message.seq, message: errorMessage(error) });
      return;
    }
    this.#maxConnections = Math.min(
      connectionBudget(this.#sockets.fileLimit(), message.threads),
      message.maxConnections,
    );
    const offset = this.#row * TCP_FIELD_COUNT * Float64Array.BYTES_PER_ELEMENT;
    const settings = new ListenerSettings(message.settings);
    const { generation, target, forbidden } = settings.read();
    let admission: TcpAdmission;
    try {
      admission = new TcpAdmission(message.connectionsInUse, message.policy);
    } catch (error) {
      this.#sockets.close(fd);
      this.#post({ kind: "listenFailed", seq: message.seq, message: errorMessage(error) });
      return;
    }
    const listener: Listener = {
      id: message.id,
      name: message.name,
      fd,
      port,
      counters: new Float64Array(message.counters, offset, TCP_FIELD_COUNT),
      settings,
      generation,
      target,
      forbidden,
      admission,
      policyGeneration: settings.policyGeneration,
      policyWaitSinceMs: undefined,
      proxyProtocol: message.policy.proxyProtocol,
      accessLogShare: message.policy.accessLogShare,
      acceptProxy: message.policy.acceptProxyProtocol,
      proxyHeaderTimeoutMs: message.policy.proxyHeaderTimeoutMs,
      waiting: new Set(),
      dialTimeoutMs: message.dialTimeoutMs,
      idleTimeoutMs: message.idleTimeoutMs,
      connections: new Set(),
      drainSeq: undefined,
      nextIdleSweepMs: 0,
      logs: {
        accept: new LogThrottle(),
        dial: new LogThrottle(),
        copy: new LogThrottle(),
        reject: new LogThrottle(),
      },
    };
    this.#listeners.set(listener.id, listener);
    this.#listenersByFd[fd] = listener;
    this.#post({ kind: "listening", seq: message.seq, port });
  }

  /** epoll_ctl with `events` for `fd` (its data is the fd). */
  #control_(op: number, fd: number, events: number): void {
    const { epollEvent } = this.#layout;
    const view = this.#event.view;
    view.setUint32(epollEvent.events, events, true);
    view.setUint32(epollEvent.data, fd, true);
    view.setUint32(epollEvent.data + 4, 0, true);
    if (this.#libc.epoll_ctl(this.#epoll, op, fd, this.#event.bytes) !== 0) {
      throw new OsError("epoll_ctl", this.#errno.get());
    }
  }

  /** Accepts up to `max` waiting clients. */
  #accept(listener: Listener, max: number): void {
    if (this.#policyBehind(listener)) return;
    for (let n = 0; n < max && listener.fd >= 0; n++) {
      const gate = listener.admission.gate;
      const fd = this.#sockets.accept(listener.fd, this.#peer);
      const source = fd < 0 || gate === undefined
        ? ""
        : decodeSockaddr(this.#layout, this.#peer).hostname;
      // With PROXY headers accepted, the client is known (and admitted) once its header is read.
      if (fd >= 0 && !listener.acceptProxy && !this.#admit(listener, fd, source)) continue;
      if (fd >= 0 && this.#openConnections >= this.#maxConnections) {
        if (!listener.acceptProxy) listener.admission.release(gate, source);
        this.#sockets.abort(fd);
        listener.counters[E.SocketLimit]!++;
        this.#warn(
          listener,
          "accept",
          "TCP port {port} of {forwarder}: {max} connections on this thread, the " +
            "share of the descriptor limit (ulimit -n); resetting new clients",
          {
            max: this.#maxConnections,
          },
        );
        continue;
      }
      if (fd >= 0) {
        if (listener.acceptProxy) this.#awaitHeader(listener, fd);
        else this.#open(listener, fd, gate, source);
        continue;
      }
      const errno = -fd;
      if (errno === Errno.EAGAIN || errno === Errno.EINTR) return;
      if (errno === Errno.ECONNABORTED) continue;
      listener.counters[E.Accept]!++;
      this.#warn(listener, "accept", "Accept failed on TCP port {port} of {forwarder}: {error}", {
        error: new OsError("accept4", errno).message,
      });
      if ((errno === Errno.EMFILE || errno === Errno.ENFILE) && this.#refuseOne(listener)) continue;
      return;
    }
  }

  /**
   * Out of descriptors: closes the reserved pipe, accepts the waiting client and resets it at once
   * (a visible refusal), then reserves a pipe again. False when that did not work either.
   */
  #refuseOne(listener: Listener): boolean {
    if (this.#reserve === undefined) return false;
    this.#closePipe(this.#reserve);
    this.#reserve = undefined;
    const fd = this.#sockets.accept(listener.fd);
    if (fd >= 0) this.#sockets.abort(fd);
    try {
      this.#reserve = this.#sockets.pipe(4096).pipe;
    } catch {
      // Still out of descriptors; the next accept error tries again.
    }
    return fd >= 0;
  }

  /**
   * Forwards the admitted client `client`: dials the target and moves bytes. `arrival`: the client
   * sent a PROXY header (then it was counted at accept and is registered with epoll already).
   */
  #open(
    listener: Listener,
    client: number,
    gate: SourceGate | undefined,
    source: string,
    arrival?: Arrival,
  ): void {
    const counters = listener.counters;
    if (arrival === undefined) {
      counters[F.activeConnections]!++;
      counters[F.connectionsTotal]!++;
    } else {
      this.#openConnections--; // counted again below
    }
    if (listener.drainSeq !== undefined && arrival === undefined) {
      // Accepted in the same batch as the drain request: never forwarded.
      counters[F.activeConnections]!--;
      listener.admission.release(gate, source);
      this.#sockets.abort(client);
      return;
    }
    const connection: Connection = {
      listener,
      client,
      gate,
      source,
      tally: arrival !== undefined
        ? arrival.tally
        : sampledIn(listener.accessLogShare)
        ? this.#tally(listener, decodeSockaddr(this.#layout, this.#peer), undefined)
        : undefined,
      upstream: -1,
      dialing: true,
      dialDeadlineMs: this.#nowMs + listener.dialTimeoutMs,
      lastActiveMs: this.#nowMs,
      up: direction(client, -1, F.bytesClientToTarget, "CopyClientToTarget"),
      down: direction(-1, client, F.bytesTargetToClient, "CopyTargetToClient"),
      closed: false,
    };
    listener.connections.add(connection);
    this.#openConnections++;
    if (listener.idleTimeoutMs > 0) this.#dueBy(listener.nextIdleSweepMs);
    const target = listener.target;
    if (target === undefined) {
      this.#dialFailed(connection, "ResolveTargetAddress", "the target name does not resolve");
      return;
    }
    if (!this.#parkFirst(connection, arrival)) return;
    let connected: boolean;
    try {
      const dial = this.#sockets.connect(target.sockaddr, target.family);
      connection.upstream = dial.fd;
      connection.up.to = dial.fd;
      connection.down.from = dial.fd;
      connected = dial.connected;
      this.#connectionsByFd[dial.fd] = connection;
      this.#control_(this.#layout.constants.EPOLL_CTL_ADD, dial.fd, this.#connectionEvents);
    } catch (error) {
      this.#dialFailed(connection, "DialServerTarget", errorMessage(error));
      return;
    }
    if (arrival?.rdhup) connection.up.rdhup = true;
    if (!connected) {
      if (connection.up.pending > 0) this.#sendParkedEarly(connection);
      else if (this.#dialing.size < EARLY_SENDS_WHILE_DIALING) this.#sendEarly(connection);
      if (connection.closed) return;
      if (connection.dialing) {
        this.#dialing.add(connection);
        this.#dueBy(connection.dialDeadlineMs);
      }
    }
    // Registered after the early read, so that epoll reports only data that came after it. While
    // the dial goes on, the client's events wait (its data stays in its socket until then).
    this.#connectionsByFd[client] = connection;
    try {
      if (arrival === undefined) {
        this.#control_(this.#layout.constants.EPOLL_CTL_ADD, client, this.#connectionEvents);
      }
    } catch (error) {
      this.#abort(connection, "CopyClientToTarget", errorMessage(error));
      return;
    }
    if (connected) this.#connected(connection, this.#layout.constants.EPOLLIN);
  }

  /**
   * Parks the PROXY header of the listener's version (if any) and the bytes that followed a load
   * balancer's header (if any) as the first bytes to the target (the client's follow them); false
   * when the connection was aborted instead (no local address).
   */
  #parkFirst(connection: Connection, arrival: Arrival | undefined): boolean {
    const up = connection.up;
    const version = connection.listener.proxyProtocol;
    const rest = arrival?.rest ?? new Uint8Array(0);
    let header: Uint8Array = new Uint8Array(0);
    if (version !== undefined) {
      try {
        const local = this.#sockets.localAddress(connection.client);
        const client = arrival?.client ?? decodeSockaddr(this.#layout, this.#peer);
        header = streamProxyHeader(this.#layout, version, client, local);
      } catch (error) {
        this.#abort(connection, "CopyClientToTarget", errorMessage(error));
        return false;
      }
    }
    if (header.length + rest.length === 0) return true;
    up.parked = new Uint8Array(header.length + rest.length);
    up.parked.set(header);
    up.parked.set(rest, header.length);
    up.pending = up.parked.length;
    up.uncounted = header.length;
    return true;
  }

  /** The access record of a connection just accepted (the client's address is in `#peer`). */
  #tally(listener: Listener, client: Endpoint, peer: Endpoint | undefined): ConnectionTally {
    const target = listener.target;
    return {
      startMs: Date.now(),
      clientAddress: client.hostname,
      clientPort: client.port,
      peer,
      targetAddress: target && decodeSockaddr(this.#layout, target.sockaddr).hostname,
      reason: undefined,
      detail: undefined,
    };
  }

  /** Takes the header bytes among `moved` sent bytes back out of the client's count. */
  #uncount(counters: Float64Array, dir: Direction, moved: number): void {
    const ours = Math.min(moved, dir.uncounted);
    dir.uncounted -= ours;
    dir.moved -= ours;
    counters[dir.bytesField]! -= ours;
  }

  /**
   * Tries the parked bytes (a PROXY header) on the dialing upstream socket, as {@linkcode
   * #sendEarly} tries the client's: a send that succeeds ends the dial; the client's bytes follow.
   */
  #sendParkedEarly(connection: Connection): void {
    const up = connection.up;
    const sent = this.#libc.send(connection.upstream, up.parked!, up.pending, this.#sendFlags);
    if (sent < 0) {
      const errno = this.#errno.get();
      if (errno !== Errno.EAGAIN) {
        this.#dialFailed(connection, "DialServerTarget", new OsError("connect", errno).message);
      }
      return; // EAGAIN: still connecting
    }
    const counters = connection.listener.counters;
    up.pending -= sent;
    up.moved += sent;
    counters[up.bytesField]! += sent;
    this.#uncount(counters, up, sent);
    up.parked = up.pending > 0 ? up.parked!.subarray(sent) : undefined;
    connection.dialing = false;
    this.#pump(connection, up);
  }

  /**
   * Tries the client's first bytes on the dialing upstream socket: a loopback or nearby target
   * has often accepted by the time connect(2) returns, and a send that succeeds proves it (no
   * wait for the EPOLLOUT that would report it). While the dial is still in progress the bytes
   * are parked until it ends; a failed dial reports its error here.
   */
  #sendEarly(connection: Connection): void {
    const up = connection.up;
    const read = this.#libc.recvInto(connection.client, this.#copyBuffer, COPY_BYTES, 0);
    if (read <= 0) {
      // Nothing yet (the client's data will be read once connected), or the client ended or
      // failed: the end is passed on (or the abort made) once connected.
      if (read === 0) this.#readEnd(connection, up, "recv");
      else if (this.#errno.get() !== Errno.EAGAIN) this.#readFailed(connection, up, "recv");
      return;
    }
    connection.lastActiveMs = this.#nowMs;
    let sent = this.#libc.send(connection.upstream, this.#copyBuffer, read, this.#sendFlags);
    if (sent < 0) {
      const errno = this.#errno.get();
      if (errno !== Errno.EAGAIN) {
        this.#dialFailed(connection, "DialServerTarget", new OsError("connect", errno).message);
        return;
      }
      sent = 0; // still connecting
    }
    connection.listener.counters[up.bytesField]! += sent;
    up.moved += sent;
    if (sent < read) {
      up.parked = this.#copyBuffer.slice(sent, read);
      up.pending = read - sent;
    }
    if (read === COPY_BYTES) up.splicing = true;
    if (sent === 0) return;
    // Connected: go on reading unless the client was read dry.
    connection.dialing = false;
    if (read < COPY_BYTES && !up.rdhup && up.pending === 0) up.drainedBatch = this.#batch;
    else this.#pump(connection, up);
    this.#endIfDone(connection);
  }

  #onEvent(connection: Connection, fd: number, events: number): void {
    const { constants, tcp } = this.#layout;
    const fromClient = fd === connection.client;
    const from = fromClient ? connection.up : connection.down;
    if ((events & (tcp.EPOLLRDHUP | tcp.EPOLLERR | tcp.EPOLLHUP)) !== 0) {
      from.rdhup = true;
      if ((events & tcp.EPOLLERR) !== 0) from.failed = true;
    }
    if (connection.dialing) {
      if (!fromClient) this.#dialProgress(connection, events);
      return;
    }
    const to = fromClient ? connection.down : connection.up;
    // Readable, unless this batch already read the source dry after the event was collected.
    if (
      (events & (tcp.EPOLLRDHUP | tcp.EPOLLERR | tcp.EPOLLHUP)) !== 0 ||
      ((events & constants.EPOLLIN) !== 0 && from.drainedBatch !== this.#batch)
    ) {
      this.#pump(connection, from);
    }
    if (
      !connection.closed && to.pending > 0 &&
      (events & (tcp.EPOLLOUT | tcp.EPOLLERR | tcp.EPOLLHUP)) !== 0
    ) {
      this.#pump(connection, to);
    }
    this.#endIfDone(connection);
  }

  /**
   * The upstream socket of a dialing connection reported `events`: connected (writable without an
   * error: no SO_ERROR query needed), still in progress, or failed.
   */
  #dialProgress(connection: Connection, events: number): void {
    const { tcp } = this.#layout;
    if ((events & (tcp.EPOLLERR | tcp.EPOLLHUP)) === 0) {
      if ((events & tcp.EPOLLOUT) !== 0) this.#connected(connection, events);
      return;
    }
    const error = this.#sockets.socketError(connection.upstream);
    if (error === Errno.EINPROGRESS) return;
    this.#dialing.delete(connection);
    if (error !== 0) {
      this.#dialFailed(connection, "DialServerTarget", new OsError("connect", error).message);
      return;
    }
    this.#connected(connection, events);
  }

  /** The dial succeeded (`events`: what the upstream socket reported with it). */
  #connected(connection: Connection, events: number): void {
    this.#dialing.delete(connection);
    connection.dialing = false;
    // Data that arrived while dialing; the target may have spoken first.
    this.#pump(connection, connection.up);
    if (
      !connection.closed &&
      (events & (this.#layout.constants.EPOLLIN | this.#layout.tcp.EPOLLRDHUP)) !== 0
    ) {
      this.#pump(connection, connection.down);
    }
    this.#endIfDone(connection);
  }

  /**
   * Moves `dir` forward: empties its pipe or parked bytes into the destination; at EOF half-closes
   * it; else reads the source until it is drained (giving an empty pipe back), EOF, or a full
   * destination: small reads are copied with recv/send, bulk is spliced.
   */
  #pump(connection: Connection, dir: Direction): void {
    if (dir.done || connection.closed) return;
    const counters = connection.listener.counters;
    for (let round = 0; round < ROUNDS_PER_EVENT; round++) {
      if (dir.pending > 0) {
        const moved = dir.parked === undefined
          ? this.#libc.splice(dir.pipe!.read, null, dir.to, null, dir.pending, this.#spliceFlags)
          : this.#libc.send(dir.to, dir.parked, dir.pending, this.#sendFlags);
        if (moved < 0) {
          const errno = this.#errno.get();
          if (errno === Errno.EAGAIN) return; // EPOLLOUT on `to` resumes
          if (errno === Errno.EINTR) continue;
          this.#abort(
            connection,
            dir.errorType,
            new OsError("send", errno).message,
            toEnd(connection, dir),
          );
          return;
        }
        dir.pending -= moved;
        counters[dir.bytesField]! += moved;
        dir.moved += moved;
        if (dir.uncounted > 0) this.#uncount(counters, dir, moved);
        if (dir.parked !== undefined) {
          dir.parked = dir.pending > 0 ? dir.parked.subarray(moved) : undefined;
        }
        if (dir.pending > 0) continue;
      }
      if (dir.eof) {
        this.#releasePipe(dir);
        dir.done = true;
        // The first direction to end half-closes; the second closes both sockets (#endIfDone).
        const other = dir === connection.up ? connection.down : connection.up;
        if (!other.done) this.#sockets.shutdownWrite(dir.to);
        return;
      }
      const status = dir.splicing
        ? this.#spliceIn(connection, dir)
        : this.#copyOnce(connection, dir);
      if (status === MORE) continue;
      if (status === DRAINED) {
        dir.drainedBatch = this.#batch;
        this.#releasePipe(dir);
      }
      return;
    }
    // Its turn is over with data still readable and room to write: edge-triggered epoll will not
    // report that again, so the direction goes on after this batch.
    this.#unfinished.push(connection, dir);
  }

  /**
   * Reads once from `dir`'s source into the thread's buffer and sends it on; what the destination
   * does not take is parked. A read that fills the buffer makes the direction splice.
   */
  #copyOnce(connection: Connection, dir: Direction): ReadStatus {
    const buffer = this.#copyBuffer;
    const read = this.#libc.recvInto(dir.from, buffer, COPY_BYTES, 0);
    if (read > 0) {
      connection.lastActiveMs = this.#nowMs;
      const counters = connection.listener.counters;
      let sent = this.#libc.send(dir.to, buffer, read, this.#sendFlags);
      if (sent < 0) {
        const errno = this.#errno.get();
        if (errno !== Errno.EAGAIN && errno !== Errno.EINTR) {
          this.#abort(
            connection,
            dir.errorType,
            new OsError("send", errno).message,
            toEnd(connection, dir),
          );
          return FAILED;
        }
        sent = 0;
      }
      counters[dir.bytesField]! += sent;
      dir.moved += sent;
      if (sent < read) {
        dir.parked = buffer.slice(sent, read);
        dir.pending = read - sent;
      }
      if (read === COPY_BYTES) {
        dir.splicing = true;
        return MORE;
      }
      // A short read took everything the socket held; new data is a new event. Unless the FIN
      // came (it may have come with the data): then read on to the end.
      return dir.rdhup ? MORE : DRAINED;
    }
    if (read === 0) return this.#readEnd(connection, dir, "recv");
    return this.#readFailed(connection, dir, "recv");
  }

  /** Splices once from `dir`'s source into its pipe (taken from the pool when it has none). */
  #spliceIn(connection: Connection, dir: Direction): ReadStatus {
    if (dir.pipe === undefined) {
      try {
        dir.pipe = this.#pipes.acquire(this.#nowMs);
      } catch (error) {
        this.#abort(connection, dir.errorType, errorMessage(error));
        return FAILED;
      }
    }
    const read = this.#libc.splice(
      dir.from,
      null,
      dir.pipe.write,
      null,
      PIPE_BYTES,
      this.#spliceFlags,
    );
    if (read > 0) {
      dir.pending = read;
      connection.lastActiveMs = this.#nowMs;
      return MORE;
    }
    if (read === 0) return this.#readEnd(connection, dir, "splice");
    return this.#readFailed(connection, dir, "splice");
  }

  /**
   * A read returned 0: the end, or a reset that came with or right after the peer's FIN (a read
   * reports the FIN first): SO_ERROR tells them apart. recv(2) reports a reset that came alone
   * as ECONNRESET, so it needs SO_ERROR only once the socket reported an error; splice(2) always.
   */
  #readEnd(connection: Connection, dir: Direction, call: "recv" | "splice"): ReadStatus {
    const error = call === "recv" && !dir.failed ? 0 : this.#sockets.socketError(dir.from);
    if (error !== 0) {
      this.#abort(
        connection,
        dir.errorType,
        new OsError(call, error).message,
        fromEnd(connection, dir),
      );
      return FAILED;
    }
    dir.eof = true;
    endWith(connection.tally, fromEnd(connection, dir));
    return MORE;
  }

  /** A read returned -1: drained (EAGAIN), again (EINTR), or the connection aborts. */
  #readFailed(connection: Connection, dir: Direction, call: string): ReadStatus {
    const errno = this.#errno.get();
    if (errno === Errno.EAGAIN) return DRAINED;
    if (errno === Errno.EINTR) return MORE;
    this.#abort(
      connection,
      dir.errorType,
      new OsError(call, errno).message,
      fromEnd(connection, dir),
    );
    return FAILED;
  }

  /**
   * Handles the batch's events that report a peer's FIN, reset or error (pairs of fd and events),
   * after its other events: ending a connection (shutdown, then closing both sockets) never delays
   * a new client or bytes in flight. Each fd still names its connection: sockets close only after
   * the batch.
   */
  #handleEnding(): void {
    const ending = this.#ending;
    for (let i = 0; i < ending.length; i += 2) {
      const fd = ending[i]!;
      const connection = this.#connectionsByFd[fd];
      if (connection !== undefined) this.#onEvent(connection, fd, ending[i + 1]!);
    }
    ending.length = 0;
  }

  /** Gives the directions that used up their turn another one (after the batch of events). */
  #continueUnfinished(): void {
    const work = this.#unfinished;
    this.#unfinished = this.#unfinishedSpare; // those unfinished again go on after the next poll
    for (let i = 0; i < work.length; i += 2) {
      const connection = work[i] as Connection;
      this.#pump(connection, work[i + 1] as Direction);
      this.#endIfDone(connection);
    }
    work.length = 0;
    this.#unfinishedSpare = work;
  }

  #releasePipe(dir: Direction): void {
    if (dir.pipe === undefined || dir.pending > 0) return;
    this.#pipes.release(dir.pipe);
    dir.pipe = undefined;
    this.#dueBy(this.#pipes.trimDueMs);
  }

  /** Makes the next sweep come no later than `ms`. */
  #dueBy(ms: number): void {
    if (ms < this.#nextSweepMs) this.#nextSweepMs = ms;
  }

  /** Closes both sockets once both directions passed their EOF on. */
  #endIfDone(connection: Connection): void {
    if (!connection.closed && connection.up.done && connection.down.done) {
      this.#end(connection, false);
    }
  }

  #dialFailed(connection: Connection, type: TcpErrorType, error: string): void {
    const listener = connection.listener;
    endWith(connection.tally, "dial_failed", `${type}: ${error}`);
    listener.counters[E[type]]!++;
    const target = listener.target === undefined
      ? undefined
      : decodeSockaddr(this.#layout, listener.target.sockaddr);
    this.#warn(
      listener,
      "dial",
      "Cannot reach TCP target {host}:{targetPort} of {forwarder} ({type}): {error}",
      {
        host: target?.hostname ?? "(unresolved)",
        targetPort: target?.port ?? 0,
        type,
        error,
      },
    );
    this.#end(connection, false);
  }

  /** A copy failed: counts it once, resets both sockets (`reason`: for the access record). */
  #abort(
    connection: Connection,
    type: TcpErrorType,
    error: string,
    reason: TcpEndReason = "error",
  ): void {
    if (connection.closed) return;
    endWith(connection.tally, reason, error);
    const listener = connection.listener;
    listener.counters[E[type]]!++;
    this.#warn(listener, "copy", "TCP connection of {forwarder} aborted ({type}): {error}", {
      type,
      error,
    });
    this.#end(connection, true);
  }

  /** Forgets the connection and schedules its sockets' close (with RST when `abort`). */
  #end(connection: Connection, abort: boolean): void {
    if (connection.closed) return;
    connection.closed = true;
    const listener = connection.listener;
    this.#dialing.delete(connection);
    const queue = abort ? this.#toAbort : this.#toClose;
    this.#connectionsByFd[connection.client] = undefined;
    queue.push(connection.client);
    if (connection.upstream >= 0) {
      this.#connectionsByFd[connection.upstream] = undefined;
      queue.push(connection.upstream);
    }
    this.#dropBuffers(connection.up);
    this.#dropBuffers(connection.down);
    listener.connections.delete(connection);
    listener.admission.release(connection.gate, connection.source);
    if (connection.tally !== undefined) {
      const { tally, up, down } = connection;
      this.#post({
        kind: "record",
        id: listener.id,
        record: recordOf(tally, {
          connected: !connection.dialing && connection.upstream >= 0,
          bytesClientToTarget: up.moved,
          bytesTargetToClient: down.moved,
        }, Date.now()),
      });
    }
    this.#openConnections--;
    listener.counters[F.activeConnections]!--;
    if (listener.drainSeq !== undefined && this.#idle(listener)) {
      this.#post({ kind: "done", seq: listener.drainSeq, count: 0 });
      listener.drainSeq = undefined;
    }
  }

  /** Gives back (empty) or closes (with data) the direction's pipe; forgets parked bytes. */
  #dropBuffers(dir: Direction): void {
    dir.parked = undefined;
    if (dir.pipe === undefined) return;
    if (dir.pending > 0) this.#pipes.discard(dir.pipe);
    else this.#pipes.release(dir.pipe);
    dir.pipe = undefined;
    this.#dueBy(this.#pipes.trimDueMs);
  }

  #closeDeferred(): void {
    for (const fd of this.#toClose) this.#sockets.close(fd);
    for (const fd of this.#toAbort) this.#sockets.abort(fd);
    this.#toClose.length = 0;
    this.#toAbort.length = 0;
  }

  /** True when the listener has no connection and no client whose header is awaited. */
  #idle(listener: Listener): boolean {
    return listener.connections.size === 0 && listener.waiting.size === 0;
  }

  /**
   * Counts the client accepted as `fd` (from `#peer`) and waits for its PROXY header, within the
   * listener's deadline; reads what is there already.
   */
  #awaitHeader(listener: Listener, fd: number): void {
    const counters = listener.counters;
    counters[F.activeConnections]!++;
    counters[F.connectionsTotal]!++;
    this.#openConnections++;
    const waiting: Waiting = {
      listener,
      fd,
      peer: decodeSockaddr(this.#layout, this.#peer),
      header: new HeaderWait(this.#nowMs + listener.proxyHeaderTimeoutMs),
      sampled: sampledIn(listener.accessLogShare),
      rdhup: false,
    };
    listener.waiting.add(waiting);
    this.#waitingByFd[fd] = waiting;
    this.#dueBy(waiting.header.deadlineMs);
    try {
      this.#control_(this.#layout.constants.EPOLL_CTL_ADD, fd, this.#connectionEvents);
    } catch (error) {
      this.#refuseHeader(waiting, "malformed", errorMessage(error));
      return;
    }
    this.#readHeader(waiting);
  }

  /** Reads the waiting client's header bytes until it is complete, refused, or the socket is dry. */
  #readHeader(waiting: Waiting): void {
    let progress: HeaderProgress;
    for (;;) {
      const room = Math.min(COPY_BYTES, waiting.header.room);
      const read = this.#libc.recvInto(waiting.fd, this.#copyBuffer, room, 0);
      if (read > 0) {
        progress = waiting.header.add(this.#copyBuffer.subarray(0, read));
        if (progress.kind === "incomplete") continue;
        break;
      }
      if (read === 0) {
        progress = waiting.header.ended();
        break;
      }
      const errno = this.#errno.get();
      if (errno === Errno.EAGAIN) return;
      if (errno === Errno.EINTR) continue;
      progress = {
        kind: "refused",
        fault: "malformed",
        detail: `read failed: ${new OsError("recv", errno).message}`,
      };
      break;
    }
    if (progress.kind === "refused") this.#refuseHeader(waiting, progress.fault, progress.detail);
    else if (progress.kind === "accepted") this.#headerRead(waiting, progress);
  }

  /**
   * The header was read: the client it carries (else the peer) passes the source rules, limits and
   * target rules, or is refused (closed, counted, recorded); an admitted one is forwarded.
   */
  #headerRead(waiting: Waiting, header: Extract<HeaderProgress, { kind: "accepted" }>): void {
    const { listener, fd } = waiting;
    const client = header.source ?? waiting.peer;
    const peer = header.source === undefined ? undefined : waiting.peer;
    const tally = waiting.sampled ? this.#tally(listener, client, peer) : undefined;
    const gate = listener.admission.gate;
    const source = gate === undefined ? "" : client.hostname;
    this.#refreshTarget(listener);
    const reason = listener.admission.admit(source, listener.forbidden, this.#nowMs);
    if (reason !== undefined) {
      this.#refused(listener, client.hostname, reason);
      endWith(tally, "refused", reason);
      this.#endWaiting(waiting, false, tally);
      return;
    }
    this.#forget(waiting);
    this.#open(listener, fd, gate, source, {
      client,
      peer,
      rest: header.rest,
      tally,
      rdhup: waiting.rdhup,
    });
  }

  /** Refuses a client whose PROXY header is missing, malformed or late: closed, counted, logged. */
  #refuseHeader(
    waiting: Waiting,
    fault: "missing" | "malformed" | "timeout",
    detail: string,
  ): void {
    const { listener, peer } = waiting;
    listener.counters[E[HEADER_FAULTS[fault]]]!++;
    this.#warn(
      listener,
      "reject",
      "Refused a TCP client of {forwarder} from {peer}: PROXY header {fault}: {detail}",
      { peer: `${peer.hostname}:${peer.port}`, fault, detail },
    );
    const tally = waiting.sampled ? this.#tally(listener, peer, undefined) : undefined;
    endWith(tally, "refused", `PROXY header ${fault}: ${detail}`);
    this.#endWaiting(waiting, false, tally);
  }

  /** Stops waiting for `waiting`'s header (the client goes on as a connection, or is closed). */
  #forget(waiting: Waiting): void {
    waiting.listener.waiting.delete(waiting);
    this.#waitingByFd[waiting.fd] = undefined;
  }

  /** Closes a waiting client (with RST when `abort`), uncounts it and posts its access record. */
  #endWaiting(waiting: Waiting, abort: boolean, tally: ConnectionTally | undefined): void {
    const listener = waiting.listener;
    this.#forget(waiting);
    (abort ? this.#toAbort : this.#toClose).push(waiting.fd);
    listener.counters[F.activeConnections]!--;
    this.#openConnections--;
    if (tally !== undefined) {
      const traffic = { connected: false, bytesClientToTarget: 0, bytesTargetToClient: 0 };
      this.#post({ kind: "record", id: listener.id, record: recordOf(tally, traffic, Date.now()) });
    }
    if (listener.drainSeq !== undefined && this.#idle(listener)) {
      this.#post({ kind: "done", seq: listener.drainSeq, count: 0 });
      listener.drainSeq = undefined;
    }
  }

  #refreshTarget(listener: Listener): void {
    if (listener.settings.generation === listener.generation) return;
    const { generation, target, forbidden } = listener.settings.read();
    listener.generation = generation;
    listener.target = target;
    listener.forbidden = forbidden;
  }

  /**
   * True while the main thread announced a newer policy than `listener` applied (for at most
   * {@linkcode POLICY_WAIT_MS}): its clients wait in the accept queue until the message arrives.
   */
  #policyBehind(listener: Listener): boolean {
    if (listener.settings.policyGeneration <= listener.policyGeneration) {
      listener.policyWaitSinceMs = undefined;
      return false;
    }
    listener.policyWaitSinceMs ??= this.#nowMs;
    if (this.#nowMs - listener.policyWaitSinceMs > POLICY_WAIT_MS) return false;
    this.#policyWait = true;
    return true;
  }

  /** New clients of `listener` follow `policy`; open connections keep theirs. */
  #applyPolicy(listener: Listener, policy: TcpListenerPolicy): void {
    listener.proxyProtocol = policy.proxyProtocol;
    listener.accessLogShare = policy.accessLogShare;
    listener.acceptProxy = policy.acceptProxyProtocol;
    listener.proxyHeaderTimeoutMs = policy.proxyHeaderTimeoutMs;
    try {
      listener.admission.apply(policy);
    } catch (error) {
      // The main thread validated it; keep the old rules if this one is still refused.
      this.#post({
        kind: "log",
        level: "error",
        message: "TCP port {port} keeps its source rules: {error}",
        properties: { port: listener.port, error: errorMessage(error) },
      });
    }
  }

  /**
   * Admits the client accepted as `fd` from `source` (source rules, limits, target rules); a
   * refused one is closed before anything is dialled, counted and logged rate-limited. False then.
   */
  #admit(listener: Listener, fd: number, source: string): boolean {
    this.#refreshTarget(listener);
    const reason = listener.admission.admit(source, listener.forbidden, this.#nowMs);
    if (reason === undefined) return true;
    this.#refused(listener, source, reason); // counted before the client can see the close
    this.#sockets.close(fd);
    return false;
  }

  #refused(listener: Listener, source: string, reason: TcpRejectReason): void {
    listener.counters[R[reason]]!++;
    this.#warn(
      listener,
      "reject",
      "Refused a TCP connection from {source} on port {port} of {forwarder}: {reason}",
      {
        source: source === "" ? decodeSockaddr(this.#layout, this.#peer).hostname : source,
        reason,
      },
    );
  }

  /**
   * Ends dials past their deadline and connections idle past the idle timeout, closes pooled pipes
   * unused for long, and sets when the next sweep is due (at the latest in `IDLE_POLL_MS`).
   */
  #sweep(): void {
    const nowMs = this.#nowMs;
    this.#pipes.trim(nowMs);
    let nextMs = Math.min(nowMs + IDLE_POLL_MS, this.#pipes.trimDueMs);
    for (const connection of this.#dialing) {
      if (nowMs >= connection.dialDeadlineMs) {
        this.#dialing.delete(connection);
        this.#dialFailed(connection, "DialTimeout", "dial timed out");
      } else {
        nextMs = Math.min(nextMs, connection.dialDeadlineMs);
      }
    }
    for (const listener of this.#listeners.values()) {
      const idleMs = listener.idleTimeoutMs;
      if (idleMs === 0) continue;
      if (nowMs >= listener.nextIdleSweepMs) {
        listener.nextIdleSweepMs = nowMs + Math.max(SWEEP_MS, Math.min(1000, idleMs / 4));
        for (const connection of listener.connections) {
          if (!connection.dialing && nowMs - connection.lastActiveMs >= idleMs) {
            listener.counters[E.IdleTimeout]!++;
            endWith(connection.tally, "idle_timeout");
            this.#end(connection, false);
          }
        }
      }
      if (listener.connections.size > 0) nextMs = Math.min(nextMs, listener.nextIdleSweepMs);
    }
    for (const listener of this.#listeners.values()) {
      for (const waiting of listener.waiting) {
        if (nowMs < waiting.header.deadlineMs) {
          nextMs = Math.min(nextMs, waiting.header.deadlineMs);
          continue;
        }
        const detail = `no complete PROXY header within ${listener.proxyHeaderTimeoutMs} ms`;
        this.#refuseHeader(waiting, "timeout", detail);
      }
    }
    this.#nextSweepMs = nextMs;
  }

  #stopAccepting(listener: Listener): void {
    if (listener.fd < 0) return;
    this.#listenersByFd[listener.fd] = undefined;
    this.#sockets.close(listener.fd);
    listener.fd = -1;
  }

  /**
   * Aborts every connection left (RST; the main thread counts them as DrainTimeout) and forgets
   * the listener. Returns how many were aborted.
   */
  #close(listener: Listener, cause: TcpCloseCause): number {
    this.#stopAccepting(listener);
    const drainSeq = listener.drainSeq;
    listener.drainSeq = undefined;
    const count = listener.connections.size + listener.waiting.size;
    for (const connection of [...listener.connections]) {
      endWith(connection.tally, cause);
      this.#end(connection, true);
    }
    for (const waiting of [...listener.waiting]) {
      const tally = waiting.sampled ? this.#tally(listener, waiting.peer, undefined) : undefined;
      endWith(tally, cause);
      this.#endWaiting(waiting, true, tally);
    }
    if (drainSeq !== undefined) this.#post({ kind: "done", seq: drainSeq, count: 0 });
    this.#listeners.delete(listener.id);
    return count;
  }

  #closePipe(pipe: Pipe): void {
    this.#sockets.close(pipe.read);
    this.#sockets.close(pipe.write);
  }

  #warn(
    listener: Listener,
    kind: "accept" | "dial" | "copy" | "reject",
    message: string,
    properties: Record<string, unknown>,
  ): void {
    const suppressed = listener.logs[kind].take(this.#nowMs);
    if (suppressed === undefined) return;
    this.#post({
      kind: "log",
      level: "warn",
      message,
      properties: { forwarder: listener.name, port: listener.port, suppressed, ...properties },
    });
  }
}

function direction(
  from: number,
  to: number,
  bytesField: number,
  errorType: TcpErrorType,
): Direction {
  return {
    from,
    to,
    splicing: false,
    pipe: undefined,
    parked: undefined,
    pending: 0,
    uncounted: 0,
    moved: 0,
    rdhup: false,
    failed: false,
    drainedBatch: -1,
    eof: false,
    done: false,
    bytesField,
    errorType,
  };
}

/** The end that reading `dir` met: its source closed. */
function fromEnd(connection: Connection, dir: Direction): TcpEndReason {
  return dir === connection.up ? "client_closed" : "target_closed";
}

/** The end that writing `dir` met: its destination closed. */
function toEnd(connection: Connection, dir: Direction): TcpEndReason {
  return dir === connection.up ? "target_closed" : "client_closed";
}
