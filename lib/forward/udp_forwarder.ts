/**
 * A UDP listener and its sessions. Each client address gets a session with its own upstream socket
 * (so the target sees a distinct source port per client); replies go back to the client from the
 * listening socket. Sessions expire after `readTimeoutSeconds` without traffic in either direction;
 * the number of sessions is capped. A new client passes the source gate (allow-list, per-object and
 * per-source session limits) and the target policy before a session exists: otherwise its
 * datagrams are dropped and counted by reason, and nothing is sent to the target.
 *
 * Write timeout: a send stuck longer than `writeTimeoutSeconds` (a full socket send buffer) is
 * counted and ends its session. Deno cannot cancel a send, so the task waiting on it is abandoned:
 * when that task is the receive loop of the listening socket, a fresh receive loop takes over, so
 * one stuck target never stalls the other clients.
 *
 * Hot path: one receive buffer per socket, reused (the next receive starts only after the send that
 * reads it finished); no per-datagram allocation besides what `receive()` itself returns; sessions
 * are found without building a key string (and the previous datagram's session is checked first);
 * counters are plain numbers.
 *
 * Memory: a session's pending upstream receive holds its whole buffer (`bufferBytes`, lossless by
 * default). Session buffers come from a shared pool of lazily committed slabs
 * ({@linkcode sharedBufferPool}), so an idle session costs the pages its replies touched (one 4 KiB
 * page for datagrams up to 4 KiB), not `bufferBytes`.
 *
 * PROXY protocol (`spec.proxyProtocol: v2`): each session encodes its header (client address, our
 * bound address) once; every datagram to the target is that header followed by the client's bytes,
 * copied into one per-loop buffer. A datagram that does not fit the largest UDP payload to the
 * target's family together with the header is dropped and counted (`ProxyHeaderTooLarge`), never cut.
 * @module
 */

import { getLogger } from "@logtape/logtape";
import type { UdpSpec } from "../spec.ts";
import { abortableDelay } from "../util/abortable_delay.ts";
import {
  detailOf,
  type EndReason,
  sampled,
  splitForwarderName,
  type StopCause,
  UDP_FAILURE_REASONS,
  writeAccessRecord,
} from "./access_log.ts";
import {
  PROXY_V2_MAX_WRITTEN_BYTES,
  proxyEndpoints,
  proxyV2HeaderBytes,
  writeProxyV2Header,
} from "./proxy_protocol/encode.ts";
import type { RunningForwarder } from "./listener_part.ts";
import { MAX_UDP_PAYLOAD_BYTES, MAX_UDP_PAYLOAD_BYTES_IPV4 } from "./udp_payload.ts";
import type { ForwarderPolicyOptions } from "./policy/forwarder_policy.ts";
import { LogThrottle } from "./log_throttle.ts";
import type { Budget } from "./budget.ts";
import { type BufferPool, sharedBufferPool } from "./buffer_pool.ts";
import { type GateRejection, SourceGate, type SourceLimits } from "./policy/source_gate.ts";
import { TargetForbiddenError, TargetPolicy } from "./policy/target_policy.ts";
import type { UdpCounters, UdpErrorType, UdpRejectReason } from "./state.ts";
import { reportingResolver, type ResolvedTarget, type TargetResolver } from "./target_resolver.ts";
import { UdpSessionTable } from "./udp_session_table.ts";

const log = getLogger(["undying-proxy", "udp"]);

/** Options of one {@linkcode UdpForwarder}. */
export interface UdpForwarderOptions extends ForwarderPolicyOptions {
  /** Forwarder name, for logs. */
  readonly name: string;
  /** Advanced in place; shared with the supervisor's `counters()`. */
  readonly counters: UdpCounters;
  /** Target and timeouts; see {@linkcode UdpForwarder.update}. */
  readonly spec: UdpSpec;
  /** Sessions at most; datagrams from further clients are dropped and counted. */
  readonly maxSessions: number;
  /** Longest datagram forwarded; longer ones are cut to this size (counted and logged). */
  readonly bufferBytes: number;
  /** Sockets sessions may hold (1 each, shared with TCP); a client beyond it is refused. */
  readonly sockets?: Budget;
  /**
   * Bytes of session buffers (each session reserves its buffer's worst case, in whole pages); a
   * client beyond it is refused. Shared by the thread's UDP forwarders.
   */
  readonly bufferBudget?: Budget;
  /**
   * Opens a session's upstream socket on `hostname` (a wildcard address), any port. Tests pass a
   * socket whose sends stall, a fault a real loopback socket cannot produce. @default Deno.listenDatagram
   */
  readonly openUpstream?: (hostname: string) => Deno.DatagramConn;
  /** Whether sessions get access records when the spec does not say. @default false */
  readonly accessLog?: boolean;
  /** Share of sessions with an access record, 0-1. @default 1 */
  readonly accessLogSampleRate?: number;
  /** Clock of the session timeouts, in milliseconds; tests move it by hand. @default Date.now */
  readonly now?: () => number;
}

