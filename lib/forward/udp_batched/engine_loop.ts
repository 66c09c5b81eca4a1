/**
 * The loop of one batched UDP engine thread: `epoll_wait` over every listening socket and every
 * session's upstream socket; `recvmmsg` batches from clients, grouped per session and sent with one
 * `sendmmsg` on the session's connected upstream socket; replies from every ready upstream socket
 * gathered into one `sendmmsg` on the listening socket, addressed to each session's client.
 *
 * Same behaviour as the portable engine: one session per client address, idle timeout refreshed by
 * traffic either way, a session cap shared by all threads of a listener, drain, live target and
 * timeout updates. Differences forced by the kernel: a datagram longer than `bufferBytes` is
 * detected (MSG_TRUNC), counted and dropped, never forwarded cut; a send that would block
 * (EAGAIN: full socket buffer) drops that datagram (counted) and a session whose sends keep
 * blocking for `writeTimeoutSeconds` ends.
 *
 * The loop yields to the event loop when a poll times out, at once when the main thread posted a
 * message (a shared count says so; then before it reads any datagram, so that a new policy applies
 * to the very next client), and at least every 200 ms when busy, so that control messages arrive;
 * it stops when the shared stop flag is set. With `--udp-busy-poll`, the loop polls without
 * sleeping for a while after traffic ({@linkcode BusyPoll}). This module imports no third-party code.
 * @module
 */

import { Errno, ErrnoReader, OsError } from "../../ffi/errno.ts";
import type { WorkerControl } from "../../ffi/ffi_worker.ts";
import type { AbiLayout } from "../../ffi/layout.ts";
import { NativeArena } from "../../ffi/native_memory.ts";
import { Budget } from "../budget.ts";
import { LogThrottle } from "../log_throttle.ts";
import type { UdpErrorType, UdpRejectReason } from "../state.ts";
import { E, F, R, UDP_FIELD_COUNT } from "./counter_fields.ts";
import { BATCH, DatagramBatch, SLOT_BYTES } from "./datagram_batch.ts";
import { type EngineTarget, type EngineTimeouts, ListenerSettings } from "./listener_settings.ts";
import {
  BATCHED_SESSION_BYTES,
  type CloseCause,
  type FromEngine,
  type ListenerPolicy,
  type SessionRecord,
  type ToEngine,
} from "./messages.ts";
import { type EngineLibc, UdpSockets } from "./udp_sockets.ts";
import { decodeSockaddr } from "../../ffi/sockaddr.ts";
import { SourceGate } from "../policy/source_gate.ts";
import { MAX_UDP_PAYLOAD_BYTES, MAX_UDP_PAYLOAD_BYTES_IPV4 } from "../udp_payload.ts";
import {
  proxyEndpoints,
  proxyV2HeaderBytes,
  writeProxyV2Header,
} from "../proxy_protocol/encode.ts";
import type { SegmentOwner } from "./segmented_batch.ts";
import { BatchSender } from "./batch_sender.ts";
import { BusyPoll } from "./busy_poll.ts";
import { EngineRing, Kind, SENT_BUFFERS_FLUSH, VALUE_MASK } from "./engine_ring.ts";
import { type BufferRing, CompletionFlag, type UringLibc } from "../../ffi/io_uring.ts";
import { errorMessage } from "../../util/error_message.ts";

/** Events per epoll_wait. */
const MAX_EVENTS = 256;
/**
 * Longest wait for events when no sweep is due sooner: bounds how late a stop flag is seen if its
 * doorbell datagram were lost. Messages and stop requests ring the doorbell, waking the wait at once.
 */
const IDLE_POLL_MS = 1000;
/**
 * A busy loop yields to the event loop at least this often (a safety net: it yields at once when
 * the main thread posted a message, and whenever a poll times out).
 */
const BUSY_YIELD_MS = 200;
/** Longest wait for a policy message the main thread announced (it is posted before it is counted). */
const POLICY_WAIT_MS = 100;
/** How often sessions are checked for idle and write timeouts (at most). */
const SWEEP_MS = 25;
/**
 * Runs to one target shorter than this go out as ring sends; longer ones as one segmented
 * `sendmmsg` (two system calls, as the ring's queue is submitted first, but one trip through the
 * stack for the whole run).
 */
const RING_RUN_MAX = 4;
/** recvmmsg calls per ready listening socket per poll, so one busy port cannot starve others. */
const ROUNDS_PER_EVENT = 4;
const ENOBUFS = 105;
const ECANCELED = 125;

interface Listener {
  readonly id: number;
  /** Names the listener in io_uring completions (ids of the main thread may be negative). */
  readonly serial: number;
  readonly fd: number;
  /** The bound address and port (the destination a PROXY header names). */
  readonly hostname: string;
  readonly port: number;
  readonly counters: Float64Array<SharedArrayBuffer>;
  /** Sessions open on every thread of this listener (index 0), for the shared cap. */
  readonly inUse: Int32Array<SharedArrayBuffer>;
  readonly maxSessions: number;
  /** Sockets (one per session) and session memory, shared with the main thread. */
  readonly budgets: { readonly sockets: Budget; readonly sessionBytes: Budget };
  readonly receiveBytes: number;
  readonly settings: ListenerSettings;
  /** The settings as last read (when `settings.generation` moves on, they are read again). */
  generation: number;
  target: EngineTarget | undefined;
  /** The target policy forbids the target: new clients are rejected. */
  forbidden: boolean;
  timeouts: EngineTimeouts;
  /** Source ranges and per-source limit; undefined when there are none. */
  gate: SourceGate | undefined;
  /** The spec's session limit over every thread (Infinity without one). */
  maxSessionsOfSpec: number;
  /** New sessions put a PROXY protocol v2 header before every datagram to the target. */
  proxyV2: boolean;
  /** The generation of the policy applied (see `ListenerSettings.policyGeneration`). */
  policyGeneration: number;
  /** Share of new sessions with an access record (0 = none). */
  accessLogShare: number;
  readonly sessions: Map<number | string, Session>;
  /** Set while draining: the request to answer once no session is left. */
  drainSeq: number | undefined;
  nextSweepMs: number;
  readonly logs: Record<"drop" | "target" | "truncate" | "reject", LogThrottle>;
}

interface Session extends SegmentOwner {
  readonly fd: number;
  /** Names the session in io_uring completions (fds are reused, serials are not). */
  readonly serial: number;
  readonly listener: Listener;
  readonly key: number | string;
  /** The client's `sockaddr` as received. */
  readonly client: Uint8Array;
  /** The gate that admitted the session and the client's address as it counts it. */
  readonly gate: SourceGate | undefined;
  readonly source: string;
  /** The PROXY protocol header every datagram to the target starts with, if any. */
  readonly header: NativeArena | undefined;
  /** Bytes of a datagram to the target at most (header included). */
  readonly maxToTarget: number;
  /** What the session did so far, when it gets an access record. */
  readonly tally: Tally | undefined;
  lastActiveMs: number;
  /** Since when sends to the target would block, or 0. */
  toTargetBlockedSinceMs: number;
  /** Since when replies to the client would block, or 0. */
  toClientBlockedSinceMs: number;
  ended: boolean;
}

