/**
 * The loop of one splice TCP engine thread: one `epoll_wait` over every listening socket and every
 * connection's two sockets; accept4, a non-blocking connect to the target, then per direction
 * splice(2) socket → pipe → socket (the bytes never enter JavaScript).
 *
 * Connection sockets are registered edge-triggered for in, out and RDHUP once; an event on a socket
 * moves the direction reading from it (until EAGAIN or EOF: a short read is not "drained", the FIN
 * may have come with the data) and, when it became writable, the direction blocked on it. A
 * direction at EOF half-closes its destination once its pipe is empty; when both ended, both
 * sockets close. A failed read or write aborts the connection: both sockets close with RST and the
 * failure is counted once (as on the portable engine, by direction). Sockets are closed after the
 * batch of events that may still name them (an fd closed and reused within a batch would otherwise
 * get a stale event).
 *
 * Same behaviour as the portable engine: TCP_NODELAY both ways, dial timeout, idle timeout over both
 * directions, live target updates for new connections (shared memory), drain, every counter.
 *
 * Descriptors: a connection needs up to 6 (two sockets, two pipes while data moves). Each thread
 * admits at most its share of the process's RLIMIT_NOFILE, less a reserve for the rest of the
 * program ({@linkcode connectionBudget}), and at most its share of `--max-open-sockets`; clients
 * beyond it are accepted and reset at once (counted as SocketLimit), so admitted connections
 * always get their pipes. Should accept4 still run out
 * (EMFILE), a reserved pipe is given up to accept the waiting client and reset it: a client never
 * hangs in the accept queue.
 *
 * The loop yields to the event loop when a poll times out, when the main thread posted a message,
 * and at least every 200 ms; it stops when the shared stop flag is set. Imports no third-party code.
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
import type { TcpErrorType } from "../state.ts";
import { type EngineTarget, ListenerSettings } from "../udp_batched/listener_settings.ts";
import type { TcpAnswer, TcpRequest } from "./messages.ts";
import { PIPE_BYTES, PipePool } from "./pipe_pool.ts";
import { E, F, TCP_FIELD_COUNT } from "./shared_tcp_counters.ts";
import { type Pipe, type SpliceLibc, TcpSockets } from "./tcp_sockets.ts";

/** Events per epoll_wait. */
const MAX_EVENTS = 256;
/** Longest wait for events: bounds how late a stop flag or control message is seen. */
const POLL_MS = 20;
/** A busy loop yields to the event loop at least this often. */
const BUSY_YIELD_MS = 200;
/** How often dials and idle connections are checked (at most). */
const SWEEP_MS = 10;
/** Connections accepted per ready listening socket per poll, so one port cannot starve others. */
const ACCEPTS_PER_EVENT = 64;
/** Splices per direction per event before other connections get their turn. */
const ROUNDS_PER_EVENT = 16;
/** Empty pipes kept per thread for reuse. */
const IDLE_PIPES = 64;
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
  readonly dialTimeoutMs: number;
  readonly idleTimeoutMs: number;
  readonly connections: Set<Connection>;
  /** Set while draining: the request to answer once no connection is left. */
  drainSeq: number | undefined;
  nextIdleSweepMs: number;
  readonly logs: Record<"accept" | "dial" | "copy", LogThrottle>;
}

/** One direction of a connection: `from` → pipe → `to`. */
interface Direction {
  readonly from: number;
  readonly to: number;
  pipe: Pipe | undefined;
  /** Bytes in the pipe. */
  pending: number;
  eof: boolean;
  /** EOF passed on (or the connection ended). */
  done: boolean;
  readonly bytesField: number;
  readonly errorType: TcpErrorType;
}