/** The admission rules of a UDP spec. */
export function udpSourceLimits(
  spec: UdpSpec,
  defaultSourceRanges: readonly string[],
): SourceLimits {
  return {
    sourceRanges: spec.sourceRanges ?? defaultSourceRanges,
    ...(spec.maxSessions !== undefined && { maxActive: spec.maxSessions }),
    ...(spec.maxSessionsPerSource !== undefined &&
      { maxActivePerSource: spec.maxSessionsPerSource }),
  };
}

/** The counter (and spec field) of each gate rejection (UDP has no session rate). */
const UDP_REJECTIONS: Readonly<Record<GateRejection, UdpRejectReason>> = {
  SourceNotAllowed: "SourceNotAllowed",
  Active: "MaxSessions",
  ActivePerSource: "MaxSessionsPerSource",
  Rate: "MaxSessionsPerSource",
};

/** Datagrams held per session while its target name resolves (at most its buffer charge in bytes). */
const MAX_QUEUED_DATAGRAMS = 64;
/** Pause after an unexpected receive error, so a persistent one cannot spin. */
const RECEIVE_ERROR_PAUSE_MS = 10;

/**
 * Bytes per receive buffer: one more than `bufferBytes` when a datagram could be longer, so that a
 * longer datagram is told apart from one that fits exactly.
 */
function receiveBufferBytes(bufferBytes: number): number {
  return bufferBytes < MAX_UDP_PAYLOAD_BYTES ? bufferBytes + 1 : bufferBytes;
}

/** Memory page size: a buffer slot may span one page more than its length rounds up to. */
const PAGE_BYTES = 4096;

/** Memory of a session besides its buffer (socket, objects, pending receive): measured ~15 KiB. */
const SESSION_OVERHEAD_BYTES = 16 * 1024;

/**
 * Bytes a session may take at most: its buffer slot in whole pages, plus a straddled page, plus
 * the rest of the session ({@linkcode SESSION_OVERHEAD_BYTES}).
 */
export function sessionBufferCharge(bufferBytes: number): number {
  const pages = Math.ceil(receiveBufferBytes(bufferBytes) / PAGE_BYTES) + 1;
  return pages * PAGE_BYTES + SESSION_OVERHEAD_BYTES;
}

function openUpstream(hostname: string): Deno.DatagramConn {
  return Deno.listenDatagram({ transport: "udp", hostname, port: 0 });
}

/** One client's session. */
class UdpSession {
  /** Clock time of the last datagram in either direction. */
  lastActiveMs: number;
  /** Start of the send to the target in progress, or 0. */
  toTargetSinceMs = 0;
  /** Start of the send to the client in progress, or 0. */
  toClientSinceMs = 0;
  upstream: Deno.DatagramConn | undefined;
  target: Deno.NetAddr | undefined;
  /** Copies of datagrams that arrived while the target name resolved; undefined once connected. */
  queue: Uint8Array[] | undefined;
  /** Bytes in `queue`: bounded by the session's buffer charge, so the budget covers it. */
  queuedBytes = 0;
  ended = false;
  /** The PROXY v2 header put before every datagram to the target, if the spec asks for one. */
  proxyHeader: Uint8Array | undefined;
  /** Largest datagram to the target (header included), by the target's address family. */
  maxToTarget = MAX_UDP_PAYLOAD_BYTES;
  /** Per-session totals, for the access record. */
  bytesToTarget = 0;
  bytesToClient = 0;
  datagramsToTarget = 0;
  datagramsToClient = 0;
  readonly openedMs: number;