/** Traffic of a session with an access record. */
interface Tally {
  readonly startMs: number;
  readonly targetAddress: string;
  bytesClientToTarget: number;
  bytesTargetToClient: number;
  datagramsClientToTarget: number;
  datagramsTargetToClient: number;
}

/** How a session ended, for its access record. */
type SessionEnd = Pick<SessionRecord, "reason" | "errorType" | "detail">;

/** Whether a new session gets an access record: always at share 1, never at 0, else at random. */
function sampledIn(share: number): boolean {
  return share >= 1 || (share > 0 && Math.random() < share);
}

/** Gives ring buffer `buffer` (-1: none) of a completion nobody takes back to `buffers`. */
function giveBack(buffers: BufferRing, buffer: number): void {
  if (buffer >= 0) buffers.recycle(buffer);
}

/**
 * Whether a multishot receive ended for a reason nobody needs to hear of: no buffer was free (it is
 * re-armed), it was cancelled (its socket is closing), or a signal interrupted it.
 */
function endsQuietly(errno: number): boolean {
  return errno === ENOBUFS || errno === ECANCELED || errno === Errno.EINTR;
}

/** One engine thread's sockets, sessions and buffers. */
export class EngineLoop {
  readonly #libc: EngineLibc["symbols"];
  readonly #uringLibc: UringLibc;
  readonly #layout: AbiLayout;
  readonly #errno: ErrnoReader;
  readonly #sockets: UdpSockets;
  readonly #control: WorkerControl;
  readonly #row: number;
  readonly #post: (message: FromEngine) => void;
  readonly #epoll: number;
  readonly #events: NativeArena;
  readonly #event: NativeArena;
  readonly #fromClients: DatagramBatch;
  readonly #toTarget: DatagramBatch;
  /** As `#toTarget`, for sessions that send a PROXY header before each datagram. */
  readonly #toTargetWithHeaders: DatagramBatch;
  readonly #fromTargets: DatagramBatch;
  readonly #toClients: DatagramBatch;
  /** Sends batches, runs of equal-size datagrams to one destination as one (UDP_SEGMENT). */
  readonly #sender: BatchSender;
  readonly #listeners = new Map<number, Listener>();
  readonly #listenersByFd: (Listener | undefined)[] = [];
  readonly #sessionsByFd: (Session | undefined)[] = [];
  /** Replies gathered for one `sendmmsg` on `#replyListener`'s socket. */
  #replyListener: Listener | undefined;
  #replyCount = 0;
  /** Next free data slot of `#fromTargets` (>= `#replyCount` once a reply was dropped). */
  #replySlots = 0;
  readonly #replySessions: (Session | undefined)[] = new Array(BATCH).fill(undefined);
  /** Bytes of each datagram queued in `#toTarget` and `#toClients`. */
  readonly #toTargetLengths = new Int32Array(BATCH);
  readonly #toClientLengths = new Int32Array(BATCH);
  #lastSession: Session | undefined;
  #nextSweepMs = 0;
  /** Set once the main thread asked for io_uring and the kernel allowed it. */
  #ring: EngineRing<Session> | undefined;
  /** Sessions and listeners by serial (io_uring completions name them so). */
  readonly #sessionsBySerial = new Map<number, Session>();
  readonly #listenersBySerial = new Map<number, Listener>();
  #nextSerial = 0;
  /** The ring's buffer behind each gathered reply. */
  readonly #replyBuffers = new Int32Array(BATCH);
  /** Sessions and listeners whose multishot receive ended (no buffer was free, an error). */
  readonly #rearmSessions: Session[] = [];
  readonly #rearmListeners: Listener[] = [];
  /** The datagrams to one session's target queued by `#queueToTarget`, sent by `#sendRun`. */
  #runSession: Session | undefined;
  #runCount = 0;
  /** Where the run's first datagram is (a single one is sent from there through the ring). */
  #runArena: NativeArena | undefined;
  /** Where each datagram of the run is in `#runArena` (short runs go out through the ring). */
  readonly #runDataOffsets = new Int32Array(BATCH);
  /** The client ring buffer of each datagram of the run, or -1. */
  readonly #runBuffers = new Int32Array(BATCH);
  /** Polling without sleeping for a while after traffic (`--udp-busy-poll`); off by default. */
  readonly #busyPoll = new BusyPoll();
  /** One epoll_wait that returns at once, for {@linkcode BusyPoll.spin}. */
  readonly #pollEpoll = () => this.#libc.epoll_wait(this.#epoll, this.#events.bytes, MAX_EVENTS, 0);
  /** A UDP socket on 127.0.0.1 the main thread sends a byte to after posting a message. */
  readonly #doorbell: number;
  /** The doorbell's port, for the main thread. */
  readonly doorbellPort: number;