interface Connection {
  readonly listener: Listener;
  readonly client: number;
  upstream: number;
  dialing: boolean;
  dialDeadlineMs: number;
  lastActiveMs: number;
  /** Client → target. */
  up: Direction | undefined;
  /** Target → client. */
  down: Direction | undefined;
  closed: boolean;
}

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
  readonly #events: NativeArena;
  readonly #event: NativeArena;
  readonly #listeners = new Map<number, Listener>();
  readonly #listenersByFd: (Listener | undefined)[] = [];
  readonly #connectionsByFd: (Connection | undefined)[] = [];
  readonly #dialing = new Set<Connection>();
  /** Sockets to close (true: with RST) after the current batch of events. */
  readonly #toClose: number[] = [];
  readonly #toAbort: number[] = [];
  /** Connections and directions (pairs) whose turn ended before their source was drained. */
  #unfinished: (Connection | Direction)[] = [];
  /** A pipe held back to free two descriptors when accept runs out of them. */
  #reserve: Pipe | undefined;
  #nowMs = Date.now();
  /** Connections this thread admits (see {@linkcode connectionBudget}), and has open. */
  #maxConnections = Infinity;
  #openConnections = 0;
  #nextSweepMs = 0;
  readonly #connectionEvents: number;

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
    this.#reserve = this.#sockets.pipe(4096).pipe;
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
        if (listener === undefined || listener.connections.size === 0) {
          this.#post({ kind: "done", seq: message.seq, count: 0 });
        } else {
          listener.drainSeq = message.seq;
        }
        break;
      case "close": {
        const count = listener === undefined ? 0 : this.#close(listener);
        this.#post({ kind: "done", seq: message.seq, count });
        break;
      }
    }
    this.#closeDeferred();
  }

  /** Runs until the stop flag is set; then closes every socket. */
  async run(): Promise<void> {
    const { size, events: eventsAt, data } = this.#layout.epollEvent;
    const events = this.#events;
    let lastYieldMs = Date.now();
    while (!this.#control.stopRequested) {
      const waitMs = this.#unfinished.length > 0 ? 0 : POLL_MS;
      const count = this.#libc.epoll_wait(this.#epoll, events.bytes, MAX_EVENTS, waitMs);
      this.#nowMs = Date.now();
      if (count < 0 && this.#errno.get() !== Errno.EINTR) {
        throw new OsError("epoll_wait", this.#errno.get());
      }
      for (let i = 0; i < count; i++) {
        const at = i * size;
        const fd = events.view.getUint32(at + data, true);
        const listener = this.#listenersByFd[fd];
        if (listener !== undefined) {
          this.#accept(listener);
          continue;
        }
        const connection = this.#connectionsByFd[fd];
        if (connection !== undefined) {
          this.#onEvent(connection, fd, events.view.getUint32(at + eventsAt, true));
        }
      }
      this.#continueUnfinished();
      if (this.#nowMs >= this.#nextSweepMs) this.#sweep();
      this.#closeDeferred();
      const idle = count <= 0 && this.#unfinished.length === 0;
      if (idle || this.#control.takePosted() || this.#nowMs - lastYieldMs >= BUSY_YIELD_MS) {
        await new Promise((resolve) => setTimeout(resolve, 0));
        lastYieldMs = Date.now();
      }
    }
    for (const listener of [...this.#listeners.values()]) this.#close(listener);
    this.#closeDeferred();
    this.#pipes.close();
    if (this.#reserve !== undefined) this.#closePipe(this.#reserve);
    this.#sockets.close(this.#epoll);
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
    const { generation, target } = settings.read();
    const listener: Listener = {
      id: message.id,
      name: message.name,
      fd,
      port,
      counters: new Float64Array(message.counters, offset, TCP_FIELD_COUNT),
      settings,
      generation,
      target,
      dialTimeoutMs: message.dialTimeoutMs,
      idleTimeoutMs: message.idleTimeoutMs,
      connections: new Set(),
      drainSeq: undefined,
      nextIdleSweepMs: 0,
      logs: { accept: new LogThrottle(), dial: new LogThrottle(), copy: new LogThrottle() },
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

  #accept(listener: Listener): void {
    for (let n = 0; n < ACCEPTS_PER_EVENT && listener.fd >= 0; n++) {
      const fd = this.#sockets.accept(listener.fd);
      if (fd >= 0 && this.#openConnections >= this.#maxConnections) {
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
        this.#open(listener, fd);
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

  #open(listener: Listener, client: number): void {
    const counters = listener.counters;
    counters[F.activeConnections]!++;
    counters[F.connectionsTotal]!++;
    if (listener.drainSeq !== undefined) {
      // Accepted in the same batch as the drain request: never forwarded.
      counters[F.activeConnections]!--;
      this.#sockets.abort(client);
      return;
    }
    this.#sockets.noDelay(client);
    this.#refreshTarget(listener);
    const connection: Connection = {
      listener,
      client,
      upstream: -1,
      dialing: true,
      dialDeadlineMs: this.#nowMs + listener.dialTimeoutMs,
      lastActiveMs: this.#nowMs,
      up: undefined,
      down: undefined,
      closed: false,
    };
    listener.connections.add(connection);
    this.#openConnections++;
    const target = listener.target;
    if (target === undefined) {
      this.#dialFailed(connection, "ResolveTargetAddress", "the target name does not resolve");
      return;
    }
    let connected: boolean;
    try {
      const dial = this.#sockets.connect(target.sockaddr, target.family);
      connection.upstream = dial.fd;
      connected = dial.connected;
      this.#connectionsByFd[dial.fd] = connection;
      this.#control_(this.#layout.constants.EPOLL_CTL_ADD, dial.fd, this.#connectionEvents);
    } catch (error) {
      this.#dialFailed(connection, "DialServerTarget", errorMessage(error));
      return;
    }
    if (connected) this.#connected(connection);
    else this.#dialing.add(connection);
  }

  #onEvent(connection: Connection, fd: number, events: number): void {
    if (connection.dialing) {
      if (fd === connection.upstream) this.#dialProgress(connection);
      return;
    }
    const { constants, tcp } = this.#layout;
    const fromFd = fd === connection.client ? connection.up! : connection.down!;
    const toFd = fd === connection.client ? connection.down! : connection.up!;
    if ((events & (constants.EPOLLIN | tcp.EPOLLRDHUP | tcp.EPOLLERR | tcp.EPOLLHUP)) !== 0) {
      this.#pump(connection, fromFd);
    }
    if (
      !connection.closed && toFd.pending > 0 &&
      (events & (tcp.EPOLLOUT | tcp.EPOLLERR | tcp.EPOLLHUP)) !== 0
    ) {
      this.#pump(connection, toFd);
    }
    this.#endIfDone(connection);
  }

  /** The upstream socket of a dialing connection reported: connected, or failed. */
  #dialProgress(connection: Connection): void {
    const error = this.#sockets.socketError(connection.upstream);
    if (error === Errno.EINPROGRESS) return;
    this.#dialing.delete(connection);
    if (error !== 0) {
      this.#dialFailed(connection, "DialServerTarget", new OsError("connect", error).message);
      return;
    }
    this.#connected(connection);
  }

  #connected(connection: Connection): void {
    this.#dialing.delete(connection);
    connection.dialing = false;
    const { client, upstream } = connection;
    connection.up = direction(client, upstream, F.bytesClientToTarget, "CopyClientToTarget");
    connection.down = direction(upstream, client, F.bytesTargetToClient, "CopyTargetToClient");
    this.#connectionsByFd[client] = connection;
    try {
      this.#control_(this.#layout.constants.EPOLL_CTL_ADD, client, this.#connectionEvents);
    } catch (error) {
      this.#abort(connection, "CopyClientToTarget", errorMessage(error));
      return;
    }
    // Data that arrived while dialing.
    this.#pump(connection, connection.up);
    if (!connection.closed) this.#pump(connection, connection.down);
    this.#endIfDone(connection);
  }

  /**
   * Moves `dir` forward: empties its pipe into the destination; at EOF half-closes it; else reads
   * the source into the pipe until EAGAIN (giving the empty pipe back), EOF, or a full destination.
   */
  #pump(connection: Connection, dir: Direction): void {
    if (dir.done || connection.closed) return;
    const { tcp } = this.#layout;
    const flags = tcp.SPLICE_F_MOVE | tcp.SPLICE_F_NONBLOCK;
    const counters = connection.listener.counters;
    for (let round = 0; round < ROUNDS_PER_EVENT; round++) {
      if (dir.pending > 0) {
        const moved = this.#libc.splice(dir.pipe!.read, null, dir.to, null, dir.pending, flags);
        if (moved < 0) {
          const errno = this.#errno.get();
          if (errno === Errno.EAGAIN) return; // EPOLLOUT on `to` resumes
          if (errno === Errno.EINTR) continue;
          this.#abort(connection, dir.errorType, new OsError("splice", errno).message);
          return;
        }
        dir.pending -= moved;
        counters[dir.bytesField]! += moved;
        if (dir.pending > 0) continue;
      }
      if (dir.eof) {
        this.#releasePipe(dir);
        dir.done = true;
        // The first direction to end half-closes; the second closes both sockets (#endIfDone).
        const other = dir === connection.up ? connection.down! : connection.up!;
        if (!other.done) this.#sockets.shutdownWrite(dir.to);
        return;
      }
      if (dir.pipe === undefined) {
        try {
          dir.pipe = this.#pipes.acquire(this.#nowMs);
        } catch (error) {
          this.#abort(connection, dir.errorType, errorMessage(error));
          return;
        }
      }
      const read = this.#libc.splice(dir.from, null, dir.pipe.write, null, PIPE_BYTES, flags);
      if (read > 0) {
        dir.pending = read;
        connection.lastActiveMs = this.#nowMs;
        continue;
      }
      if (read === 0) {
        // splice(2) reports a reset socket as an end (unlike read(2)): SO_ERROR tells them apart.
        const error = this.#sockets.socketError(dir.from);
        if (error !== 0) {
          this.#abort(connection, dir.errorType, new OsError("splice", error).message);
          return;
        }
        dir.eof = true;
        continue;
      }
      const errno = this.#errno.get();
      if (errno === Errno.EAGAIN) {
        this.#releasePipe(dir);
        return;
      }
      if (errno === Errno.EINTR) continue;
      this.#abort(connection, dir.errorType, new OsError("splice", errno).message);
      return;
    }
    // Its turn is over with data still readable and room to write: edge-triggered epoll will not
    // report that again, so the direction goes on after this batch.
    this.#unfinished.push(connection, dir);
  }

  /** Gives the directions that used up their turn another one (after the batch of events). */
  #continueUnfinished(): void {
    const work = this.#unfinished;
    this.#unfinished = [];
    for (let i = 0; i < work.length; i += 2) {
      const connection = work[i] as Connection;
      this.#pump(connection, work[i + 1] as Direction);
      this.#endIfDone(connection);
    }
  }

  #releasePipe(dir: Direction): void {
    if (dir.pipe === undefined || dir.pending > 0) return;
    this.#pipes.release(dir.pipe);
    dir.pipe = undefined;
  }

  /** Closes both sockets once both directions passed their EOF on. */
  #endIfDone(connection: Connection): void {
    if (!connection.closed && connection.up?.done && connection.down?.done) {
      this.#end(connection, false);
    }
  }

  #dialFailed(connection: Connection, type: TcpErrorType, error: string): void {
    const listener = connection.listener;
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

  /** A copy failed: counts it once, resets both sockets. */
  #abort(connection: Connection, type: TcpErrorType, error: string): void {
    if (connection.closed) return;
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
    for (const fd of [connection.client, connection.upstream]) {
      if (fd < 0) continue;
      this.#connectionsByFd[fd] = undefined;
      queue.push(fd);
    }
    for (const dir of [connection.up, connection.down]) {
      if (dir?.pipe === undefined) continue;
      if (dir.pending > 0) this.#pipes.discard(dir.pipe);
      else this.#pipes.release(dir.pipe);
      dir.pipe = undefined;
    }
    listener.connections.delete(connection);
    this.#openConnections--;
    listener.counters[F.activeConnections]!--;
    if (listener.drainSeq !== undefined && listener.connections.size === 0) {
      this.#post({ kind: "done", seq: listener.drainSeq, count: 0 });
      listener.drainSeq = undefined;
    }
  }

  #closeDeferred(): void {
    for (const fd of this.#toClose) this.#sockets.close(fd);
    for (const fd of this.#toAbort) this.#sockets.abort(fd);
    this.#toClose.length = 0;
    this.#toAbort.length = 0;
  }

  #refreshTarget(listener: Listener): void {
    if (listener.settings.generation === listener.generation) return;
    const { generation, target } = listener.settings.read();
    listener.generation = generation;
    listener.target = target;
  }

  /** Ends dials past their deadline and connections idle past the idle timeout. */
  #sweep(): void {
    const nowMs = this.#nowMs;
    this.#nextSweepMs = nowMs + SWEEP_MS;
    this.#pipes.trim(nowMs);
    for (const connection of this.#dialing) {
      if (nowMs >= connection.dialDeadlineMs) {
        this.#dialing.delete(connection);
        this.#dialFailed(connection, "DialTimeout", "dial timed out");
      }
    }
    for (const listener of this.#listeners.values()) {
      const idleMs = listener.idleTimeoutMs;
      if (idleMs === 0 || nowMs < listener.nextIdleSweepMs) continue;
      listener.nextIdleSweepMs = nowMs + Math.max(SWEEP_MS, Math.min(1000, idleMs / 4));
      for (const connection of listener.connections) {
        if (!connection.dialing && nowMs - connection.lastActiveMs >= idleMs) {
          listener.counters[E.IdleTimeout]!++;
          this.#end(connection, false);
        }
      }
    }
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
  #close(listener: Listener): number {
    this.#stopAccepting(listener);
    const drainSeq = listener.drainSeq;
    listener.drainSeq = undefined;
    const count = listener.connections.size;
    for (const connection of [...listener.connections]) this.#end(connection, true);
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
    kind: "accept" | "dial" | "copy",
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
  return { from, to, pipe: undefined, pending: 0, eof: false, done: false, bytesField, errorType };
}