  constructor(
    readonly client: Deno.NetAddr,
    nowMs: number,
    /** The spec it was opened under (target, PROXY header, access log). */
    readonly spec: UdpSpec,
    /** Whether it gets an access record when it ends. */
    readonly logged: boolean,
  ) {
    this.lastActiveMs = nowMs;
    this.openedMs = nowMs;
  }
}

/** Forwards the datagrams of one bound UDP socket (which it owns and closes). */
export class UdpForwarder implements RunningForwarder<UdpSpec> {
  /** Resolves once the listening socket is closed and its port free again. */
  readonly released: Promise<void>;
  readonly #released = Promise.withResolvers<void>();
  readonly #socket: Deno.DatagramConn;
  readonly #options: UdpForwarderOptions;
  readonly #counters: UdpCounters;
  readonly #sessions = new UdpSessionTable<UdpSession>();
  /** Upstream receive buffers of the sessions. */
  readonly #buffers: BufferPool;
  /** Session tasks (reply loops, lookups) still running. */
  readonly #tasks = new Set<Promise<void>>();
  readonly #closing = new AbortController();
  readonly #logs: Record<"drop" | "target" | "truncate" | "reject", LogThrottle>;
  readonly #gate: SourceGate;
  /** Budget charge of each session's buffer. */
  readonly #charge: number;
  #spec: UdpSpec;
  #resolver!: TargetResolver;
  /** The lookup started by the last target change (to report the verdict early). */
  #firstLookup: Promise<unknown> = Promise.resolve();
  #sweepTimer: ReturnType<typeof setInterval> | undefined;
  /** The current receive loop; a loop whose number is older was abandoned in a stuck send. */
  #receiver = 0;
  /** The session the receive loop is sending a datagram for, if any. */
  #receiverSendingFor: UdpSession | undefined;
  #draining = false;
  #emptied: PromiseWithResolvers<void> | undefined;
  readonly #now: () => number;