  /** @param uringLibc io_uring's calls, used once the main thread asks for io_uring. */
  constructor(
    libc: EngineLibc,
    uringLibc: UringLibc,
    layout: AbiLayout,
    control: WorkerControl,
    row: number,
    post: (message: FromEngine) => void,
  ) {
    this.#libc = libc.symbols;
    this.#uringLibc = uringLibc;
    this.#layout = layout;
    this.#errno = new ErrnoReader(libc.symbols.__errno_location);
    this.#sockets = new UdpSockets(libc, layout, this.#errno);
    this.#control = control;
    this.#row = row;
    this.#post = post;
    this.#epoll = this.#libc.epoll_create1(layout.constants.EPOLL_CLOEXEC);
    if (this.#epoll < 0) throw new OsError("epoll_create1", this.#errno.get());
    this.#events = new NativeArena(MAX_EVENTS * layout.epollEvent.size);
    this.#event = new NativeArena(16);
    this.#fromClients = new DatagramBatch(layout, { withNames: true, slots: true });
    this.#toTarget = new DatagramBatch(layout, { withNames: false, slots: false });
    this.#toTargetWithHeaders = new DatagramBatch(layout, {
      withNames: false,
      slots: false,
      headers: true,
    });
    this.#fromTargets = new DatagramBatch(layout, { withNames: false, slots: true });
    this.#toClients = new DatagramBatch(layout, { withNames: true, slots: false });
    this.#sender = new BatchSender(this.#libc, layout, this.#errno, this.#sockets);
    this.#doorbell = this.#sockets.doorbell();
    this.doorbellPort = this.#sockets.port(this.#doorbell);
    this.#watch(this.#doorbell);
  }

  /** Applies one control message from the main thread. */
  handle(message: ToEngine): void {
    switch (message.kind) {
      case "listen":
        return this.#listen(message);
      case "drain": {
        const listener = this.#listeners.get(message.id);
        if (listener === undefined || listener.sessions.size === 0) {
          this.#post({ kind: "drained", seq: message.seq });
        } else {
          listener.drainSeq = message.seq;
        }
        return;
      }
      case "close": {
        const listener = this.#listeners.get(message.id);
        if (listener !== undefined) this.#close(listener, message.cause ?? "drained");
        this.#post({ kind: "closed", seq: message.seq });
        return;
      }
      case "ioUring":
        return this.#post({ kind: "ioUring", seq: message.seq, ...this.#enableRing() });
      case "busyPoll":
        this.#busyPoll.microseconds = message.microseconds;
        return this.#post({ kind: "configured", seq: message.seq });
      case "policy": {
        const listener = this.#listeners.get(message.id);
        if (listener !== undefined) {
          this.#applyPolicy(listener, message.policy);
          listener.policyGeneration = Math.max(listener.policyGeneration, message.generation);
        }
        this.#post({ kind: "configured", seq: message.seq });
        return;
      }
    }
  }

  /**
   * Runs until the stop flag is set; then, or when it fails, closes every socket (a failed thread
   * leaves its share of each SO_REUSEPORT port to the other threads instead of black-holing it).
   */
  async run(): Promise<void> {
    const { size, data } = this.#layout.epollEvent;
    const events = this.#events;
    let lastYieldMs = Date.now();
    try {
      while (!this.#control.stopRequested) {
        if (this.#ring !== undefined) {
          await this.#runRing(this.#ring);
          break;
        }
        const waitMs = Math.max(0, Math.min(IDLE_POLL_MS, this.#nextSweepMs - Date.now()));
        let count = this.#busyPoll.spin(this.#pollEpoll);
        if (count === 0) {
          count = this.#libc.epoll_wait(this.#epoll, events.bytes, MAX_EVENTS, waitMs);
        }
        if (count < 0 && this.#errno.get() !== Errno.EINTR) {
          throw new OsError("epoll_wait", this.#errno.get());
        }
        if (this.#control.takePosted()) {
          // Messages before datagrams: a new rule already applies to the next new client.
          await this.#receiveMessages();
          lastYieldMs = Date.now();
        }
        const nowMs = Date.now();
        for (let i = 0; i < count; i++) {
          const fd = events.view.getUint32(i * size + data, true);
          const listener = this.#listenersByFd[fd];
          if (listener !== undefined) {
            this.#receiveFromClients(listener, nowMs);
            continue;
          }
          const session = this.#sessionsByFd[fd];
          if (session !== undefined) this.#receiveFromTarget(session, nowMs);
          else if (fd === this.#doorbell) this.#sockets.drainDoorbell(this.#doorbell);
        }
        this.#flushToClients(nowMs);
        if (nowMs >= this.#nextSweepMs) this.#sweep(nowMs);
        if (count > 0) this.#busyPoll.active();
        if (count <= 0 || nowMs - lastYieldMs >= BUSY_YIELD_MS) {
          await new Promise((resolve) => setTimeout(resolve, 0));
          lastYieldMs = Date.now();
        }
      }
    } finally {
      for (const listener of [...this.#listeners.values()]) this.#close(listener, "drained");
      this.#sockets.close(this.#doorbell);
      this.#sockets.close(this.#epoll);
      this.#ring?.close();
    }
  }

  /** The loop of {@linkcode run} once io_uring is on. */
  async #runRing(ring: EngineRing<Session>): Promise<void> {
    let lastYieldMs = Date.now();
    let nowMs = lastYieldMs;
    const pollRing = () => ring.poll();
    while (!this.#control.stopRequested) {
      const dueMs = Math.min(nowMs + IDLE_POLL_MS, this.#nextSweepMs);
      let waited = 0;
      if (this.#busyPoll.spin(pollRing) === 0) {
        if (dueMs <= nowMs) waited = ring.submit(1, 0);
        else {
          ring.wakeBy(dueMs, nowMs);
          waited = ring.submit(1, Infinity);
        }
      }
      if (this.#control.takePosted()) {
        // Messages before datagrams: a new rule already applies to the next new client.
        await this.#receiveMessages();
        lastYieldMs = Date.now();
      }
      nowMs = Date.now();
      const handled = this.#ringPass(ring, nowMs);
      if (handled > 0) this.#busyPoll.active();
      if (waited < 0 || handled === 0 || nowMs - lastYieldMs >= BUSY_YIELD_MS) {
        await new Promise((resolve) => setTimeout(resolve, 0));
        lastYieldMs = nowMs = Date.now();
      }
    }
  }

  /**
   * Handles what the ring's last wait brought (the sends it submitted are done), gives back the
   * buffers and re-arms the receives that ended. Returns how many completions it handled.
   */
  #ringPass(ring: EngineRing<Session>, nowMs: number): number {
    const submittedSends = ring.submittedSends;
    const handled = this.#completions(ring, nowMs);
    ring.releaseRecords(submittedSends);
    this.#flushToClients(nowMs);
    ring.clientBuffers.publish();
    const sessions = this.#rearmSessions;
    for (let k = 0; k < sessions.length; k++) {
      const session = sessions[k]!;
      if (!session.ended) ring.arm(session.fd, session.serial);
    }
    sessions.length = 0;
    const listeners = this.#rearmListeners;
    for (let k = 0; k < listeners.length; k++) {
      const listener = listeners[k]!;
      if (this.#listenersBySerial.get(listener.serial) === listener) {
        ring.listen(listener.fd, listener.serial);
      }
    }
    listeners.length = 0;
    if (nowMs >= this.#nextSweepMs) this.#sweep(nowMs);
    return handled;
  }

  /** Handles the ring's completions; returns how many. */
  #completions(ring: EngineRing<Session>, nowMs: number): number {
    const uring = ring.ring;
    let head = uring.head;
    const tail = uring.tail;
    const count = (tail - head) >>> 0;
    for (; head !== tail; head = (head + 1) >>> 0) {
      const userData = uring.userData(head);
      const result = uring.result(head);
      const flags = uring.flags(head);
      const value = userData & VALUE_MASK;
      switch (userData >>> 28) {
        case Kind.LISTENER:
          this.#fromClientRing(ring, value, result, flags, nowMs);
          break;
        case Kind.UPSTREAM:
          this.#fromTargetRing(ring, value, result, flags, nowMs);
          break;
        case Kind.SEND: {
          const session = ring.takeSendOwner(value);
          if (session === undefined) break;
          if (result >= 0) session.toTargetBlockedSinceMs = 0;
          else this.#sendToTargetFailed(session, ring.sendBytes(value), 0, -result, nowMs);
          break;
        }
        case Kind.REPLY: {
          const session = ring.takeSendOwner(value);
          if (session === undefined) break;
          if (result >= 0) this.#replied(session);
          else this.#replyFailed(session, ring.sendBytes(value), -result, nowMs);
          break;
        }
        case Kind.DOORBELL:
          this.#sockets.drainDoorbell(this.#doorbell);
          if ((flags & CompletionFlag.MORE) === 0) ring.pollDoorbell(this.#doorbell);
          break;
        case Kind.TIMER:
          ring.timerEnded(value);
          break;
      }
    }
    uring.consume(head);
    this.#sendRun(nowMs);
    return count;
  }

  /** A completion of listener `serial`'s multishot receive: a client's datagram, or why it ended. */
  #fromClientRing(
    ring: EngineRing<Session>,
    serial: number,
    result: number,
    flags: number,
    nowMs: number,
  ): void {
    const buffer = EngineRing.bufferOf(flags);
    const listener = this.#listenersBySerial.get(serial);
    if (listener === undefined) return giveBack(ring.clientBuffers, buffer);
    if ((flags & CompletionFlag.MORE) === 0) this.#rearmListeners.push(listener);
    if (result < 0) {
      if (!endsQuietly(-result)) {
        this.#receiveFailed(listener, new OsError("recvmsg", -result).message);
      }
      return;
    }
    if (buffer < 0) return;
    const buffers = ring.clientBuffers;
    const length = this.#clientDatagramLength(buffers, buffer, listener);
    if (length < 0) return;
    const session = this.#sessionFor(
      listener,
      buffers.data,
      ring.clientNameOffset(buffer),
      ring.clientNameLength(buffer),
      nowMs,
    );
    if (session === undefined) {
      buffers.recycle(buffer);
      return;
    }
    this.#queueToTarget(
      session,
      buffers.data,
      ring.clientPayloadOffset(buffer),
      length,
      buffer,
      nowMs,
    );
  }

  /**
   * Bytes of the client's datagram in ring buffer `buffer`, or -1 when it was longer than `listener` takes
   * (counted as truncated, dropped, its buffer given back): never forwarded cut.
   */
  #clientDatagramLength(buffers: BufferRing, buffer: number, listener: Listener): number {
    const length = EngineRing.payloadLength(buffers, buffer);
    const cut = (EngineRing.messageFlags(buffers, buffer) & this.#layout.constants.MSG_TRUNC) !== 0;
    if (!cut && length <= listener.receiveBytes) return length;
    buffers.recycle(buffer);
    this.#truncated(listener, "client");
    return -1;
  }

  /** A completion of session `serial`'s multishot receive: a reply, or why it ended. */
  #fromTargetRing(
    ring: EngineRing<Session>,
    serial: number,
    result: number,
    flags: number,
    nowMs: number,
  ): void {
    const buffer = EngineRing.bufferOf(flags);
    const session = this.#sessionsBySerial.get(serial);
    if (session === undefined || session.ended) return giveBack(ring.replyBuffers, buffer);
    if ((flags & CompletionFlag.MORE) === 0) this.#rearmSessions.push(session);
    if (result < 0) {
      const errno = -result;
      if (errno === Errno.ECONNREFUSED) this.#unreachable(session, "recv");
      else if (!endsQuietly(errno)) {
        this.#fail(session, "ReadFromTarget", new OsError("recv", errno).message);
      }
      return;
    }
    // The payload's bytes; 0 without a buffer is an empty datagram (it ended the receive).
    const length = result;
    if (buffer < 0 && length !== 0) return;
    const listener = session.listener;
    session.lastActiveMs = nowMs;
    const buffers = ring.replyBuffers;
    if (length > listener.receiveBytes) {
      buffers.recycle(buffer);
      this.#truncated(listener, "target");
      return;
    }
    if (this.#replyListener !== listener) {
      this.#flushToClients(nowMs);
      this.#replyListener = listener;
    }
    if (this.#replyCount === BATCH) this.#flushToClients(nowMs);
    const k = this.#replyCount++;
    this.#toClients.pointAt(k, buffers.data, ring.replyPayloadOffset(buffer), length);
    this.#toClientLengths[k] = length;
    this.#toClients.setName(k, session.client);
    this.#replySessions[k] = session;
    this.#replyBuffers[k] = buffer;
  }

  /** Switches to io_uring (before any listener); says why not when the kernel refuses. */
  #enableRing(): { refused?: string } {
    if (this.#ring !== undefined) return {};
    if (this.#listeners.size > 0) return { refused: "listeners are open already" };
    try {
      const ring = new EngineRing<Session>(this.#uringLibc, this.#layout.maxSockaddrSize);
      ring.pollDoorbell(this.#doorbell);
      this.#ring = ring;
      return {};
    } catch (error) {
      return { refused: errorMessage(error) };
    }
  }

  /**
   * Yields to the event loop so that posted messages are handled, and keeps yielding (at most
   * {@linkcode POLICY_WAIT_MS}) while a listener's newest policy has not arrived yet.
   */
  async #receiveMessages(): Promise<void> {
    const deadline = Date.now() + POLICY_WAIT_MS;
    do {
      await new Promise((resolve) => setTimeout(resolve, 0));
    } while (this.#policyBehind() && Date.now() < deadline);
  }

  #policyBehind(): boolean {
    for (const listener of this.#listeners.values()) {
      if (listener.settings.policyGeneration > listener.policyGeneration) return true;
    }
    return false;
  }

  #listen(message: Extract<ToEngine, { kind: "listen" }>): void {
    let fd: number;
    let port: number;
    try {
      fd = this.#sockets.listen(message.hostname, message.port, message.reusePort);
      try {
        port = this.#sockets.port(fd);
        if (this.#ring === undefined) this.#watch(fd);
      } catch (error) {
        this.#sockets.close(fd);
        throw error;
      }
    } catch (error) {
      const text = errorMessage(error);
      this.#post({ kind: "listenFailed", seq: message.seq, message: text });
      return;
    }
    const offset = this.#row * UDP_FIELD_COUNT * Float64Array.BYTES_PER_ELEMENT;
    const settings = new ListenerSettings(message.settings);
    const { generation, target, forbidden, timeouts } = settings.read();
    const serial = this.#nextSerial;
    this.#nextSerial = (serial + 1) & VALUE_MASK;
    const listener: Listener = {
      id: message.id,
      serial,
      fd,
      hostname: message.hostname,
      port,
      counters: new Float64Array(message.counters, offset, UDP_FIELD_COUNT),
      inUse: new Int32Array(message.sessionsInUse),
      maxSessions: message.maxSessions,
      budgets: {
        sockets: new Budget(message.sockets.max, message.sockets.share),
        sessionBytes: new Budget(message.sessionBytes.max, message.sessionBytes.share),
      },
      receiveBytes: Math.min(message.bufferBytes, SLOT_BYTES),
      settings,
      generation,
      target,
      forbidden,
      timeouts,
      gate: undefined,
      maxSessionsOfSpec: Infinity,
      proxyV2: false,
      accessLogShare: 0,
      policyGeneration: settings.policyGeneration,
      sessions: new Map(),
      drainSeq: undefined,
      nextSweepMs: 0,
      logs: {
        drop: new LogThrottle(),
        target: new LogThrottle(),
        truncate: new LogThrottle(),
        reject: new LogThrottle(),
      },
    };
    this.#applyPolicy(listener, message.policy);
    this.#ring?.opened(fd);
    this.#ring?.listen(fd, serial);
    this.#listenersBySerial.set(serial, listener);
    this.#listeners.set(listener.id, listener);
    this.#listenersByFd[fd] = listener;
    this.#nextSweepMs = 0; // schedules its sweeps
    this.#post({ kind: "listening", seq: message.seq, port });
  }

  /** New sessions of `listener` follow `policy`; open ones keep the gate that admitted them. */
  #applyPolicy(listener: Listener, policy: ListenerPolicy): void {
    const limits = {
      sourceRanges: policy.sourceRanges,
      ...(policy.maxSessionsPerSource !== undefined &&
        { maxActivePerSource: policy.maxSessionsPerSource }),
    };
    const gated = policy.sourceRanges.length > 0 || policy.maxSessionsPerSource !== undefined;
    try {
      // Reconfigured in place, the gate keeps counting the open sessions of each source.
      if (!gated) listener.gate = undefined;
      else if (listener.gate === undefined) listener.gate = new SourceGate(limits);
      else listener.gate.reconfigure(limits);
    } catch (error) {
      // The main thread validated the spec; keep the old rules if this one is still refused.
      this.#post({
        kind: "log",
        level: "error",
        message: "UDP port {port} keeps its source rules: {error}",
        properties: { port: listener.port, error: errorMessage(error) },
      });
    }
    listener.maxSessionsOfSpec = policy.maxSessions ?? Infinity;
    listener.proxyV2 = policy.proxyV2;
    listener.accessLogShare = policy.accessLogShare;
  }

  #watch(fd: number): void {
    const { epollEvent, constants } = this.#layout;
    const view = this.#event.view;
    view.setUint32(epollEvent.events, constants.EPOLLIN, true);
    view.setUint32(epollEvent.data, fd, true);
    view.setUint32(epollEvent.data + 4, 0, true);
    if (this.#libc.epoll_ctl(this.#epoll, constants.EPOLL_CTL_ADD, fd, this.#event.bytes) !== 0) {
      throw new OsError("epoll_ctl", this.#errno.get());
    }
  }

  /** Receives and forwards `listener`'s datagrams, at most {@linkcode ROUNDS_PER_EVENT} batches. */
  #receiveFromClients(listener: Listener, nowMs: number): void {
    const batch = this.#fromClients;
    const MSG_TRUNC = this.#layout.constants.MSG_TRUNC;
    for (let round = 0; round < ROUNDS_PER_EVENT; round++) {
      batch.prepareReceive(0, listener.receiveBytes);
      const received = this.#libc.recvmmsg(
        listener.fd,
        batch.from(0),
        BATCH,
        this.#layout.constants.MSG_DONTWAIT,
        null,
      );
      if (received < 0) {
        const errno = this.#errno.get();
        if (errno !== Errno.EAGAIN && errno !== Errno.EINTR) {
          this.#receiveFailed(listener, new OsError("recvmmsg", errno).message);
        }
        return;
      }
      for (let j = 0; j < received; j++) {
        if ((batch.flags(j) & MSG_TRUNC) !== 0) {
          this.#truncated(listener, "client");
          continue;
        }
        const arena = batch.arena;
        const session = this.#sessionFor(
          listener,
          arena,
          batch.nameOffset(j),
          batch.nameLength(j),
          nowMs,
        );
        if (session !== undefined) {
          this.#queueToTarget(session, arena, batch.dataOffset(j), batch.length(j), -1, nowMs);
        }
      }
      this.#sendRun(nowMs);
      if (received < BATCH) return;
    }
  }

  #receiveFailed(listener: Listener, error: string): void {
    listener.counters[E.ReadFromClient]!++;
    this.#warn(listener, "drop", "Receive failed on UDP port {port}: {error}", { error });
  }

  /**
   * The session of the client whose sockaddr (`nameLength` bytes) is at `nameAt` of `arena`,
   * opened if new; undefined (counted) when none may open.
   */
  #sessionFor(
    listener: Listener,
    arena: NativeArena,
    nameAt: number,
    nameLength: number,
    nowMs: number,
  ): Session | undefined {
    const key = this.#clientKey(arena.view, nameAt);
    let session = this.#lastSession;
    if (
      session === undefined || session.key !== key || session.listener !== listener ||
      session.ended
    ) {
      session = listener.sessions.get(key) ??
        this.#open(listener, key, arena, nameAt, nameLength, nowMs);
      if (session === undefined) return undefined;
      this.#lastSession = session;
    }
    session.lastActiveMs = nowMs;
    return session;
  }

  /**
   * Adds `length` bytes at `dataAt` of `arena` (in ring buffer `buffer`, or -1) to the run of
   * datagrams to `session`'s target, sending the run first when it is another session's or full.
   * A datagram too long for its PROXY header is dropped (counted), never cut.
   */
  #queueToTarget(
    session: Session,
    arena: NativeArena,
    dataAt: number,
    length: number,
    buffer: number,
    nowMs: number,
  ): void {
    if (session !== this.#runSession || this.#runCount === BATCH) {
      this.#sendRun(nowMs);
      this.#runSession = session;
    }
    const queued = this.#runCount;
    const header = session.header;
    if (header === undefined) this.#toTargetLengths[queued] = length;
    else if (header.bytes.length + length <= session.maxToTarget) {
      this.#toTargetLengths[queued] = header.bytes.length + length;
    } else {
      const counters = session.listener.counters;
      counters[E.ProxyHeaderTooLarge]!++;
      counters[F.droppedDatagrams]!++;
      this.#warn(
        session.listener,
        "drop",
        "Dropped a datagram of {bytes} bytes on UDP port {port}: with the PROXY header it exceeds {max} bytes",
        { bytes: length, max: session.maxToTarget },
      );
      if (buffer >= 0) this.#ring?.clientBuffers.recycle(buffer);
      return;
    }
    if (queued === 0) this.#runArena = arena;
    this.#runDataOffsets[queued] = dataAt;
    this.#runBuffers[queued] = buffer;
    this.#runCount = queued + 1;
  }

  /** Sends the run of datagrams queued by {@linkcode #queueToTarget}. */
  #sendRun(nowMs: number): void {
    const session = this.#runSession;
    const count = this.#runCount;
    this.#runSession = undefined;
    this.#runCount = 0;
    if (session !== undefined && count > 0) this.#sendToTarget(session, count, nowMs);
  }

  /** Forgets the queued run (its session ended): its ring buffers go back. */
  #dropRun(): void {
    const ring = this.#ring;
    if (ring !== undefined) {
      for (let k = 0; k < this.#runCount; k++) giveBack(ring.clientBuffers, this.#runBuffers[k]!);
    }
    this.#runSession = undefined;
    this.#runCount = 0;
  }

  /**
   * Sends the first `count` datagrams of `#toTarget` (or `#toTargetWithHeaders`) on the session's
   * upstream socket. They are counted before they leave (and uncounted if dropped), so a counter
   * never lags behind a reply; bytes count the client's bytes, not a PROXY header. With io_uring, a
   * single datagram without a header is queued on the ring instead, to leave with the other
   * sessions' datagrams in one call; the ring buffers of a run go back once it left.
   */
  #sendToTarget(session: Session, count: number, nowMs: number): void {
    if (count === 0) return;
    const toTarget = session.header === undefined ? this.#toTarget : this.#toTargetWithHeaders;
    const headerBytes = session.header?.bytes.length ?? 0;
    const lengths = this.#toTargetLengths;
    const counters = session.listener.counters;
    let bytes = -count * headerBytes;
    for (let k = 0; k < count; k++) bytes += lengths[k]!;
    counters[F.bytesClientToTarget]! += bytes;
    counters[F.datagramsClientToTarget]! += count;
    const tally = session.tally;
    if (tally !== undefined) {
      tally.bytesClientToTarget += bytes;
      tally.datagramsClientToTarget += count;
    }
    const arena = this.#runArena!;
    const offsets = this.#runDataOffsets;
    const buffers = this.#runBuffers;
    const ring = this.#ring;
    if (ring !== undefined) {
      if (count < RING_RUN_MAX && headerBytes === 0) {
        const quiet = session.toTargetBlockedSinceMs === 0;
        for (let k = 0; k < count; k++) {
          ring.send(session.fd, arena, offsets[k]!, lengths[k]!, session, buffers[k]!, quiet);
        }
        if (ring.sentBuffers >= SENT_BUFFERS_FLUSH) ring.submit(0, 0);
        return;
      }
      // Datagrams queued on the ring leave first: a session's datagrams keep their order.
      if (ring.ring.queued > 0) ring.submit(0, 0);
    }
    for (let k = 0; k < count; k++) {
      toTarget.pointAt(k, arena, offsets[k]!, lengths[k]! - headerBytes);
      if (headerBytes > 0) toTarget.setHeader(k, session.header!, headerBytes);
    }
    let sent = 0;
    while (sent < count) {
      const done = this.#sender.send(session.fd, toTarget, sent, count, lengths, session);
      if (done >= 0) {
        counters[F.segmentedDatagrams]! += this.#sender.segmented;
        session.toTargetBlockedSinceMs = 0;
        sent += done;
        continue;
      }
      this.#sendToTargetFailed(session, lengths[sent]!, headerBytes, this.#sender.errno, nowMs);
      sent++;
    }
    if (ring !== undefined) {
      for (let k = 0; k < count; k++) giveBack(ring.clientBuffers, buffers[k]!);
    }
  }

  /**
   * A datagram of `length` bytes (with a header of `headerBytes`) to the target could not leave:
   * uncounted, counted as dropped, and the error counted as the portable engine does.
   */
  #sendToTargetFailed(
    session: Session,
    length: number,
    headerBytes: number,
    errno: number,
    nowMs: number,
  ): void {
    const counters = session.listener.counters;
    const tally = session.tally;
    counters[F.bytesClientToTarget]! -= length - headerBytes;
    counters[F.datagramsClientToTarget]!--;
    if (tally !== undefined) {
      tally.bytesClientToTarget -= length - headerBytes;
      tally.datagramsClientToTarget--;
    }
    counters[F.droppedDatagrams]!++;
    if (errno === Errno.EAGAIN) {
      if (session.toTargetBlockedSinceMs === 0) session.toTargetBlockedSinceMs = nowMs;
    } else if (errno === Errno.ECONNREFUSED) {
      // Reported on this send, for an earlier datagram; this one is not sent.
      this.#unreachable(session, "send");
    } else {
      // A failed send drops the datagram but keeps the session (as the portable engine).
      counters[E.WriteToTarget]!++;
      this.#warn(session.listener, "target", "Cannot send to UDP target: {error}", {
        error: new OsError("send", errno).message,
      });
    }
  }

  /**
   * Counts an ICMP "unreachable" the target's host answered (the kernel reports it on the
   * connected socket's next receive or send as ECONNREFUSED) as a target error. The session stays:
   * the target may come back.
   */
  #unreachable(session: Session, call: string): void {
    session.listener.counters[E.TargetUnreachable]!++;
    this.#warn(session.listener, "target", "The UDP target is unreachable: {error}", {
      error: new OsError(call, Errno.ECONNREFUSED).message,
    });
  }

  #receiveFromTarget(session: Session, nowMs: number): void {
    const listener = session.listener;
    if (this.#replyListener !== listener) {
      this.#flushToClients(nowMs);
      this.#replyListener = listener;
    }
    const batch = this.#fromTargets;
    const toClients = this.#toClients;
    const MSG_TRUNC = this.#layout.constants.MSG_TRUNC;
    for (;;) {
      if (this.#replySlots === BATCH) this.#flushToClients(nowMs);
      const first = this.#replySlots;
      batch.prepareReceive(first, listener.receiveBytes);
      const received = this.#libc.recvmmsg(
        session.fd,
        batch.from(first),
        BATCH - first,
        this.#layout.constants.MSG_DONTWAIT,
        null,
      );
      if (received < 0) {
        const errno = this.#errno.get();
        if (errno === Errno.ECONNREFUSED) this.#unreachable(session, "recvmmsg");
        else if (errno !== Errno.EAGAIN && errno !== Errno.EINTR) {
          this.#fail(session, "ReadFromTarget", new OsError("recvmmsg", errno).message);
        }
        return;
      }
      if (received > 0) session.lastActiveMs = nowMs;
      for (let j = first; j < first + received; j++) {
        if ((batch.flags(j) & MSG_TRUNC) !== 0) {
          this.#truncated(listener, "target");
          continue;
        }
        const k = this.#replyCount++;
        const length = batch.length(j);
        toClients.point(k, batch, j, length);
        this.#toClientLengths[k] = length;
        toClients.setName(k, session.client);
        this.#replySessions[k] = session;
      }
      this.#replySlots = first + received;
      if (this.#replySlots < BATCH || session.ended) return;
    }
  }

  /** Sends the gathered replies from the listening socket (counted first, as to the target). */
  #flushToClients(nowMs: number): void {
    const listener = this.#replyListener;
    const count = this.#replyCount;
    this.#replyCount = 0;
    this.#replySlots = 0;
    if (listener === undefined || count === 0) return;
    const toClients = this.#toClients;
    const lengths = this.#toClientLengths;
    const counters = listener.counters;
    const sessions = this.#replySessions;
    let bytes = 0;
    for (let k = 0; k < count; k++) {
      bytes += lengths[k]!;
      const tally = sessions[k]!.tally;
      if (tally !== undefined) {
        tally.bytesTargetToClient += lengths[k]!;
        tally.datagramsTargetToClient++;
      }
    }
    counters[F.bytesTargetToClient]! += bytes;
    counters[F.datagramsTargetToClient]! += count;
    const ring = this.#ring;
    if (ring !== undefined && this.#fewRuns(count)) {
      // Replies to many clients: one SEND each, submitted with the next wait.
      for (let k = 0; k < count; k++) {
        const session = sessions[k]!;
        ring.sendTo(
          listener.fd,
          this.#replyBuffers[k]!,
          lengths[k]!,
          toClients.arena,
          toClients.nameOffset(k),
          session.client.length,
          session,
          session.toClientBlockedSinceMs === 0,
        );
      }
      for (let k = 0; k < count; k++) sessions[k] = undefined;
      if (ring.sentBuffers >= SENT_BUFFERS_FLUSH) ring.submit(0, 0);
      return;
    }
    let sent = 0;
    while (sent < count) {
      const done = this.#sender.send(listener.fd, toClients, sent, count, lengths, sessions);
      if (done >= 0) {
        counters[F.segmentedDatagrams]! += this.#sender.segmented;
        for (let k = sent; k < sent + done; k++) this.#replied(sessions[k]!);
        sent += done;
        continue;
      }
      this.#replyFailed(sessions[sent]!, lengths[sent]!, this.#sender.errno, nowMs);
      sent++;
    }
    for (let k = 0; k < count; k++) sessions[k] = undefined;
    if (ring !== undefined) {
      for (let k = 0; k < count; k++) giveBack(ring.replyBuffers, this.#replyBuffers[k]!);
      ring.replyBuffers.publish();
    }
  }

  /**
   * Whether the gathered replies go to so many different clients (runs shorter than 2 on
   * average) that segmenting them would not pay.
   */
  #fewRuns(count: number): boolean {
    const sessions = this.#replySessions;
    let runs = 1;
    for (let k = 1; k < count; k++) if (sessions[k] !== sessions[k - 1]) runs++;
    return runs * 2 > count;
  }

  /** A reply left for the session's client: its socket is not blocked (any more). */
  #replied(session: Session): void {
    session.toClientBlockedSinceMs = 0;
  }

  /** A reply of `length` bytes could not leave: uncounted; a full buffer drops it, else the session ends. */
  #replyFailed(session: Session, length: number, errno: number, nowMs: number): void {
    const counters = session.listener.counters;
    counters[F.bytesTargetToClient]! -= length;
    counters[F.datagramsTargetToClient]!--;
    const tally = session.tally;
    if (tally !== undefined) {
      tally.bytesTargetToClient -= length;
      tally.datagramsTargetToClient--;
    }
    if (errno === Errno.EAGAIN) {
      counters[F.droppedDatagrams]!++;
      if (session.toClientBlockedSinceMs === 0) session.toClientBlockedSinceMs = nowMs;
    } else if (!session.ended) {
      // A failed send to the client ends the session (as the portable engine).
      this.#fail(session, "WriteToClient", new OsError("sendmmsg", errno).message);
    }
  }

  /** A new session for the client of datagram `j`, or undefined (counted) when none may open. */
  #open(
    listener: Listener,
    key: number | string,
    arena: NativeArena,
    nameAt: number,
    nameLength: number,
    nowMs: number,
  ): Session | undefined {
    const counters = listener.counters;
    if (listener.drainSeq !== undefined) {
      counters[F.droppedDatagrams]!++;
      return undefined;
    }
    const inUse = Atomics.add(listener.inUse, 0, 1);
    if (inUse >= listener.maxSessions) {
      Atomics.sub(listener.inUse, 0, 1);
      counters[F.droppedDatagrams]!++;
      counters[E.SessionLimit]!++;
      this.#warn(listener, "drop", "UDP port {port} has {max} sessions; dropping new clients", {
        max: listener.maxSessions,
      });
      return undefined;
    }
    const client = arena.bytes.slice(nameAt, nameAt + nameLength);
    const gate = listener.gate;
    const source = gate === undefined ? "" : decodeSockaddr(this.#layout, client).hostname;
    this.#refreshSettings(listener);
    const rejection = this.#admit(listener, gate, source, inUse, nowMs);
    if (rejection !== undefined) {
      Atomics.sub(listener.inUse, 0, 1);
      this.#reject(listener, client, rejection);
      return undefined;
    }
    const refused = this.#takeBudgets(listener);
    if (refused !== undefined) {
      gate?.release(source);
      Atomics.sub(listener.inUse, 0, 1);
      counters[F.droppedDatagrams]!++;
      counters[E[refused]]!++;
      this.#warn(
        listener,
        "drop",
        refused === "SocketLimit"
          ? "UDP port {port} refuses new clients: the sockets budget (--max-open-sockets) is used up"
          : "UDP port {port} refuses new clients: the session memory budget (--udp-buffer-budget-bytes) is used up",
        {},
      );
      return undefined;
    }
    const target = listener.target;
    let fd: number;
    try {
      if (target === undefined) throw new Error("the target name does not resolve");
      fd = this.#sockets.connect(target.sockaddr, target.family);
      if (this.#ring === undefined) {
        try {
          this.#watch(fd);
        } catch (error) {
          this.#sockets.close(fd);
          throw error;
        }
      }
    } catch (error) {
      gate?.release(source);
      Atomics.sub(listener.inUse, 0, 1);
      this.#giveBudgets(listener);
      counters[F.droppedDatagrams]!++;
      const type = target === undefined ? "ResolveTargetAddress" : "DialUDPTarget";
      counters[E[type]]!++;
      this.#warn(listener, "target", "Cannot open a UDP session ({type}): {error}", {
        type,
        error: errorMessage(error),
      });
      return undefined;
    }
    const serial = this.#nextSerial;
    this.#nextSerial = (serial + 1) & VALUE_MASK;
    const session: Session = {
      fd,
      serial,
      listener,
      key,
      client,
      gate,
      source,
      header: listener.proxyV2 ? this.#proxyHeader(listener, client) : undefined,
      maxToTarget: target.family === 4 ? MAX_UDP_PAYLOAD_BYTES_IPV4 : MAX_UDP_PAYLOAD_BYTES,
      tally: sampledIn(listener.accessLogShare)
        ? {
          startMs: Date.now(),
          targetAddress: decodeSockaddr(this.#layout, target.sockaddr).hostname,
          bytesClientToTarget: 0,
          bytesTargetToClient: 0,
          datagramsClientToTarget: 0,
          datagramsTargetToClient: 0,
        }
        : undefined,
      lastActiveMs: nowMs,
      toTargetBlockedSinceMs: 0,
      toClientBlockedSinceMs: 0,
      ended: false,
      segment: true,
    };
    listener.sessions.set(key, session);
    if (this.#ring === undefined) this.#sessionsByFd[fd] = session;
    else {
      this.#sessionsBySerial.set(serial, session);
      this.#ring.opened(fd);
      this.#ring.arm(fd, serial);
    }
    counters[F.activeSessions]!++;
    counters[F.sessionsTotal]!++;
    return session;
  }

  /**
   * Whether a new client may open a session, in the portable engine's order: source ranges, the
   * spec's session limit (over every thread: `inUse` counts them), the per-source limit, the target
   * policy. Admitted clients are counted in `gate` (release on end).
   */
  #admit(
    listener: Listener,
    gate: SourceGate | undefined,
    source: string,
    inUse: number,
    nowMs: number,
  ): UdpRejectReason | undefined {
    if (gate !== undefined && !gate.allows(source)) return "SourceNotAllowed";
    if (inUse >= listener.maxSessionsOfSpec) return "MaxSessions";
    if (gate !== undefined && gate.admit(source, nowMs) !== undefined) {
      return "MaxSessionsPerSource";
    }
    if (listener.forbidden) {
      gate?.release(source);
      return "TargetForbidden";
    }
    return undefined;
  }

  /** Drops a datagram of a client that may not open a session; counted, logged rate-limited. */
  #reject(listener: Listener, client: Uint8Array, reason: UdpRejectReason): void {
    listener.counters[R[reason]]!++;
    const suppressed = listener.logs.reject.take();
    if (suppressed === undefined) return; // the address is decoded only for a line that is logged
    this.#post({
      kind: "log",
      level: "warn",
      message: "Dropped a datagram from {client} on UDP port {port}: {reason}",
      properties: {
        port: listener.port,
        listener: listener.id,
        suppressed,
        client: decodeSockaddr(this.#layout, client).hostname,
        reason,
      },
    });
  }

  /** The PROXY protocol v2 header of a new session from `client` (our bound address as destination). */
  #proxyHeader(listener: Listener, client: Uint8Array): NativeArena {
    const from = decodeSockaddr(this.#layout, client);
    const endpoints = proxyEndpoints(from, { hostname: listener.hostname, port: listener.port });
    const header = new NativeArena(proxyV2HeaderBytes(endpoints));
    writeProxyV2Header(header.bytes, 0, "dgram", endpoints);
    return header;
  }

  /** Takes a socket and a session's memory from the budgets; the error type when one is used up. */
  #takeBudgets(listener: Listener): "SocketLimit" | "BufferBudget" | undefined {
    const { sockets, sessionBytes } = listener.budgets;
    if (!sockets.take(1)) return "SocketLimit";
    if (sessionBytes.take(BATCHED_SESSION_BYTES)) return undefined;
    sockets.give(1);
    return "BufferBudget";
  }

  #giveBudgets(listener: Listener): void {
    listener.budgets.sockets.give(1);
    listener.budgets.sessionBytes.give(BATCHED_SESSION_BYTES);
  }

  /**
   * The client address at `at` of `view` as a map key: a number for IPv4 and IPv4-mapped IPv6
   * (address * 65536 + port, below 2^48), a string for other IPv6 addresses.
   */
  #clientKey(view: DataView, at: number): number | string {
    const { sockaddr, constants } = this.#layout;
    const port = view.getUint16(at + sockaddr.port, false);
    if (view.getUint16(at + sockaddr.family, true) === constants.AF_INET) {
      return view.getUint32(at + sockaddr.in4Addr, false) * 65_536 + port;
    }
    const addr = at + sockaddr.in6Addr;
    if (
      view.getUint32(addr, true) === 0 && view.getUint32(addr + 4, true) === 0 &&
      view.getUint32(addr + 8, false) === 0xffff
    ) {
      return view.getUint32(addr + 12, false) * 65_536 + port;
    }
    let key = "";
    for (let i = 0; i < 16; i += 2) key += String.fromCharCode(view.getUint16(addr + i, false));
    return key + String.fromCharCode(port);
  }

  /** Reads the listener's settings again if the main thread changed them; true if so. */
  #refreshSettings(listener: Listener): boolean {
    if (listener.settings.generation === listener.generation) return false;
    const { generation, target, forbidden, timeouts } = listener.settings.read();
    listener.generation = generation;
    listener.target = target;
    listener.forbidden = forbidden;
    listener.timeouts = timeouts;
    return true;
  }

  /** Ends idle sessions and sessions whose sends kept blocking. */
  #sweep(nowMs: number): void {
    let next = nowMs + IDLE_POLL_MS;
    for (const listener of this.#listeners.values()) {
      next = Math.min(next, this.#sweepListener(listener, nowMs));
    }
    this.#nextSweepMs = next;
  }

  /** Sweeps `listener` if due; returns when it is due next. */
  #sweepListener(listener: Listener, nowMs: number): number {
    if (this.#refreshSettings(listener)) listener.nextSweepMs = 0;
    if (nowMs < listener.nextSweepMs) return listener.nextSweepMs;
    const { readTimeoutMs, writeTimeoutMs } = listener.timeouts;
    listener.nextSweepMs = nowMs +
      Math.max(SWEEP_MS, Math.min(1000, Math.min(readTimeoutMs, writeTimeoutMs) / 4));
    const blocked = `send blocked for ${writeTimeoutMs} ms`;
    for (const session of listener.sessions.values()) {
      if (
        session.toTargetBlockedSinceMs > 0 &&
        nowMs - session.toTargetBlockedSinceMs >= writeTimeoutMs
      ) {
        this.#fail(session, "WriteToTarget", blocked, "write_timeout");
      } else if (
        session.toClientBlockedSinceMs > 0 &&
        nowMs - session.toClientBlockedSinceMs >= writeTimeoutMs
      ) {
        this.#fail(session, "WriteToClient", blocked, "write_timeout");
      } else if (nowMs - session.lastActiveMs >= readTimeoutMs) {
        this.#end(session, { reason: "idle_timeout" });
      }
    }
    return listener.nextSweepMs;
  }

  /** Counts `type`, logs (rate-limited) and ends the session. */
  #fail(session: Session, type: UdpErrorType, error: string, reason?: "write_timeout"): void {
    session.listener.counters[E[type]]!++;
    this.#warn(session.listener, "target", "UDP session ended ({type}): {error}", { type, error });
    this.#end(session, { errorType: type, detail: error, ...(reason && { reason }) });
  }

  #end(session: Session, end: SessionEnd): void {
    if (session.ended) return;
    session.ended = true;
    const listener = session.listener;
    if (session.tally !== undefined) this.#record(session, session.tally, end);
    if (listener.sessions.get(session.key) === session) listener.sessions.delete(session.key);
    if (this.#ring === undefined) this.#sessionsByFd[session.fd] = undefined;
    else {
      this.#sessionsBySerial.delete(session.serial);
      this.#ring.cancelSession(session.serial);
      this.#ring.closing(session.fd);
    }
    if (this.#lastSession === session) this.#lastSession = undefined;
    if (this.#runSession === session) this.#dropRun();
    this.#sockets.close(session.fd);
    session.gate?.release(session.source);
    listener.counters[F.activeSessions]!--;
    Atomics.sub(listener.inUse, 0, 1);
    this.#giveBudgets(listener);
    if (listener.drainSeq !== undefined && listener.sessions.size === 0) {
      this.#post({ kind: "drained", seq: listener.drainSeq });
      listener.drainSeq = undefined;
    }
  }

  /** Sends the access record of `session` to the main thread. */
  #record(session: Session, tally: Tally, end: SessionEnd): void {
    const client = decodeSockaddr(this.#layout, session.client);
    const { startMs, ...traffic } = tally;
    const record: SessionRecord = {
      clientAddress: client.hostname,
      clientPort: client.port,
      ...traffic,
      startMs,
      endMs: Date.now(),
      ...end,
    };
    this.#post({ kind: "record", id: session.listener.id, record });
  }

  #close(listener: Listener, cause: CloseCause): void {
    if (this.#replyListener === listener) {
      this.#flushToClients(Date.now());
      this.#replyListener = undefined;
    }
    const drainSeq = listener.drainSeq;
    listener.drainSeq = undefined;
    for (const session of [...listener.sessions.values()]) this.#end(session, { reason: cause });
    if (drainSeq !== undefined) this.#post({ kind: "drained", seq: drainSeq });
    this.#listeners.delete(listener.id);
    this.#listenersByFd[listener.fd] = undefined;
    this.#listenersBySerial.delete(listener.serial);
    if (this.#ring !== undefined) {
      this.#ring.cancelListener(listener.serial);
      this.#ring.closing(listener.fd);
    }
    this.#sockets.close(listener.fd);
  }

  #truncated(listener: Listener, from: "client" | "target"): void {
    const counters = listener.counters;
    counters[F.truncatedDatagrams]!++;
    counters[E.Truncated]!++;
    this.#warn(
      listener,
      "truncate",
      "A datagram from the {from} on UDP port {port} is longer than {bufferBytes} bytes; dropped",
      { from, bufferBytes: listener.receiveBytes },
    );
  }

  #warn(
    listener: Listener,
    kind: "drop" | "target" | "truncate",
    message: string,
    properties: Record<string, unknown>,
  ): void {
    const suppressed = listener.logs[kind].take();
    if (suppressed === undefined) return;
    this.#post({
      kind: "log",
      level: "warn",
      message,
      properties: { port: listener.port, listener: listener.id, suppressed, ...properties },
    });
  }
}