  constructor(socket: Deno.DatagramConn, options: UdpForwarderOptions) {
    this.#socket = socket;
    this.#options = options;
    this.#now = options.now ?? Date.now;
    this.#counters = options.counters;
    this.#logs = {
      drop: new LogThrottle(),
      target: new LogThrottle(),
      truncate: new LogThrottle(),
      reject: new LogThrottle(),
    };
    this.#buffers = sharedBufferPool(receiveBufferBytes(options.bufferBytes));
    this.#charge = sessionBufferCharge(options.bufferBytes);
    this.#spec = options.spec;
    this.#gate = new SourceGate(udpSourceLimits(options.spec, options.defaultSourceRanges ?? []));
    this.#retarget(options.spec);
    this.#startSweeper();
    this.released = this.#released.promise;
    this.#startReceiver();
  }

  /** The bound port. */
  get port(): number {
    return (this.#socket.addr as Deno.NetAddr).port;
  }

  /** New sessions use the new target; timeouts apply to every session at once. */
  update(spec: UdpSpec): void {
    const old = this.#spec;
    this.#spec = spec;
    if (old.targetHost !== spec.targetHost || old.targetPort !== spec.targetPort) {
      this.#retarget(spec);
    }
    this.#gate.reconfigure(udpSourceLimits(spec, this.#options.defaultSourceRanges ?? []));
    if (
      old.readTimeoutSeconds !== spec.readTimeoutSeconds ||
      old.writeTimeoutSeconds !== spec.writeTimeoutSeconds
    ) {
      clearInterval(this.#sweepTimer);
      this.#startSweeper();
    }
  }

  /** A fresh resolver for the target of `spec`; its verdict is reported as soon as it is known. */
  #retarget(spec: UdpSpec): void {
    ({ resolver: this.#resolver, firstLookup: this.#firstLookup } = reportingResolver(
      spec.targetHost,
      spec.targetPort,
      {
        policy: this.#options.policy ?? TargetPolicy.ALLOW_ALL,
        ...(this.#options.onTarget && { onTarget: this.#options.onTarget }),
      },
    ));
  }

  /**
   * Takes no new clients from now on; live sessions keep forwarding (the socket stays bound) until
   * they expire or `graceMs` passes; then everything is closed.
   */
  async drain(graceMs: number, cause: StopCause = "drained"): Promise<void> {
    this.#draining = true;
    if (this.#sessions.size > 0 && !this.#closing.signal.aborted) {
      this.#emptied ??= Promise.withResolvers();
      const graceOver = new AbortController();
      await Promise.race([this.#emptied.promise, abortableDelay(graceMs, graceOver.signal)]);
      graceOver.abort();
    }
    if (!this.#closing.signal.aborted) {
      const forced = this.#sessions.size;
      if (forced > 0) {
        // Counted and logged, but no abort: a UDP session has no end to wait for, only silence.
        this.#counters.errors.DrainTimeout += forced;
        log.warn(
          "Closed {count} UDP session(s) of {forwarder} still open after the drain grace period of {graceMs} ms",
          { forwarder: this.#options.name, count: forced, graceMs },
        );
      }
      this.#closing.abort();
      this.#socket.close();
      for (const session of this.#sessions) this.#endSession(session, cause);
      clearInterval(this.#sweepTimer);
    }
    await this.released;
    while (this.#tasks.size > 0) await Promise.all(this.#tasks);
    await this.#firstLookup;
  }

  /** Starts a receive loop on the listening socket; an older one stops after its current send. */
  #startReceiver(): void {
    const receiver = ++this.#receiver;
    this.#track(
      this.#receiveLoop(receiver).finally(() => {
        if (receiver === this.#receiver) this.#released.resolve();
      }),
    );
  }

  async #receiveLoop(receiver: number): Promise<void> {
    const bufferBytes = this.#options.bufferBytes;
    const buffer = new Uint8Array(receiveBufferBytes(bufferBytes));
    const counters = this.#counters;
    const closing = this.#closing.signal;
    const socket = this.#socket;
    let last: UdpSession | undefined;
    /** Header + datagram, for sessions that send a PROXY header. */
    let framed: Uint8Array | undefined;
    for (;;) {
      let data: Uint8Array<ArrayBuffer>;
      let from: Deno.Addr;
      try {
        [data, from] = await socket.receive(buffer);
      } catch (error) {
        if (closing.aborted) return;
        counters.errors.ReadFromClient++;
        this.#warn("drop", "Receive failed on UDP port {port} of {forwarder}: {error}", { error });
        await abortableDelay(RECEIVE_ERROR_PAUSE_MS, closing);
        continue;
      }
      const client = from as Deno.NetAddr;
      if (data.length > bufferBytes) data = this.#truncate(data, "client");
      const nowMs = this.#now();
      let session = last;
      if (
        session === undefined || session.ended || session.client.port !== client.port ||
        session.client.hostname !== client.hostname
      ) {
        session = this.#sessions.get(client.hostname, client.port) ??
          this.#openSession(client, nowMs);
        if (session === undefined) continue;
        last = session;
      }
      session.lastActiveMs = nowMs;
      if (session.queue === undefined) {
        this.#receiverSendingFor = session;
        if (session.proxyHeader !== undefined) {
          framed ??= new Uint8Array(PROXY_V2_MAX_WRITTEN_BYTES + bufferBytes);
        }
        await this.#sendToTarget(session, data, nowMs, framed);
        if (receiver !== this.#receiver) return; // abandoned by the sweeper
        this.#receiverSendingFor = undefined;
      } else if (
        session.queue.length < MAX_QUEUED_DATAGRAMS &&
        session.queuedBytes + data.length <= this.#charge
      ) {
        session.queuedBytes += data.length;
        session.queue.push(data.slice());
      } else {
        counters.droppedDatagrams++;
      }
    }
  }

  /** A new session for `client`, or undefined (counted) when none may be opened. */
  #openSession(client: Deno.NetAddr, nowMs: number): UdpSession | undefined {
    const counters = this.#counters;
    if (this.#draining) {
      counters.droppedDatagrams++;
      return undefined;
    }
    if (this.#sessions.size >= this.#options.maxSessions) {
      counters.droppedDatagrams++;
      counters.errors.SessionLimit++;
      this.#warn(
        "drop",
        "UDP port {port} of {forwarder} has {max} sessions; dropping new clients",
        {
          max: this.#options.maxSessions,
        },
      );
      return undefined;
    }
    // UDP reads no PROXY headers (it only sends them): the datagram's source is the client.
    const rejection = this.#gate.admit(client.hostname, nowMs);
    if (rejection !== undefined) {
      this.#reject(client, UDP_REJECTIONS[rejection]);
      return undefined;
    }
    const resolver = this.#resolver;
    if (resolver.forbidden(nowMs) !== undefined) {
      this.#gate.release(client.hostname);
      this.#reject(client, "TargetForbidden");
      return undefined;
    }
    const refused = this.#takeBudgets();
    if (refused !== undefined) {
      this.#gate.release(client.hostname);
      counters.droppedDatagrams++;
      counters.errors[refused]++;
      this.#warn(
        "drop",
        refused === "SocketLimit"
          ? "UDP port {port} of {forwarder} refuses new clients: the sockets budget (--max-open-sockets) is used up"
          : "UDP port {port} of {forwarder} refuses new clients: the session buffer budget (--udp-buffer-budget-bytes) is used up",
        {},
      );
      return undefined;
    }
    const spec = this.#spec;
    const logged = sampled(
      spec.accessLog ?? this.#options.accessLog ?? false,
      this.#options.accessLogSampleRate ?? 1,
    );
    const session = new UdpSession(client, nowMs, spec, logged);
    this.#sessions.add(session);
    counters.activeSessions++;
    counters.sessionsTotal++;
    const target = resolver.cached(nowMs);
    if (target !== undefined) {
      if (!this.#connect(session, target)) {
        counters.droppedDatagrams++;
        return undefined;
      }
    } else {
      session.queue = [];
      this.#track(this.#resolveAndFlush(session, resolver));
    }
    return session;
  }

  /** Takes a socket and a session buffer from the budgets; the error type when one is used up. */
  #takeBudgets(): "SocketLimit" | "BufferBudget" | undefined {
    const { sockets, bufferBudget } = this.#options;
    if (sockets?.take(1) === false) return "SocketLimit";
    if (bufferBudget?.take(this.#charge) === false) {
      sockets?.give(1);
      return "BufferBudget";
    }
    return undefined;
  }

  /** Opens the session's upstream socket and starts its reply loop; false (counted) on failure. */
  #connect(session: UdpSession, target: ResolvedTarget): boolean {
    try {
      session.upstream = (this.#options.openUpstream ?? openUpstream)(target.bindHostname);
    } catch (error) {
      this.#fail(session, "DialUDPTarget", error);
      return false;
    }
    session.target = target.addr;
    if (!target.addr.hostname.includes(":")) session.maxToTarget = MAX_UDP_PAYLOAD_BYTES_IPV4;
    if (session.spec.proxyProtocol === "v2") {
      const endpoints = proxyEndpoints(session.client, this.#socket.addr as Deno.NetAddr);
      session.proxyHeader = new Uint8Array(proxyV2HeaderBytes(endpoints));
      writeProxyV2Header(session.proxyHeader, 0, "dgram", endpoints);
    }
    this.#track(this.#replyLoop(session));
    return true;
  }

  /** Drops a datagram of a client that may not have a session; counted, logged rate-limited. */
  #reject(client: Deno.NetAddr, reason: UdpRejectReason): void {
    this.#counters.rejected[reason]++;
    this.#warn(
      "reject",
      "Dropped a datagram from {client} on UDP port {port} of {forwarder}: {reason}",
      {
        client: client.hostname,
        reason: reason === "TargetForbidden"
          ? `${reason} (${this.#resolver.forbidden(Date.now())?.rule ?? "target forbidden"})`
          : reason,
      },
    );
  }

  async #resolveAndFlush(session: UdpSession, resolver: TargetResolver): Promise<void> {
    let target: ResolvedTarget;
    try {
      target = await resolver.resolve();
    } catch (error) {
      if (error instanceof TargetForbiddenError) {
        this.#counters.rejected.TargetForbidden += session.queue?.length ?? 0;
        this.#warn("reject", "UDP session of {forwarder} for {client} ended: {error}", {
          client: `${session.client.hostname}:${session.client.port}`,
          error: error.message,
        });
        this.#endSession(session, "refused", `TargetForbidden: ${error.message}`);
        return;
      }
      this.#counters.droppedDatagrams += session.queue?.length ?? 0;
      this.#fail(session, "ResolveTargetAddress", error);
      return;
    }
    if (session.ended) return;
    if (!this.#connect(session, target)) {
      this.#counters.droppedDatagrams += session.queue?.length ?? 0;
      return;
    }
    const queue = session.queue ?? [];
    for (let datagram = queue.shift(); datagram !== undefined; datagram = queue.shift()) {
      if (session.ended) return;
      await this.#sendToTarget(session, datagram, this.#now());
    }
    session.queue = undefined;
  }

  /**
   * Sends one client datagram to the target, behind the session's PROXY header if it has one
   * (assembled in `framed` when it is big enough, else in a new array).
   */
  async #sendToTarget(
    session: UdpSession,
    data: Uint8Array,
    nowMs: number,
    framed?: Uint8Array,
  ): Promise<void> {
    const counters = this.#counters;
    let out = data;
    const header = session.proxyHeader;
    if (header !== undefined) {
      const total = header.length + data.length;
      if (total > session.maxToTarget) {
        counters.errors.ProxyHeaderTooLarge++;
        counters.droppedDatagrams++;
        this.#warn(
          "drop",
          "Dropped a datagram of {bytes} bytes from a client of {forwarder}: with the PROXY header it exceeds {max} bytes",
          { bytes: data.length, max: session.maxToTarget },
        );
        return;
      }
      const buffer = framed !== undefined && framed.length >= total
        ? framed
        : new Uint8Array(total);
      buffer.set(header);
      buffer.set(data, header.length);
      out = buffer.subarray(0, total);
    }
    session.toTargetSinceMs = nowMs;
    try {
      await session.upstream!.send(out, session.target!);
      counters.bytesClientToTarget += data.length;
      counters.datagramsClientToTarget++;
      session.bytesToTarget += data.length;
      session.datagramsToTarget++;
    } catch (error) {
      // A failed send drops the datagram but keeps the session (as the Go operator did).
      if (!session.ended) {
        counters.errors.WriteToTarget++;
        counters.droppedDatagrams++;
        this.#warn("target", "Cannot send to UDP target of {forwarder}: {error}", { error });
      }
    }
    session.toTargetSinceMs = 0;
  }

  async #replyLoop(session: UdpSession): Promise<void> {
    const pool = this.#buffers;
    const buffer = pool.acquire();
    const bufferBytes = this.#options.bufferBytes;
    const upstream = session.upstream!;
    const target = session.target!;
    const client = session.client;
    const counters = this.#counters;
    const socket = this.#socket;
    try {
      for (;;) {
        let [data, from] = await upstream.receive(buffer);
        const source = from as Deno.NetAddr;
        // The socket is not connected (Deno has no connect() for UDP): only the target may answer.
        if (source.port !== target.port || source.hostname !== target.hostname) continue;
        const nowMs = this.#now();
        session.lastActiveMs = nowMs;
        if (data.length > bufferBytes) data = this.#truncate(data, "target");
        session.toClientSinceMs = nowMs;
        try {
          await socket.send(data, client);
        } catch (error) {
          // A failed send to the client ends the session (as the Go operator did).
          if (!session.ended && !this.#closing.signal.aborted) {
            this.#fail(session, "WriteToClient", error);
          }
          return;
        }
        session.toClientSinceMs = 0;
        counters.bytesTargetToClient += data.length;
        counters.datagramsTargetToClient++;
        session.bytesToClient += data.length;
        session.datagramsToClient++;
      }
    } catch (error) {
      if (!session.ended) this.#fail(session, "ReadFromTarget", error);
    } finally {
      this.#endSession(session, "error");
      pool.release(buffer);
    }
  }

  #startSweeper(): void {
    const readMs = this.#spec.readTimeoutSeconds * 1000;
    const writeMs = this.#spec.writeTimeoutSeconds * 1000;
    const everyMs = Math.max(25, Math.min(1000, Math.min(readMs, writeMs) / 4));
    this.#sweepTimer = setInterval(() => this.#sweep(readMs, writeMs), everyMs);
  }

  /** Ends idle sessions and sessions whose send is stuck. */
  #sweep(readMs: number, writeMs: number): void {
    const nowMs = this.#now();
    for (const session of this.#sessions) {
      if (session.toTargetSinceMs > 0 && nowMs - session.toTargetSinceMs >= writeMs) {
        const error = new Error(`send blocked for ${writeMs} ms`);
        this.#fail(session, "WriteToTarget", error, "write_timeout");
        if (session === this.#receiverSendingFor) {
          this.#receiverSendingFor = undefined;
          this.#startReceiver();
        }
      } else if (session.toClientSinceMs > 0 && nowMs - session.toClientSinceMs >= writeMs) {
        const error = new Error(`send blocked for ${writeMs} ms`);
        this.#fail(session, "WriteToClient", error, "write_timeout");
      } else if (nowMs - session.lastActiveMs >= readMs) {
        this.#endSession(session, "idle_timeout");
      }
    }
  }

  /** Counts `type`, logs (rate-limited) and ends the session (with `reason`, else by `type`). */
  #fail(
    session: UdpSession,
    type: UdpErrorType,
    error: unknown,
    reason: EndReason = UDP_FAILURE_REASONS[type] ?? "error",
  ): void {
    this.#counters.errors[type]++;
    this.#warn("target", "UDP session of {forwarder} for {client} ended ({type}): {error}", {
      client: `${session.client.hostname}:${session.client.port}`,
      type,
      error,
    });
    this.#endSession(session, reason, `${type}: ${detailOf(error)}`);
  }

  /** Ends `session` once; `reason` and `detail` go into its access record. */
  #endSession(session: UdpSession, reason: EndReason, detail?: string): void {
    if (session.ended) return;
    session.ended = true;
    if (session.logged) this.#writeAccessRecord(session, reason, detail);
    this.#sessions.delete(session);
    this.#gate.release(session.client.hostname);
    this.#counters.activeSessions--;
    this.#options.sockets?.give(1);
    this.#options.bufferBudget?.give(this.#charge);
    try {
      session.upstream?.close();
    } catch {
      // Already closed.
    }
    if (this.#sessions.size === 0) this.#emptied?.resolve();
  }

  /** Counts and logs a datagram longer than `bufferBytes`; returns its first `bufferBytes`. */
  #truncate(data: Uint8Array<ArrayBuffer>, from: "client" | "target"): Uint8Array<ArrayBuffer> {
    const bufferBytes = this.#options.bufferBytes;
    this.#counters.truncatedDatagrams++;
    this.#counters.errors.Truncated++;
    this.#warn(
      "truncate",
      "A datagram from the {from} of {forwarder} is longer than {bufferBytes} bytes; forwarding only those",
      { from, bufferBytes },
    );
    return data.subarray(0, bufferBytes);
  }

  #warn(
    kind: "drop" | "target" | "truncate" | "reject",
    message: string,
    props: Record<string, unknown>,
  ): void {
    const suppressed = this.#logs[kind].take();
    if (suppressed === undefined) return;
    log.warn(message, { forwarder: this.#options.name, port: this.port, suppressed, ...props });
  }

  #writeAccessRecord(session: UdpSession, endReason: EndReason, endDetail?: string): void {
    const forwarder = this.#options.name;
    const spec = session.spec;
    writeAccessRecord({
      forwarder,
      ...splitForwarderName(forwarder),
      protocol: "udp",
      clientAddress: session.client.hostname,
      clientPort: session.client.port,
      listenPort: this.port,
      targetHost: spec.targetHost,
      ...(session.target !== undefined && { targetAddress: session.target.hostname }),
      targetPort: spec.targetPort,
      bytesClientToTarget: session.bytesToTarget,
      bytesTargetToClient: session.bytesToClient,
      datagramsClientToTarget: session.datagramsToTarget,
      datagramsTargetToClient: session.datagramsToClient,
      startTime: new Date(session.openedMs).toISOString(),
      durationMs: Date.now() - session.openedMs,
      endReason,
      ...(endDetail !== undefined && { endDetail }),
    });
  }

  #track(task: Promise<void>): void {
    const tracked = task.catch((error) => {
      log.error("UDP session task of {forwarder} failed: {error}", {
        forwarder: this.#options.name,
        error,
      });
    }).finally(() => this.#tasks.delete(tracked));
    this.#tasks.add(tracked);
  }
}
